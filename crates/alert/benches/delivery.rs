//! Webhook delivery latency under a steady 100 events/s: from `Alerts::push` to the
//! request arriving at a real receiver on loopback (tests/common: HTTP/1.1, keep-alive),
//! over http and https, as JSON and as Alertmanager alerts. Prints p50/p99/max.
//!
//! `cargo bench -p vigil-alert --bench delivery` (VIGIL_BENCH_SECS: seconds per case,
//! 10 by default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Answer, Receiver, alert, pki};
use serde_json::{Value, json};
use vigil_alert::Alerts;
use vigil_config::AlertFormat;

const RATE: u64 = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Event `n`: JSON webhooks see it as it is; for Alertmanager, real server `n` goes down
/// (a new alert each time), so every event is sent.
fn event(n: u64) -> Value {
    json!({"event": "health", "virtual_server": "web", "real_server": format!("seq-{n}"),
           "health": "down", "reason": "bench", "latency_us": 1, "at_unix_ms": 1_795_000_000_000u64 + n})
}

fn seq_of(entry: &Value) -> Option<u64> {
    let rs = entry
        .get("real_server")
        .or_else(|| entry.get("labels").and_then(|l| l.get("real_server")))?;
    rs.as_str()?.strip_prefix("seq-")?.parse().ok()
}

fn run(label: &str, tls: bool, format: AlertFormat, secs: u64) {
    let dir = tempfile::tempdir().expect("dir");
    let (rx, url, ca) = if tls {
        let (ca, cert) = pki(dir.path());
        let rx = Receiver::start_tls(Answer::Status(200, Duration::ZERO), Some(cert));
        let url = rx.url("https");
        (rx, url, Some(ca))
    } else {
        let rx = Receiver::start(Answer::Status(200, Duration::ZERO));
        let url = rx.url("http");
        (rx, url, None)
    };
    let alerts = Alerts::start().expect("start");
    let mut a = alert("bench", &url, format);
    a.ca_file = ca;
    assert!(alerts.apply(&[a], "lb-bench").is_empty());

    let total = RATE * secs;
    let period = Duration::from_secs(1) / RATE as u32;
    let mut pushed = HashMap::with_capacity(total as usize);
    let start = Instant::now();
    let mut push_max = Duration::ZERO;
    for n in 0..total {
        let due = start + period * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let e = event(n);
        let t = Instant::now();
        alerts.push(&e);
        push_max = push_max.max(t.elapsed());
        pushed.insert(n, t);
    }
    let end = Instant::now() + Duration::from_secs(10);
    while rx.entries().len() < total as usize && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(total as usize);
    let mut requests = 0;
    for r in rx.received() {
        requests += 1;
        let list = r.body.get("events").or_else(|| r.body.get("alerts"));
        for entry in list.and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = seq_of(entry).and_then(|n| pushed.get(&n)) {
                lat.push(r.at.saturating_duration_since(*t));
            }
        }
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<28} {:>5}/{total} delivered in {requests:>4} requests  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  (push max {:.1} µs)",
        lat.len(),
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        push_max.as_secs_f64() * 1e6,
    );
    alerts.shutdown(Duration::from_secs(2));
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = std::env::var("VIGIL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 10 });
    println!(
        "webhook delivery latency, {RATE} events/s for {secs} s per case (push -> request at the receiver)"
    );
    run("http, json", false, AlertFormat::Json, secs);
    run("https, json", true, AlertFormat::Json, secs);
    run("https, alertmanager", true, AlertFormat::Alertmanager, secs);
}
