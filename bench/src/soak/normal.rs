//! What misbehaving clients cost everyone else: the rate of normal keep-alive clients
//! with and without them, for the slowloris and slow-reader scenarios.
//!
//! On a shared two-core machine the rate of one window swings by 10–25% within a
//! minute, whatever the proxy, which is more than the 5% the target allows. So the rate
//! is measured in pairs against a *control*: a second instance of the same proxy, with
//! the same configuration, on the same core, that the misbehaving clients never touch.
//! Each pair runs one window on the proxy under test and one on the control, back to
//! back (in alternating order), so the machine's drift moves both alike and their ratio
//! keeps only what the misbehaving clients changed. Each phase (before, during, after)
//! counts as the median of its pairs' ratios; before and after measure the two
//! instances' own difference, which "during" is corrected by.
//!
//! The control shares the core, so the CPU the misbehaving clients take from it (the
//! bytes they trickle in) slows the control's windows as much as the test's. That
//! share is measured on its own, with no normal clients, and taken off the ratio.

use super::{Common, Record};
use crate::load;
use std::io;
use std::net::SocketAddr;

/// How the normal clients are run: the options the rate scenarios share.
#[derive(clap::Args, Clone, Debug)]
pub struct Normal {
    /// Normal keep-alive clients measuring the rate.
    #[arg(long, default_value_t = 64)]
    pub normal: usize,
    /// Seconds of one window of the normal clients' rate.
    #[arg(long, default_value_t = 2.0)]
    pub window: f64,
    /// Pairs of windows (one on the proxy, one on the control) per phase: before,
    /// during and after the misbehaving clients.
    #[arg(long, default_value_t = 7)]
    pub pairs: usize,
    /// The control: a second instance of the same proxy, configured the same, that no
    /// misbehaving client reaches.
    #[arg(long)]
    pub control: SocketAddr,
    /// The control's processes (nginx: its worker), for its CPU.
    #[arg(long = "control-pid")]
    pub control_pids: Vec<u32>,
}

impl Normal {
    /// Seconds one phase of `pairs` pairs takes.
    pub fn phase_seconds(&self, pairs: usize) -> f64 {
        pairs as f64 * 2.0 * (self.window + WARMUP)
    }

    pub fn settings(&self, record: &mut Record) {
        record.setting("normal_connections", self.normal);
        record.setting("window_s", self.window);
        record.setting("pairs_per_phase", self.pairs);
    }
}

/// Seconds of warm-up before each window of the normal clients.
pub const WARMUP: f64 = 0.5;

/// The normal clients must keep this fraction of their rate.
pub const KEEP_RATE: f64 = 0.95;

/// What normal clients got in one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub per_s: f64,
    /// The proxy's CPU over the window, in cores.
    pub proxy_cpu: Option<f64>,
    pub errors: u64,
}

/// One phase, measured in pairs of windows.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// The windows on the proxy under test, in the order measured.
    pub test: Vec<Window>,
    /// The windows on the control, each paired with the test window at its index.
    pub control: Vec<Window>,
}

impl Phase {
    /// Test ÷ control for each pair.
    pub fn ratios(&self) -> Vec<f64> {
        self.test
            .iter()
            .zip(&self.control)
            .map(|(t, c)| {
                if c.per_s > 0.0 {
                    t.per_s / c.per_s
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The median pair's ratio: what this phase says about test against control.
    pub fn ratio(&self) -> f64 {
        median(self.ratios())
    }

    fn errors(&self) -> u64 {
        self.test
            .iter()
            .chain(&self.control)
            .map(|w| w.errors)
            .sum()
    }
}

/// Measures a phase of `pairs` pairs of `window`-second windows: the proxy under test
/// (`common`) first in even pairs, the control first in odd ones.
pub async fn measure(
    common: &Common,
    normal: &Normal,
    pairs: usize,
    window: f64,
) -> io::Result<Phase> {
    let mut phase = Phase::default();
    for pair in 0..pairs.max(1) {
        let test_first = pair % 2 == 0;
        for test in [test_first, !test_first] {
            let (addr, pids) = match test {
                true => (common.addr, &common.pids),
                false => (normal.control, &normal.control_pids),
            };
            let measured = one_window(addr, pids, normal.normal, window).await?;
            match test {
                true => phase.test.push(measured),
                false => phase.control.push(measured),
            }
        }
    }
    Ok(phase)
}

/// Requests/s of `connections` closed-loop keep-alive clients over one window.
async fn one_window(
    addr: SocketAddr,
    pids: &[u32],
    connections: usize,
    window: f64,
) -> io::Result<Window> {
    let common = load::Common {
        addr,
        target: "normal".to_owned(),
        round: 1,
        pids: pids.to_vec(),
        peer_pids: Vec::new(),
        out: None,
    };
    let timing = load::Timing {
        connections,
        duration: window,
        warmup: WARMUP,
    };
    let record = load::http(common, timing, 0).await?;
    Ok(Window {
        per_s: record.requests_per_s.unwrap_or(0.0),
        proxy_cpu: record.proxy_cpu,
        errors: record.errors,
    })
}

/// What the misbehaving clients cost the normal ones, from the three phases and the
/// proxy's CPU with only the misbehaving clients (`background_cpu`, in cores).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Test ÷ control without the misbehaving clients (the mean of before and after).
    pub instances: f64,
    /// Test ÷ control with them, over `instances`.
    pub paired: f64,
    /// `paired`, less the share of the core the misbehaving clients took from both.
    pub kept: f64,
}

pub fn verdict(before: &Phase, during: &Phase, after: &Phase, background_cpu: f64) -> Verdict {
    let instances = (before.ratio() + after.ratio()) / 2.0;
    let paired = if instances > 0.0 {
        during.ratio() / instances
    } else {
        0.0
    };
    Verdict {
        instances,
        paired,
        kept: paired * (1.0 - background_cpu.clamp(0.0, 1.0)),
    }
}

/// Records the three phases, the verdict, and checks it against [`KEEP_RATE`].
pub fn record_phases(
    record: &mut Record,
    before: &Phase,
    during: &Phase,
    after: &Phase,
    background_cpu: f64,
) {
    let v = verdict(before, during, after, background_cpu);
    for (name, phase) in [("before", before), ("during", during), ("after", after)] {
        let rates = |windows: &[Window]| median(windows.iter().map(|w| w.per_s).collect());
        record.number(&format!("{name}_req_per_s"), rates(&phase.test), 0);
        record.number(
            &format!("control_{name}_req_per_s"),
            rates(&phase.control),
            0,
        );
        let ratios: Vec<_> = phase.ratios().iter().map(|&r| super::round(r, 3)).collect();
        record.figure(&format!("pair_ratios_{name}"), ratios);
    }
    for (name, phase) in [("before", before), ("during", during), ("after", after)] {
        let cpu: Vec<f64> = phase.test.iter().filter_map(|w| w.proxy_cpu).collect();
        if !cpu.is_empty() {
            record.number(&format!("proxy_cpu_{name}"), median(cpu), 2);
        }
    }
    record.number("instance_ratio", v.instances, 3);
    record.number("paired_ratio", v.paired, 3);
    record.number("background_proxy_cpu", background_cpu, 3);
    record.number("rate_ratio", v.kept, 3);
    record.figure(
        "normal_errors",
        before.errors() + during.errors() + after.errors(),
    );
    record.check(
        "normal clients keep ≥ 0.95 of their req/s",
        format!("{:.3}", v.kept),
        v.kept >= KEEP_RATE,
    );
}

/// The median of `values` (the lower middle of an even count); 0 when empty.
fn median(values: Vec<f64>) -> f64 {
    let values = super::sorted(values);
    match values.len() {
        0 => 0.0,
        n => values[(n - 1) / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(pairs: &[(f64, f64)]) -> Phase {
        let window = |per_s| Window {
            per_s,
            proxy_cpu: Some(1.0),
            errors: 0,
        };
        Phase {
            test: pairs.iter().map(|&(t, _)| window(t)).collect(),
            control: pairs.iter().map(|&(_, c)| window(c)).collect(),
        }
    }

    #[test]
    fn a_phase_is_its_median_pair_so_drift_moving_both_cancels() {
        // The machine's rate drifts from 50k to 90k; the test instance keeps 90% of
        // the control's throughout.
        let drifting = phase(&[(45e3, 50e3), (63e3, 70e3), (81e3, 90e3), (54e3, 60e3)]);
        assert!((drifting.ratio() - 0.9).abs() < 1e-9);
        // One bad pair does not decide it.
        let outlier = phase(&[(100.0, 100.0), (30.0, 100.0), (101.0, 100.0)]);
        assert_eq!(outlier.ratio(), 1.0);
        assert_eq!(phase(&[]).ratio(), 0.0);
    }

    #[test]
    fn the_verdict_corrects_for_the_instances_and_the_background_cpu() {
        // The test instance is 2% faster than the control on its own; with the
        // misbehaving clients it is 3% slower; they take 1% of the core.
        let before = phase(&[(102.0, 100.0); 3]);
        let after = phase(&[(102.0, 100.0); 3]);
        let during = phase(&[(97.0, 100.0); 3]);
        let v = verdict(&before, &during, &after, 0.01);
        assert!((v.instances - 1.02).abs() < 1e-9);
        assert!((v.paired - 0.97 / 1.02).abs() < 1e-9);
        assert!((v.kept - 0.97 / 1.02 * 0.99).abs() < 1e-9);

        let mut record = Record::default();
        record_phases(&mut record, &before, &during, &after, 0.01);
        let check = &record.checks[0];
        assert!(!check.pass, "0.941 is under 0.95");
        assert_eq!(check.measured, "0.941");

        let mut record = Record::default();
        record_phases(
            &mut record,
            &before,
            &phase(&[(102.0, 100.0); 3]),
            &after,
            0.0,
        );
        assert!(record.checks[0].pass);
        assert_eq!(
            record.figures.get("pair_ratios_during"),
            Some(&serde_json::json!([1.02, 1.02, 1.02]))
        );
    }

    #[test]
    fn a_phase_takes_two_windows_and_their_warm_ups_per_pair() {
        let normal = Normal {
            normal: 1,
            window: 2.0,
            pairs: 3,
            control: "127.0.0.1:1".parse().unwrap(),
            control_pids: Vec::new(),
        };
        assert_eq!(normal.phase_seconds(3), 3.0 * 2.0 * 2.5);
    }
}
