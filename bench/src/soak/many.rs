//! Many: as many concurrent WebSocket tunnels as the proxy's open-file limit allows
//! (two descriptors each), every one echoing while all are open. The proxy's RSS growth
//! per tunnel is the user-space cost; /proc/net/sockstat (socket buffers) and
//! /proc/slabinfo (socket structures, files, epoll items) give the kernel's, so that a
//! million tunnels can be extrapolated from what one machine can hold.

use super::{echo_all, open_tunnels, Common, Record};
use crate::procfs::{self, SockStat};
use std::io;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Tunnels to open; 0: as many as the proxy's open-file limit allows.
    #[arg(long, default_value_t = 0)]
    pub tunnels: usize,
    /// Descriptors left to the proxy for its listener, logs and the like.
    #[arg(long, default_value_t = 100)]
    pub reserve: u64,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds to wait after the last tunnel opened before reading RSS.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
}

/// The target for the proxy's memory per idle tunnel.
const KIB_PER_TUNNEL: f64 = 2.0;
/// Sockets per tunnel on a loopback machine: client, proxy ×2, backend.
const SOCKETS_PER_TUNNEL: f64 = 4.0;

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    let mut record = Record::new("many", common);
    let proxy_limit = proxy.nofile_limit();
    let own_limit = procfs::nofile_limit(std::process::id());
    // Two descriptors per tunnel at the proxy, one here.
    let allowed = match (proxy_limit, own_limit) {
        (Some(p), Some(o)) => ((p.saturating_sub(options.reserve)) / 2).min(o.saturating_sub(200)),
        (Some(p), None) => p.saturating_sub(options.reserve) / 2,
        _ => 10_000,
    } as usize;
    let tunnels = match options.tunnels {
        0 => allowed,
        asked => asked.min(allowed),
    };
    if options.tunnels == 0 || options.tunnels > allowed {
        record.note(format!(
            "tunnels limited by the open-file limit (proxy {}, load generator {}): {} fds \
             kept for the proxy's own use, 2 per tunnel → {tunnels} tunnels; a limit of this \
             machine, not a failure",
            proxy_limit.map_or("?".to_owned(), |l| l.to_string()),
            own_limit.map_or("?".to_owned(), |l| l.to_string()),
            options.reserve,
        ));
    }
    record.setting("tunnels", tunnels);
    record.setting("proxy_nofile", proxy_limit.unwrap_or(0));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = proxy.rss_kib()?;
    let (sock_before, slab_before) = (SockStat::read(), procfs::slab_bytes());
    let started = std::time::Instant::now();
    let (open, open_failed, first) = open_tunnels(
        common.addr,
        tunnels,
        options.concurrency,
        Duration::from_secs(30),
    )
    .await;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(options.settle)).await;
    let rss_after = proxy.rss_kib()?;
    let (sock_after, slab_after) = (SockStat::read(), procfs::slab_bytes());
    let fds_open = proxy.fds()?;
    let opened = open.len();
    // With all of them open, every tunnel echoes once more.
    let (still, echo_failed) = echo_all(open, options.concurrency, Duration::from_secs(30)).await;
    drop(still);

    let n = opened.max(1) as f64;
    let per_tunnel = (rss_after - rss_before) / n;
    record.figure("tunnels_open", opened);
    record.figure("open_failures", open_failed);
    record.figure("echo_failures", echo_failed);
    record.number("open_s", open_s, 2);
    record.figure("proxy_fds_open", fds_open);
    record.number("rss_before_kib", rss_before, 0);
    record.number("rss_after_kib", rss_after, 0);
    record.number("rss_kib_per_tunnel", per_tunnel, 2);
    // Kernel memory over the whole machine (4 sockets per tunnel here); the proxy's
    // share is its 2 sockets.
    let buffers = (sock_after.mem_bytes() as f64 - sock_before.mem_bytes() as f64) / 1024.0 / n;
    record.number("kernel_socket_buffers_kib_per_tunnel", buffers, 2);
    record.figure(
        "tcp_sockets_in_use_delta",
        sock_after.inuse as i64 - sock_before.inuse as i64,
    );
    let slab = slab_before
        .zip(slab_after)
        .map(|(before, after)| (after as f64 - before as f64) / 1024.0 / n);
    if let Some(slab) = slab {
        record.number("kernel_slab_kib_per_tunnel", slab, 2);
    } else {
        record.note("/proc/slabinfo not readable: kernel structures not counted");
    }
    // Idle sockets hold next to no buffer memory, and the machine's other traffic moves
    // the sockstat counter by more than that: a negative delta counts as none.
    let kernel_proxy_share = (buffers.max(0.0) + slab.unwrap_or(0.0)) * 2.0 / SOCKETS_PER_TUNNEL;
    record.number("kernel_kib_per_tunnel_proxy_share", kernel_proxy_share, 2);
    let gib = |kib: f64| kib * 1e6 / (1024.0 * 1024.0);
    record.number("extrapolated_1m_user_gib", gib(per_tunnel), 2);
    record.number(
        "extrapolated_1m_user_plus_kernel_gib",
        gib(per_tunnel + kernel_proxy_share),
        2,
    );
    record.note(
        "kernel figures are the whole machine's (/proc/net/sockstat, /proc/slabinfo) over 4 \
         sockets per tunnel (client, proxy ×2, backend); the proxy's share is half",
    );
    if let Some(first) = first {
        record.note(format!("first failure: {first}"));
    }
    record.check(
        "every tunnel opens and echoes",
        format!("{} of {tunnels}", opened - echo_failed),
        opened == tunnels && echo_failed == 0,
    );
    record.check(
        "RSS per tunnel ≤ 2 KiB",
        format!("{per_tunnel:.2} KiB"),
        per_tunnel <= KIB_PER_TUNNEL,
    );
    Ok(record)
}
