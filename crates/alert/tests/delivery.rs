//! Webhook delivery against a real HTTP(S) receiver on loopback: normal delivery, a slow
//! receiver, one that refuses connections, one that answers 500 or 400, TLS with a test
//! CA, reloads, and the last attempt at shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{Answer, Receiver, alert, pki, wait_until};
use serde_json::{Value, json};
use vigil_alert::Alerts;
use vigil_config::{AlertAuth, AlertFormat};

const WITHIN: Duration = Duration::from_secs(10);

fn event(n: u64) -> Value {
    json!({"event": "drain", "virtual_server": "web", "real_server": format!("10.0.0.{n}:80"),
           "drained": true, "at_unix_ms": 1_795_000_000_000u64 + n})
}

fn health(state: &str, at: u64) -> Value {
    json!({"event": "health", "virtual_server": "web", "real_server": "10.0.0.11:80",
           "health": state, "reason": "connect to 10.0.0.11:80 refused", "latency_us": 210,
           "at_unix_ms": at})
}

fn ok() -> Answer {
    Answer::Status(200, Duration::ZERO)
}

/// The webhook's entry in `Alerts::status`.
fn status(alerts: &Alerts, name: &str) -> Value {
    serde_json::to_value(alerts.status())
        .expect("status")
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn dropped(alerts: &Alerts, name: &str, why: &str) -> u64 {
    status(alerts, name)["dropped"][why].as_u64().unwrap_or(0)
}

fn secret_file(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write secret");
    p
}

#[test]
fn json_events_arrive_in_order_with_the_bearer_token() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(ok());
    let alerts = Alerts::start().expect("start");
    let mut a = alert("ops", &rx.url("http"), AlertFormat::Json);
    a.auth = Some(AlertAuth::Bearer {
        token_file: secret_file(dir.path(), "token", "s3cret\n"),
    });
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    for n in 0..50 {
        alerts.push(&event(n));
    }
    assert!(wait_until(WITHIN, || rx.entries().len() == 50));
    let entries = rx.entries();
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(
            e,
            &event(n as u64),
            "in order, as the status socket shows them"
        );
    }
    let first = &rx.received()[0];
    assert_eq!(first.body["director"], "lb-a");
    assert_eq!(
        first.header("authorization").as_deref(),
        Some("Bearer s3cret")
    );
    assert_eq!(
        first.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        first.head.starts_with("POST /hook HTTP/1.1"),
        "{}",
        first.head
    );
    assert!(wait_until(WITHIN, || status(&alerts, "ops")["sent"] == 50));
    let s = status(&alerts, "ops");
    assert_eq!(s["queued"], 0);
    assert_eq!(s["requests"]["failed"], 0);
    assert!(
        alerts
            .prometheus()
            .contains("vigil_alert_sent_total{alert=\"ops\"} 50")
    );
    alerts.shutdown(Duration::from_secs(2));
}

#[test]
fn alertmanager_alerts_fire_and_resolve_with_basic_auth() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(ok());
    let alerts = Alerts::start().expect("start");
    let mut a = alert("am", &rx.url("http"), AlertFormat::Alertmanager);
    a.auth = Some(AlertAuth::Basic {
        username: "vigil".into(),
        password_file: secret_file(dir.path(), "pw", "pa55"),
    });
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    // Not conditions: nothing sent.
    alerts.push(&event(1));
    alerts.push(&health("up", 1_000));
    alerts.push(&health("down", 2_000));
    assert!(wait_until(WITHIN, || rx.entries().len() == 1));
    assert_eq!(status(&alerts, "am")["firing"], 1);
    alerts.push(&health("up", 3_000));
    assert!(wait_until(WITHIN, || rx.entries().len() == 2));
    let got = rx.received();
    let fired = &got[0].body;
    assert_eq!(fired["version"], "4");
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["receiver"], "am");
    let alert = &fired["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "VigilRealServerDown");
    assert_eq!(alert["labels"]["real_server"], "10.0.0.11:80");
    assert_eq!(alert["startsAt"], "1970-01-01T00:00:02.000Z");
    let resolved = &got.last().expect("resolved").body;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["endsAt"], "1970-01-01T00:00:03.000Z");
    assert_eq!(resolved["alerts"][0]["fingerprint"], alert["fingerprint"]);
    // "vigil:pa55" in base64.
    assert_eq!(
        got[0].header("authorization").as_deref(),
        Some("Basic dmlnaWw6cGE1NQ==")
    );
    assert_eq!(status(&alerts, "am")["firing"], 0);
    alerts.shutdown(Duration::from_secs(2));
}

#[test]
fn a_slow_receiver_fills_only_its_queue_and_the_newest_events_win() {
    let rx = Receiver::start(Answer::Status(200, Duration::from_millis(400)));
    let alerts = Alerts::start().expect("start");
    let mut a = alert("slow", &rx.url("http"), AlertFormat::Json);
    a.queue = 50;
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    let started = Instant::now();
    for n in 0..2000 {
        alerts.push(&event(n));
    }
    // Feeding never waits for the receiver (each reply takes 400 ms).
    let fed = started.elapsed();
    assert!(fed < Duration::from_millis(400), "feeding took {fed:?}");
    // Every event is either sent or counted, and the newest arrive.
    let counted = || {
        let s = status(&alerts, "slow");
        s["sent"].as_u64().unwrap_or(0) + s["dropped"]["queue_full"].as_u64().unwrap_or(0)
    };
    assert!(
        wait_until(WITHIN, || counted() == 2000),
        "{}",
        status(&alerts, "slow")
    );
    assert_eq!(rx.entries().last(), Some(&event(1999)));
    let s = status(&alerts, "slow");
    assert!(
        s["dropped"]["queue_full"].as_u64().unwrap_or(0) >= 2000 - 50 - 100,
        "{s}"
    );
    alerts.shutdown(Duration::from_secs(2));
}

#[test]
fn a_receiver_slower_than_the_timeout_is_retried_then_dropped() {
    let rx = Receiver::start(Answer::Status(200, Duration::from_secs(3)));
    let alerts = Alerts::start().expect("start");
    let mut a = alert("late", &rx.url("http"), AlertFormat::Json);
    a.timeout = Duration::from_millis(200);
    a.retries = 1;
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    alerts.push(&event(1));
    assert!(wait_until(WITHIN, || dropped(&alerts, "late", "failed") == 1));
    let s = status(&alerts, "late");
    assert_eq!(s["requests"]["failed"], 2, "one attempt and one retry: {s}");
    assert!(
        s["last_error"].as_str().unwrap_or("").contains("timed out"),
        "{s}"
    );
    alerts.shutdown(Duration::from_millis(100));
}

#[test]
fn refused_connections_are_retried_then_dropped_and_counted() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let alerts = Alerts::start().expect("start");
    let a = alert(
        "down",
        &format!("http://127.0.0.1:{port}/hook"),
        AlertFormat::Json,
    );
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    let started = Instant::now();
    for n in 0..5 {
        alerts.push(&event(n));
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(wait_until(WITHIN, || dropped(&alerts, "down", "failed") == 5));
    let s = status(&alerts, "down");
    // Each batch: the first attempt and 2 retries (the first event may go alone).
    let failed = s["requests"]["failed"].as_u64().unwrap_or(0);
    assert!(
        failed.is_multiple_of(3) && (3..=15).contains(&failed),
        "{s}"
    );
    assert_eq!(s["sent"], 0);
    let why = s["last_error"].as_str().unwrap_or("");
    assert!(why.contains("connect"), "{why}");
    let metrics = alerts.prometheus();
    assert!(
        metrics.contains("vigil_alert_dropped_total{alert=\"down\",reason=\"failed\"} 5"),
        "{metrics}"
    );
    alerts.shutdown(Duration::from_millis(100));
}

#[test]
fn a_500_is_retried_then_dropped_and_delivery_resumes_when_it_recovers() {
    let rx = Receiver::start(Answer::Status(500, Duration::ZERO));
    let alerts = Alerts::start().expect("start");
    let a = alert("flaky", &rx.url("http"), AlertFormat::Json);
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    alerts.push(&event(1));
    assert!(wait_until(WITHIN, || dropped(&alerts, "flaky", "failed") == 1));
    let s = status(&alerts, "flaky");
    assert_eq!(s["requests"]["failed"], 3, "{s}");
    assert_eq!(s["last_error"], "HTTP 500");
    rx.set_answer(ok());
    alerts.push(&event(2));
    assert!(wait_until(WITHIN, || rx.entries() == vec![event(2)]));
    assert!(wait_until(WITHIN, || status(&alerts, "flaky")["sent"] == 1));
    alerts.shutdown(Duration::from_secs(1));
}

#[test]
fn a_400_is_not_retried() {
    let rx = Receiver::start(Answer::Status(400, Duration::ZERO));
    let alerts = Alerts::start().expect("start");
    let a = alert("bad", &rx.url("http"), AlertFormat::Json);
    assert!(alerts.apply(&[a], "lb-a").is_empty());
    alerts.push(&event(1));
    assert!(wait_until(WITHIN, || dropped(&alerts, "bad", "rejected") == 1));
    assert_eq!(status(&alerts, "bad")["requests"]["failed"], 1);
    alerts.shutdown(Duration::from_millis(100));
}

#[test]
fn https_is_verified_against_the_test_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca_file, cert) = pki(dir.path());
    let rx = Receiver::start_tls(ok(), Some(cert));
    let alerts = Alerts::start().expect("start");
    let mut trusted = alert("trusted", &rx.url("https"), AlertFormat::Json);
    trusted.ca_file = Some(ca_file);
    // The system's roots do not know the test CA.
    let mut untrusted = alert("untrusted", &rx.url("https"), AlertFormat::Json);
    untrusted.retries = 0;
    let mut unverified = alert("unverified", &rx.url("https"), AlertFormat::Json);
    unverified.tls_verify = false;
    unverified.events = vec!["reload".into()];
    let errors = alerts.apply(&[trusted, untrusted, unverified], "lb-a");
    assert!(errors.is_empty(), "{errors:?}");
    alerts.push(&event(1));
    alerts.push(&json!({"event": "reload", "ok": true, "generation": 2, "at_unix": 1.0}));
    assert!(wait_until(WITHIN, || {
        status(&alerts, "trusted")["sent"] == 2
            && status(&alerts, "unverified")["sent"] == 1
            && dropped(&alerts, "untrusted", "failed") == 2
    }));
    let why = status(&alerts, "untrusted")["last_error"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(why.contains("certificate"), "{why}");
    alerts.shutdown(Duration::from_secs(1));
}

#[test]
fn a_reload_keeps_the_queue_rereads_the_token_and_stops_removed_webhooks() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(ok());
    let alerts = Alerts::start().expect("start");
    let token = secret_file(dir.path(), "token", "one");
    let mut a = alert("ops", &rx.url("http"), AlertFormat::Json);
    a.auth = Some(AlertAuth::Bearer {
        token_file: token.clone(),
    });
    let other = alert("other", &rx.url("http"), AlertFormat::Json);
    assert!(alerts.apply(&[a.clone(), other], "lb-a").is_empty());
    alerts.push(&event(1));
    assert!(wait_until(WITHIN, || rx.received().len() == 2));
    std::fs::write(&token, "two\n").expect("rotate");
    assert!(alerts.apply(std::slice::from_ref(&a), "lb-a").is_empty());
    alerts.push(&event(2));
    assert!(wait_until(WITHIN, || rx.received().len() == 3));
    let last = rx.received().pop().expect("last");
    assert_eq!(last.header("authorization").as_deref(), Some("Bearer two"));
    let names: Vec<String> = alerts.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["ops"]);
    // Counters kept (`sent` counts once the reply is in).
    assert!(wait_until(WITHIN, || status(&alerts, "ops")["sent"] == 2));
    // A token that cannot be read keeps the previous settings.
    std::fs::remove_file(&token).expect("remove");
    let errors = alerts.apply(std::slice::from_ref(&a), "lb-a");
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(
        text.contains("bearer_token_file") && text.contains("token"),
        "{text}"
    );
    alerts.push(&event(3));
    assert!(wait_until(WITHIN, || rx.received().len() == 4));
    alerts.shutdown(Duration::from_secs(1));
}

#[test]
fn shutdown_gives_what_is_queued_one_last_attempt() {
    let rx = Receiver::start(Answer::Status(200, Duration::from_millis(50)));
    let alerts = Alerts::start().expect("start");
    assert!(
        alerts
            .apply(&[alert("ops", &rx.url("http"), AlertFormat::Json)], "lb-a")
            .is_empty()
    );
    for n in 0..300 {
        alerts.push(&event(n));
    }
    alerts.shutdown(Duration::from_secs(5));
    assert_eq!(rx.entries().len(), 300);
    assert_eq!(alerts.end().get().map(String::as_str), Some("returned"));
}

#[test]
fn broadcast_events_are_followed_on_the_alerts_thread() {
    let rx = Receiver::start(ok());
    let alerts = Alerts::start().expect("start");
    assert!(
        alerts
            .apply(&[alert("ops", &rx.url("http"), AlertFormat::Json)], "lb-a")
            .is_empty()
    );
    let (tx, sub) = tokio::sync::broadcast::channel::<u64>(16);
    alerts.follow(sub, |n| event(*n));
    for n in 0..10 {
        tx.send(n).expect("send");
    }
    assert!(wait_until(WITHIN, || rx.entries().len() == 10));
    assert_eq!(rx.entries()[9], event(9));
    alerts.shutdown(Duration::from_secs(1));
}

#[test]
fn secret_and_certificate_files_are_checked() {
    use vigil_config::FileUse;
    let dir = tempfile::tempdir().expect("dir");
    let check = |name: &str, text: &str, what| {
        let p = secret_file(dir.path(), name, text);
        vigil_alert::check_file(&p, what)
    };
    assert_eq!(check("ok", "token\n", FileUse::Secret), Ok(()));
    assert_eq!(
        check("empty", "\n", FileUse::Secret),
        Err("is empty".to_string())
    );
    assert!(check("two", "a\nb\n", FileUse::Secret).is_err());
    assert!(check("notpem", "hello", FileUse::Certificates).is_err());
    let missing = vigil_alert::check_file(&dir.path().join("nope"), FileUse::Secret);
    assert!(missing.is_err_and(|e| e.contains("No such file")));
    let (ca, _) = pki(dir.path());
    assert_eq!(vigil_alert::check_file(&ca, FileUse::Certificates), Ok(()));
}
