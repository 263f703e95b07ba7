//! Connecting: a fresh connection per check, optionally from a given source (address,
//! port, interface, firewall mark), on a socket reused between checks where it can be
//! (see [`super::pool`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};
use vigil_config::Check;

use super::pool::PooledSocket;
use crate::failure::Failure;

/// Where a check's packets come from: source address and port, interface
/// (`SO_BINDTODEVICE`) and firewall mark (`SO_MARK`); each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) ip: Option<IpAddr>,
    pub(crate) port: Option<u16>,
    pub(crate) interface: Option<String>,
    pub(crate) mark: Option<u32>,
}

impl Source {
    pub(crate) fn of(check: &Check) -> Self {
        Source {
            ip: check.bind,
            port: check.bind_port,
            interface: check.bind_interface.clone(),
            mark: check.fwmark,
        }
    }

    /// Nothing set: any socket will do, so sockets may be reused between checks.
    pub(crate) fn is_default(&self) -> bool {
        *self == Source::default()
    }

    /// Sets the mark and interface on a fresh socket for `peer`, then binds it when an
    /// address or port is set; the error is a finished reason.
    pub(crate) fn apply(&self, socket: &Socket, peer: SocketAddr) -> Result<(), Failure> {
        if let Some(mark) = self.mark {
            socket.set_mark(mark).map_err(|e| {
                Failure::setup(format!("cannot set fwmark {mark}: {}", strip_os_error(&e)))
            })?;
        }
        if let Some(dev) = &self.interface {
            socket.bind_device(Some(dev.as_bytes())).map_err(|e| {
                Failure::setup(format!(
                    "cannot bind to interface {dev}: {}",
                    strip_os_error(&e)
                ))
            })?;
        }
        if self.ip.is_none() && self.port.is_none() {
            return Ok(());
        }
        let ip = self.ip.unwrap_or(match peer {
            SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        let local = SocketAddr::new(ip, self.port.unwrap_or(0));
        if self.port.is_some() {
            // A fixed port is reused by every run of the check; its previous connection
            // was reset, but let a lingering one not refuse the bind.
            let _ = socket.set_reuse_address(true);
        }
        socket.bind(&local.into()).map_err(|e| {
            let shown = if self.port.is_some() {
                local.to_string()
            } else {
                ip.to_string()
            };
            Failure::setup(format!("cannot bind source address {shown}: {e}"))
        })
    }
}

/// Connects to `addr` from `source`; the error is a finished reason.
pub(crate) async fn connect_tcp(addr: SocketAddr, source: &Source) -> Result<TcpConn, Failure> {
    let conn = connect_send(addr, source, &[]).await.map_err(|e| match e {
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
    Connect(Failure),
    /// Connected, but sending the first bytes failed.
    Send(io::Error),
}

/// An open connection whose first bytes have been sent. Dropping it resets the
/// connection.
#[derive(Debug)]
pub(crate) enum Connected {
    /// Proven established without waiting (the handshake completed within `connect()`,
    /// as it does on loopback): not registered with the runtime, which a probe that reads
    /// nothing never needs.
    Ready(PooledSocket),
    /// Established after waiting for the handshake.
    Stream(TcpConn),
}

impl Connected {
    /// The connection as a stream registered with the runtime.
    pub(crate) fn into_stream(self, addr: SocketAddr) -> Result<TcpConn, Failure> {
        match self {
            Connected::Stream(conn) => Ok(conn),
            Connected::Ready(pooled) => TcpConn::register(pooled).map_err(|e| {
                Failure::setup(format!("cannot register the connection to {addr}: {e}"))
            }),
        }
    }
}

/// A check's TCP connection, registered with the runtime. Dropping it resets the
/// connection and keeps the socket for the next check (see [`super::pool`]).
#[derive(Debug)]
pub(crate) struct TcpConn {
    stream: Option<TcpStream>,
    /// Empty while the socket is in `stream`; gets it back on drop.
    pooled: PooledSocket,
}

impl TcpConn {
    fn register(mut pooled: PooledSocket) -> io::Result<TcpConn> {
        let socket = pooled
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no socket"))?;
        let stream = TcpStream::from_std(socket.into())?;
        Ok(TcpConn {
            stream: Some(stream),
            pooled,
        })
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection closed"))
    }
}

impl Drop for TcpConn {
    fn drop(&mut self) {
        // Deregistered from the runtime, then reset and kept by the pooled shell's drop.
        if let Some(stream) = self.stream.take()
            && let Ok(std) = stream.into_std()
        {
            self.pooled.give_back(std.into());
        }
    }
}

impl AsyncRead for TcpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for TcpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Connects to `addr` from `source` and sends `first` (may be empty).
///
/// A non-blocking `connect()` to a nearby server usually returns with the handshake
/// already done (on loopback always: the SYN-ACK is processed before the call returns).
/// So the first bytes are sent right away, and a send that succeeds proves the
/// connection, saving the wait for writability (an epoll round trip and a task wakeup)
/// and the `SO_ERROR` query; with nothing to send, `getpeername()` is the proof. Only a
/// handshake still in flight (`EAGAIN` / `ENOTCONN`) waits, as tokio's `connect` does.
pub(crate) async fn connect_send(
    addr: SocketAddr,
    source: &Source,
    first: &[u8],
) -> Result<Connected, OpenError> {
    let pooled = PooledSocket::open(addr, !source.is_default()).map_err(|e| {
        OpenError::Connect(Failure::setup(format!("cannot open a TCP socket: {e}")))
    })?;
    let Some(socket) = pooled.socket() else {
        return Err(OpenError::Connect(Failure::setup(
            "cannot open a TCP socket",
        )));
    };
    if !source.is_default() {
        source.apply(socket, addr).map_err(OpenError::Connect)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(OpenError::Connect(connect_error(addr, &e))),
    }
    let sent = if first.is_empty() {
        match socket.peer_addr() {
            Ok(_) => return Ok(Connected::Ready(pooled)),
            Err(_) => 0,
        }
    } else {
        match socket.send_with_flags(first, libc::MSG_NOSIGNAL) {
            Ok(n) if n == first.len() => return Ok(Connected::Ready(pooled)),
            Ok(n) => n,
            Err(e) if still_connecting(&e) => 0,
            // The handshake failed (the connection's pending error, e.g. refused).
            Err(e) if handshake_failure(&e) => {
                return Err(OpenError::Connect(connect_error(addr, &e)));
            }
            Err(e) => return Err(OpenError::Send(e)),
        }
    };
    let mut conn = TcpConn::register(pooled).map_err(|e| {
        OpenError::Connect(Failure::setup(format!(
            "cannot register the connection to {addr}: {e}"
        )))
    })?;
    let stream = conn
        .stream()
        .map_err(|e| OpenError::Connect(connect_error(addr, &e)))?;
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
    Ok(Connected::Stream(conn))
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

/// A UDP socket connected to `addr` from `source`, so that an ICMP port unreachable comes
/// back as `ECONNREFUSED` on the next receive.
pub(crate) async fn connect_udp(addr: SocketAddr, source: &Source) -> Result<UdpSocket, Failure> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )
    .map_err(|e| Failure::setup(format!("cannot open a UDP socket: {e}")))?;
    source.apply(&socket, addr)?;
    // Connecting a UDP socket sends nothing: it returns at once.
    socket
        .connect(&addr.into())
        .map_err(|e| Failure::io(&e, format!("cannot connect UDP socket to {addr}: {e}")))?;
    UdpSocket::from_std(socket.into())
        .map_err(|e| Failure::setup(format!("cannot register UDP socket: {e}")))
}

pub(crate) fn connect_error(addr: SocketAddr, e: &io::Error) -> Failure {
    let text = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("connect to {addr} refused"),
        io::ErrorKind::TimedOut => format!("connect to {addr} timed out"),
        _ => format!("connect to {addr} failed: {}", strip_os_error(e)),
    };
    Failure::io(e, text)
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
    use std::time::{Duration, Instant};

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
        let conn = connect_send(addr, &Source::default(), b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(conn, Connected::Ready(_)), "{conn:?}");
        drop(conn);
        assert_eq!(received(&listener), b"GET / HTTP/1.1\r\n\r\n");

        let conn = connect_send(addr, &Source::default(), &[]).await.unwrap();
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
        let conn = connect_send(addr, &Source::default(), b"hello")
            .await
            .unwrap();
        // The SYN was retransmitted (after ~1 s) once the queue had room.
        assert!(matches!(conn, Connected::Stream(_)), "{conn:?}");
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(conn);
        assert_eq!(server.join().unwrap(), b"hello");
        drop(filler);
    }

    /// The mark and interface are on the socket the probe sends from (as root).
    #[test]
    fn source_options_are_set_on_the_socket() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIPPED: SO_MARK needs CAP_NET_ADMIN");
            return;
        }
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let source = Source {
            ip: Some(IpAddr::from([127, 0, 0, 1])),
            port: None,
            interface: Some("lo".into()),
            mark: Some(0x5a),
        };
        source.apply(&socket, peer).unwrap();
        assert_eq!(socket.mark().unwrap(), 0x5a);
        assert_eq!(socket.device().unwrap().as_deref(), Some(&b"lo"[..]));
        assert_eq!(
            socket.local_addr().unwrap().as_socket().unwrap().ip(),
            IpAddr::from([127, 0, 0, 1])
        );
    }

    #[tokio::test]
    async fn refused_is_a_connect_error_with_or_without_bytes() {
        let (listener, addr) = listener(1);
        drop(listener);
        for first in [&b""[..], b"GET / HTTP/1.1\r\n\r\n"] {
            match connect_send(addr, &Source::default(), first).await {
                Err(OpenError::Connect(reason)) => {
                    assert_eq!(reason.text, format!("connect to {addr} refused"));
                    assert_eq!(reason.cause, crate::FailureCause::Refused);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
