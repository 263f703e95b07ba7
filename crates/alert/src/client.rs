//! The HTTP side: files an alert names (tokens, passwords, CA bundles), the reqwest
//! client built from an `[[alert]]`, and one POST turned into an [`Outcome`].

use std::io::Read;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use vigil_config::{Alert, AlertAuth, FileUse};

use crate::policy::{Outcome, classify_status};

/// A token or password file larger than this is refused (it is one line).
const MAX_SECRET: u64 = 64 * 1024;
/// A CA bundle larger than this is refused.
const MAX_CERTIFICATES: u64 = 4 * 1024 * 1024;

/// Why an alert's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("alert {alert}: {field}: {path}: {why}")]
    File {
        alert: String,
        field: &'static str,
        path: String,
        why: String,
    },
    #[error("alert {alert}: url {url}: {why}")]
    Url {
        alert: String,
        url: String,
        why: String,
    },
    #[error("alert {alert}: cannot build the HTTP client: {source}")]
    Client {
        alert: String,
        source: reqwest::Error,
    },
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}

/// A token or password: the file's text without its final newline; one line of
/// printable characters (it goes into a header).
pub fn read_secret(path: &Path) -> Result<String, String> {
    let bytes = read_limited(path, MAX_SECRET)?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err("is empty".into());
    }
    if secret.chars().any(char::is_control) {
        return Err("holds more than one line or control characters".into());
    }
    Ok(secret.to_string())
}

/// The certificates of a PEM bundle (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let bytes = read_limited(path, MAX_CERTIFICATES)?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// For [`vigil_config::System::check_file`]: whether the daemon can use the file.
pub fn check_file(path: &Path, what: FileUse) -> Result<(), String> {
    match what {
        FileUse::Secret => read_secret(path).map(drop),
        FileUse::Certificates => read_certificates(path).map(drop),
    }
}

/// reqwest is built without a crypto provider (no aws-lc-rs in the tree): rustls must
/// have ring's as its process default before the first client is built.
fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: a provider is already installed (the same ring, or the binary's choice).
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

enum Auth {
    Bearer(String),
    Basic(String, String),
}

/// Everything one webhook needs to send: built from its `[[alert]]` at start and at
/// every reload (so a rotated token is read again).
pub struct Settings {
    pub alert: Alert,
    pub director: String,
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Option<Auth>,
}

impl Settings {
    pub fn build(alert: &Alert, director: &str) -> Result<Settings, BuildError> {
        install_provider();
        let file_err = |field: &'static str, path: &Path, why: String| BuildError::File {
            alert: alert.name.clone(),
            field,
            path: path.display().to_string(),
            why,
        };
        let url = reqwest::Url::parse(&alert.url).map_err(|e| BuildError::Url {
            alert: alert.name.clone(),
            url: alert.url.clone(),
            why: e.to_string(),
        })?;
        let auth = match &alert.auth {
            None => None,
            Some(AlertAuth::Bearer { token_file }) => Some(Auth::Bearer(
                read_secret(token_file)
                    .map_err(|w| file_err("bearer_token_file", token_file, w))?,
            )),
            Some(AlertAuth::Basic {
                username,
                password_file,
            }) => Some(Auth::Basic(
                username.clone(),
                read_secret(password_file)
                    .map_err(|w| file_err("basic_auth.password_file", password_file, w))?,
            )),
        };
        let mut builder = reqwest::Client::builder()
            .timeout(alert.timeout)
            .connect_timeout(alert.timeout)
            // A webhook that redirects is misconfigured: a POST must not wander.
            .redirect(reqwest::redirect::Policy::none())
            // Sent straight to the receiver, whatever proxy the environment names.
            .no_proxy()
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("vigild/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &alert.ca_file {
            let certs = read_certificates(ca).map_err(|w| file_err("ca_file", ca, w))?;
            builder = builder.tls_certs_only(certs);
        }
        if !alert.tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|source| BuildError::Client {
            alert: alert.name.clone(),
            source,
        })?;
        Ok(Settings {
            alert: alert.clone(),
            director: director.to_string(),
            client,
            url,
            auth,
        })
    }

    /// One POST of `body` (JSON); never longer than the alert's timeout.
    pub async fn post(&self, body: Vec<u8>) -> Outcome {
        let mut req = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .body(body);
        req = match &self.auth {
            None => req,
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            Some(Auth::Basic(u, p)) => req.basic_auth(u, Some(p)),
        };
        match req.send().await {
            Ok(resp) => classify_status(resp.status().as_u16()),
            Err(e) => Outcome::Retry(describe(&e)),
        }
    }
}

/// The error and its causes on one line ("error sending request: ... : connection
/// refused"), which reqwest's Display alone does not give.
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        let text = s.to_string();
        if text != last && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}
