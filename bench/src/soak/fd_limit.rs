//! File descriptor exhaustion: the proxy runs under a low open-file limit (soak.sh
//! starts it under `prlimit`), tunnels take nearly all of it, and then more connections
//! arrive than it can accept. A good accept loop logs the error once in a while (not
//! once per attempt: that is a log flood), backs off instead of spinning on a listener
//! that stays readable, keeps serving what it has, and resumes by itself when
//! descriptors free up.

use super::{echo_all, one_request, open_tunnels, Answer, Common, Record};
use crate::load;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Connections opened once the tunnels hold the proxy near its limit.
    #[arg(long, default_value_t = 200)]
    pub extra: usize,
    /// Descriptors left free at the proxy after the tunnels.
    #[arg(long, default_value_t = 20)]
    pub headroom: u64,
    /// Seconds the proxy is held at its limit (CPU measured over this).
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// The proxy's log, where its accept errors are counted.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// A line of the log containing any of these is an accept-error line.
    #[arg(long = "log-pattern")]
    pub log_patterns: Vec<String>,
    /// Longest wait for a fresh request to succeed once descriptors are free (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub resume_within: f64,
}

/// "Backs off": the proxy's CPU at the limit stays under this share of a core.
const MAX_CPU: f64 = 0.05;

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    let mut record = Record::new("fd-limit", common);
    let limit = proxy
        .nofile_limit()
        .ok_or_else(|| io::Error::other("the proxy's open-file limit is not readable"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_base = proxy.fds()? as u64;
    let tunnels = (limit.saturating_sub(fds_base + options.headroom) / 2) as usize;
    record.setting("proxy_nofile", limit);
    record.setting("tunnels", tunnels);
    record.setting("extra_connections", options.extra);
    record.setting("hold_s", options.hold);

    let (tunnels_open, open_failed, first) =
        open_tunnels(common.addr, tunnels, 16, Duration::from_secs(10)).await;
    if let Some(first) = first {
        record.note(format!("first tunnel failure: {first}"));
    }
    let opened = tunnels_open.len();

    let lines_before = count_lines(options.log.as_deref(), &options.log_patterns);
    let at_limit = Instant::now();
    let (release, released) = tokio::sync::watch::channel(false);
    let mut extras = Vec::with_capacity(options.extra);
    for _ in 0..options.extra {
        let (addr, mut released) = (common.addr, released.clone());
        extras.push(tokio::spawn(async move {
            let connect = tokio::time::timeout(Duration::from_secs(3), load::connect(addr)).await;
            let Ok(Ok(mut stream)) = connect else {
                return "connect failed".to_owned();
            };
            if stream
                .write_all(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
                .await
                .is_err()
            {
                return Answer::Reset.label();
            }
            // Answered or not, the connection stays open until released: it holds a
            // descriptor at the proxy if the proxy took it.
            let answer = tokio::select! {
                answer = super::await_answer(&mut stream, Duration::from_secs(3600)) => answer,
                _ = released.wait_for(|&r| r) => Answer::Nothing,
            };
            let _ = released.wait_for(|&r| r).await;
            answer.label()
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fds_at_limit = proxy.fds()?;
    let cpu = proxy.cpu_over(options.hold).await;
    let (still, echo_failed) = echo_all(tunnels_open, 16, Duration::from_secs(5)).await;
    let held_s = at_limit.elapsed().as_secs_f64();
    let lines = count_lines(options.log.as_deref(), &options.log_patterns)
        .zip(lines_before)
        .map(|(after, before)| after.saturating_sub(before));

    let _ = release.send(true);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for extra in extras {
        let label = match tokio::time::timeout(Duration::from_secs(5), extra).await {
            Ok(Ok(label)) => label,
            _ => "stuck".to_owned(),
        };
        *outcomes.entry(label).or_default() += 1;
    }
    // Service resumes by itself: a fresh request succeeds without any restart.
    let freed = Instant::now();
    let mut resumed = None;
    let mut attempts: BTreeMap<String, usize> = BTreeMap::new();
    while freed.elapsed().as_secs_f64() < options.resume_within {
        let answer = one_request(common.addr, "/", Duration::from_secs(1)).await;
        *attempts.entry(answer.label()).or_default() += 1;
        if answer == Answer::Status(200) {
            resumed = Some(freed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (still, echo_failed_after) = echo_all(still, 16, Duration::from_secs(5)).await;
    drop(still);

    record.figure("tunnels_open", opened);
    record.figure("tunnel_open_failures", open_failed);
    record.figure("proxy_fds_at_limit", fds_at_limit);
    record.figure(
        "extra_outcomes",
        outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    record.number("proxy_cpu_at_limit", cpu, 3);
    record.number("at_limit_s", held_s, 1);
    match lines {
        Some(lines) => {
            record.figure("accept_error_log_lines", lines);
            record.number("log_lines_per_s", lines as f64 / held_s, 2);
        }
        None => record.note("no proxy log given: accept-error lines not counted"),
    }
    record.figure("proxy_still_running", proxy.alive());
    record.figure("tunnel_echo_failures_at_limit", echo_failed);
    record.figure("tunnel_echo_failures_after", echo_failed_after);
    record.figure(
        "resume_attempts",
        attempts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    record.figure(
        "resumed_after_s",
        resumed.map_or(serde_json::Value::Null, |s| super::round(s, 2)),
    );
    if let Some(lines) = lines {
        record.check(
            "accept errors logged at most once per second",
            format!("{lines} lines in {held_s:.1} s"),
            lines as f64 <= held_s.ceil() + 1.0,
        );
    }
    record.check(
        "accept loop backs off: CPU at the limit < 5%",
        format!("{:.1}%", cpu * 100.0),
        cpu < MAX_CPU,
    );
    record.check(
        "existing tunnels keep working",
        format!("{}/{opened}", opened - echo_failed),
        echo_failed == 0 && open_failed == 0,
    );
    record.check(
        "service resumes by itself",
        resumed.map_or_else(
            || format!("not within {} s", options.resume_within),
            |s| format!("after {s:.2} s"),
        ),
        resumed.is_some(),
    );
    Ok(record)
}

/// Lines of `log` containing any of `patterns` (`None` without a log).
fn count_lines(log: Option<&Path>, patterns: &[String]) -> Option<usize> {
    let text = std::fs::read(log?).ok()?;
    let text = String::from_utf8_lossy(&text);
    Some(
        text.lines()
            .filter(|line| patterns.iter().any(|p| line.contains(p.as_str())))
            .count(),
    )
}
