//! A thin `AF_NETLINK` / `NETLINK_GENERIC` socket. Blocking by default; it can be switched
//! to non-blocking and its fd handed to an event loop (`AsRawFd`/`AsFd`, e.g. tokio's
//! `AsyncFd`), since all protocol logic lives outside it.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `NETLINK_GENERIC` (`linux/netlink.h`).
const NETLINK_GENERIC: libc::c_int = 16;
/// `SOL_NETLINK` (`linux/socket.h`).
const SOL_NETLINK: libc::c_int = 270;
/// `NETLINK_CAP_ACK` (`linux/netlink.h`): do not echo the request payload in acks.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// `NETLINK_EXT_ACK` (`linux/netlink.h`): extended acks (error strings).
const NETLINK_EXT_ACK: libc::c_int = 11;
/// `SO_RCVBUFFORCE` / `SO_SNDBUFFORCE` (`asm-generic/socket.h`): past `rmem_max`, needs
/// `CAP_NET_ADMIN`.
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;

/// An open generic-netlink socket bound to a kernel-assigned port id.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl NetlinkSocket {
    /// Opens and binds the socket, and turns on `NETLINK_CAP_ACK` and `NETLINK_EXT_ACK`
    /// (both best effort: old kernels lack them).
    pub fn open() -> io::Result<NetlinkSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_GENERIC,
            )
        })?;
        // SAFETY: `raw` is a freshly created, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the length given.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        let s = NetlinkSocket { fd };
        let _ = s.set_int(SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = s.set_int(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        Ok(s)
    }

    fn set_int(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: v lives across the call; its size is passed.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const v).cast::<libc::c_void>(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    fn get_int(&self, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are valid for writes of the sizes given.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw mut v).cast::<libc::c_void>(),
                &raw mut len,
            )
        })?;
        Ok(v)
    }

    /// Sets the send and receive buffers to `bytes` each: first with the `*FORCE` options
    /// (root can exceed `net.core.[rw]mem_max`), else the plain ones (capped by the
    /// sysctls). Returns the receive buffer the kernel granted (it doubles the request
    /// for bookkeeping overhead).
    pub fn set_buffers(&self, bytes: usize) -> io::Result<usize> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        if self.set_int(libc::SOL_SOCKET, SO_SNDBUFFORCE, v).is_err() {
            self.set_int(libc::SOL_SOCKET, libc::SO_SNDBUF, v)?;
        }
        if self.set_int(libc::SOL_SOCKET, SO_RCVBUFFORCE, v).is_err() {
            self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, v)?;
        }
        let got = self.get_int(libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// The send buffer the kernel granted.
    pub fn send_buffer(&self) -> io::Result<usize> {
        let got = self.get_int(libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// Sets a receive timeout (`SO_RCVTIMEO`); `None` blocks forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let tv = match timeout {
            Some(d) => libc::timeval {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        // SAFETY: tv lives across the call; its size is passed.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast::<libc::c_void>(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Switches `O_NONBLOCK` on or off.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        // SAFETY: fcntl on an fd we own.
        let flags = cvt(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GETFL) })?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
    }

    /// Sends one datagram (one or more netlink messages) to the kernel.
    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain old data; all-zero is the kernel's address.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: buf and addr are valid for the lengths passed.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    0,
                    (&raw const addr).cast::<libc::sockaddr>(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r as usize != buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "short send on a netlink socket",
                ));
            }
            return Ok(());
        }
    }

    /// Receives one datagram into `buf` (its length is set to the datagram's). With
    /// `dont_wait`, returns `WouldBlock` instead of waiting. A datagram larger than the
    /// buffer's capacity is an error (`MSG_TRUNC`), never silently cut.
    pub fn recv(&self, buf: &mut Vec<u8>, dont_wait: bool) -> io::Result<()> {
        let flags = libc::MSG_TRUNC | if dont_wait { libc::MSG_DONTWAIT } else { 0 };
        buf.clear();
        let cap = buf.capacity();
        loop {
            // SAFETY: the pointer is valid for `cap` bytes of writes.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    cap,
                    flags,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = r as usize;
            if n > cap {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("netlink datagram of {n} bytes exceeds the {cap}-byte buffer"),
                ));
            }
            // SAFETY: the kernel initialised the first n bytes (n <= capacity).
            unsafe { buf.set_len(n) };
            return Ok(());
        }
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
