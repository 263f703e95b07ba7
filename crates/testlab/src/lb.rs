//! A load-balancing lab on a [`NetnsLab`]: a director holding a VIP, three real servers
//! that answer each request line with their name and the address they saw the client
//! at, and a client; with the client side that counts who answered. The nftables
//! datapath's tests (vigil-nft's and vigild's) share it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::{LabError, NetnsLab};

/// The port the real servers answer on.
pub const PORT: u16 = 8080;
/// The real servers' host names.
pub const REALS: [&str; 3] = ["rs1", "rs2", "rs3"];

/// The lab: `lab` holds the hosts `director`, `client`, `rs1`, `rs2`, `rs3`; the
/// director has the VIP (host number 100 of the lab's subnet) on `eth0`, port 80.
#[derive(Debug)]
pub struct LbLab {
    pub lab: NetnsLab,
    pub vip: SocketAddr,
}

impl LbLab {
    /// Builds the lab with the director forwarding (no ICMP redirects: a one-arm
    /// director would send them, see tests/lab/README.md) and the real servers
    /// listening on [`PORT`] (IPv4 and IPv6). `routed`: the real servers reach the
    /// client via the director (they see its address); otherwise they answer it
    /// directly, and only a masquerading director gets the answers back.
    pub fn up(routed: bool) -> Result<LbLab, LabError> {
        let lab = NetnsLab::up(&["director", "client", "rs1", "rs2", "rs3"])?;
        let vip_ip = lab.subnet_addr(100);
        let d = "director";
        lab.run(d, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        lab.run(
            d,
            [
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
            ],
        )?;
        lab.run(
            d,
            ["ip", "addr", "add", &format!("{vip_ip}/24"), "dev", "eth0"],
        )?;
        let gw = lab.ip(d).to_string();
        let client = lab.ip("client").to_string();
        for r in REALS {
            if routed {
                lab.run(r, ["ip", "route", "replace", &client, "via", &gw])?;
            }
            // Dual stack: IPv4 and IPv6 clients on one port.
            let listener =
                lab.run_in(r, || TcpListener::bind(("::", PORT)))?
                    .map_err(|source| LabError::Spawn {
                        what: format!("a listener on [::]:{PORT} in {r}"),
                        source,
                    })?;
            let name = r.to_string();
            std::thread::spawn(move || serve(listener, name));
        }
        Ok(LbLab {
            lab,
            vip: SocketAddr::new(IpAddr::V4(vip_ip), 80),
        })
    }

    /// Where real server `name` answers.
    pub fn real(&self, name: &str) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.lab.ip(name)), PORT)
    }

    /// `n` connections from the client to the VIP, one request each: who answered.
    pub fn hits(&self, n: usize) -> BTreeMap<String, usize> {
        self.hits_to(self.vip, n)
    }

    /// As [`LbLab::hits`], to `vip`.
    ///
    /// # Panics
    ///
    /// When a connection or its request fails, or the client's namespace cannot be
    /// entered.
    pub fn hits_to(&self, vip: SocketAddr, n: usize) -> BTreeMap<String, usize> {
        let seen = self.lab.run_in("client", move || {
            let mut seen = BTreeMap::new();
            for _ in 0..n {
                let mut c = connect(vip);
                *seen.entry(ask(&mut c)).or_insert(0) += 1;
            }
            seen
        });
        seen.unwrap_or_else(|e| panic!("{e}"))
    }

    /// An open connection from the client to the VIP.
    ///
    /// # Panics
    ///
    /// As [`connect`], or when the client's namespace cannot be entered.
    pub fn open(&self) -> BufReader<TcpStream> {
        let vip = self.vip;
        let c = self.lab.run_in("client", move || connect(vip));
        c.unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A connection to `vip` (from the namespace of the calling thread), reads bounded by
/// 2 s.
///
/// # Panics
///
/// When it cannot connect within 2 s.
pub fn connect(vip: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect_timeout(&vip, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {vip}: {e}"));
    if let Err(e) = s.set_read_timeout(Some(Duration::from_secs(2))) {
        panic!("read timeout on {vip}: {e}");
    }
    BufReader::new(s)
}

/// One request on a new connection (2 s to connect and to answer), without panicking:
/// the real server's name and the client address it saw.
pub fn try_request(vip: SocketAddr) -> std::io::Result<(String, String)> {
    let s = TcpStream::connect_timeout(&vip, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    try_ask(&mut BufReader::new(s))
}

/// One request on an open connection: the name of the real server behind it.
///
/// # Panics
///
/// When no answer comes.
pub fn ask(c: &mut BufReader<TcpStream>) -> String {
    let name = try_ask(c).unwrap_or_else(|e| panic!("no answer: {e}")).0;
    assert!(!name.is_empty(), "no answer");
    name
}

/// One request: the real server's name and the client address it saw.
pub fn try_ask(c: &mut BufReader<TcpStream>) -> std::io::Result<(String, String)> {
    c.get_mut().write_all(b"?\n")?;
    let mut line = String::new();
    if c.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut w = line.split_whitespace();
    let name = w.next().unwrap_or("").to_string();
    Ok((name, w.next().unwrap_or("").to_string()))
}

/// Answers each line of each connection with "NAME CLIENT_IP"; connections stay open.
fn serve(listener: TcpListener, name: String) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            // The listener is dual-stack: IPv4 peers arrive v4-mapped.
            let peer = conn
                .peer_addr()
                .map(|p| p.ip().to_canonical().to_string())
                .unwrap_or_default();
            let Ok(mut w) = conn.try_clone() else { return };
            for line in BufReader::new(conn).lines() {
                if line.is_err() || w.write_all(format!("{name} {peer}\n").as_bytes()).is_err() {
                    break;
                }
            }
        });
    }
}

/// Pearson's chi-square of counts against expected shares (which sum to 1).
pub fn chi_square(counts: &[usize], shares: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(shares)
        .map(|(&c, &p)| {
            let e = n as f64 * p;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_is_zero_on_the_expected_split() {
        assert_eq!(
            chi_square(&[100, 200, 300], &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]),
            0.0
        );
        assert!(chi_square(&[300, 200, 100], &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) > 20.0);
    }
}
