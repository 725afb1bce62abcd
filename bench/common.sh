# Shared by bench/run.sh (the benchmark) and bench/soak.sh (the soak and fault
# harness), so that both run the same backend and the same proxies the same way:
# installing nginx and HAProxy, building, the open-file limit and the CPU pinning, the
# proxies' configurations, starting and stopping the backend and the proxies.
#
# Sourced, not run. The caller sets ROOT (and cd's there) and LOG_TAG (the log prefix),
# then calls the functions below in this order:
#   use_ports BASE; install_proxies; build_tools; raise_nofile; setup_pinning;
#   setup_work PREFIX; write_configs; start_backend; start_target TARGET ... stop_target

log() { printf '[%s %s] %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- ports, cores
# Sets PORT_BASE (BENCH_PORT_BASE, else $1: each script has its own, so that they can
# run at once), BACKEND_PORT, PORT (target -> listening port), and PROXY_CPU and
# LOAD_CPU (BENCH_PROXY_CPU, BENCH_LOAD_CPU).
use_ports() {
  PORT_BASE=${BENCH_PORT_BASE:-$1}
  BACKEND_PORT=$PORT_BASE
  declare -gA PORT=([direct]=$PORT_BASE [nginx]=$((PORT_BASE + 1)) [haproxy]=$((PORT_BASE + 2))
                    [relay]=$((PORT_BASE + 3)) [switchyard]=$((PORT_BASE + 4)))
  PROXY_CPU=${BENCH_PROXY_CPU:-0}
  LOAD_CPU=${BENCH_LOAD_CPU:-1}
}

# ---------------------------------------------------------------- packages
# Installs the Debian package $2 (default: $1) with apt-get when the command $1 is
# missing (updating the package lists first if the install fails without).
install_if_missing() {
  command -v "$1" >/dev/null && return 0
  local package=${2:-$1} sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  log "installing $package (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "$package" >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$package" >/dev/null; }
}

# ---------------------------------------------------------------- nginx, HAProxy
install_proxies() {
  install_if_missing nginx
  install_if_missing haproxy
  # Debian starts the packaged services where there is an init system; they listen on
  # other ports and do not matter here.
}

# ---------------------------------------------------------------- build
# Sets SWITCHYARD and BENCH (honours CARGO_TARGET_DIR).
build_tools() {
  log "building switchyard and switchyard-bench (release)"
  cargo build --release --quiet -p runtime-tokio -p switchyard-bench
  TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  SWITCHYARD=$TARGET_DIR/release/switchyard
  BENCH=$TARGET_DIR/release/switchyard-bench
}

# ---------------------------------------------------------------- a real browser
# For browser.sh and browser_guards.sh (after setup_work): needs Node.js; installs
# Debian's chromium if missing (CHROMIUM names another) and playwright-core into
# $WORK/node, and exports CHROMIUM and NODE_PATH for the scripts' node programs.
setup_browser() {
  command -v node >/dev/null || { echo "$(basename "$0") needs Node.js (node, npm)" >&2; exit 2; }
  CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  if [ ! -x "$CHROMIUM" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    log "installing chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq chromium >/dev/null ||
      { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
  fi
  export CHROMIUM
  log "installing playwright-core (npm)"
  npm install --silent --prefix "$WORK/node" playwright-core@1 >/dev/null
  export NODE_PATH=$WORK/node/node_modules
}

# ---------------------------------------------------------------- limits, pinning
# Raises the soft open-file limit to the hard one; sets NOFILE.
raise_nofile() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE=$(ulimit -n)
}

# Sets CPUS, the command prefixes PIN_PROXY / PIN_LOAD (core, nice) and
# PIN_PROXY_RT / PIN_LOAD_RT (SCHED_FIFO as well), NICE and RT.
setup_pinning() {
  CPUS=$(nproc)
  # Arrays, not functions: a backgrounded function runs in a subshell, and $! would be
  # the subshell's pid instead of the proxy's. taskset and nice exec what they run.
  PIN_PROXY=() PIN_LOAD=()
  if [ "$CPUS" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_PROXY=(taskset -c "$PROXY_CPU") PIN_LOAD=(taskset -c "$LOAD_CPU")
  else
    log "fewer than 2 cores (or no taskset): nothing is pinned; numbers mean less"
  fi
  PIN_PROXY_RT=("${PIN_PROXY[@]}") PIN_LOAD_RT=("${PIN_LOAD[@]}")
  # A higher priority than other work on the machine (compiles, tests), if allowed: the
  # throughput runs keep both cores busy, and a fair share against other busy processes
  # would make the numbers mostly about them.
  NICE=${BENCH_NICE:--10}
  if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null && [ "$(nice -n "$NICE" nice)" -lt "$(nice)" ]; then
    PIN_PROXY=(nice -n "$NICE" "${PIN_PROXY[@]}") PIN_LOAD=(nice -n "$NICE" "${PIN_LOAD[@]}")
  else
    NICE=0
  fi
  # The fixed-rate latency run uses a fraction of each core; there, SCHED_FIFO keeps the
  # round trips free of other processes' time slices (BENCH_RT=0 to not).
  RT=${BENCH_RT:-1}
  if [ "$RT" = 1 ] && command -v chrt >/dev/null && chrt -f 1 true 2>/dev/null; then
    PIN_PROXY_RT=(chrt -f 1 "${PIN_PROXY_RT[@]}") PIN_LOAD_RT=(chrt -f 1 "${PIN_LOAD_RT[@]}")
  else
    RT=0 PIN_PROXY_RT=("${PIN_PROXY[@]}") PIN_LOAD_RT=("${PIN_LOAD[@]}")
  fi
}

# ---------------------------------------------------------------- work directory
# Sets WORK (a new directory /tmp/PREFIX.XXXXXX) and the traps that stop what was
# started and remove it on exit (BENCH_KEEP_WORK=1 keeps it). EXTRA_PIDS: more
# processes to stop on exit.
setup_work() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  BACKEND_PID="" PROXY_PID="" MEASURE_PIDS="" EXTRA_PIDS=""
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

cleanup() {
  for pid in $PROXY_PID $BACKEND_PID $EXTRA_PIDS; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# ---------------------------------------------------------------- configurations
# Writes $WORK/nginx/nginx.conf, $WORK/haproxy.cfg and $WORK/switchyard.toml: the
# benchmark's configurations, with BACKEND_PORT as the upstream. soak.sh derives its
# per-scenario variants from these.
# Same for all: 1 worker on 1 core, no access log, 16 KiB buffers per direction,
# 60 s timeouts (connect, head, read, send, tunnel), 75 s client keep-alive,
# X-Forwarded-For / -Proto added, 64 idle upstream connections kept.
write_configs() {
WORKER_CONNECTIONS=$((NOFILE - 100))
mkdir -p "$WORK/nginx/tmp"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $WORKER_CONNECTIONS; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_timeout 75s;
  keepalive_requests 100000000;
  client_header_timeout 60s;
  send_timeout 60s;
  # The WebSocket idiom: Connection: upgrade only when the client asked, otherwise
  # empty, so the upstream keep-alive connections stay usable.
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_connect_timeout 60s;
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
    }
  }
}
EOF

HAPROXY_MAXCONN=$(((NOFILE - 200) / 2))
cat > "$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $HAPROXY_MAXCONN
  tune.bufsize 16384
defaults
  mode http
  option http-keep-alive
  option forwardfor
  timeout connect 60s
  timeout client 60s
  timeout server 60s
  timeout tunnel 60s
  timeout http-request 60s
  timeout http-keep-alive 75s
  timeout client-fin 30s
  timeout server-fin 30s
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  maxconn $HAPROXY_MAXCONN
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  server s1 127.0.0.1:$BACKEND_PORT
EOF

cat > "$WORK/switchyard.toml" <<EOF
listen = ["127.0.0.1:${PORT[switchyard]}"]
upstream = "127.0.0.1:$BACKEND_PORT"
threads = 1
buffer_size = 16384
[log]
access = false
EOF
"$SWITCHYARD" check --config "$WORK/switchyard.toml" >/dev/null
}

# ---------------------------------------------------------------- processes
wait_port() { "$BENCH" wait --addr "127.0.0.1:$1" --timeout 10; }

start_backend() {
  "${PIN_LOAD[@]}" "$BENCH" backend --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  wait_port "$BACKEND_PORT"
}

# Pids whose parent is $1 (pgrep -P, without needing procps).
children_of() {
  local dir
  for dir in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$dir/stat" 2>/dev/null)" = "$1" ] && echo "${dir#/proc/}"
  done
  return 0
}

# Starts the proxy for $1 on the proxy core (with the command prefix PROXY_PREFIX);
# sets PROXY_PID (what to stop) and MEASURE_PIDS (whose CPU and RSS are the proxy's).
start_target() {
  PROXY_PID="" MEASURE_PIDS=""
  [ "$1" != direct ] || return 0
  local started=0
  launch_proxy "$1" "$WORK" "${PORT[$1]}" || started=$?
  PROXY_PID=$LAUNCHED_PID MEASURE_PIDS=$LAUNCHED_MEASURE_PIDS
  return $started
}

# Starts proxy $1 with the configurations in $2, laid out as write_configs writes them
# (nginx/nginx.conf, haproxy.cfg, switchyard.toml; its log goes to $2/$1.log), and
# waits for it on port $3 (the port its configuration listens on). Sets LAUNCHED_PID
# (what to stop, set even if it does not come up) and LAUNCHED_MEASURE_PIDS (whose CPU
# and RSS are the proxy's).
launch_proxy() {
  local target=$1 dir=$2 port=$3
  LAUNCHED_PID="" LAUNCHED_MEASURE_PIDS=""
  case "$target" in
    nginx)
      "${PROXY_PREFIX[@]}" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' \
        >"$dir/nginx.log" 2>&1 & ;;
    haproxy)
      "${PROXY_PREFIX[@]}" haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 & ;;
    relay)
      "${PROXY_PREFIX[@]}" "$BENCH" relay --listen "127.0.0.1:$port" \
        --upstream "127.0.0.1:$BACKEND_PORT" --threads 1 >"$dir/relay.log" 2>&1 & ;;
    switchyard)
      "${PROXY_PREFIX[@]}" "$SWITCHYARD" --config "$dir/switchyard.toml" >"$dir/switchyard.log" 2>&1 & ;;
    *) echo "unknown target $target" >&2; return 1 ;;
  esac
  LAUNCHED_PID=$!
  if ! wait_port "$port"; then
    log "$target did not start; its log:"
    cat "$dir/$target.log" >&2
    return 1
  fi
  LAUNCHED_MEASURE_PIDS=$LAUNCHED_PID
  if [ "$target" = nginx ]; then
    # The worker holds the connections; the master only supervises.
    # (head may close the pipe before children_of is done: not a failure.)
    LAUNCHED_MEASURE_PIDS=$(children_of "$LAUNCHED_PID" | head -1) || true
  fi
}

stop_target() {
  [ -n "$PROXY_PID" ] || return 0
  stop_process "$PROXY_PID"
  PROXY_PID="" MEASURE_PIDS=""
}

# Stops $1: TERM, then KILL if it is still there after 5 s.
stop_process() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
