//! A real HTTP(S) receiver on loopback for the webhook tests and the bench: a small
//! HTTP/1.1 server (keep-alive, Content-Length bodies) on a thread of its own, that
//! answers as told and records every request.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_config::{Alert, AlertFormat};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// Status, after waiting this long.
    Status(u16, Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: Value,
    pub at: Instant,
}

impl Received {
    /// A header's value (names are matched without case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start(answer: Answer) -> Receiver {
        Receiver::start_tls(answer, None)
    }

    /// With `tls`, HTTPS with that certificate chain and key.
    pub fn start_tls(
        answer: Answer,
        tls: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (g, a) = (got.clone(), answer.clone());
        let acceptor = tls.map(|(cert, key)| {
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("addr");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (g, a, acceptor) = (g.clone(), a.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                match acceptor {
                                    Some(acc) => {
                                        if let Ok(tls) = acc.accept(stream).await {
                                            serve(tls, g, a).await;
                                        }
                                    }
                                    None => serve(stream, g, a).await,
                                }
                            });
                        }
                    }
                }
            });
        });
        let addr = addr_rx.recv().expect("receiver address");
        Receiver {
            addr,
            got,
            answer,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("got").clone()
    }

    /// Every entry (event or alert) received so far, in order.
    pub fn entries(&self) -> Vec<Value> {
        self.received()
            .iter()
            .flat_map(|r| {
                let list = r.body.get("events").or_else(|| r.body.get("alerts"));
                list.and_then(Value::as_array).cloned().unwrap_or_default()
            })
            .collect()
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/hook", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // Head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        let Answer::Status(status, wait) = *answer.lock().expect("answer");
        if status < 300 {
            // Recorded as delivered only when the answer says so.
            got.lock().expect("got").push(Received {
                head,
                body,
                at: Instant::now(),
            });
        }
        tokio::time::sleep(wait).await;
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if s.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// An `[[alert]]` as the config crate would make it, to `url`.
pub fn alert(name: &str, url: &str, format: AlertFormat) -> Alert {
    Alert {
        name: name.into(),
        url: url.into(),
        format,
        events: Vec::new(),
        timeout: Duration::from_secs(2),
        retries: 2,
        backoff: Duration::from_millis(20),
        queue: 1000,
        auth: None,
        ca_file: None,
        tls_verify: true,
    }
}

/// A test CA (written to `dir/ca.pem`) and a server certificate for 127.0.0.1 it signed.
pub fn pki(dir: &Path) -> (PathBuf, (CertificateDer<'static>, PrivateKeyDer<'static>)) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca_file, (leaf.der().clone(), key))
}

/// Waits until `f` holds, at most `within`.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
