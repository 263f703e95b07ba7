//! From a cluster file to checks: targets keyed as the daemon keys them, and a whole
//! file checked once against real loopback servers (what `vigild check-once` does).

mod common;

use std::path::Path;

use common::{closed_port, http_server, response};
use vigil_check::{format_table, run_once, targets_from_config};
use vigil_config::{CheckKind, DnsTransport, ServiceKey};

#[test]
fn targets_of_an_example_cluster() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/dns-fwmark.toml");
    let config = vigil_config::load(&path).expect("example validates").config;
    let targets = targets_from_config(&config);
    assert_eq!(targets.len(), config.real_server_count());
    // Sized once (a reload at 10,000 real servers must not grow MiBs by doubling).
    assert_eq!(targets.capacity(), targets.len());
    let resolvers: Vec<_> = targets
        .iter()
        .filter(|t| t.virtual_server == "resolvers")
        .collect();
    assert_eq!(resolvers.len(), 3);
    assert!(matches!(
        resolvers[0].key.service,
        ServiceKey::Fwmark { mark: 53, .. }
    ));
    assert_eq!(resolvers[2].key.real.to_string(), "203.0.113.13:53");
    match &resolvers[2].check.kind {
        CheckKind::Dns(d) => assert_eq!(d.transport, DnsTransport::Tcp),
        other => panic!("{other:?}"),
    }
    let syslog: Vec<_> = targets
        .iter()
        .filter(|t| t.virtual_server == "syslog")
        .collect();
    assert_eq!(syslog[1].check.kind.name(), "exec");
}

#[tokio::test]
async fn a_cluster_file_checked_once() {
    let (good, _) = http_server(|_| response("200 OK", "ok")).await;
    let (busy, _) = http_server(|_| response("503 Service Unavailable", "")).await;
    let dead = closed_port().await;
    let source = format!(
        r#"
[director]
name = "test"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
protocol = "tcp"
scheduler = "rr"
forwarding = "nat"
check = {{ kind = "http", path = "/healthz", interval = "5s", timeout = "2s" }}
real_server = [
  {{ address = "{good}" }},
  {{ address = "{busy}" }},
  {{ address = "{dead}", check = {{ kind = "tcp" }} }},
  {{ address = "127.0.0.1:9" , check = {{ kind = "exec", command = ["/bin/true"] }} }},
]
"#
    );
    let loaded = vigil_config::parse(Path::new("test.toml"), &source).expect("valid");
    let targets = targets_from_config(&loaded.config);
    let results = run_once(&targets, 16).await;
    let verdicts: Vec<(String, bool, &str)> = results
        .iter()
        .map(|r| (r.key.real.to_string(), r.passed, r.reason.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (
                good.to_string(),
                true,
                format!("HTTP 200 from {good} GET /healthz").as_str()
            ),
            (
                busy.to_string(),
                false,
                format!("HTTP 503 from {busy} GET /healthz").as_str()
            ),
            (
                dead.to_string(),
                false,
                format!("connect to {dead} refused").as_str()
            ),
            ("127.0.0.1:9".to_string(), true, "/bin/true exited 0"),
        ]
    );
    let table = format_table(&results);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].starts_with("VIRTUAL SERVER  REAL SERVER"),
        "{table}"
    );
    assert!(
        lines[2].contains("fail") && lines[2].contains("HTTP 503"),
        "{table}"
    );
    let json = serde_json::to_value(&results).expect("json");
    assert_eq!(json[0]["passed"], true);
    assert_eq!(json[0]["kind"], "http");
    assert!(json[0]["latency_us"].is_u64());
}

/// The example's syslog check against a real listener that, like syslogd, never answers:
/// it passes (it needs no reply), and a closed port fails it.
#[tokio::test]
async fn example_syslog_check_passes_on_a_silent_listener() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/dns-fwmark.toml");
    let config = vigil_config::load(&path).expect("example validates").config;
    let targets = targets_from_config(&config);
    let syslog = targets
        .iter()
        .find(|t| t.virtual_server == "syslog" && t.check.kind.name() == "udp")
        .expect("the udp syslog check");
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut on_loopback = syslog.clone();
    on_loopback.key.real = listener.local_addr().expect("addr");
    let results = run_once(&[on_loopback.clone()], 1).await;
    assert!(results[0].passed, "{:?}", results[0]);
    let mut got = [0u8; 64];
    let (n, _) = listener.recv_from(&mut got).await.expect("the probe");
    assert_eq!(&got[..n], b"<14>vigil health probe");
    drop(listener);
    let results = run_once(&[on_loopback], 1).await;
    assert!(!results[0].passed, "{:?}", results[0]);
}
