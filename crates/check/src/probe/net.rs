//! Connecting: a fresh socket per check, optionally bound to a source address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Connects to `addr` from `bind` (any port); the error is a finished reason.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    bind: Option<IpAddr>,
) -> Result<TcpStream, String> {
    let conn = connect_send(addr, bind, &[]).await.map_err(|e| match e {
        OpenError::Connect(reason) => reason,
        // Nothing was sent.
        OpenError::Send(e) => connect_error(addr, &e),
    })?;
    conn.into_stream(addr)
}

/// Why [`connect_send`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Opening or connecting failed: a finished reason.
    Connect(String),
    /// Connected, but sending the first bytes failed.
    Send(io::Error),
}

/// An open connection whose first bytes have been sent.
#[derive(Debug)]
pub(crate) enum Connected {
    /// Proven established without waiting (the handshake completed within `connect()`,
    /// as it does on loopback): not registered with the runtime, which a probe that reads
    /// nothing never needs.
    Ready(Socket),
    /// Established after waiting for the handshake.
    Stream(TcpStream),
}

impl Connected {
    /// The connection as a tokio stream (registered with the runtime).
    pub(crate) fn into_stream(self, addr: SocketAddr) -> Result<TcpStream, String> {
        match self {
            Connected::Stream(stream) => Ok(stream),
            Connected::Ready(socket) => TcpStream::from_std(socket.into())
                .map_err(|e| format!("cannot register the connection to {addr}: {e}")),
        }
    }
}

/// Connects to `addr` from `bind` (any port) and sends `first` (may be empty).
///
/// A non-blocking `connect()` to a nearby server usually returns with the handshake
/// already done (on loopback always: the SYN-ACK is processed before the call returns).
/// So the first bytes are sent right away, and a send that succeeds proves the
/// connection, saving the wait for writability (an epoll round trip and a task wakeup)
/// and the `SO_ERROR` query; with nothing to send, `getpeername()` is the proof. Only a
/// handshake still in flight (`EAGAIN` / `ENOTCONN`) waits, as tokio's `connect` does.
pub(crate) async fn connect_send(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    first: &[u8],
) -> Result<Connected, OpenError> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(|e| OpenError::Connect(format!("cannot open a TCP socket: {e}")))?;
    if let Some(ip) = bind {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(|e| OpenError::Connect(format!("cannot bind source address {ip}: {e}")))?;
    }
    // Closing resets the connection instead of the FIN handshake: no TIME_WAIT piles up
    // on either side at thousands of checks a second, and the kernel does a third of
    // the work. (Nagle needs no switching off: each probe writes its request at once.)
    let _ = socket.set_linger(Some(Duration::ZERO));
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(OpenError::Connect(connect_error(addr, &e))),
    }
    let sent = if first.is_empty() {
        match socket.peer_addr() {
            Ok(_) => return Ok(Connected::Ready(socket)),
            Err(_) => 0,
        }
    } else {
        match socket.send_with_flags(first, libc::MSG_NOSIGNAL) {
            Ok(n) if n == first.len() => return Ok(Connected::Ready(socket)),
            Ok(n) => n,
            Err(e) if still_connecting(&e) => 0,
            // The handshake failed (the connection's pending error, e.g. refused).
            Err(e) if handshake_failure(&e) => {
                return Err(OpenError::Connect(connect_error(addr, &e)));
            }
            Err(e) => return Err(OpenError::Send(e)),
        }
    };
    let mut stream = TcpStream::from_std(socket.into()).map_err(|e| {
        OpenError::Connect(format!("cannot register the connection to {addr}: {e}"))
    })?;
    if sent == 0 {
        // What tokio's `TcpSocket::connect` does: writable once the handshake ends either
        // way, then the socket's error says which way.
        stream
            .writable()
            .await
            .map_err(|e| OpenError::Connect(connect_error(addr, &e)))?;
        if let Some(e) = stream
            .take_error()
            .map_err(|e| OpenError::Connect(connect_error(addr, &e)))?
        {
            return Err(OpenError::Connect(connect_error(addr, &e)));
        }
    }
    stream
        .write_all(&first[sent..])
        .await
        .map_err(OpenError::Send)?;
    Ok(Connected::Stream(stream))
}

/// The handshake has not finished yet.
fn still_connecting(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOTCONN)
}

/// Errors a failed handshake leaves on the socket.
fn handshake_failure(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::ETIMEDOUT | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    fn listener(backlog: i32) -> (TcpListener, SocketAddr) {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(backlog).unwrap();
        let listener = TcpListener::from(socket);
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    fn received(listener: &TcpListener) -> Vec<u8> {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        // The probe's side resets on close: whatever arrived before is still read.
        let _ = conn.read_to_end(&mut got);
        got
    }

    #[tokio::test]
    async fn loopback_handshake_is_done_within_connect() {
        let (listener, addr) = listener(16);
        let conn = connect_send(addr, None, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(conn, Connected::Ready(_)), "{conn:?}");
        drop(conn);
        assert_eq!(received(&listener), b"GET / HTTP/1.1\r\n\r\n");

        let conn = connect_send(addr, None, &[]).await.unwrap();
        assert!(matches!(conn, Connected::Ready(_)), "{conn:?}");
        let mut stream = conn.into_stream(addr).unwrap();
        stream.write_all(b"late").await.unwrap();
        drop(stream);
        assert_eq!(received(&listener), b"late");
    }

    #[tokio::test]
    async fn handshake_in_flight_is_waited_for() {
        // Backlog 0 and one connection queued: the listener drops our SYN until the queue
        // has room, so connect() returns with the handshake pending.
        let (listener, addr) = listener(0);
        let filler = std::net::TcpStream::connect(addr).unwrap();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(listener.accept().unwrap());
            received(&listener)
        });
        let start = Instant::now();
        let conn = connect_send(addr, None, b"hello").await.unwrap();
        // The SYN was retransmitted (after ~1 s) once the queue had room.
        assert!(matches!(conn, Connected::Stream(_)), "{conn:?}");
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(conn);
        assert_eq!(server.join().unwrap(), b"hello");
        drop(filler);
    }

    #[tokio::test]
    async fn refused_is_a_connect_error_with_or_without_bytes() {
        let (listener, addr) = listener(1);
        drop(listener);
        for first in [&b""[..], b"GET / HTTP/1.1\r\n\r\n"] {
            match connect_send(addr, None, first).await {
                Err(OpenError::Connect(reason)) => {
                    assert_eq!(reason, format!("connect to {addr} refused"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
