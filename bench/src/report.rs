//! Turns the JSON lines of every run into the table: medians per measure and target,
//! ratios of switchyard to each other target, the targets checked, and how
//! loaded the machine was. Also writes a CSV the chart is drawn from.

use crate::load::Record;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Column order of the table and chart.
pub const TARGETS: [&str; 5] = ["direct", "nginx", "haproxy", "relay", "switchyard"];

/// One row of the table.
struct Metric {
    measure: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    /// The target for switchyard against the better of nginx and HAProxy.
    goal: Goal,
    /// Drawn in the chart.
    chart: bool,
    get: fn(&Record) -> Option<f64>,
}

enum Goal {
    None,
    /// switchyard ÷ best peer must be at least this (higher is better).
    AtLeast(f64),
    /// switchyard ÷ best peer must be at most this (lower is better).
    AtMost(f64),
    /// switchyard's own value must be at most this.
    Absolute(f64),
}

/// A row of the table: `m(measure, label, unit, higher_is_better, goal, chart, get)`.
const fn m(
    measure: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    goal: Goal,
    chart: bool,
    get: fn(&Record) -> Option<f64>,
) -> Metric {
    Metric {
        measure,
        label,
        unit,
        higher_is_better,
        goal,
        chart,
        get,
    }
}

const METRICS: &[Metric] = &[
    m(
        "http",
        "HTTP GET keep-alive, 13 B body (closed loop)",
        "req/s",
        true,
        Goal::AtLeast(1.15),
        true,
        |r| r.requests_per_s,
    ),
    m(
        "http",
        "HTTP GET, per proxy CPU-second",
        "req/CPU-s",
        true,
        Goal::None,
        true,
        |r| per_cpu(r.requests_per_s, r),
    ),
    m(
        "http",
        "HTTP GET, proxy user-space time per request",
        "µs",
        false,
        Goal::None,
        false,
        |r| cpu_per_unit(r.proxy_user_cpu, r.requests_per_s),
    ),
    m(
        "http",
        "HTTP GET, proxy kernel time per request",
        "µs",
        false,
        Goal::None,
        false,
        |r| cpu_per_unit(kernel_cpu(r), r.requests_per_s),
    ),
    m(
        "http",
        "HTTP GET latency p99 (closed loop)",
        "µs",
        false,
        Goal::None,
        false,
        |r| r.p99_us,
    ),
    m(
        "http-body",
        "HTTP GET keep-alive, {body} body (closed loop)",
        "MB/s",
        true,
        Goal::None,
        true,
        |r| r.mb_per_s,
    ),
    m(
        "http-body",
        "HTTP GET, {body} body, per proxy CPU-second",
        "MB/CPU-s",
        true,
        Goal::None,
        false,
        |r| per_cpu(r.mb_per_s, r),
    ),
    m(
        "ws-latency",
        "WebSocket 32 B echo at a fixed rate, round trip p99",
        "µs",
        false,
        Goal::AtMost(0.9),
        true,
        |r| r.p99_us,
    ),
    m(
        "ws-latency",
        "WebSocket 32 B echo at a fixed rate, round trip p50",
        "µs",
        false,
        Goal::None,
        false,
        |r| r.p50_us,
    ),
    m(
        "ws-latency",
        "WebSocket 32 B echo at a fixed rate, round trip p99.9",
        "µs",
        false,
        Goal::None,
        false,
        |r| r.p999_us,
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, closed loop, messages",
        "msg/s",
        true,
        Goal::None,
        false,
        |r| r.messages_per_s,
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, per proxy CPU-second",
        "msg/CPU-s",
        true,
        Goal::None,
        true,
        |r| per_cpu(r.messages_per_s, r),
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, proxy user-space time per message",
        "µs",
        false,
        Goal::None,
        false,
        |r| cpu_per_unit(r.proxy_user_cpu, r.messages_per_s),
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, proxy kernel time per message",
        "µs",
        false,
        Goal::None,
        false,
        |r| cpu_per_unit(kernel_cpu(r), r.messages_per_s),
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, closed loop, round trip p99",
        "µs",
        false,
        Goal::AtMost(0.9),
        false,
        |r| r.p99_us,
    ),
    m(
        "ws-echo",
        "WebSocket 32 B echo, closed loop, round trip p50",
        "µs",
        false,
        Goal::None,
        false,
        |r| r.p50_us,
    ),
    m(
        "ws-bulk",
        "WebSocket 64 KiB bulk echo",
        "MB/s",
        true,
        Goal::AtLeast(1.1),
        true,
        |r| r.mb_per_s,
    ),
    m(
        "ws-bulk",
        "WebSocket 64 KiB bulk, per proxy CPU-second",
        "MB/CPU-s",
        true,
        Goal::None,
        false,
        |r| per_cpu(r.mb_per_s, r),
    ),
    m(
        "idle",
        "Idle WebSocket tunnel, RSS growth",
        "KiB/tunnel",
        false,
        Goal::Absolute(2.0),
        true,
        |r| r.kib_per_tunnel,
    ),
];

/// A rate divided by the proxy's CPU over the same window: work per CPU-second, which
/// depends far less than the rate on how much of its core the proxy got from a busy
/// machine. `None` for `direct` (no proxy).
fn per_cpu(rate: Option<f64>, record: &Record) -> Option<f64> {
    let cpu = record.proxy_cpu.filter(|&cpu| cpu > 0.05)?;
    Some(rate? / cpu)
}

/// Microseconds of the proxy's CPU (`cpu`, in cores) per unit of work at `rate` per
/// second: where a rate is lost, user space (the proxy's own code) or the kernel (the
/// same system calls for every proxy).
fn cpu_per_unit(cpu: Option<f64>, rate: Option<f64>) -> Option<f64> {
    let rate = rate.filter(|&r| r > 0.0)?;
    Some(cpu? / rate * 1e6)
}

/// The kernel's part of the proxy's CPU, in cores.
fn kernel_cpu(record: &Record) -> Option<f64> {
    Some(record.proxy_cpu? - record.proxy_user_cpu?)
}

/// Options of `report`.
pub struct Options<'a> {
    pub input: &'a Path,
    pub markdown: &'a Path,
    pub csv: &'a Path,
    /// The core the proxies were pinned to (for the machine-load line).
    pub proxy_cpu: usize,
    /// Free text put under the title (date, commit, settings).
    pub notes: Option<String>,
}

pub fn run(options: &Options) -> io::Result<String> {
    let text = std::fs::read_to_string(options.input)?;
    let records: Vec<Record> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(io::Error::other))
        .collect::<io::Result<_>>()?;
    let markdown = render(&records, options);
    std::fs::write(options.markdown, &markdown)?;
    std::fs::write(options.csv, csv(&records))?;
    Ok(markdown)
}

/// The metric's label, with `{body}` replaced by the response body size its records
/// asked for (as `bench/run.sh --body-bytes` set it), or "mixed-size" if they differ.
fn label(metric: &Metric, records: &[Record]) -> String {
    if !metric.label.contains("{body}") {
        return metric.label.to_owned();
    }
    let mut sizes = records
        .iter()
        .filter(|r| r.measure == metric.measure)
        .filter_map(|r| r.body_bytes);
    let size = match sizes.next() {
        Some(first) if sizes.all(|n| n == first) => byte_size(first),
        Some(_) => "mixed-size".to_owned(),
        None => "large".to_owned(),
    };
    metric.label.replace("{body}", &size)
}

/// `102400` as "100 KiB", `1048576` as "1 MiB", other sizes in bytes.
fn byte_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// Values of one metric for one target, one per round.
/// Runs with errors count too: the tables below list their errors.
fn values(records: &[Record], metric: &Metric, target: &str) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r.measure == metric.measure && r.target == target)
        .filter_map(metric.get)
        .filter(|v| v.is_finite())
        .collect()
}

pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn number(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

fn render(records: &[Record], options: &Options) -> String {
    let mut md = String::new();
    let rounds = records.iter().map(|r| r.round).max().unwrap_or(0);
    let _ = writeln!(md, "# Switchyard benchmark results\n");
    if let Some(notes) = &options.notes {
        let _ = writeln!(md, "{notes}\n");
    }
    let _ = writeln!(
        md,
        "Medians of {rounds} interleaved round(s). Ratios are switchyard ÷ the column: \
         above 1 is better for rates, below 1 is better for latency and memory.\n"
    );
    let _ = writeln!(
        md,
        "| measure | unit | direct | nginx | HAProxy | relay | switchyard | ÷ nginx | ÷ HAProxy | ÷ relay | ÷ direct | target | met |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for metric in METRICS {
        let medians: Vec<Option<f64>> = TARGETS
            .iter()
            .map(|t| median(values(records, metric, t)))
            .collect();
        if medians.iter().all(Option::is_none) {
            continue;
        }
        let ours = medians[4];
        let (target, met) = goal(metric, &medians);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
            label(metric, records),
            metric.unit,
            number(medians[0]),
            number(medians[1]),
            number(medians[2]),
            number(medians[3]),
            number(ours),
            ratio(ours, medians[1]),
            ratio(ours, medians[2]),
            ratio(ours, medians[3]),
            ratio(ours, medians[0]),
            target,
            met,
        );
    }
    let _ = writeln!(md, "\n## Proxy CPU and machine load\n");
    let _ = writeln!(
        md,
        "Proxy CPU is the proxy's own CPU time over the measured window, in cores (1.00 = \
         its core fully busy); with tick-based CPU accounting (no \
         CONFIG_IRQ_TIME_ACCOUNTING) it includes the softirqs run in its context, i.e. the \
         loopback TCP input of what it sends. *Other on core {core}* is what the rest of the machine ran on the \
         proxy's core meanwhile (core busy − proxy), *load-gen core* how busy the load \
         generator's core was (load generator + backend + anything else); the load \
         generator and backend columns are their own CPU, in cores.\n",
        core = options.proxy_cpu
    );
    let _ = writeln!(
        md,
        "| measure | target | proxy CPU | other on core {core} | load generator | backend | load-gen core | load avg (1 min) | errors |",
        core = options.proxy_cpu
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
    let measures = [
        "http",
        "http-body",
        "ws-echo",
        "ws-latency",
        "ws-bulk",
        "idle",
    ];
    for measure in measures {
        for target in TARGETS {
            let runs: Vec<&Record> = records
                .iter()
                .filter(|r| r.measure == measure && r.target == target)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let proxy = median(runs.iter().filter_map(|r| r.proxy_cpu).collect());
            let core_busy = |r: &&Record, core: usize| r.cores_busy.get(core).copied();
            let other = median(
                runs.iter()
                    .filter_map(|r| {
                        Some(
                            (core_busy(r, options.proxy_cpu)? - r.proxy_cpu.unwrap_or(0.0))
                                .max(0.0),
                        )
                    })
                    .collect(),
            );
            let load_core = 1 - options.proxy_cpu.min(1);
            let load_gen = median(
                runs.iter()
                    .filter_map(|r| core_busy(r, load_core))
                    .collect(),
            );
            let loadavg = median(runs.iter().map(|r| r.loadavg).collect());
            let generator = median(runs.iter().map(|r| r.load_cpu).collect());
            let backend = median(runs.iter().filter_map(|r| r.backend_cpu).collect());
            let errors: u64 = runs.iter().map(|r| r.errors).sum();
            let _ = writeln!(
                md,
                "| {measure} | {target} | {} | {} | {} | {} | {} | {} | {errors} |",
                number(proxy),
                number(other),
                number(generator),
                number(backend),
                number(load_gen),
                number(loadavg),
            );
        }
    }
    let _ = writeln!(md, "\n## Every run\n");
    let _ = writeln!(md, "| measure | unit | target | rounds (in order) |");
    let _ = writeln!(md, "|---|---|---|---|");
    for metric in METRICS.iter().filter(|m| !matches!(m.goal, Goal::None)) {
        for target in TARGETS {
            let mut runs: Vec<&Record> = records
                .iter()
                .filter(|r| r.measure == metric.measure && r.target == target)
                .collect();
            if runs.is_empty() {
                continue;
            }
            runs.sort_by_key(|r| r.round);
            let list: Vec<String> = runs
                .iter()
                .map(|r| match (metric.get)(r) {
                    Some(v) if r.errors == 0 => number(Some(v)),
                    Some(v) => format!("{} ({} errors)", number(Some(v)), r.errors),
                    None => "–".to_owned(),
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {target} | {} |",
                label(metric, records),
                metric.unit,
                list.join(" / ")
            );
        }
    }
    md
}

/// The target column and whether it is met (against the better of nginx and HAProxy).
fn goal(metric: &Metric, medians: &[Option<f64>]) -> (String, String) {
    let ours = medians[4];
    let peers = [medians[1], medians[2]].into_iter().flatten();
    let best = if metric.higher_is_better {
        peers.fold(None, |best: Option<f64>, v| {
            Some(best.map_or(v, |b| b.max(v)))
        })
    } else {
        peers.fold(None, |best: Option<f64>, v| {
            Some(best.map_or(v, |b| b.min(v)))
        })
    };
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" }.to_owned();
    match metric.goal {
        Goal::None => (String::new(), String::new()),
        Goal::AtLeast(x) => match (ours, best) {
            (Some(a), Some(b)) => (
                format!("≥ {x}× best peer"),
                format!("{} ({:.2}×)", verdict(a / b >= x), a / b),
            ),
            _ => (format!("≥ {x}× best peer"), "–".to_owned()),
        },
        Goal::AtMost(x) => match (ours, best) {
            (Some(a), Some(b)) => (
                format!("≤ {x}× best peer"),
                format!("{} ({:.2}×)", verdict(a / b <= x), a / b),
            ),
            _ => (format!("≤ {x}× best peer"), "–".to_owned()),
        },
        Goal::Absolute(x) => match ours {
            Some(a) => (format!("≤ {x} {}", metric.unit), verdict(a <= x)),
            None => (format!("≤ {x} {}", metric.unit), "–".to_owned()),
        },
    }
}

/// `metric,unit,higher_is_better,target,median,min,max` for every charted metric.
fn csv(records: &[Record]) -> String {
    let mut out = String::from("metric,unit,higher_is_better,target,median,min,max\n");
    for metric in METRICS.iter().filter(|m| m.chart) {
        for target in TARGETS {
            let vals = values(records, metric, target);
            let Some(mid) = median(vals.clone()) else {
                continue;
            };
            let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let _ = writeln!(
                out,
                "\"{}\",{},{},{target},{mid},{min},{max}",
                label(metric, records),
                metric.unit,
                metric.higher_is_better
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_unit_splits_user_space_from_the_kernel() {
        let record = Record {
            messages_per_s: Some(50_000.0),
            proxy_cpu: Some(0.6),
            proxy_user_cpu: Some(0.15),
            ..Record::default()
        };
        let user = cpu_per_unit(record.proxy_user_cpu, record.messages_per_s).unwrap();
        let kernel = cpu_per_unit(kernel_cpu(&record), record.messages_per_s).unwrap();
        assert!((user - 3.0).abs() < 1e-9, "{user}");
        assert!((kernel - 9.0).abs() < 1e-9, "{kernel}");
        let direct = Record::default();
        assert_eq!(cpu_per_unit(kernel_cpu(&direct), Some(1.0)), None);
        assert_eq!(cpu_per_unit(Some(0.5), Some(0.0)), None);
    }

    #[test]
    fn the_body_size_in_a_label_comes_from_the_records() {
        let body = METRICS.iter().find(|m| m.measure == "http-body").unwrap();
        let run = |measure: &str, body_bytes| Record {
            measure: measure.to_owned(),
            body_bytes,
            ..Record::default()
        };
        let small = [run("http", None), run("http-body", Some(102_400))];
        assert_eq!(
            label(body, &small),
            "HTTP GET keep-alive, 100 KiB body (closed loop)"
        );
        let large = [
            run("http-body", Some(1 << 20)),
            run("http-body", Some(1 << 20)),
        ];
        assert!(label(body, &large).contains(", 1 MiB body"));
        let mixed = [
            run("http-body", Some(1 << 20)),
            run("http-body", Some(1000)),
        ];
        assert!(label(body, &mixed).contains("mixed-size body"));
        assert_eq!(byte_size(1000), "1000 B");
        assert_eq!(label(&METRICS[0], &small), METRICS[0].label);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn goals_compare_with_the_better_peer() {
        let http = &METRICS[0];
        let (_, met) = goal(http, &[None, Some(100.0), Some(120.0), None, Some(140.0)]);
        assert!(met.starts_with("yes"), "{met}"); // 140 / 120 = 1.17
        let p99 = METRICS
            .iter()
            .find(|m| matches!(m.goal, Goal::AtMost(_)))
            .unwrap();
        let (_, met) = goal(p99, &[None, Some(100.0), Some(120.0), None, Some(95.0)]);
        assert!(met.starts_with("**no**"), "{met}"); // 95 / 100 = 0.95
    }
}
