//! Prometheus metrics on `director.metrics_listen` (docs/metrics.md): a minimal HTTP/1.1
//! server answering `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! A scrape never waits for the director task: it renders what the director last
//! published (`state::DirectorView`, at most a second old), the IPVS thread's own
//! counters, the VRRP registry and the state snapshot; only the checker is asked, on its
//! own threads and with a time limit, as `services` does. The endpoint holds at most
//! [`MAX_CONNECTIONS`] connections; when they are all taken, the oldest one still
//! sending its request is closed to make room, so idle connections cannot lock out a
//! scrape (1,077 of them once exhausted the file limit and broke IPVS netlink).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use crate::state::{Refusal, Shared, SocketCounters};

/// Bytes of request head read at most; more is a bad request.
const MAX_REQUEST: usize = 8 * 1024;
/// The whole request head must arrive within this long of the connection (an absolute
/// deadline: a byte now and then does not extend it); the reply must be written within
/// as long again.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections held at once; see the module doc for what happens beyond.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a scrape waits for the checker's statistics before it goes without them.
const CHECKER_TIMEOUT: Duration = Duration::from_secs(2);

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

/// The open connections, and which of them are still reading their request (those may
/// be closed to make room).
#[derive(Default)]
struct Connections {
    next_id: u64,
    /// id -> (still reading its request, the task serving it).
    open: BTreeMap<u64, (bool, AbortHandle)>,
}

/// The connection to close to make room: the oldest still reading its request (ids grow
/// with time); `None` when every one is being answered.
fn oldest_reading<T>(open: &BTreeMap<u64, (bool, T)>) -> Option<u64> {
    open.iter()
        .find(|(_, (reading, _))| *reading)
        .map(|(id, _)| *id)
}

/// Removes its connection from [`Connections`] when the task ends (or is aborted).
struct Slot {
    id: u64,
    conns: Arc<Mutex<Connections>>,
    counters: Arc<Shared>,
}

impl Slot {
    fn request_read(&self) {
        let mut c = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = c.open.get_mut(&self.id) {
            entry.0 = false;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if c.open.remove(&self.id).is_some() {
            self.counters
                .metrics_endpoint
                .open
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Binds and serves until the task is dropped. A bind failure is logged, not fatal: the
/// director's job matters more than its metrics.
pub async fn serve(addr: SocketAddr, shared: Arc<Shared>) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    info!("metrics on http://{addr}/metrics");
    let conns = Arc::new(Mutex::new(Connections::default()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let counters: &SocketCounters = &shared.metrics_endpoint;
        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
        if c.open.len() >= MAX_CONNECTIONS {
            // The oldest connection still sending its request goes; if every one is
            // being answered (each within REQUEST_TIMEOUT), the new one does.
            match oldest_reading(&c.open).and_then(|id| c.open.remove(&id)) {
                Some((_, task)) => {
                    task.abort();
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                    counters.count(Refusal::Evicted);
                }
                None => {
                    counters.count(Refusal::Clients);
                    drop(stream);
                    continue;
                }
            }
        }
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let id = c.next_id;
        c.next_id += 1;
        let slot = Slot {
            id,
            conns: conns.clone(),
            counters: shared.clone(),
        };
        let shared = shared.clone();
        // Registered before the task can run (the lock is held), so its slot's removal
        // always finds it.
        let task = tokio::spawn(async move {
            let timed_out = answer(stream, &shared, &slot).await.is_err();
            if timed_out {
                shared.metrics_endpoint.count(Refusal::Timeout);
            }
            drop(slot);
        });
        c.open.insert(id, (true, task.abort_handle()));
    }
}

/// Serves one request; `Err` when the client was too slow.
async fn answer(mut stream: TcpStream, shared: &Shared, slot: &Slot) -> Result<(), ()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
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
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(()),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    slot.request_read();
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let written = match (method, path) {
        ("GET", "/metrics") => {
            let body = gather(shared).await;
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", "/") => {
            respond(
                &mut stream,
                "200 OK",
                "text/plain",
                "vigild: metrics at /metrics\n",
            )
            .await
        }
        ("GET", _) => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "not found: try /metrics\n",
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "only GET\n",
            )
            .await
        }
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(()),
        _ => Ok(()),
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
    tokio::time::timeout(REQUEST_TIMEOUT, async {
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

/// Everything, from what each owner last published (and the checker, asked directly).
pub async fn gather(shared: &Shared) -> String {
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
    if let Some(d) = crate::datapath::running() {
        m.family(
            "vigil_datapath",
            "gauge",
            "1 for the kernel datapath chosen at start (ipvs or nftables).",
        )
        .sample("vigil_datapath", &[("datapath", d.kind.name())], 1.0);
    }
    if let Some(status) = shared.director.datapath() {
        match crate::datapath::running().map(|d| d.kind) {
            Some(crate::datapath::Kind::Nftables) => nftables_metrics(&status, &mut m),
            _ => ipvs_metrics(&status, &mut m),
        }
    }
    director_metrics(&shared.director.stats(), &mut m);
    if let Some(checker) = shared.director.checker() {
        checker_metrics(&checker, &mut m).await;
    }
    socket_metrics(shared, &mut m);
    if let Some(alerts) = shared.alerts.get() {
        m.push_text(&alerts.prometheus());
    }
    m.finish()
}

fn ipvs_metrics(ipvs: &crate::datapath::DatapathStatus, m: &mut Exposition) {
    m.single(
        "vigil_ipvs_available",
        "gauge",
        "1 when IPVS can be programmed.",
        f64::from(u8::from(ipvs.available)),
    );
    m.single(
        "vigil_ipvs_syncs_total",
        "counter",
        "Reconcile passes (full or one service).",
        ipvs.syncs as f64,
    );
    m.single(
        "vigil_ipvs_writes_total",
        "counter",
        "IPVS netlink writes acknowledged by the kernel.",
        ipvs.writes as f64,
    );
    m.single(
        "vigil_ipvs_write_errors_total",
        "counter",
        "IPVS netlink writes the kernel refused (retried with back-off).",
        ipvs.write_errors as f64,
    );
    m.single(
        "vigil_ipvs_full_dumps_total",
        "counter",
        "Full reads of the kernel table (start, drift repair).",
        ipvs.full_dumps as f64,
    );
}

/// The nft thread's counters (it publishes the IPVS thread's status type).
fn nftables_metrics(nft: &crate::datapath::DatapathStatus, m: &mut Exposition) {
    m.single(
        "vigil_nftables_available",
        "gauge",
        "1 when the last write of table inet vigil succeeded.",
        f64::from(u8::from(nft.available)),
    );
    m.single(
        "vigil_nftables_syncs_total",
        "counter",
        "Applies of the desired table or of one service (most write nothing).",
        nft.syncs as f64,
    );
    m.single(
        "vigil_nftables_transactions_total",
        "counter",
        "nft transactions written (each one atomic).",
        nft.writes as f64,
    );
    m.single(
        "vigil_nftables_transaction_errors_total",
        "counter",
        "Applies that failed (nft refused or could not run; retried with back-off).",
        nft.write_errors as f64,
    );
    m.single(
        "vigil_nftables_full_replacements_total",
        "counter",
        "Transactions that (re)created the whole table.",
        nft.full_dumps as f64,
    );
}

/// Quorum and real servers, as the director last published them.
fn director_metrics(stats: &crate::state::DirectorStats, m: &mut Exposition) {
    m.family(
        "vigil_virtual_server_quorum",
        "gauge",
        "1 when the virtual server has its quorum, 0 when not (absent while undecided).",
    );
    for vs in &stats.virtual_servers {
        if let Some(q) = vs.quorum {
            m.sample(
                "vigil_virtual_server_quorum",
                &[("virtual_server", &vs.name)],
                f64::from(u8::from(q)),
            );
        }
    }
    m.family(
        "vigil_virtual_server_announced",
        "gauge",
        "With announce: 1 while the VIP's route is in the table the BGP speaker exports, 0 while withdrawn; `reason` says why.",
    );
    for vs in &stats.virtual_servers {
        if let Some((announced, reason)) = vs.announce {
            m.sample(
                "vigil_virtual_server_announced",
                &[("virtual_server", &vs.name), ("reason", reason)],
                f64::from(u8::from(announced)),
            );
        }
    }
    m.family(
        "vigil_virtual_server_quorum_counted",
        "gauge",
        "What counts toward the quorum: healthy real servers, or their summed weights with quorum_by = \"weight\".",
    );
    for vs in &stats.virtual_servers {
        m.sample(
            "vigil_virtual_server_quorum_counted",
            &[("virtual_server", &vs.name)],
            f64::from(vs.quorum_counted),
        );
    }
    m.family(
        "vigil_virtual_server_quorum_needed",
        "gauge",
        "The virtual server's quorum, in the units of vigil_virtual_server_quorum_counted.",
    );
    for vs in &stats.virtual_servers {
        m.sample(
            "vigil_virtual_server_quorum_needed",
            &[("virtual_server", &vs.name)],
            f64::from(vs.quorum_needed),
        );
    }
    let rows: Vec<(&str, String, &crate::state::RealServerStats)> = stats
        .virtual_servers
        .iter()
        .flat_map(|vs| {
            vs.real_servers
                .iter()
                .map(|rs| (vs.name.as_str(), rs.address.to_string(), rs))
        })
        .collect();
    m.family(
        "vigil_real_server_up",
        "gauge",
        "1 when the real server is healthy, 0 when down (absent until its first verdict).",
    );
    for (vs, addr, rs) in &rows {
        if let Some(up) = rs.up {
            m.sample(
                "vigil_real_server_up",
                &[("virtual_server", vs), ("real_server", addr)],
                f64::from(u8::from(up)),
            );
        }
    }
    m.family(
        "vigil_real_server_weight",
        "gauge",
        "Weight the director wants in IPVS (absent: not in the table).",
    );
    for (vs, addr, rs) in &rows {
        if let Some(w) = rs.weight {
            m.sample(
                "vigil_real_server_weight",
                &[("virtual_server", vs), ("real_server", addr)],
                f64::from(w),
            );
        }
    }
    m.family(
        "vigil_real_server_drained",
        "gauge",
        "1 when an operator drained the real server.",
    );
    for (vs, addr, rs) in &rows {
        m.sample(
            "vigil_real_server_drained",
            &[("virtual_server", vs), ("real_server", addr)],
            f64::from(u8::from(rs.drained)),
        );
    }
    dns_metrics(&stats.dns, m);
}

/// A metric family of `real_servers_from_dns` entries: name, type, help, value.
type DnsFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&vigil_proto::DnsSourceView) -> Option<f64>,
);

/// `real_servers_from_dns` entries: resolutions, failures, what the last good answer gave.
fn dns_metrics(dns: &[(String, vigil_proto::DnsSourceView)], m: &mut Exposition) {
    let labels = |vs: &str, d: &vigil_proto::DnsSourceView| {
        [
            ("virtual_server", vs.to_string()),
            ("name", d.name.clone()),
            ("type", d.record.clone()),
        ]
    };
    let families: [DnsFamily; 4] = [
        (
            "vigil_dns_resolutions_total",
            "counter",
            "Resolutions of a real_servers_from_dns name, failed ones included.",
            |d| Some(d.resolutions as f64),
        ),
        (
            "vigil_dns_resolution_failures_total",
            "counter",
            "Resolutions that failed or were empty (the last good servers stayed).",
            |d| Some(d.failures as f64),
        ),
        (
            "vigil_dns_real_servers",
            "gauge",
            "Real servers the name's last good answer gave.",
            |d| Some(d.real_servers.len() as f64),
        ),
        (
            "vigil_dns_last_success_timestamp_seconds",
            "gauge",
            "When the name last resolved (absent before its first answer).",
            |d| d.last_success_unix_ms.map(|ms| ms as f64 / 1000.0),
        ),
    ];
    for (name, kind, help, value) in families {
        m.family(name, kind, help);
        for (vs, d) in dns {
            if let Some(v) = value(d) {
                let l = labels(vs, d);
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                m.sample(name, &l, v);
            }
        }
    }
}

/// The checker's counters and latencies, asked of its threads (never of the director).
async fn checker_metrics(checker: &vigil_check::Checker, m: &mut Exposition) {
    use vigil_check::Health;
    let (stats, snap) = tokio::join!(
        tokio::time::timeout(CHECKER_TIMEOUT, checker.stats(false)),
        tokio::time::timeout(CHECKER_TIMEOUT, checker.snapshot())
    );
    if let Ok(Ok(stats)) = stats {
        m.family(
            "vigil_checks_total",
            "counter",
            "Health check runs by kind and result.",
        );
        for (kind, k) in &stats.per_kind {
            m.sample(
                "vigil_checks_total",
                &[("kind", kind), ("result", "pass")],
                k.passed as f64,
            )
            .sample(
                "vigil_checks_total",
                &[("kind", kind), ("result", "fail")],
                k.failed as f64,
            );
        }
        m.family(
            "vigil_check_failures_total",
            "counter",
            "Failed health check runs by kind and cause.",
        );
        for (kind, k) in &stats.per_kind {
            for (cause, n) in &k.failed_by_cause {
                m.sample(
                    "vigil_check_failures_total",
                    &[("kind", kind), ("reason", cause.name())],
                    *n as f64,
                );
            }
        }
        m.family(
            "vigil_check_duration_seconds",
            "histogram",
            "Probe latency (connect to verdict) by check kind.",
        );
        for (kind, k) in &stats.per_kind {
            let mut cumulative = 0;
            for (le, n) in vigil_check::LATENCY_BUCKETS_S.iter().zip(k.latency_buckets) {
                cumulative += n;
                m.sample(
                    "vigil_check_duration_seconds_bucket",
                    &[("kind", kind), ("le", &le.to_string())],
                    cumulative as f64,
                );
            }
            let total = k.passed + k.failed;
            m.sample(
                "vigil_check_duration_seconds_bucket",
                &[("kind", kind), ("le", "+Inf")],
                total as f64,
            )
            .sample(
                "vigil_check_duration_seconds_sum",
                &[("kind", kind)],
                k.latency_sum_us as f64 / 1e6,
            )
            .sample(
                "vigil_check_duration_seconds_count",
                &[("kind", kind)],
                total as f64,
            );
        }
        m.single(
            "vigil_checks_in_flight",
            "gauge",
            "Probes running now.",
            stats.in_flight as f64,
        );
        m.single(
            "vigil_checks_backlog",
            "gauge",
            "Due checks waiting for a probe slot.",
            stats.backlog as f64,
        );
        m.family(
            "vigil_check_latency_seconds",
            "summary",
            "Probe latency since start.",
        );
        for (q, us) in [
            ("0.5", stats.probe_latency.p50_us),
            ("0.99", stats.probe_latency.p99_us),
        ] {
            m.sample(
                "vigil_check_latency_seconds",
                &[("quantile", q)],
                us as f64 / 1e6,
            );
        }
        m.sample(
            "vigil_check_latency_seconds_count",
            &[],
            stats.probe_latency.samples as f64,
        );
        m.family(
            "vigil_check_lateness_seconds",
            "summary",
            "How late checks started against their schedule.",
        );
        for (q, us) in [
            ("0.5", stats.lateness.p50_us),
            ("0.99", stats.lateness.p99_us),
        ] {
            m.sample(
                "vigil_check_lateness_seconds",
                &[("quantile", q)],
                us as f64 / 1e6,
            );
        }
        m.sample(
            "vigil_check_lateness_seconds_count",
            &[],
            stats.lateness.samples as f64,
        );
    }
    if let Ok(Ok(snap)) = snap {
        let mut per_kind: BTreeMap<(&str, &str), u64> = Default::default();
        for c in &snap.checks {
            let health = match c.health {
                Health::Up => "up",
                Health::Down => "down",
            };
            *per_kind.entry((c.kind, health)).or_default() += 1;
        }
        m.family(
            "vigil_checks",
            "gauge",
            "Configured checks by kind and current health.",
        );
        for ((kind, health), n) in per_kind {
            m.sample(
                "vigil_checks",
                &[("kind", kind), ("health", health)],
                n as f64,
            );
        }
    }
}

/// The status socket's and this endpoint's own connections and refusals.
fn socket_metrics(shared: &Shared, m: &mut Exposition) {
    use Refusal::*;
    for (name, counters, reasons) in [
        (
            "status_socket",
            &shared.status_socket,
            &[Clients, PerUid, Subscribers, Idle, Forbidden][..],
        ),
        (
            "metrics",
            &shared.metrics_endpoint,
            &[Clients, Evicted, Timeout][..],
        ),
    ] {
        let open = format!("vigil_{name}_connections");
        m.single(
            &open,
            "gauge",
            "Connections open now.",
            counters.open() as f64,
        );
        let accepted = format!("vigil_{name}_connections_total");
        m.single(
            &accepted,
            "counter",
            "Connections accepted since start.",
            counters.accepted() as f64,
        );
        let refused = format!("vigil_{name}_refused_total");
        m.family(
            &refused,
            "counter",
            "Connections or requests refused or closed early, by reason.",
        );
        for reason in reasons {
            m.sample(
                &refused,
                &[("reason", reason.as_str())],
                counters.refused(*reason) as f64,
            );
        }
    }
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
    fn room_is_made_by_closing_the_oldest_unfinished_request() {
        let mut open: BTreeMap<u64, (bool, ())> = BTreeMap::new();
        assert_eq!(oldest_reading(&open), None);
        open.insert(3, (false, ()));
        open.insert(5, (true, ()));
        open.insert(9, (true, ()));
        assert_eq!(oldest_reading(&open), Some(5));
        open.insert(5, (false, ()));
        open.insert(9, (false, ()));
        assert_eq!(oldest_reading(&open), None, "all being answered");
    }

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
