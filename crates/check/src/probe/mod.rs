//! Probes: one module per check kind. A [`Probe`] is prepared once per check definition
//! (regexes compiled, TLS configuration and user looked up) and then run many times.

mod dns;
mod exec;
pub(crate) mod file;
mod http;
mod icmp;
mod net;
mod pool;
mod smtp;
mod tcp;
mod tls;
mod udp;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_config::{CheckKind, format_duration};

use crate::failure::{Failure, FailureCause};
use crate::scheduler::{Outcome, WeightEffect};
use crate::target::Target;

/// What a probe found: `Ok(what was seen)` or `Err(why it failed)`, the text for people
/// and the failure's cause for grouping.
pub(crate) type Verdict = Result<String, Failure>;

/// A check made ready to run.
#[derive(Debug)]
pub(crate) struct Probe {
    target: Arc<Target>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Tcp(tcp::TcpProbe),
    Http(Box<http::HttpProbe>),
    Dns(dns::DnsProbe),
    Udp(udp::UdpProbe),
    Icmp(icmp::IcmpProbe),
    Smtp(smtp::SmtpProbe),
    Exec(exec::ExecProbe),
    File(file::FileProbe),
    /// The check cannot run on this system (unreadable CA file, unknown user, ...): every
    /// run fails with this reason, so the operator sees it in the status.
    Broken(String),
}

impl Probe {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        let addr = target.probe_address();
        let source = net::Source::of(&target.check);
        let kind = match &target.check.kind {
            CheckKind::Tcp { send, expect } => tcp::TcpProbe::new(
                addr,
                source.clone(),
                send.as_deref(),
                expect.as_deref(),
                target.check.timeout,
            )
            .map(Kind::Tcp),
            CheckKind::Http(spec) => {
                http::HttpProbe::new(addr, source.clone(), spec).map(|p| Kind::Http(Box::new(p)))
            }
            CheckKind::Dns(spec) => dns::DnsProbe::new(addr, source.clone(), spec).map(Kind::Dns),
            CheckKind::Udp {
                send,
                expect,
                require_reply,
            } => udp::UdpProbe::new(
                addr,
                source.clone(),
                send,
                expect.as_deref(),
                *require_reply,
                target.check.timeout,
            )
            .map(Kind::Udp),
            CheckKind::Icmp => Ok(Kind::Icmp(icmp::IcmpProbe::new(addr.ip(), source.clone()))),
            CheckKind::Smtp { helo_name } => {
                smtp::SmtpProbe::new(addr, source.clone(), helo_name).map(Kind::Smtp)
            }
            CheckKind::Exec {
                command,
                user,
                dynamic_weight,
            } => exec::ExecProbe::new(
                &target,
                command,
                user,
                *dynamic_weight,
                target.check.timeout,
            )
            .map(Kind::Exec),
            CheckKind::File(spec) => Ok(Kind::File(file::FileProbe::new(spec))),
        };
        Probe {
            kind: kind.unwrap_or_else(Kind::Broken),
            target,
        }
    }

    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Runs the probe once, within the check's timeout.
    pub(crate) async fn run(&self) -> Outcome {
        let start = Instant::now();
        let timeout = self.target.check.timeout;
        let (verdict, weight) = match tokio::time::timeout(timeout, self.weighed()).await {
            Ok(verdict) => verdict,
            Err(_) => (Err(self.timeout_reason(timeout)), None),
        };
        let latency = start.elapsed();
        let mut outcome = match verdict {
            Ok(reason) => Outcome::pass(reason, latency),
            Err(failure) => Outcome::fail(failure.cause, failure.text, latency),
        };
        outcome.weight = weight;
        outcome
    }

    /// The verdict, with the weight a dynamic check's pass gives (exec `dynamic_weight`,
    /// file `weight`).
    async fn weighed(&self) -> (Verdict, Option<WeightEffect>) {
        match &self.kind {
            Kind::Exec(p) => Box::pin(p.run_weighed()).await,
            Kind::File(p) => Box::pin(p.run()).await,
            _ => (self.verdict().await, None),
        }
    }

    /// The file a file check reads (for the checker's inotify watch).
    pub(crate) fn watched_file(&self) -> Option<&std::path::Path> {
        match &self.kind {
            Kind::File(p) => Some(p.path()),
            _ => None,
        }
    }

    async fn verdict(&self) -> Verdict {
        // The large futures (TLS state, receive buffers, child processes) are boxed, so that a
        // running tcp check, the common case, costs a task of a few hundred bytes.
        match &self.kind {
            Kind::Tcp(p) => p.run().await,
            Kind::Http(p) => Box::pin(p.run()).await,
            Kind::Dns(p) => Box::pin(p.run()).await,
            Kind::Udp(p) => Box::pin(p.run()).await,
            Kind::Icmp(p) => Box::pin(p.run()).await,
            Kind::Smtp(p) => Box::pin(p.run()).await,
            Kind::Exec(p) => Box::pin(p.run()).await,
            Kind::File(p) => Box::pin(p.run()).await.0,
            Kind::Broken(reason) => Err(Failure::setup(reason.clone())),
        }
    }

    fn timeout_reason(&self, timeout: Duration) -> Failure {
        let within = format_duration(timeout);
        match &self.kind {
            Kind::Exec(p) => Failure::new(FailureCause::ExecTimeout, p.timeout_reason(&within)),
            _ => Failure::new(
                FailureCause::Timeout,
                format!("no reply within {within} ({})", self.describe()),
            ),
        }
    }

    /// What the check does, for tables: `tcp 10.0.0.1:80`, `http GET /healthz 10.0.0.1:80`.
    pub(crate) fn describe(&self) -> String {
        let addr = self.target.probe_address();
        match &self.kind {
            Kind::Tcp(_) => format!("tcp {addr}"),
            Kind::Http(p) => format!(
                "{} {} {addr}",
                self.target.check.kind.name(),
                p.request_line()
            ),
            Kind::Dns(p) => format!("dns {} {addr}", p.question()),
            Kind::Udp(_) => format!("udp {addr}"),
            Kind::Icmp(_) => format!("icmp {}", addr.ip()),
            Kind::Smtp(_) => format!("smtp {addr}"),
            Kind::Exec(p) => format!("exec {}", p.program()),
            Kind::File(p) => format!("file {}", p.path().display()),
            Kind::Broken(_) => format!("{} {addr}", self.target.check.kind.name()),
        }
    }
}

/// A short, printable excerpt of bytes from a server, for reasons.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let mut out: String = text.escape_debug().collect();
    if bytes.len() > MAX {
        out.push('…');
    }
    out
}
