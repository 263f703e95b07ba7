//! HTTPS checks against a real TLS server with certificates made at test time.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{check, http, once, response, serve_http, target};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use vigil_config::{CheckKind, Tls, TlsTrust};

struct Pki {
    ca_file: PathBuf,
    /// Signed by the CA, for `good.test`.
    good: (CertificateDer<'static>, PrivateKeyDer<'static>),
    /// Self-signed, for `good.test`.
    self_signed: (CertificateDer<'static>, PrivateKeyDer<'static>),
    /// A client certificate signed by the CA, and its key, in PEM.
    client_pem: (String, String),
    ca: CertificateDer<'static>,
}

fn pki(tag: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["good.test".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let ss_key = KeyPair::generate().expect("key");
    let ss = CertificateParams::new(vec!["good.test".to_string()])
        .expect("params")
        .self_signed(&ss_key)
        .expect("self-signed");
    let client_key_pair = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["director.test".to_string()])
        .expect("params")
        .signed_by(&client_key_pair, &ca)
        .expect("client");
    let ca_file =
        std::env::temp_dir().join(format!("vigil-check-ca-{}-{tag}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).expect("write CA");

    let key_der = |k: &KeyPair| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.serialize_der()));
    Pki {
        ca_file,
        good: (leaf.der().clone(), key_der(&leaf_key)),
        self_signed: (ss.der().clone(), key_der(&ss_key)),
        client_pem: (client.pem(), client_key_pair.serialize_pem()),
        ca: ca.der().clone(),
    }
}

async fn https_server(cert: (CertificateDer<'static>, PrivateKeyDer<'static>)) -> SocketAddr {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.0], cert.1)
            .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_http(tls, |_| response("200 OK", "secure")).await;
                }
            });
        }
    });
    addr
}

fn https(verify: bool, ca_file: Option<PathBuf>, server_name: Option<&str>) -> CheckKind {
    let mut spec = http("/healthz");
    spec.tls = Some(Tls {
        verify,
        ca_file,
        server_name: server_name.map(Into::into),
        ..Tls::verifying()
    });
    CheckKind::Http(spec)
}

#[tokio::test]
async fn good_certificate_verified_against_the_ca_file() {
    let pki = pki("good");
    let addr = https_server(pki.good).await;
    let CheckKind::Http(mut with_body) = https(true, Some(pki.ca_file.clone()), Some("good.test"))
    else {
        unreachable!()
    };
    with_body.urls[0].body_regex = Some("^secure$".into());
    let r = once(target(addr, check(CheckKind::Http(with_body)))).await;
    assert!(r.passed, "{r:?}");
    let r = once(target(
        addr,
        check(https(true, Some(pki.ca_file.clone()), Some("good.test"))),
    ))
    .await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("HTTP 200 from {addr} GET /healthz"));
    assert_eq!(r.check, format!("https GET /healthz {addr}"));
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn host_header_names_the_server_when_no_server_name() {
    let pki = pki("host");
    let addr = https_server(pki.good).await;
    let CheckKind::Http(mut spec) = https(true, Some(pki.ca_file.clone()), None) else {
        unreachable!()
    };
    spec.host = Some("good.test:8443".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn self_signed_fails_verification() {
    let pki = pki("ss-verify");
    let addr = https_server(pki.self_signed).await;
    let r = once(target(addr, check(https(true, None, Some("good.test"))))).await;
    assert!(!r.passed);
    assert!(
        r.reason.starts_with(&format!(
            "TLS handshake with {addr} (name good.test) failed: invalid peer certificate"
        )),
        "{}",
        r.reason
    );
    assert_eq!(r.cause, Some(vigil_check::FailureCause::Tls));
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn self_signed_passes_without_verification() {
    let pki = pki("ss-noverify");
    let addr = https_server(pki.self_signed).await;
    let r = once(target(addr, check(https(false, None, None)))).await;
    assert!(r.passed, "{r:?}");
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn wrong_name_fails() {
    let pki = pki("wrong-name");
    let addr = https_server(pki.good).await;
    let r = once(target(
        addr,
        check(https(true, Some(pki.ca_file.clone()), Some("other.test"))),
    ))
    .await;
    assert!(!r.passed);
    assert!(
        r.reason
            .contains("(name other.test) failed: invalid peer certificate"),
        "{}",
        r.reason
    );
    assert!(
        r.reason.contains("not valid for name \"other.test\""),
        "{}",
        r.reason
    );
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn unreadable_ca_file_is_a_failure_with_reason() {
    let pki = pki("missing-ca");
    let addr = https_server(pki.good).await;
    let missing = PathBuf::from("/nonexistent/vigil-ca.pem");
    let r = once(target(
        addr,
        check(https(true, Some(missing), Some("good.test"))),
    ))
    .await;
    assert!(!r.passed);
    assert!(
        r.reason
            .starts_with("cannot read CA file /nonexistent/vigil-ca.pem"),
        "{}",
        r.reason
    );
    assert_eq!(r.cause, Some(vigil_check::FailureCause::Setup));
    let _ = std::fs::remove_file(pki.ca_file);
}

#[tokio::test]
async fn plain_http_server_fails_the_handshake() {
    // A plain server that speaks first, as a misconfigured port might.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let r = once(target(addr, check(https(false, None, None)))).await;
    assert!(!r.passed);
    assert!(
        r.reason.starts_with(&format!("TLS handshake with {addr}")),
        "{}",
        r.reason
    );
}

/// Temporary files removed on drop, also when the test fails.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn temp_file(tag: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("vigil-check-{tag}-{}.pem", std::process::id()));
    std::fs::write(&path, contents).expect("write");
    path
}

/// A TLS server that records the SNI of each handshake and, with `client_ca`, requires
/// a client certificate signed by it.
async fn recording_server(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    client_ca: Option<CertificateDer<'static>>,
) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).expect("CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(
        builder
            .with_single_cert(vec![cert.0], cert.1)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&names);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let config = Arc::clone(&config);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let acceptor = tokio_rustls::LazyConfigAcceptor::new(
                    rustls::server::Acceptor::default(),
                    stream,
                );
                let Ok(start) = acceptor.await else { return };
                let sni = start.client_hello().server_name().map(String::from);
                seen.lock().expect("lock").push(sni);
                if let Ok(tls) = start.into_stream(config).await {
                    serve_http(tls, |_| response("200 OK", "secure")).await;
                }
            });
        }
    });
    (addr, names)
}

#[tokio::test]
async fn sni_is_sent_unless_turned_off() {
    let pki = pki("sni");
    let (addr, names) = recording_server(pki.good, None).await;
    let CheckKind::Http(mut spec) = https(true, Some(pki.ca_file.clone()), Some("good.test"))
    else {
        unreachable!()
    };
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    if let Some(tls) = spec.tls.as_mut() {
        tls.sni = false;
    }
    // Without SNI the certificate is still verified against the name.
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(
        *names.lock().expect("lock"),
        [Some("good.test".to_string()), None]
    );
    let _ = std::fs::remove_file(&pki.ca_file);
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let pki = pki("client");
    let client_cert = temp_file("client-cert", &pki.client_pem.0);
    let client_key = temp_file("client-key", &pki.client_pem.1);
    let _files = TempFiles(vec![
        client_cert.clone(),
        client_key.clone(),
        pki.ca_file.clone(),
    ]);
    let (addr, _) = recording_server(pki.good, Some(pki.ca.clone())).await;
    let CheckKind::Http(mut spec) = https(true, Some(pki.ca_file.clone()), Some("good.test"))
    else {
        unreachable!()
    };
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(!r.passed, "no client certificate: {r:?}");
    if let Some(tls) = spec.tls.as_mut() {
        tls.client_cert = Some(client_cert.clone());
        tls.client_key = Some(client_key.clone());
    }
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("HTTP 200 from {addr} GET /healthz"));
    if let Some(tls) = spec.tls.as_mut() {
        tls.client_key = Some("/nonexistent/vigil-client.key".into());
    }
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(
        r.reason
            .starts_with("cannot read client key /nonexistent/vigil-client.key"),
        "{}",
        r.reason
    );
    if let Some(tls) = spec.tls.as_mut() {
        // A certificate where the key should be.
        tls.client_key = Some(client_cert.clone());
    }
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(
        r.reason.starts_with(&format!(
            "client key {} holds no usable private key",
            client_cert.display()
        )),
        "{}",
        r.reason
    );
    let _ = std::fs::remove_file(&pki.ca_file);
}

#[tokio::test]
async fn system_trust_store_is_used() {
    let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !bundle.exists() {
        println!("SKIPPED: no system CA bundle at {}", bundle.display());
        return;
    }
    let pki = pki("system");
    // The test CA is in no system store: the check fails on the issuer, which shows the
    // store was read (an unreadable one would fail before the handshake).
    let addr = https_server(pki.good).await;
    let CheckKind::Http(mut spec) = https(true, None, Some("good.test")) else {
        unreachable!()
    };
    if let Some(tls) = spec.tls.as_mut() {
        tls.trust = TlsTrust::System;
    }
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(
        r.reason.starts_with(&format!(
            "TLS handshake with {addr} (name good.test) failed: invalid peer certificate: UnknownIssuer"
        )),
        "{}",
        r.reason
    );
    let _ = std::fs::remove_file(&pki.ca_file);
}
