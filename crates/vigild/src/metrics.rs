//! Prometheus metrics on `director.metrics_listen` (docs/metrics.md): a minimal HTTP/1.1
//! server answering `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! Each scrape gathers fresh values from their owners (the director task, the VRRP
//! registry, the state snapshot); nothing is cached between scrapes.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::director::Command;
use crate::state::Shared;

/// Bytes of request head read at most; more is a bad request.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Text exposition builder: one `# HELP`/`# TYPE` per family, then its samples.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// Label values escaped as the format requires (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = writeln!(self.out, " {}", value as i64);
        } else {
            let _ = writeln!(self.out, " {value}");
        }
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn push_text(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Binds and serves until the task is dropped. A bind failure is logged, not fatal: the
/// director's job matters more than its metrics.
pub async fn serve(addr: SocketAddr, shared: Arc<Shared>, director: mpsc::Sender<Command>) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    info!("metrics on http://{addr}/metrics");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (shared, director) = (shared.clone(), director.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(IO_TIMEOUT * 2, answer(stream, shared, director)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>, director: mpsc::Sender<Command>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the request head (up to the blank line).
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > MAX_REQUEST {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
            return;
        }
        match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = gather(&shared, &director).await;
            let _ = respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await;
        }
        ("GET", "/") => {
            let _ = respond(
                &mut stream,
                "200 OK",
                "text/plain",
                "vigild: metrics at /metrics\n",
            )
            .await;
        }
        ("GET", _) => {
            let _ = respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "not found: try /metrics\n",
            )
            .await;
        }
        _ => {
            let _ = respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "only GET\n",
            )
            .await;
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "slow client",
        ))
    })
}

/// Everything, from every owner.
pub async fn gather(shared: &Shared, director: &mpsc::Sender<Command>) -> String {
    let mut m = Exposition::default();
    let snap = shared.snapshot();
    m.family("vigil_build_info", "gauge", "vigild version.")
        .sample(
            "vigil_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    m.single(
        "vigil_uptime_seconds",
        "gauge",
        "Seconds since vigild started.",
        shared.started.elapsed().as_secs_f64(),
    );
    m.single(
        "vigil_config_generation",
        "gauge",
        "Generation of the running configuration (1 at start, +1 per successful reload).",
        snap.generation as f64,
    );
    m.family(
        "vigil_config_reloads_total",
        "counter",
        "Reload attempts by result.",
    )
    .sample(
        "vigil_config_reloads_total",
        &[("result", "ok")],
        snap.reloads_ok as f64,
    )
    .sample(
        "vigil_config_reloads_total",
        &[("result", "failed")],
        snap.reloads_failed as f64,
    );

    vrrp_metrics(&shared.vrrp, &snap.config, &mut m);

    let (tx, rx) = oneshot::channel();
    if director.send(Command::Metrics(tx)).await.is_ok()
        && let Ok(text) = rx.await
    {
        m.push_text(&text);
    }
    m.finish()
}

/// VRRP instances, from their runners' live status.
fn vrrp_metrics(
    registry: &crate::vrrp::Registry,
    config: &vigil_config::Config,
    m: &mut Exposition,
) {
    let statuses: Vec<_> = config
        .vrrp
        .iter()
        .filter_map(|v| registry.status(&v.name))
        .collect();
    m.family(
        "vigil_vrrp_state",
        "gauge",
        "1 for the state each VRRP instance is in (initialize, backup, master, fault).",
    );
    for s in &statuses {
        for state in ["initialize", "backup", "master", "fault"] {
            let v = f64::from(u8::from(s.state.as_str() == state));
            m.sample(
                "vigil_vrrp_state",
                &[("instance", &s.name), ("state", state)],
                v,
            );
        }
    }
    m.family(
        "vigil_vrrp_priority",
        "gauge",
        "Effective priority (base plus tracked weights).",
    );
    for s in &statuses {
        m.sample(
            "vigil_vrrp_priority",
            &[("instance", &s.name)],
            f64::from(s.priority),
        );
    }
    m.family("vigil_vrrp_transitions_total", "counter", "State changes.");
    for s in &statuses {
        m.sample(
            "vigil_vrrp_transitions_total",
            &[("instance", &s.name)],
            s.transitions as f64,
        );
    }
    m.family(
        "vigil_vrrp_adverts_sent_total",
        "counter",
        "Advertisements sent.",
    );
    for s in &statuses {
        m.sample(
            "vigil_vrrp_adverts_sent_total",
            &[("instance", &s.name)],
            s.adverts_sent as f64,
        );
    }
    m.family(
        "vigil_vrrp_adverts_received_total",
        "counter",
        "Valid advertisements received.",
    );
    for s in &statuses {
        m.sample(
            "vigil_vrrp_adverts_received_total",
            &[("instance", &s.name)],
            s.adverts_received as f64,
        );
    }
    m.family(
        "vigil_vrrp_replies_limited_total",
        "counter",
        "Received adverts not answered by an advert of their own (reply rate limit).",
    );
    for s in &statuses {
        m.sample(
            "vigil_vrrp_replies_limited_total",
            &[("instance", &s.name)],
            s.replies_limited as f64,
        );
    }
    m.family(
        "vigil_vrrp_dropped_packets_total",
        "counter",
        "Received packets dropped, by reason (ttl, checksum, vrid, auth, interval, ...).",
    );
    for s in &statuses {
        for (reason, n) in &s.drops {
            m.sample(
                "vigil_vrrp_dropped_packets_total",
                &[("instance", &s.name), ("reason", reason)],
                *n as f64,
            );
        }
    }
    m.family(
        "vigil_vrrp_send_errors_total",
        "counter",
        "Advertisements that could not be sent.",
    );
    for s in &statuses {
        m.sample(
            "vigil_vrrp_send_errors_total",
            &[("instance", &s.name)],
            s.send_errors as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_formats_numbers() {
        let mut m = Exposition::default();
        m.family("x_total", "counter", "Things.")
            .sample("x_total", &[("name", "a\"b\\c\nd")], 3.0)
            .sample("x_total", &[], 0.25);
        assert_eq!(
            m.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{name=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.25\n"
        );
    }
}
