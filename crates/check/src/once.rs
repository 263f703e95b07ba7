//! `vigild check-once`: every check run once, now, with no scheduling and no hysteresis.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::failure::FailureCause;
use crate::probe::Probe;
use crate::target::{CheckKey, Target};

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnceResult {
    pub key: CheckKey,
    pub virtual_server: String,
    pub kind: &'static str,
    /// What was checked: `http GET /healthz 10.0.0.11:80`.
    pub check: String,
    pub passed: bool,
    #[serde(rename = "latency_us", serialize_with = "as_micros")]
    pub latency: Duration,
    pub reason: String,
    /// Why it failed (`None` when it passed).
    pub cause: Option<FailureCause>,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Runs every target's check once, at most `max_in_flight` at a time, each within its
/// timeout. Results are in the order of `targets`.
pub async fn run_once(targets: &[Target], max_in_flight: usize) -> Vec<OnceResult> {
    let mut results: Vec<Option<OnceResult>> = vec![None; targets.len()];
    let mut running = JoinSet::new();
    for (i, target) in targets.iter().enumerate() {
        while running.len() >= max_in_flight.max(1) {
            if let Some(Ok((i, r))) = running.join_next().await {
                results[i] = Some(r);
            }
        }
        let probe = Probe::new(Arc::new(target.clone()));
        running.spawn(async move {
            let outcome = probe.run().await;
            let target = probe.target();
            (
                i,
                OnceResult {
                    key: target.key,
                    virtual_server: target.virtual_server.clone(),
                    kind: target.check.kind.name(),
                    check: probe.describe(),
                    passed: outcome.passed,
                    latency: outcome.latency,
                    reason: outcome.reason,
                    cause: outcome.cause,
                },
            )
        });
    }
    while let Some(joined) = running.join_next().await {
        if let Ok((i, r)) = joined {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .zip(targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| OnceResult {
                key: t.key,
                virtual_server: t.virtual_server.clone(),
                kind: t.check.kind.name(),
                check: t.check.kind.name().to_string(),
                passed: false,
                latency: Duration::ZERO,
                reason: "probe failed internally".into(),
                cause: Some(FailureCause::Internal),
            })
        })
        .collect()
}

/// The results as an aligned text table: virtual server, real server, check, verdict,
/// latency, reason.
pub fn format_table(results: &[OnceResult]) -> String {
    let header = [
        "VIRTUAL SERVER",
        "REAL SERVER",
        "CHECK",
        "VERDICT",
        "LATENCY",
        "REASON",
    ];
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            [
                r.virtual_server.clone(),
                r.key.real.to_string(),
                r.check.clone(),
                if r.passed { "pass" } else { "fail" }.to_string(),
                format!("{:.1}ms", r.latency.as_secs_f64() * 1e3),
                r.reason.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}
