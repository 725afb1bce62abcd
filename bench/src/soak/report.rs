//! The side-by-side table of a soak run: every target of every scenario, per proxy
//! (the issue's targets are switchyard's; nginx's and HAProxy's cells show where the
//! anchors stand), then every figure measured. When a scenario ran more than once
//! against a proxy, the last run counts.

use super::Record;
use serde_json::Value;
use std::io;
use std::path::Path;

/// Scenarios in the order the table shows them.
const SCENARIOS: [&str; 8] = [
    "churn",
    "many",
    "slowloris",
    "slow-readers",
    "backend-death",
    "unreachable",
    "fd-limit",
    "malformed",
];
const PROXIES: [(&str, &str); 3] = [
    ("nginx", "nginx"),
    ("haproxy", "HAProxy"),
    ("switchyard", "switchyard"),
];

/// A target that compares switchyard with the better of nginx and HAProxy.
struct Relative {
    scenario: &'static str,
    figure: &'static str,
    factor: f64,
    text: &'static str,
}

const RELATIVE: [Relative; 1] = [Relative {
    scenario: "churn",
    figure: "cycles_per_s",
    factor: 1.1,
    text: "cycles/s ≥ 1.1× the better of nginx and HAProxy",
}];

pub fn run(input: &Path, markdown: &Path, notes: Option<&str>) -> io::Result<String> {
    let text = std::fs::read_to_string(input)?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{}: {e}", input.display(), n + 1),
            )
        })?;
        records.push(record);
    }
    let out = render(&records, notes);
    std::fs::write(markdown, &out)?;
    Ok(out)
}

/// The record of `scenario` against `target` the tables show: the last one, or for a
/// scenario with a relative target run in several interleaved rounds, the round with
/// the median of the compared figure (one round's drift would decide otherwise).
fn latest<'a>(records: &'a [Record], scenario: &str, target: &str) -> Option<&'a Record> {
    let mut rounds: Vec<&Record> = records
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .collect();
    let Some(relative) = RELATIVE.iter().find(|r| r.scenario == scenario) else {
        return rounds.pop();
    };
    let figure = |r: &Record| {
        r.figures
            .get(relative.figure)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    rounds.sort_by(|a, b| figure(a).total_cmp(&figure(b)));
    rounds.get(rounds.len().saturating_sub(1) / 2).copied()
}

/// Every round's `figure` of `scenario` against `target`, in the order run.
fn rounds_of(records: &[Record], scenario: &str, target: &str, figure: &str) -> Vec<f64> {
    records
        .iter()
        .filter(|r| r.scenario == scenario && r.target == target)
        .filter_map(|r| r.figures.get(figure).and_then(Value::as_f64))
        .collect()
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => escape(s),
        Some(other) => other.to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

fn mark(pass: bool) -> &'static str {
    if pass {
        "✅"
    } else {
        "❌"
    }
}

fn render(records: &[Record], notes: Option<&str>) -> String {
    let mut out = String::from("# Soak and fault harness: nginx, HAProxy, switchyard\n\n");
    if let Some(notes) = notes {
        out.push_str(notes.trim());
        out.push_str("\n\n");
    }
    let header = |first: &str, second: &str| {
        let mut line = format!("| {first} | {second} |");
        let mut rule = "|---|---|".to_owned();
        for (_, name) in PROXIES {
            line.push_str(&format!(" {name} |"));
            rule.push_str("---|");
        }
        format!("{line}\n{rule}\n")
    };

    out.push_str("## Targets\n\n");
    out.push_str(
        "The targets are switchyard's (issue 11); nginx's and HAProxy's cells show where \
         the side-by-side anchors stand against the same targets.\n\n",
    );
    out.push_str(&header("scenario", "target"));
    let scenarios: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .chain(
            records
                .iter()
                .map(|r| r.scenario.as_str())
                .filter(|s| !SCENARIOS.contains(s)),
        )
        .collect();
    let mut seen = Vec::new();
    for scenario in scenarios {
        if seen.contains(&scenario) || !records.iter().any(|r| r.scenario == scenario) {
            continue;
        }
        seen.push(scenario);
        let runs: Vec<Option<&Record>> = PROXIES
            .iter()
            .map(|(target, _)| latest(records, scenario, target))
            .collect();
        // Every target any proxy was checked against, switchyard's order first.
        let mut targets: Vec<&str> = Vec::new();
        for run in runs.iter().rev().flatten() {
            for check in &run.checks {
                if !targets.contains(&check.target.as_str()) {
                    targets.push(&check.target);
                }
            }
        }
        for target in targets {
            let mut line = format!("| {scenario} | {} |", escape(target));
            for run in &runs {
                let found = run.and_then(|r| r.checks.iter().find(|c| c.target == target));
                match found {
                    Some(check) => line.push_str(&format!(
                        " {} {} |",
                        escape(&check.measured),
                        mark(check.pass)
                    )),
                    None => line.push_str(" — |"),
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        for relative in RELATIVE.iter().filter(|r| r.scenario == scenario) {
            let value = |target: &str| {
                latest(records, scenario, target)
                    .and_then(|r| r.figures.get(relative.figure))
                    .and_then(Value::as_f64)
            };
            let best = [value("nginx"), value("haproxy")]
                .into_iter()
                .flatten()
                .fold(None, |best: Option<f64>, v| {
                    Some(best.map_or(v, |b| b.max(v)))
                });
            let ours = match (value("switchyard"), best) {
                (Some(ours), Some(best)) if best > 0.0 => format!(
                    "{:.2}× ({ours} vs {best}) {}",
                    ours / best,
                    mark(ours >= relative.factor * best)
                ),
                _ => "—".to_owned(),
            };
            out.push_str(&format!(
                "| {scenario} | {} | | | {ours} |\n",
                escape(relative.text)
            ));
            let rounds: Vec<String> = PROXIES
                .iter()
                .map(|(target, name)| {
                    let values = rounds_of(records, scenario, target, relative.figure);
                    let values: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
                    format!("{name} {}", values.join(", "))
                })
                .collect();
            if rounds_of(records, scenario, "switchyard", relative.figure).len() > 1 {
                out.push_str(&format!(
                    "| {scenario} | {} in every round, in order (medians compared) | | | {} |\n",
                    relative.figure,
                    rounds.join("; ")
                ));
            }
        }
    }

    out.push_str("\n## Figures\n");
    for &scenario in &seen {
        let runs: Vec<Option<&Record>> = PROXIES
            .iter()
            .map(|(target, _)| latest(records, scenario, target))
            .collect();
        out.push_str(&format!("\n### {scenario}\n\n"));
        if let Some(run) = runs.iter().rev().flatten().next() {
            let settings: Vec<String> = run
                .settings
                .0
                .iter()
                .map(|(name, value)| format!("{name} = {}", cell(Some(value))))
                .collect();
            if !settings.is_empty() {
                out.push_str(&format!("Settings: {}.\n\n", settings.join(", ")));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for run in runs.iter().rev().flatten() {
            for (name, _) in &run.figures.0 {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        let mut line = "| figure |".to_owned();
        let mut rule = "|---|".to_owned();
        for (_, name) in PROXIES {
            line.push_str(&format!(" {name} |"));
            rule.push_str("--:|");
        }
        out.push_str(&format!("{line}\n{rule}\n"));
        for name in names {
            let mut line = format!("| {name} |");
            for run in &runs {
                line.push_str(&format!(
                    " {} |",
                    cell(run.and_then(|r| r.figures.get(name)))
                ));
            }
            out.push_str(&line);
            out.push('\n');
        }
        // A note every proxy's record carries is said once.
        let present: Vec<&Record> = runs.iter().flatten().copied().collect();
        let shared =
            |note: &String| present.len() > 1 && present.iter().all(|r| r.notes.contains(note));
        let mut notes = String::new();
        let mut said = Vec::new();
        for ((_, proxy), run) in PROXIES.iter().zip(&runs) {
            for note in run.iter().flat_map(|r| &r.notes) {
                if !shared(note) {
                    notes.push_str(&format!("- {proxy}: {note}\n"));
                } else if !said.contains(&note) {
                    said.push(note);
                    notes.push_str(&format!("- all: {note}\n"));
                }
            }
        }
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes);
        }
        let missing: Vec<&str> = PROXIES
            .iter()
            .zip(&runs)
            .filter(|(_, run)| run.is_none())
            .map(|((_, name), _)| *name)
            .collect();
        if !missing.is_empty() {
            out.push_str(&format!("\nNo record for: {}.\n", missing.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::{Check, Figures};

    fn record(target: &str, cycles: f64, pass: bool) -> Record {
        Record {
            scenario: "churn".to_owned(),
            target: target.to_owned(),
            settings: Figures(vec![("cycles".to_owned(), Value::from(10))]),
            figures: Figures(vec![("cycles_per_s".to_owned(), Value::from(cycles))]),
            checks: vec![Check {
                target: "0 failures".to_owned(),
                measured: "0 of 10".to_owned(),
                pass,
            }],
            notes: vec!["a | note".to_owned()],
        }
    }

    #[test]
    fn records_round_trip_with_their_figures_in_order() {
        let mut r = record("nginx", 1.0, true);
        r.figures.0.push(("a_last".to_owned(), Value::from("x")));
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""figures":{"cycles_per_s":1.0,"a_last":"x"}"#));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back.figures.0.len(), 2);
        assert_eq!(back.figures.0[1].0, "a_last");
    }

    #[test]
    fn the_relative_target_compares_with_the_better_anchor() {
        let mut haproxy = record("haproxy", 2000.0, false);
        haproxy.notes.push("its own".to_owned());
        let records = vec![
            record("nginx", 1000.0, true),
            haproxy,
            record("switchyard", 2300.0, true),
        ];
        let text = render(&records, None);
        assert!(text.contains("| churn | 0 failures | 0 of 10 ✅ | 0 of 10 ❌ | 0 of 10 ✅ |"));
        assert!(text.contains("1.15× (2300 vs 2000) ✅"));
        assert!(text.contains("- all: a | note\n- HAProxy: its own\n"));
    }

    #[test]
    fn several_rounds_are_compared_by_their_medians_and_listed() {
        let records: Vec<Record> = [
            ("nginx", 1000.0),
            ("haproxy", 2000.0),
            ("switchyard", 2600.0),
            ("nginx", 1100.0),
            ("haproxy", 1500.0),
            ("switchyard", 1700.0),
            ("nginx", 900.0),
            ("haproxy", 2100.0),
            ("switchyard", 2300.0),
        ]
        .into_iter()
        .map(|(target, cycles)| record(target, cycles, true))
        .collect();
        let text = render(&records, None);
        assert!(text.contains("1.15× (2300 vs 2000) ✅"), "{text}");
        assert!(text.contains(
            "nginx 1000, 1100, 900; HAProxy 2000, 1500, 2100; switchyard 2600, 1700, 2300"
        ));
        assert_eq!(
            latest(&records, "churn", "haproxy")
                .map(|r| r.figures.get("cycles_per_s").and_then(Value::as_f64)),
            Some(Some(2000.0))
        );
    }
}
