//! TLS client configurations for https checks (rustls with ring): roots (bundled, system
//! or a CA file) or no verification, SNI on or off, an optional client certificate.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use vigil_config::{Tls, TlsTrust};

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The client configuration for `tls`. The common ones (bundled roots, system roots, no
/// verification; SNI on, no client certificate) are built once per process; any other
/// per check definition.
pub(crate) fn client_config(tls: &Tls) -> Result<Arc<ClientConfig>, String> {
    type Cached = OnceLock<Result<Arc<ClientConfig>, String>>;
    static BUNDLED: Cached = OnceLock::new();
    static SYSTEM: Cached = OnceLock::new();
    static UNVERIFIED: Cached = OnceLock::new();
    let common = tls.sni && tls.client_cert.is_none() && tls.ca_file.is_none();
    if !common {
        return build(tls).map(Arc::new);
    }
    let cache = match (tls.verify, tls.trust) {
        (false, _) => &UNVERIFIED,
        (true, TlsTrust::Bundled) => &BUNDLED,
        (true, TlsTrust::System) => &SYSTEM,
    };
    cache.get_or_init(|| build(tls).map(Arc::new)).clone()
}

fn build(tls: &Tls) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if tls.verify {
        let roots = match (&tls.ca_file, tls.trust) {
            (Some(path), _) => Arc::new(ca_file_roots(path)?),
            (None, TlsTrust::Bundled) => Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            (None, TlsTrust::System) => system_roots()?,
        };
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, key_der) = client_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!(
                    "client certificate {} with key {} is unusable: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.enable_sni = tls.sni;
    Ok(config)
}

/// Where distributions keep the system CA bundle (Debian/Ubuntu, Fedora/RHEL, SUSE,
/// Alpine and others).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system's roots, read once per process from the first bundle that exists:
/// certificates the parser cannot use are skipped, as a bundle may hold odd ones.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let path = SYSTEM_BUNDLES
                .iter()
                .map(Path::new)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    format!(
                        "no system CA bundle found (looked for {})",
                        SYSTEM_BUNDLES.join(", ")
                    )
                })?;
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read system CA bundle {shown}: {e}"))?
                .filter_map(Result::ok);
            let mut roots = RootCertStore::empty();
            let (added, _skipped) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "system CA bundle {shown} holds no usable certificate"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// The client certificate chain and private key from PEM files; errors name the file.
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let shown = cert.display();
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read client certificate {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("client certificate {shown} is not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!("client certificate {shown} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => {
            format!("cannot read client key {}: {e}", key.display())
        }
        e => format!(
            "client key {} holds no usable private key: {e}",
            key.display()
        ),
    })?;
    Ok((chain, key))
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA file {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {shown} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("CA file {shown} holds no certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("CA file {shown}: unusable certificate: {e}"))?;
    }
    Ok(roots)
}

/// The name to send as SNI and to verify: the configured one, else the Host header
/// without its port, else the probed address.
pub(crate) fn server_name(
    tls: &Tls,
    host: Option<&str>,
    addr: std::net::IpAddr,
) -> Result<ServerName<'static>, String> {
    let name = tls.server_name.as_deref().or(host.map(strip_port));
    match name {
        Some(name) => ServerName::try_from(name.to_string())
            .map_err(|_| format!("`{name}` is not a usable TLS server name")),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
        _ => host,
    }
}

/// `tls_verify = false`: any certificate is accepted (the operator asked), but the
/// handshake signatures are still checked so it is a working TLS session.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
