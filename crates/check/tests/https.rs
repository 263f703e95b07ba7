//! HTTPS checks against a real TLS server with certificates made at test time.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use common::{check, http, once, response, serve_http, target};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use vigil_config::{CheckKind, Tls};

struct Pki {
    ca_file: PathBuf,
    /// Signed by the CA, for `good.test`.
    good: (CertificateDer<'static>, PrivateKeyDer<'static>),
    /// Self-signed, for `good.test`.
    self_signed: (CertificateDer<'static>, PrivateKeyDer<'static>),
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
    let ca_file =
        std::env::temp_dir().join(format!("vigil-check-ca-{}-{tag}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let key_der = |k: &KeyPair| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.serialize_der()));
    Pki {
        ca_file,
        good: (leaf.der().clone(), key_der(&leaf_key)),
        self_signed: (ss.der().clone(), key_der(&ss_key)),
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
