//! Error types: [`DecodeError`] for bytes that do not parse, [`EncodeError`] for a request
//! that cannot be expressed on the wire, and [`Error`] for everything a [`crate::Client`]
//! call can return, with the operation it was about.

use std::fmt;

use crate::model::Operation;

/// Reply bytes that do not parse. Never a panic: every length and type is checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header or a declared length needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field or a fixed-size payload of the wrong size.
    #[error("{what} has a bad length ({len} bytes)")]
    BadLength {
        /// The field or attribute.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A required attribute is absent.
    #[error("missing attribute {what}")]
    MissingAttr {
        /// The attribute.
        what: &'static str,
    },
    /// A value outside what the field allows.
    #[error("{what} has an invalid value {value}")]
    InvalidValue {
        /// The field or attribute.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// A string attribute that is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    BadString {
        /// The attribute.
        what: &'static str,
    },
    /// A message of a kind we did not expect in this reply.
    #[error("unexpected message: {what}")]
    Unexpected {
        /// What arrived.
        what: String,
    },
}

/// A request that cannot be put on the wire as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A name (scheduler, persistence engine, interface) longer than the kernel's limit.
    #[error("{what} {name:?} is longer than {max} bytes")]
    NameTooLong {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
        /// The kernel's limit, excluding the NUL.
        max: usize,
    },
    /// A name with an interior NUL byte.
    #[error("{what} {name:?} contains a NUL byte")]
    NameHasNul {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The netmask kind does not match the service's family.
    #[error("netmask {netmask} does not fit a {family} service")]
    NetmaskFamily {
        /// The netmask given.
        netmask: String,
        /// The service's family.
        family: crate::model::Family,
    },
    /// A dump was put in a pipelined batch; dumps need their own call.
    #[error("dumps cannot be pipelined in a batch")]
    NotBatchable,
    /// A value the kernel rejects (weight above `i32::MAX`, IPv6 prefix above 128, ...).
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// The value.
        value: u64,
    },
}

/// An errno from the kernel, displayed as `File exists (EEXIST)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `EEXIST`.
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    /// `ENOENT`.
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// `ESRCH`.
    pub const ESRCH: Errno = Errno(libc::ESRCH);
    /// `EINVAL`.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// `EPERM`.
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// `ENOBUFS`.
    pub const ENOBUFS: Errno = Errno(libc::ENOBUFS);

    /// The symbolic name (`EEXIST`), if it is one we know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::E2BIG => "E2BIG",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ERANGE => "ERANGE",
            libc::ENOSPC => "ENOSPC",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::ENOBUFS => "ENOBUFS",
            libc::ETIMEDOUT => "ETIMEDOUT",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std renders "File exists (os error 17)"; keep the text, name the constant.
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = text
            .rsplit_once(" (os error")
            .map_or(text.as_str(), |(t, _)| t);
        match self.name() {
            Some(name) => write!(f, "{text} ({name})"),
            None => write!(f, "{text} (errno {})", self.0),
        }
    }
}

/// Everything a [`crate::Client`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The generic-netlink family "IPVS" is not registered.
    #[error(
        "IPVS is not available in this kernel: load ip_vs (generic netlink family \"IPVS\" not found)"
    )]
    Unavailable,
    /// The kernel refused the operation.
    #[error("{op}: {errno}{}", ext_ack_suffix(.message))]
    Kernel {
        /// What we asked for.
        op: Operation,
        /// The kernel's errno.
        errno: Errno,
        /// The extended-ack message, if the kernel gave one.
        message: Option<String>,
    },
    /// The request could not be encoded.
    #[error("{op}: {source}")]
    Encode {
        /// What we asked for.
        op: Operation,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// The kernel's reply did not parse.
    #[error("{op}: bad reply from the kernel: {source}")]
    Decode {
        /// What we asked for.
        op: Operation,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// What we asked for.
        op: Operation,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel dropped this request's ack (our receive buffer overflowed, `ENOBUFS`):
    /// the request was processed, but its outcome is unknown. Dump the table to find out.
    #[error("{op}: outcome unknown, the kernel dropped the ack (receive buffer overflow)")]
    AckLost {
        /// What we asked for.
        op: Operation,
    },
    /// A dump stayed inconsistent (`NLM_F_DUMP_INTR`) after retries.
    #[error("{op}: the dump was interrupted by concurrent changes too many times")]
    DumpInterrupted {
        /// What we asked for.
        op: Operation,
    },
}

fn ext_ack_suffix(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    }
}

impl Error {
    /// The kernel's errno, if this is a kernel refusal.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST)
    }

    /// The service (`ESRCH`) or destination / scheduler (`ENOENT`) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(Errno::ESRCH | Errno::ENOENT))
    }
}
