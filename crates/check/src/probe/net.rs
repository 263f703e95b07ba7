//! Connecting: a fresh socket per check, optionally bound to a source address.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Connects to `addr` from `bind` (any port); the error is a finished reason.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("cannot open a TCP socket: {e}"))?;
    if let Some(ip) = bind {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("cannot bind source address {ip}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| connect_error(addr, &e))?;
    // Closing resets the connection instead of the FIN handshake: no TIME_WAIT piles up
    // on either side at thousands of checks a second, and the kernel does a third of
    // the work. (Nagle needs no switching off: each probe writes its request at once.)
    let _ = stream.set_zero_linger();
    Ok(stream)
}

/// A UDP socket connected to `addr`, so that an ICMP port unreachable comes back as
/// `ECONNREFUSED` on the next receive.
pub(crate) async fn connect_udp(
    addr: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<UdpSocket, String> {
    let local = bind.unwrap_or(match addr {
        SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
    });
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|e| format!("cannot bind UDP source address {local}: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("cannot connect UDP socket to {addr}: {e}"))?;
    Ok(socket)
}

pub(crate) fn connect_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("connect to {addr} refused"),
        io::ErrorKind::TimedOut => format!("connect to {addr} timed out"),
        _ => format!("connect to {addr} failed: {}", strip_os_error(e)),
    }
}

/// `No route to host (os error 113)` → `No route to host`: the number helps nobody.
pub(crate) fn strip_os_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
