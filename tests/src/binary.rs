//! The shipped binary, run as an operator runs it: built with the cargo that runs the
//! tests, started with a config file or flags on a free port, stopped with SIGTERM.
//!
//! A binary of another package has no `CARGO_BIN_EXE_*`, so [`cargo_bin`] asks cargo to
//! build it (a no-op when it is fresh) and takes the executable's path from cargo's
//! JSON messages: that path is right whatever the target directory or profile.

use crate::backend::Backend;
use crate::http::Conn;
use crate::ws;
use futures_util::SinkExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Builds binary `bin` of workspace package `package` in the test's profile and
/// returns its path. Blocking; cached per process. Call it outside any scenario
/// timeout: the first call may compile.
pub fn cargo_bin(package: &str, bin: &str) -> PathBuf {
    cargo_build(package, "--bin", bin)
}

/// [`cargo_bin`] for example `example` of `package`.
pub fn cargo_example(package: &str, example: &str) -> PathBuf {
    cargo_build(package, "--example", example)
}

/// `cargo build -p package <kind> name`, and the executable's path.
fn cargo_build(package: &str, kind: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let cache = BUILT.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_string(), bin.to_string());
    if let Some(path) = cache.get(&key) {
        return path.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "-p",
            package,
            kind,
            bin,
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build for the binary");
    assert!(
        out.status.success(),
        "cargo build -p {package} {kind} {bin} failed"
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .unwrap_or_else(|| panic!("cargo reported no executable for {package}/{bin}"));
    cache.insert(key, path.clone());
    path
}

/// A free port on 127.0.0.1: bound, read, released. (Another process could take it
/// in between; on a test machine that is rare.)
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().unwrap()
}

/// `--listen LISTEN --upstream UPSTREAM`: the binary configured by flags alone.
fn listen_upstream_flags(listen: SocketAddr, upstream: SocketAddr) -> [String; 4] {
    [
        "--listen".to_string(),
        listen.to_string(),
        "--upstream".to_string(),
        upstream.to_string(),
    ]
}

/// A running `switchyard` process.
pub struct Process {
    child: Child,
    /// Where it listens.
    pub listen: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `exe` with `args`, capturing its output, and waits (at most 5 s) until
    /// it accepts connections on `listen`.
    pub async fn spawn(exe: &Path, args: &[String], listen: SocketAddr) -> Process {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Process::spawn_command(cmd, exe, listen).await
    }

    /// [`Process::spawn`] under a limit of `soft` and `hard` open files, set with
    /// `prlimit --nofile=SOFT:HARD` if it is installed, else with the shell's `ulimit`;
    /// both exec the binary, so the pid is the binary's own.
    pub async fn spawn_with_nofile(
        exe: &Path,
        args: &[String],
        listen: SocketAddr,
        (soft, hard): (u32, u32),
    ) -> Process {
        let has_prlimit = std::process::Command::new("prlimit")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let mut cmd;
        if has_prlimit {
            cmd = Command::new("prlimit");
            cmd.arg(format!("--nofile={soft}:{hard}"))
                .arg("--")
                .arg(exe);
        } else {
            cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!(
                    "ulimit -Hn {hard} && ulimit -Sn {soft} && exec \"$0\" \"$@\""
                ))
                .arg(exe);
        }
        cmd.args(args);
        Process::spawn_command(cmd, exe, listen).await
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn spawn_command(mut cmd: Command, exe: &Path, listen: SocketAddr) -> Process {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let output: Arc<Mutex<String>> = Arc::default();
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut p = Process {
            child,
            listen,
            output,
        };
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "switchyard exited with {status} before listening; output:\n{}",
                    p.output()
                );
            }
            if start.elapsed() > Duration::from_secs(5) {
                panic!(
                    "switchyard not accepting on {listen} after 5 s; output:\n{}",
                    p.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends SIGTERM with `kill -TERM <pid>`.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP with `kill -HUP <pid>`.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("process still running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Waits (at most `within`) until the output contains `text`.
    pub async fn wait_output(&self, text: &str, within: Duration) -> Result<(), String> {
        let start = Instant::now();
        while !self.output().contains(text) {
            if start.elapsed() > within {
                return Err(format!(
                    "no {text:?} within {within:?}; output:\n{}",
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits for the exit; `Err` (with the output) if it has not exited within `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, String> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(format!("wait failed: {e}")),
            Err(_) => Err(format!(
                "still running {within:?} after SIGTERM; output:\n{}",
                self.output()
            )),
        }
    }
}

/// A TOML config file for the binary.
pub fn config_file(
    listen: SocketAddr,
    upstream: SocketAddr,
    shutdown: &str,
) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("switchyard-")
        .suffix(".toml")
        .tempfile()
        .unwrap();
    let text = format!(
        "listen = [\"{listen}\"]\n\
         upstream = \"{upstream}\"\n\
         buffer_size = 16384\n\
         \n\
         [timeouts]\n\
         upstream_connect = \"2s\"\n\
         client_head = \"5s\"\n\
         upstream_response_head = \"5s\"\n\
         tunnel_idle = \"30s\"\n\
         linger = \"300ms\"\n\
         shutdown = \"{shutdown}\"\n\
         \n\
         [limits]\n\
         max_headers = 100\n"
    );
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

async fn http_get(addr: SocketAddr, path: &str) -> Conn {
    let mut c = Conn::connect(addr).await.expect("connect to switchyard");
    c.write(format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), c.read_response("GET"))
        .await
        .expect("response from switchyard")
        .expect("read response");
    assert_eq!(
        (r.status, r.text()),
        (200, format!("GET {path}")),
        "HTTP through the binary"
    );
    c
}

async fn websocket_roundtrip(addr: SocketAddr) -> ws::Client {
    let mut client = ws::connect(addr).await;
    client
        .send(Message::text("through the binary"))
        .await
        .unwrap();
    let got = ws::next(&mut client, Duration::from_secs(3)).await;
    assert_eq!(
        got,
        Some(Ok(Message::text("through the binary"))),
        "WebSocket echo through the binary"
    );
    client
}

/// `switchyard --config FILE`: proxies a WebSocket session and an HTTP request, logs an
/// access line for each; on SIGTERM it exits 0 within the shutdown deadline.
pub async fn config_file_proxies_then_sigterm_exits_0(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = config_file(listen, backend.addr, "2s");
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn(exe, &args, listen).await;
    let mut client = websocket_roundtrip(listen).await;
    client.close(None).await.unwrap();
    let _ = ws::wait_end(&mut client, Duration::from_secs(2)).await;
    drop(http_get(listen, "/via-binary").await);
    // One access line for the request and one for the tunnel, each with its fields.
    proc.wait_output("target=/via-binary status=200", Duration::from_secs(3))
        .await
        .expect("the request's access line");
    let output = proc.output();
    let request = output.lines().find(|l| l.contains("target=/via-binary"));
    let request = request.unwrap_or_default();
    assert!(
        request.contains("switchyard::access: request client=127.0.0.1:")
            && request.contains(" method=GET ")
            && request.contains(&format!(" upstream={} error=-", backend.addr)),
        "{request}"
    );
    let start = Instant::now();
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(3)).await.unwrap();
    let output = proc.output();
    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(start.elapsed() <= Duration::from_secs(3));
    // The tunnel ended by then at the latest, and its line was written out before exit.
    let tunnel = |l: &&str| {
        l.contains("switchyard::access: tunnel client=127.0.0.1:")
            && l.contains(" protocol=websocket ")
    };
    assert!(
        output.lines().any(|l| tunnel(&l)),
        "no tunnel line in:\n{output}"
    );
}

/// `[log] format = "json"`: every line on stderr is one JSON object, the access line
/// of a request among them with its values typed.
pub async fn json_log_lines_are_json_objects(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = config_file(listen, backend.addr, "2s");
    std::fs::write(
        file.path(),
        std::fs::read_to_string(file.path()).unwrap() + "\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn(exe, &args, listen).await;
    drop(http_get(listen, "/json-line").await);
    proc.wait_output("\"target\":\"/json-line\"", Duration::from_secs(3))
        .await
        .expect("the request's access line");
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(3)).await.unwrap();
    let output = proc.output();
    assert!(status.success(), "exit status {status}; output:\n{output}");
    let lines: Vec<serde_json::Value> = (output.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(
        lines.len() >= 2,
        "the access line and the start and stop lines:\n{output}"
    );
    let access = (lines.iter())
        .find(|l| l["fields"]["target"] == "/json-line")
        .expect("the access line");
    assert_eq!(access["target"], "switchyard::access");
    assert_eq!(access["fields"]["kind"], "request");
    assert_eq!(access["fields"]["method"], "GET");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["fields"]["upstream"], backend.addr.to_string());
    assert!(access["fields"]["error"].is_null());
    assert!(access["fields"]["duration_ms"].is_f64());
}

/// `work_stealing = false`, `threads = 3`: the main thread and two more, each with an
/// event loop and listener of its own (and a CPU of its own if there are 3), serve
/// WebSockets and requests on fresh connections (the kernel spreads them over the
/// three listeners); a second instance
/// on the same address is refused with exit 1 rather than joining the listener group;
/// SIGTERM drains every thread's connections and exits 0.
pub async fn own_event_loop_per_thread_serves_and_a_second_instance_is_refused(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = config_file(listen, backend.addr, "2s");
    let text = std::fs::read_to_string(file.path()).unwrap();
    write_file(
        &file,
        &format!("threads = 3\nwork_stealing = false\n{text}"),
    );
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn(exe, &args, listen).await;
    let pid = proc.pid().expect("running");
    if cfg!(target_os = "linux") {
        // Each thread's name and the CPUs it may run on.
        let threads_of = || -> Vec<(String, String)> {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .filter_map(|t| {
                    let path = t.ok()?.path();
                    let name = std::fs::read_to_string(path.join("comm")).ok()?;
                    let status = std::fs::read_to_string(path.join("status")).ok()?;
                    let cpus = status
                        .lines()
                        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
                    Some((name.trim().to_owned(), cpus.trim().to_owned()))
                })
                .collect()
        };
        let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let names = ["switchyard", "switchyard-1", "switchyard-2"];
        let find = |threads: &[(String, String)], name: &str| {
            threads
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, cpus)| cpus.clone())
        };
        // The port answers once the main thread listens; the other threads start, and
        // bind themselves to a CPU, meanwhile: wait for that (a bounded while).
        let settled = |threads: &[(String, String)]| {
            names.iter().all(|name| {
                find(threads, name)
                    .is_some_and(|cpus| cpu_count < 3 || cpus.parse::<usize>().is_ok())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut threads = threads_of();
        while !settled(&threads) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            threads = threads_of();
        }
        let cpus_of = |name: &str| {
            find(&threads, name).unwrap_or_else(|| panic!("no thread {name} in {threads:?}"))
        };
        let loops = names.map(cpus_of);
        let allowed = cpus_of("switchyard-log"); // never bound
        if cpu_count >= 3 {
            // A CPU each: one number, all different.
            assert!(
                loops.iter().all(|c| c.parse::<usize>().is_ok()),
                "{threads:?}"
            );
            assert!(loops[0] != loops[1] && loops[1] != loops[2] && loops[0] != loops[2]);
        } else {
            // Fewer CPUs than threads: none is bound.
            assert!(loops.iter().all(|c| *c == allowed), "{threads:?}");
        }
    }
    let mut tunnels = Vec::new();
    for i in 0..12 {
        tunnels.push(websocket_roundtrip(listen).await);
        assert_eq!(
            get_text(listen, &format!("/n{i}")).await,
            format!("GET /n{i}")
        );
    }
    let mut second = Process::spawn(exe, &args, listen).await;
    let status = second.wait_exit(Duration::from_secs(3)).await.unwrap();
    let output = second.output();
    assert_eq!(status.code(), Some(1), "the second instance: {output}");
    assert!(
        output.contains(&format!("cannot listen on {listen}")) && output.contains("in use"),
        "{output}"
    );
    for (i, t) in tunnels.iter_mut().enumerate() {
        let text = format!("after the second instance {i}");
        t.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            ws::next(t, Duration::from_secs(3)).await,
            Some(Ok(Message::text(text))),
            "tunnel {i}"
        );
    }
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(5)).await.unwrap();
    assert!(
        status.success(),
        "exit {status}; output:\n{}",
        proc.output()
    );
    for (i, t) in tunnels.iter_mut().enumerate() {
        assert_eq!(
            ws::wait_end(t, Duration::from_secs(1)).await,
            Ok(ws::End::Close(Some((1001, "going away".into())))),
            "tunnel {i}, drained"
        );
    }
}

/// `switchyard --listen ADDR --upstream ADDR`: proxies; a kept-alive idle client does
/// not delay SIGTERM (idle connections close at once, whatever the deadline): exit 0
/// within 2 s, and the client sees its connection closed.
pub async fn flags_sigterm_with_idle_keepalive_exits_0(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let args = listen_upstream_flags(listen, backend.addr);
    let mut proc = Process::spawn(exe, &args, listen).await;
    let mut idle = http_get(listen, "/keep-me").await;
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(2)).await.unwrap();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        proc.output()
    );
    idle.expect_close(Duration::from_secs(1))
        .await
        .expect("idle keep-alive connection closed");
}

/// A client that writes its request head and then its body, with Nagle's algorithm on
/// (no `TCP_NODELAY`), holds the body until the head is acknowledged. The binary's
/// listener defers acknowledgements to ride on the response, so the proxy acknowledges
/// at once when a request is incomplete: the body follows within a round trip, not at
/// the 40 ms delayed-ACK timer (Linux's least). Three connections, the fastest counted,
/// so that one stall of a busy machine does not fail it; all three would take 40 ms if
/// the acknowledgement waited.
pub async fn a_body_written_after_its_head_is_not_held_for_the_delayed_ack(exe: &Path) {
    let backend = Backend::echo_body().await;
    let listen = free_addr();
    let args = listen_upstream_flags(listen, backend.addr);
    let _proc = Process::spawn(exe, &args, listen).await;
    head_then_body_is_not_held(|| nagle_connect(listen)).await;
}

/// The same through a TLS listener: the acknowledgement is held by the TCP socket
/// under the TLS stream, and a client's TLS records wait for it the same way.
pub async fn a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack(exe: &Path) {
    let backend = Backend::echo_body().await;
    let pki = crate::tls::Pki::new();
    pki.cert("site", &["site.test"]);
    let listen = free_addr();
    let config = write_tls_config(&pki, "tls.toml", backend.addr, listen, "site.key");
    let args = ["--config".to_string(), config];
    let _proc = Process::spawn(exe, &args, listen).await;
    head_then_body_is_not_held(|| async {
        let tcp = nagle_connect(listen).await;
        let tls = crate::tls::handshake(tcp, "site.test", pki.client()).await;
        // The session tickets the server sends after the handshake would carry the
        // acknowledgement of a request written at once; a client that writes later
        // (a browser's pre-connected socket) finds none to carry it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tls.expect("TLS handshake")
    })
    .await;
}

/// Writes `name` in `pki`'s directory: a config file proxying to `upstream` from one TLS
/// listener on `listen` with certificate `site.pem` and key `key` (its `tls` on line 5);
/// returns its path.
fn write_tls_config(
    pki: &crate::tls::Pki,
    name: &str,
    upstream: SocketAddr,
    listen: SocketAddr,
    key: &str,
) -> String {
    let path = pki.dir.path().join(name);
    let text = format!(
        "upstream = \"{upstream}\"\n\n[[listen]]\naddress = \"{listen}\"\ntls = {{ cert = \"site.pem\", key = \"{key}\" }}\n"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A TCP connection to `addr` with Nagle's algorithm on (no `TCP_NODELAY`).
async fn nagle_connect(addr: SocketAddr) -> tokio::net::TcpStream {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(false).unwrap();
    tcp
}

/// On three connections from `connect`, writes a POST's head and then its body as two
/// writes, and asserts that the fastest echo of the body (see
/// [`a_body_written_after_its_head_is_not_held_for_the_delayed_ack`]) came back in
/// under 30 ms.
async fn head_then_body_is_not_held<S, F>(connect: impl Fn() -> F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: std::future::Future<Output = S>,
{
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let mut stream = connect().await;
        let started = Instant::now();
        for part in [
            &b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"[..],
            b"hello",
        ] {
            stream.write_all(part).await.unwrap();
            stream.flush().await.unwrap();
        }
        let response = crate::tls::read_response(&mut stream).await.unwrap();
        fastest = fastest.min(started.elapsed());
        assert_eq!((response.status, response.body.as_str()), (200, "hello"));
    }
    assert!(
        fastest < Duration::from_millis(30),
        "the fastest of three took {fastest:?}"
    );
}

/// An open WebSocket at SIGTERM gets `Close 1001 "going away"`, by the shutdown
/// deadline (1 s), and the process exits 0.
pub async fn sigterm_with_open_websocket_exits_0_by_deadline(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = config_file(listen, backend.addr, "1s");
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn(exe, &args, listen).await;
    let mut client = websocket_roundtrip(listen).await;
    let start = Instant::now();
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_millis(2500)).await.unwrap();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        proc.output()
    );
    let end = ws::wait_end(&mut client, Duration::from_secs(1))
        .await
        .expect("the tunnel was ended");
    assert_eq!(
        end,
        ws::End::Close(Some((1001, "going away".into()))),
        "what the client saw"
    );
    assert!(start.elapsed() <= Duration::from_millis(3500));
}

/// A config file with a bad value is refused before anything listens: non-zero exit,
/// and the message names the file, the line and the key; `switchyard check` accepts a
/// good file and refuses the bad one the same way.
pub async fn bad_config_is_refused_naming_the_key(exe: &Path) {
    let mut bad = tempfile::Builder::new()
        .prefix("switchyard-bad-")
        .suffix(".toml")
        .tempfile()
        .unwrap();
    std::io::Write::write_all(
        &mut bad,
        b"upstream = \"127.0.0.1:9\"\n\n[timeouts]\nlinger = \"5 parsecs\"\n",
    )
    .unwrap();
    let good = config_file(free_addr(), free_addr(), "1s");
    let run = |args: Vec<String>| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            Command::new(exe)
                .args(&args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("switchyard {args:?} still running after 5 s"))
        .expect("run switchyard");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    };
    let bad_path = bad.path().display().to_string();
    for args in [
        vec!["--config".to_string(), bad_path.clone()],
        vec!["check".into(), "--config".into(), bad_path],
    ] {
        let (status, text) = run(args.clone()).await;
        assert!(
            !status.success(),
            "switchyard {args:?} accepted a bad config: {text}"
        );
        assert!(
            text.contains("timeouts.linger") && text.contains(":4"),
            "switchyard {args:?}: the message should name the key and line 4: {text}"
        );
    }
    let (status, text) = run(vec![
        "check".into(),
        "--config".into(),
        good.path().display().to_string(),
    ])
    .await;
    assert!(
        status.success(),
        "switchyard check refused a good config: {text}"
    );
}

/// Writes `text` as a config file (over the previous contents).
fn write_file(file: &tempfile::NamedTempFile, text: &str) {
    std::fs::write(file.path(), text).unwrap();
}

/// The body of `GET path` through `addr`.
async fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut c = Conn::connect(addr).await.expect("connect to switchyard");
    c.write(format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), c.read_response("GET"))
        .await
        .expect("response from switchyard")
        .expect("read response");
    r.text()
}

/// SIGHUP re-reads the file: new requests go to the new upstream (and `[admin]`
/// metrics count the reload); a file that does not validate is rejected with a log
/// line naming the key, and the running configuration stays.
pub async fn sighup_reloads_and_a_bad_file_is_rejected(exe: &Path) {
    let a = Backend::ok().await;
    let b = Backend::http(|r| {
        crate::backend::Reply::Bytes(crate::http::ok(format!("b {}", r.target).as_bytes()))
    })
    .await;
    let (listen, admin) = (free_addr(), free_addr());
    let file = tempfile::Builder::new()
        .prefix("switchyard-reload-")
        .suffix(".toml")
        .tempfile()
        .unwrap();
    let config = |upstream: SocketAddr| {
        format!(
            "listen = \"{listen}\"\nupstream = \"{upstream}\"\n[admin]\nlisten = \"{admin}\"\n\
             [timeouts]\nshutdown = \"1s\"\nlinger = \"300ms\"\n"
        )
    };
    write_file(&file, &config(a.addr));
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn(exe, &args, listen).await;
    assert_eq!(get_text(listen, "/1").await, "GET /1");

    write_file(&file, &config(b.addr));
    proc.sighup();
    let start = Instant::now();
    while get_text(listen, "/2").await != "b /2" {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "not reloaded after SIGHUP; output:\n{}",
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    write_file(
        &file,
        &format!("{}[[routes]]\nupstream = \"nowhere\"\n", config(a.addr)),
    );
    proc.sighup();
    proc.wait_output("reload rejected", Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        proc.output().contains("routes[0].upstream"),
        "{}",
        proc.output()
    );
    assert_eq!(
        get_text(listen, "/3").await,
        "b /3",
        "the running configuration stays"
    );

    let (status, metrics) = crate::scenarios::metrics::scrape(admin).await;
    assert_eq!(status, 200);
    for line in [
        "switchyard_reloads_total{result=\"ok\"} 1",
        "switchyard_reloads_total{result=\"rejected\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(3)).await.unwrap();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        proc.output()
    );
}

/// A TLS listener from the file (certificate paths relative to it): https through
/// the binary; `switchyard check` loads the certificates and names the key of a
/// missing one.
pub async fn tls_listener_from_the_file_and_check_loads_certificates(exe: &Path) {
    let backend = Backend::ok().await;
    let pki = crate::tls::Pki::new();
    pki.cert("site", &["site.test"]);
    let listen = free_addr();
    let good = write_tls_config(&pki, "good.toml", backend.addr, listen, "site.key");
    let bad = write_tls_config(&pki, "bad.toml", backend.addr, listen, "missing.key");
    let check = |path: String| async move {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            Command::new(exe)
                .args(["check", "--config", &path])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("switchyard check within 5 s")
        .expect("run switchyard check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    };
    let (status, text) = check(good.clone()).await;
    assert!(status.success(), "check refused a good file: {text}");
    let (status, text) = check(bad).await;
    assert!(!status.success(), "check accepted a missing key: {text}");
    assert!(
        text.contains("bad.toml:5: listen[0].tls: ") && text.contains("missing.key"),
        "the message should name the file, line 5, the key and the file: {text}"
    );
    let mut proc = Process::spawn(exe, &["--config".to_string(), good], listen).await;
    let mut stream = crate::tls::connect(listen, "site.test", pki.client())
        .await
        .expect("TLS with the binary");
    let r = crate::tls::get(&mut stream, "site.test", "/secure")
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "GET /secure"));
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(3)).await.unwrap();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        proc.output()
    );
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second();
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Started with a soft limit of 256 open files and a hard limit of 4,096 (a shell's
/// usual 1,024 would allow only about 500 proxied connections), the binary raises the
/// soft limit to the hard one, says so, and serves.
pub async fn open_file_limit_is_raised_to_the_hard_limit(exe: &Path) {
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = config_file(listen, backend.addr, "1s");
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn_with_nofile(exe, &args, listen, (256, 4096)).await;
    let pid = proc.pid().expect("running");
    proc.wait_output(
        "open-file limit raised from 256 to 4096",
        Duration::from_secs(3),
    )
    .await
    .expect("the raise is logged");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line for open files")
        .split_whitespace()
        .collect();
    assert_eq!(open_files[3..5], ["4096", "4096"], "{limits}");
    let mut c = crate::http::Conn::connect(listen).await.expect("connect");
    c.write(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response("GET").await.expect("a response");
    assert_eq!(r.status, 200);
    proc.sigterm();
    assert!(proc
        .wait_exit(Duration::from_secs(5))
        .await
        .is_ok_and(|s| s.success()));
}

/// Lines of `output` that report a failed accept.
fn accept_failures(output: &str) -> usize {
    output.matches("accept failed").count()
}

/// Under a limit of 64 open files, three WebSockets are open, then 100 more
/// connections come and sit idle: the process runs out of descriptors and its accept
/// fails. Then the failure is logged at most about once a second (no line per
/// attempt), the accept loop backs off instead of spinning (the process uses little
/// CPU meanwhile), the open WebSockets keep echoing, and once the extra connections
/// close, new connections (HTTP and WebSocket) are served again without any help;
/// SIGTERM still exits 0.
pub async fn fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers(exe: &Path) {
    fd_exhaustion_with(exe, "").await;
}

/// [`fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers`] with three event loops of
/// their own (`work_stealing = false`), each accepting on its own listener: they all
/// hit the limit at once, and still log at most one line a second between them.
pub async fn fd_exhaustion_with_own_event_loops_logs_rarely_and_recovers(exe: &Path) {
    fd_exhaustion_with(exe, "threads = 3\nwork_stealing = false\n").await;
}

/// The fd-exhaustion scenario with `settings` (top-level keys) added to its file.
async fn fd_exhaustion_with(exe: &Path, settings: &str) {
    const NOFILE: u32 = 64;
    const EXTRA: usize = 100;
    const WINDOW: Duration = Duration::from_millis(2500);
    let backend = Backend::http_and_websocket().await;
    let listen = free_addr();
    let file = tempfile::Builder::new()
        .prefix("switchyard-fds-")
        .suffix(".toml")
        .tempfile()
        .unwrap();
    write_file(
        &file,
        &format!(
            "{settings}listen = \"{listen}\"\nupstream = \"{}\"\n[timeouts]\nclient_head = \"30s\"\n\
             keepalive_idle = \"30s\"\nlinger = \"300ms\"\nshutdown = \"1s\"\n",
            backend.addr
        ),
    );
    let args = ["--config".to_string(), file.path().display().to_string()];
    let mut proc = Process::spawn_with_nofile(exe, &args, listen, (NOFILE, NOFILE)).await;
    let pid = proc.pid().expect("running");
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        tunnels.push(websocket_roundtrip(listen).await);
    }
    let mut extra = Vec::new();
    for i in 0..EXTRA {
        // the listen backlog takes what the process cannot accept
        extra.push(
            tokio::net::TcpStream::connect(listen)
                .await
                .unwrap_or_else(|e| panic!("extra connection {i}: {e}")),
        );
    }
    let extra_connected = Instant::now(); // the first failure is logged after this
    proc.wait_output("accept failed", Duration::from_secs(3))
        .await
        .expect("the descriptors ran out: an accept failure is logged");
    let lines_before = accept_failures(&proc.output());
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    for (i, t) in tunnels.iter_mut().enumerate() {
        let text = format!("still here {i}");
        t.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            ws::next(t, Duration::from_secs(3)).await,
            Some(Ok(Message::text(text))),
            "tunnel {i} while the descriptors are exhausted"
        );
    }
    tokio::time::sleep(WINDOW.saturating_sub(start.elapsed())).await;
    let window = start.elapsed();
    let output = proc.output();
    let lines = accept_failures(&output) - lines_before;
    // Every thread's accept loop failed meanwhile; within the 5 s a line covers, they
    // logged one line between them.
    if extra_connected.elapsed() < Duration::from_millis(4500) {
        assert_eq!(accept_failures(&output), 1, "output:\n{output}");
    }
    let cpu = cpu_before
        .zip(cpu_time(pid))
        .map(|(before, after)| after.saturating_sub(before));
    let first_line = output
        .lines()
        .find(|l| l.contains("accept failed"))
        .unwrap_or_default();
    eprintln!(
        "fd exhaustion: {first_line:?}, then {lines} more such lines in {window:?}; CPU meanwhile {cpu:?}"
    );
    assert!(
        lines as f64 <= window.as_secs_f64(),
        "{lines} accept-failure lines in {window:?}: more than one a second; output:\n{output}"
    );
    if let Some(cpu) = cpu {
        assert!(
            cpu <= window / 4,
            "the process used {cpu:?} of CPU in {window:?} while it could not accept: spinning?"
        );
    }
    drop(extra);
    let recovered = Instant::now();
    loop {
        let served = async {
            let mut c = Conn::connect(listen).await.ok()?;
            c.write(b"GET /again HTTP/1.1\r\nHost: example.test\r\n\r\n")
                .await
                .ok()?;
            c.read_response("GET").await.ok()
        };
        match tokio::time::timeout(Duration::from_secs(1), served).await {
            Ok(Some(r)) if r.status == 200 => break,
            _ => assert!(
                recovered.elapsed() < Duration::from_secs(5),
                "no new connection served 5 s after the extra ones closed; output:\n{}",
                proc.output()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "fd exhaustion: served again {:?} after the extra connections closed",
        recovered.elapsed()
    );
    let mut fresh = websocket_roundtrip(listen).await;
    fresh.close(None).await.unwrap();
    for (i, t) in tunnels.iter_mut().enumerate() {
        t.send(Message::text("after")).await.unwrap();
        assert_eq!(
            ws::next(t, Duration::from_secs(3)).await,
            Some(Ok(Message::text("after"))),
            "tunnel {i} after the recovery"
        );
    }
    proc.sigterm();
    let status = proc.wait_exit(Duration::from_secs(3)).await.unwrap();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        proc.output()
    );
}
