//! `[[alert]]` webhooks of a real vigild: a rejected reload fires `VigilReloadFailed` at
//! an Alertmanager-format receiver (with the bearer token read from a file), the next
//! good reload resolves it; a JSON receiver gets the events; a webhook that refuses
//! connections delays nothing and is counted in `vigilctl status` and metrics; a token
//! file that cannot be read is refused at load with its place in the file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testlab::wait_for;
use vigil_tests::Daemon;

const WITHIN: Duration = Duration::from_secs(15);

/// One request: its head (lowercased header names) and JSON body.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Value,
}

/// A plain HTTP/1.1 receiver on loopback answering 200 to every POST, keep-alive.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || serve(stream, &g));
            }
        });
        Receiver { addr, got }
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().expect("lock").clone()
    }

    /// Every entry received (`events` or `alerts`), in order.
    fn entries(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|r| {
                let list = r.body.get("events").or_else(|| r.body.get("alerts"));
                list.and_then(Value::as_array).cloned().unwrap_or_default()
            })
            .collect()
    }
}

fn serve(stream: TcpStream, got: &Mutex<Vec<Request>>) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().expect("lock").push(Request {
            head,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

fn config(dir: &Path, am: SocketAddr, json: SocketAddr, down: SocketAddr) -> String {
    format!(
        r#"[director]
name = "alert-test"
status_socket = "{sock}"
state_file = "{state}"

[[alert]]
name = "am"
url = "http://{am}/api/hook"
format = "alertmanager"
bearer_token_file = "{token}"

[[alert]]
name = "events"
url = "http://{json}/"

[[alert]]
name = "down"
url = "http://{down}/"
retries = 1
backoff = "10ms"
"#,
        sock = dir.join("vigil.sock").display(),
        state = dir.join("state.json").display(),
        token = dir.join("token").display(),
    )
}

fn alert_status(d: &Daemon, name: &str) -> Value {
    d.result("status")["alerts"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn a_rejected_reload_fires_and_the_next_good_one_resolves() {
    let am = Receiver::start();
    let json = Receiver::start();
    // A port nobody listens on: bound, then closed.
    let down = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let d = Daemon::start_plain_with(|dir| {
        std::fs::write(dir.join("token"), "t0ken\n").expect("token");
        config(dir, am.addr, json.addr, down)
    });
    let good = std::fs::read_to_string(&d.config).expect("config");

    d.write_config(&format!("{good}\n[oops]\n"));
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        wait_for(WITHIN, || am.entries().len() == 1),
        "no alert fired"
    );
    let fired = am.requests()[0].clone();
    assert!(
        fired.head.starts_with("post /api/hook http/1.1"),
        "{}",
        fired.head
    );
    assert!(
        fired.head.contains("authorization: bearer t0ken\r\n"),
        "{}",
        fired.head
    );
    assert_eq!(fired.body["version"], "4");
    assert_eq!(fired.body["status"], "firing");
    let alert = &fired.body["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "VigilReloadFailed");
    assert_eq!(alert["labels"]["director"], "alert-test");
    let why = alert["annotations"]["description"].as_str().unwrap_or("");
    assert!(why.contains("cluster.toml:"), "{why}");

    // The receiver that refuses connections delayed nothing: the daemon answers.
    let started = Instant::now();
    let _ = d.result("status");
    assert!(started.elapsed() < Duration::from_secs(2));

    d.write_config(&good);
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(wait_for(WITHIN, || am.entries().len() == 2), "not resolved");
    let resolved = &am.entries()[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["fingerprint"], alert["fingerprint"]);

    // The JSON webhook got both reload events as the status socket shows them.
    assert!(wait_for(WITHIN, || json.entries().len() == 2));
    let events = json.entries();
    assert_eq!(events[0]["event"], "reload");
    assert_eq!(events[0]["ok"], false);
    assert_eq!(events[1]["ok"], true);
    assert_eq!(json.requests()[0].body["director"], "alert-test");

    // The dead one: each event tried twice, then dropped and counted.
    assert!(wait_for(
        WITHIN,
        || alert_status(&d, "down")["dropped"]["failed"] == 2
    ));
    let s = alert_status(&d, "down");
    assert_eq!(s["sent"], 0, "{s}");
    assert!(
        s["last_error"].as_str().unwrap_or("").contains("connect"),
        "{s}"
    );
    // `sent` counts once the reply is in.
    assert!(wait_for(WITHIN, || alert_status(&d, "am")["sent"] == 2));
    let text = String::from_utf8_lossy(&d.ctl(&["status"]).stdout).to_string();
    assert!(
        text.contains(
            "alert       down (json): 0 sent, 0 queued; dropped: 2 failed; last error at"
        ),
        "{text}"
    );
    assert!(
        text.contains("alert       am (alertmanager): 2 sent, 0 queued; dropped: none"),
        "{text}"
    );
}

#[test]
fn an_unreadable_token_file_is_refused_at_load_with_its_place() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("cluster.toml");
    std::fs::write(
        &file,
        "[director]\nname = \"x\"\n[[alert]]\nname = \"a\"\nurl = \"https://127.0.0.1/\"\nbearer_token_file = \"/nonexistent/vigil-token\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(vigil_testlab::bin_path("vigild"))
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}:6:21: error: `alert[0].bearer_token_file`: /nonexistent/vigil-token: cannot read:",
            file.display()
        )),
        "{err}"
    );
}
