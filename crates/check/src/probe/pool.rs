//! TCP sockets kept between checks: every check still makes a fresh connection (its own
//! handshake, a new source port), but on a socket object taken from the last finished
//! check on the same thread instead of a new one.
//!
//! Why: in the kernel lab, creating and closing a TCP socket (file, inode and socket
//! allocation, their RCU-deferred freeing) costs about as much CPU as the connection on
//! it (`tests/lab/connect-cost-bench`; figures in docs/benchmarks.md). A connected
//! socket is made reusable with `connect()` to an `AF_UNSPEC` address (Linux's
//! `tcp_disconnect`): the connection is reset, exactly as closing with `SO_LINGER` 0
//! does, its queues are emptied, its route and source port released, and the socket is
//! back in the closed state.
//!
//! Sockets bound to a configured source address are never kept (the binding would
//! outlive the check that asked for it). At most [`MAX_IDLE`] are kept per thread and
//! family, so a burst of slow checks does not hold file descriptors for long.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Idle sockets kept per thread and address family.
pub(crate) const MAX_IDLE: usize = 128;

#[derive(Debug, Default)]
struct Idle {
    v4: Vec<Socket>,
    v6: Vec<Socket>,
}

impl Idle {
    fn of(&mut self, v6: bool) -> &mut Vec<Socket> {
        if v6 { &mut self.v6 } else { &mut self.v4 }
    }
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// A TCP socket of one check that goes back to this thread's idle sockets when dropped
/// (the connection on it, if any, is reset); a bound one is closed instead.
#[derive(Debug)]
pub(crate) struct PooledSocket {
    socket: Option<Socket>,
    v6: bool,
    keep: bool,
}

impl PooledSocket {
    /// A non-blocking TCP socket for connecting to `peer`, closing with a reset: an idle
    /// one when this thread has one and `bound` is false (the caller binds it), else a
    /// new one.
    pub(crate) fn open(peer: SocketAddr, bound: bool) -> std::io::Result<PooledSocket> {
        let v6 = peer.is_ipv6();
        let idle = if bound {
            None
        } else {
            IDLE.try_with(|idle| idle.borrow_mut().of(v6).pop())
                .ok()
                .flatten()
        };
        let socket = match idle {
            Some(socket) => socket,
            None => {
                let socket = Socket::new(
                    Domain::for_address(peer),
                    Type::STREAM.nonblocking(),
                    Some(Protocol::TCP),
                )?;
                // Closing (or disconnecting) resets the connection instead of the FIN
                // handshake: no TIME_WAIT piles up on either side at thousands of checks
                // a second. (Nagle needs no switching off: each probe writes its request
                // at once.) `connect(AF_UNSPEC)` resets whatever this says.
                let _ = socket.set_linger(Some(Duration::ZERO));
                socket
            }
        };
        Ok(PooledSocket {
            socket: Some(socket),
            v6,
            keep: !bound,
        })
    }

    pub(crate) fn socket(&self) -> Option<&Socket> {
        self.socket.as_ref()
    }

    /// The socket, to be handed to the runtime; `give_back` returns it when done.
    pub(crate) fn take(&mut self) -> Option<Socket> {
        self.socket.take()
    }

    /// Puts a socket taken with [`PooledSocket::take`] back, to be kept or closed on drop.
    pub(crate) fn give_back(&mut self, socket: Socket) {
        self.socket = Some(socket);
    }
}

impl Drop for PooledSocket {
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take()
            && self.keep
        {
            keep_idle(socket, self.v6);
        }
    }
}

/// Resets the socket's connection and keeps the socket, or closes it when that fails or
/// enough are kept already.
fn keep_idle(socket: Socket, v6: bool) {
    // Full: closing resets the connection (SO_LINGER 0) without a disconnect first.
    let full = IDLE
        .try_with(|idle| idle.borrow_mut().of(v6).len() >= MAX_IDLE)
        .unwrap_or(true);
    if full || disconnect(&socket).is_err() {
        return;
    }
    // The reset leaves its error on the socket (ECONNRESET); reading it clears it, so the
    // next connection does not report it.
    if socket.take_error().is_err() {
        return;
    }
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.of(v6);
        if list.len() < MAX_IDLE {
            list.push(socket);
        }
    });
}

/// `connect()` to `AF_UNSPEC`: drops the association (resetting an open connection) and
/// leaves the socket closed and reusable.
fn disconnect(socket: &Socket) -> std::io::Result<()> {
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: the address is a valid, initialised `sockaddr` of the length given, and the
    // descriptor is owned by `socket` for the duration of the call.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How many idle sockets this thread keeps for `peer`'s family (for tests).
#[cfg(test)]
pub(crate) fn idle_count(v6: bool) -> usize {
    IDLE.with(|idle| idle.borrow_mut().of(v6).len())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    fn connect(pooled: &PooledSocket, addr: SocketAddr) {
        let socket = pooled.socket().unwrap();
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_kept_socket_makes_a_fresh_connection_each_time() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Drain what this thread kept from other tests in the same thread (none in
        // nextest, where each test has its process).
        IDLE.with(|idle| idle.borrow_mut().v4.clear());
        let mut ports = Vec::new();
        for round in 0..3u8 {
            let pooled = PooledSocket::open(addr, false).unwrap();
            connect(&pooled, addr);
            let socket = pooled.socket().unwrap();
            assert_eq!(socket.send(&[round]).unwrap(), 1);
            ports.push(socket.local_addr().unwrap().as_socket().unwrap().port());
            let (mut conn, peer) = listener.accept().unwrap();
            assert_eq!(peer.port(), *ports.last().unwrap());
            drop(pooled);
            // The server sees what was sent, then the reset: no FIN, no TIME_WAIT.
            let mut got = [0u8; 1];
            conn.read_exact(&mut got).unwrap();
            assert_eq!(got, [round]);
            let mut rest = Vec::new();
            let err = conn.read_to_end(&mut rest).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
            assert_eq!(idle_count(false), 1, "round {round}");
        }
        // One socket served all three connections, each from a port of its own.
        ports.dedup();
        assert_eq!(ports.len(), 3, "{ports:?}");
    }

    #[test]
    fn a_failed_connection_leaves_no_error_behind() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        IDLE.with(|idle| idle.borrow_mut().v4.clear());
        let pooled = PooledSocket::open(addr, false).unwrap();
        connect(&pooled, addr);
        // Non-blocking: the refusal is the socket's pending error, reported by the send.
        let refused = pooled.socket().unwrap().send(b"x").unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        drop(pooled);
        assert_eq!(idle_count(false), 1);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pooled = PooledSocket::open(addr, false).unwrap();
        connect(&pooled, addr);
        let socket = pooled.socket().unwrap();
        assert!(socket.take_error().unwrap().is_none());
        assert_eq!(socket.send(b"ok").unwrap(), 2);
    }

    #[test]
    fn bound_sockets_and_sockets_beyond_the_cap_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        IDLE.with(|idle| idle.borrow_mut().v4.clear());
        let bound = PooledSocket::open(addr, true).unwrap();
        drop(bound);
        assert_eq!(idle_count(false), 0);
        let many: Vec<_> = (0..MAX_IDLE + 5)
            .map(|_| PooledSocket::open(addr, false).unwrap())
            .collect();
        drop(many);
        assert_eq!(idle_count(false), MAX_IDLE);
        assert_eq!(idle_count(true), 0);
        IDLE.with(|idle| idle.borrow_mut().v4.clear());
    }
}
