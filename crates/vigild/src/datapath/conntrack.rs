//! Flushing a failed real server's connections (`director.nftables_flush_on_failure`):
//! the `conntrack` program (Debian `conntrack`) deletes the conntrack entries of one
//! service's connections to it, run by the nft thread with the daemon's CAP_NET_ADMIN.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil_ipvs::{Protocol, ServiceKey};

/// conntrack walks the whole table: allow it this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `conntrack` program: Debian's when there, else from `PATH`.
pub fn program() -> String {
    for p in ["/usr/sbin/conntrack", "/sbin/conntrack"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "conntrack".into()
}

/// `conntrack -D` arguments deleting `service`'s connections to `real`: original
/// destination the virtual address and port, reply source the real server (its port too
/// unless 0, which keeps the packet's port). `None` for fwmark services (no one
/// virtual address to match).
pub fn delete_args(service: &ServiceKey, real: SocketAddr) -> Option<Vec<String>> {
    let ServiceKey::Addr { protocol, addr } = service else {
        return None;
    };
    let proto = match protocol {
        Protocol::Tcp => "tcp".to_string(),
        Protocol::Udp => "udp".to_string(),
        Protocol::Sctp => "sctp".to_string(),
        Protocol::Other(p) => p.to_string(),
    };
    let family = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
    let mut args: Vec<String> = vec![
        "-D".into(),
        "-f".into(),
        family.into(),
        "-p".into(),
        proto,
        "--orig-dst".into(),
        addr.ip().to_string(),
    ];
    if addr.port() != 0 {
        args.extend(["--orig-port-dst".into(), addr.port().to_string()]);
    }
    args.extend(["--reply-src".into(), real.ip().to_string()]);
    if real.port() != 0 {
        args.extend(["--reply-port-src".into(), real.port().to_string()]);
    }
    Some(args)
}

/// How many entries conntrack says it deleted (`N flow entries have been deleted.`).
/// conntrack exits 1 when nothing matched: that is 0 deleted, not a failure.
pub fn deleted_count(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let l = l.trim();
        l.strip_suffix("flow entries have been deleted.")
            .or_else(|| l.strip_suffix("flow entry has been deleted."))
            .and_then(|n| n.split_whitespace().last())
            .and_then(|n| n.parse().ok())
    })
}

/// Runs `program args` (killed after [`TIMEOUT`]): the entries deleted, or why not.
pub fn run(program: &str, args: &[String]) -> Result<u64, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::null());
    let done = vigil_nft::program::run(&mut cmd, None, TIMEOUT).map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&done.stderr);
    match deleted_count(&stderr) {
        Some(n) => Ok(n),
        None if done.status.success() => Ok(0),
        None => Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            done.status,
            stderr.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_by_virtual_address_and_real_server() {
        let key = ServiceKey::tcp("192.0.2.1:80".parse().unwrap());
        let args = delete_args(&key, "10.0.0.1:8080".parse().unwrap()).unwrap();
        assert_eq!(
            args.join(" "),
            "-D -f ipv4 -p tcp --orig-dst 192.0.2.1 --orig-port-dst 80 --reply-src 10.0.0.1 --reply-port-src 8080"
        );
        let key = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "[2001:db8::1]:53".parse().unwrap(),
        };
        let args = delete_args(&key, "[2001:db8::2]:0".parse().unwrap()).unwrap();
        assert_eq!(
            args.join(" "),
            "-D -f ipv6 -p udp --orig-dst 2001:db8::1 --orig-port-dst 53 --reply-src 2001:db8::2"
        );
    }

    #[test]
    fn reads_the_count_conntrack_prints() {
        let out = "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n";
        assert_eq!(deleted_count(out), Some(3));
        let none = "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n";
        assert_eq!(deleted_count(none), Some(0));
        assert_eq!(deleted_count("conntrack: Operation not permitted"), None);
    }
}
