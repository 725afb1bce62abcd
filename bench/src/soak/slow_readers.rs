//! Slow readers: clients that ask for a large response and never read a byte of it.
//! Flow control must hold: the proxy reads from the backend only what it can pass on,
//! so its memory stays under `connections × 2 × buffer_size` over what it used before,
//! whatever the responses' size, and normal clients keep their rate.
//!
//! Kernel memory is the machine's limit here, not the proxy's: Linux autotunes the send
//! buffer of the proxy's client socket up to `tcp_wmem` max (4 MiB), so each stalled
//! response parks about 4 MiB in the kernel whatever the proxy does, and a thousand of
//! them would cross `tcp_mem` and put every TCP socket of the machine under memory
//! pressure. So the readers are opened in batches and no more are added once the
//! machine's TCP memory reaches a share of the pressure threshold (the record says how
//! many there were, and why). To spend that memory where the test looks, the scenario
//! runs its own backend with a small `SO_SNDBUF`, and the slow clients set a small
//! `SO_RCVBUF`: the proxy must hold the line whatever the windows around it.

use super::normal::{self, Normal};
use super::{spawn_backend, Common, Record};
use crate::procfs::{self, SockStat};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Where this scenario's own backend listens (the proxy's upstream here).
    #[arg(long)]
    pub backend_listen: SocketAddr,
    /// `SO_SNDBUF` of that backend's connections.
    #[arg(long, default_value_t = 65536)]
    pub backend_sndbuf: u32,
    /// No more readers once the machine's TCP memory reaches this share of the kernel's
    /// pressure threshold (`tcp_mem`'s second value).
    #[arg(long, default_value_t = 0.6)]
    pub tcp_mem_share: f64,
    /// Slow readers (at most: see `--tcp-mem-share`).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Size of the response each asks for (`GET /big?bytes=N` on the backend).
    #[arg(long, default_value_t = 10 << 20)]
    pub bytes: u64,
    /// The proxy's buffer per direction, for the bound (switchyard's `buffer_size`).
    #[arg(long, default_value_t = 16384)]
    pub buffer_size: u64,
    /// `SO_RCVBUF` of each slow reader.
    #[arg(long, default_value_t = 16384)]
    pub rcvbuf: u32,
    /// Seconds for the responses to fill every buffer on the way before measuring.
    #[arg(long, default_value_t = 3.0)]
    pub fill: f64,
    #[command(flatten)]
    pub normal: Normal,
}

/// Readers opened between two readings of the machine's TCP memory.
const BATCH: usize = 25;

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    let mut record = Record::new("slow-readers", common);
    record.setting("connections", options.connections);
    record.setting("response_bytes", options.bytes);
    record.setting("buffer_size", options.buffer_size);
    record.setting("client_rcvbuf", options.rcvbuf);
    options.normal.settings(&mut record);
    let _backend = spawn_backend(options.backend_listen, Some(options.backend_sndbuf)).await?;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = proxy.rss_kib()?;
    let normal = &options.normal;
    let before = normal::measure(common, normal, normal.pairs, normal.window).await?;
    // The base: what the proxy used with the normal clients' connections.
    let rss_base = rss_idle.max(proxy.rss_kib()?);
    let sock_before = SockStat::read();

    // Peak RSS, sampled every 100 ms from the first slow reader to the last measure.
    let peak = Arc::new(AtomicU64::new(rss_base as u64));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (proxy, peak, stop) = (proxy.clone(), peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(kib) = proxy.rss_kib() {
                    peak.fetch_max(kib as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let request = format!(
        "GET /big?bytes={} HTTP/1.1\r\nHost: soak\r\n\r\n",
        options.bytes
    );
    let budget_pages = procfs::tcp_mem_pages().map_or(u64::MAX, |mem| {
        (mem[1] as f64 * options.tcp_mem_share) as u64
    });
    let (mut readers, mut failed) = (Vec::with_capacity(options.connections), 0);
    let mut limited_at = None;
    while readers.len() + failed < options.connections {
        let used = SockStat::read().mem_pages;
        if used >= budget_pages {
            limited_at = Some(used);
            break;
        }
        let batch = BATCH.min(options.connections - readers.len() - failed);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (addr, request, rcvbuf) = (common.addr, request.clone(), options.rcvbuf);
            set.spawn(async move {
                let mut stream =
                    tokio::time::timeout(Duration::from_secs(5), connect(addr, rcvbuf))
                        .await
                        .map_err(|_| io::Error::other("connect timed out"))??;
                stream.write_all(request.as_bytes()).await?;
                Ok::<_, io::Error>(stream)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined.map_err(io::Error::other).and_then(|r| r) {
                Ok(stream) => readers.push(stream),
                Err(_) => failed += 1,
            }
        }
        // Let the responses fill the buffers before the next reading of TCP memory.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = readers.len();
    tokio::time::sleep(Duration::from_secs_f64(options.fill)).await;
    let fds_held = proxy.fds()?;
    // The proxy's CPU with only the stalled responses: flow control should leave it
    // nothing to do (a connection woken again and again without progress shows here).
    let cpu_readers_only = proxy.cpu_over(2.0).await;
    let during = normal::measure(common, normal, normal.pairs, normal.window).await?;
    let rss_end = proxy.rss_kib()?;
    let sock_during = SockStat::read();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let rss_peak = (peak.load(Ordering::Relaxed) as f64).max(rss_end);
    drop(readers);
    // The two instances again, once the slow readers are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = normal::measure(common, normal, normal.pairs, normal.window).await?;

    let n = held.max(1) as f64;
    let bound = rss_base + n * 2.0 * options.buffer_size as f64 / 1024.0;
    record.figure("slow_readers_held", held);
    record.figure("proxy_fds_while_held", fds_held);
    record.number("rss_base_kib", rss_base, 0);
    record.number("rss_peak_kib", rss_peak, 0);
    record.number("rss_bound_kib", bound, 0);
    record.number("rss_growth_kib_per_reader", (rss_peak - rss_base) / n, 1);
    record.number(
        "kernel_socket_buffers_mib",
        (sock_during.mem_bytes() as f64 - sock_before.mem_bytes() as f64) / 1048576.0,
        1,
    );
    normal::record_phases(&mut record, &before, &during, &after, cpu_readers_only);
    if failed > 0 {
        record.note(format!("{failed} slow readers could not connect or send"));
    }
    if let Some(used) = limited_at {
        record.note(format!(
            "{held} of {} slow readers: the machine's TCP memory reached {} MiB, {} of the \
             kernel's pressure threshold (tcp_mem), so no more were added; the bound is \
             computed for {held}",
            options.connections,
            (used * 4096) >> 20,
            options.tcp_mem_share
        ));
    }
    record.check(
        "RSS < connections × 2 × buffer_size + base",
        format!(
            "{:.1} MiB of {:.1} MiB ({held} readers)",
            rss_peak / 1024.0,
            bound / 1024.0
        ),
        rss_peak < bound && failed == 0,
    );
    Ok(record)
}

async fn connect(addr: SocketAddr, rcvbuf: u32) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_recv_buffer_size(rcvbuf)?;
    socket.connect(addr).await
}
