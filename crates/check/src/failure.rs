//! Why a check failed, as a fixed set of causes beside the text for people, so that
//! metrics and tables can group failures (`refused` on ten servers is one problem).

use std::io;

use serde::Serialize;

/// The cause of a failed check run. The set is closed: a label value for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// No verdict within the check's timeout, or the connect timed out.
    Timeout,
    /// Connection refused; for UDP and DNS an ICMP port unreachable.
    Refused,
    /// The connection was reset or broken while in use.
    Reset,
    /// The server closed the connection before a complete reply.
    Closed,
    /// No route to the server (host or network unreachable).
    Unreachable,
    /// Any other socket error while sending or receiving.
    Network,
    /// The reply breaks its protocol (not HTTP, not DNS, not SMTP).
    Malformed,
    /// HTTP status outside `expect_status`.
    HttpStatus,
    /// The body does not match `body_regex` (or matches it, with `regex_no_match`).
    BodyRegex,
    /// The body's SHA-256 or MD5 differs (or the body is too long to hash).
    BodyDigest,
    /// A tcp or udp reply does not match `expect`.
    ReplyMismatch,
    /// The TLS handshake failed (certificate, name, protocol).
    Tls,
    /// The DNS reply has another rcode than `expect_rcode`.
    DnsRcode,
    /// The DNS answer lacks some of `expect_addresses`.
    DnsAnswer,
    /// The DNS reply answers another question than the one asked.
    DnsQuestion,
    /// The SMTP greeting is not 220, or HELO is not answered 2xx.
    SmtpReply,
    /// The exec program exited non-zero or was killed by a signal.
    ExecExit,
    /// The exec program did not exit within the timeout.
    ExecTimeout,
    /// A file check's file holds a value that means down (or no number at all).
    FileValue,
    /// The check cannot run on this host: a socket, bind, fwmark, CA file, user or
    /// program that cannot be had.
    Setup,
    /// The probe failed inside vigil.
    Internal,
}

impl FailureCause {
    /// Every cause, in order.
    pub const ALL: [FailureCause; 21] = [
        FailureCause::Timeout,
        FailureCause::Refused,
        FailureCause::Reset,
        FailureCause::Closed,
        FailureCause::Unreachable,
        FailureCause::Network,
        FailureCause::Malformed,
        FailureCause::HttpStatus,
        FailureCause::BodyRegex,
        FailureCause::BodyDigest,
        FailureCause::ReplyMismatch,
        FailureCause::Tls,
        FailureCause::DnsRcode,
        FailureCause::DnsAnswer,
        FailureCause::DnsQuestion,
        FailureCause::SmtpReply,
        FailureCause::ExecExit,
        FailureCause::ExecTimeout,
        FailureCause::FileValue,
        FailureCause::Setup,
        FailureCause::Internal,
    ];

    /// The label value: `refused`, `http_status`, ... (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            FailureCause::Timeout => "timeout",
            FailureCause::Refused => "refused",
            FailureCause::Reset => "reset",
            FailureCause::Closed => "closed",
            FailureCause::Unreachable => "unreachable",
            FailureCause::Network => "network",
            FailureCause::Malformed => "malformed",
            FailureCause::HttpStatus => "http_status",
            FailureCause::BodyRegex => "body_regex",
            FailureCause::BodyDigest => "body_digest",
            FailureCause::ReplyMismatch => "reply_mismatch",
            FailureCause::Tls => "tls",
            FailureCause::DnsRcode => "dns_rcode",
            FailureCause::DnsAnswer => "dns_answer",
            FailureCause::DnsQuestion => "dns_question",
            FailureCause::SmtpReply => "smtp_reply",
            FailureCause::ExecExit => "exec_exit",
            FailureCause::ExecTimeout => "exec_timeout",
            FailureCause::FileValue => "file_value",
            FailureCause::Setup => "setup",
            FailureCause::Internal => "internal",
        }
    }

    /// The cause of a socket error met while talking to the server.
    pub fn of_io(e: &io::Error) -> FailureCause {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => FailureCause::Refused,
            io::ErrorKind::TimedOut => FailureCause::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => FailureCause::Reset,
            io::ErrorKind::UnexpectedEof => FailureCause::Closed,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                FailureCause::Unreachable
            }
            _ => FailureCause::Network,
        }
    }
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed probe: its cause, and what was seen, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) cause: FailureCause,
    pub(crate) text: String,
}

impl Failure {
    pub(crate) fn new(cause: FailureCause, text: impl Into<String>) -> Self {
        Failure {
            cause,
            text: text.into(),
        }
    }

    /// A check that cannot run on this host.
    pub(crate) fn setup(text: impl Into<String>) -> Self {
        Failure::new(FailureCause::Setup, text)
    }

    /// A socket error `e` while talking to the server, described by `text`.
    pub(crate) fn io(e: &io::Error, text: impl Into<String>) -> Self {
        Failure::new(FailureCause::of_io(e), text)
    }

    /// The same cause with another text.
    pub(crate) fn map_text(self, f: impl FnOnce(String) -> String) -> Self {
        Failure {
            cause: self.cause,
            text: f(self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialised_form_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in FailureCause::ALL {
            let json = serde_json::to_string(&c).expect("serialise");
            assert_eq!(json, format!("\"{}\"", c.name()));
            assert!(seen.insert(c.name()), "{c} twice");
        }
    }

    #[test]
    fn socket_errors_by_cause() {
        let of = |k| FailureCause::of_io(&io::Error::from(k));
        assert_eq!(of(io::ErrorKind::ConnectionRefused), FailureCause::Refused);
        assert_eq!(of(io::ErrorKind::ConnectionReset), FailureCause::Reset);
        assert_eq!(of(io::ErrorKind::BrokenPipe), FailureCause::Reset);
        assert_eq!(of(io::ErrorKind::UnexpectedEof), FailureCause::Closed);
        assert_eq!(of(io::ErrorKind::TimedOut), FailureCause::Timeout);
        assert_eq!(
            FailureCause::of_io(&io::Error::from_raw_os_error(libc::EHOSTUNREACH)),
            FailureCause::Unreachable
        );
        assert_eq!(of(io::ErrorKind::Other), FailureCause::Network);
    }
}
