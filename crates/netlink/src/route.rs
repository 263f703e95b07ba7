//! The blocking request/acknowledge client.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::Error;
use crate::codec::{self, InterfaceAddress, Link, Reply, TableRoute};

/// Bound on every receive: the kernel answers at once, so silence means trouble.
const RECEIVE_TIMEOUT_SECS: libc::time_t = 2;

/// A `NETLINK_ROUTE` socket for requests. Blocking, but every request is answered by
/// the kernel at once (no network).
#[derive(Debug)]
pub struct Route {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Route {
    /// Opens, binds and connects a socket to the kernel.
    pub fn open() -> Result<Self, Error> {
        let socket = open_socket("opening a route socket")?;
        let timeout = libc::timeval {
            tv_sec: RECEIVE_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: valid fd, option value of the documented type and size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(socket_error("setting the receive timeout"));
        }
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Adds `address/prefix_len` to interface `ifindex`. `Ok(false)` when it was already
    /// there (`EEXIST`): adding is idempotent.
    pub fn add_address(
        &mut self,
        ifindex: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, Error> {
        let message = codec::address(true, ifindex, address, prefix_len);
        self.ack_idempotent(message, codec::CREATE_FLAGS, ALREADY_THERE, || {
            format!("adding {address}/{prefix_len} to interface {ifindex}")
        })
    }

    /// Removes `address/prefix_len` from `ifindex`. `Ok(false)` when it was not there.
    pub fn del_address(
        &mut self,
        ifindex: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, Error> {
        let message = codec::address(false, ifindex, address, prefix_len);
        let gone = &[libc::EADDRNOTAVAIL, libc::ENOENT, libc::ESRCH];
        self.ack_idempotent(message, codec::ACK_FLAGS, gone, || {
            format!("removing {address}/{prefix_len} from interface {ifindex}")
        })
    }

    /// Adds the host route to `destination` out of `ifindex` in `table`, written by
    /// `protocol`. `Ok(false)` when it was already there (`EEXIST`).
    pub fn add_host_route(
        &mut self,
        table: u32,
        protocol: u8,
        ifindex: u32,
        destination: IpAddr,
    ) -> Result<bool, Error> {
        let message = codec::host_route(true, table, protocol, ifindex, destination);
        self.ack_idempotent(message, codec::CREATE_FLAGS, ALREADY_THERE, || {
            format!("adding the route to {destination} in table {table}")
        })
    }

    /// Removes the host route to `destination` of `protocol` from `table` (whatever its
    /// interface). `Ok(false)` when it was not there.
    pub fn del_host_route(
        &mut self,
        table: u32,
        protocol: u8,
        destination: IpAddr,
    ) -> Result<bool, Error> {
        let message = any_interface(codec::host_route(false, table, protocol, 0, destination));
        self.ack_idempotent(message, codec::ACK_FLAGS, ALREADY_GONE, || {
            format!("removing the route to {destination} from table {table}")
        })
    }

    /// Adds the `local` route to `destination` (delivered here) out of `ifindex`,
    /// written by `protocol`. `Ok(false)` when it was already there.
    pub fn add_local_route(
        &mut self,
        protocol: u8,
        ifindex: u32,
        destination: IpAddr,
    ) -> Result<bool, Error> {
        let message = codec::local_route(true, protocol, ifindex, destination);
        self.ack_idempotent(message, codec::CREATE_FLAGS, ALREADY_THERE, || {
            format!("adding the local route to {destination}")
        })
    }

    /// Removes the `local` route to `destination` of `protocol`. `Ok(false)` when it was
    /// not there.
    pub fn del_local_route(&mut self, protocol: u8, destination: IpAddr) -> Result<bool, Error> {
        let message = any_interface(codec::local_route(false, protocol, 0, destination));
        self.ack_idempotent(message, codec::ACK_FLAGS, ALREADY_GONE, || {
            format!("removing the local route to {destination}")
        })
    }

    /// Every route of `table` written by `protocol` (both families).
    pub fn table_routes(&mut self, table: u32, protocol: u8) -> Result<Vec<TableRoute>, Error> {
        let mut found = Vec::new();
        self.dump(codec::dump_routes(), "listing routes", |m| {
            if let RouteNetlinkMessage::NewRoute(r) = m
                && let Some(r) = codec::table_route(&r)
                && r.table == table
                && r.protocol == protocol
            {
                found.push(r);
            }
        })?;
        Ok(found)
    }

    /// Every address of interface `ifindex` (both families).
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<InterfaceAddress>, Error> {
        let mut found = Vec::new();
        self.dump(codec::dump_addresses(), "listing addresses", |m| {
            if let RouteNetlinkMessage::NewAddress(a) = m
                && let Some(a) = codec::interface_address(&a)
                && a.ifindex == ifindex
            {
                found.push(a);
            }
        })?;
        Ok(found)
    }

    /// The link called `name`.
    pub fn link(&mut self, name: &str) -> Result<Link, Error> {
        let seq = self.send(codec::get_link(name), codec::ACK_FLAGS)?;
        let mut found = None;
        loop {
            for (s, _, reply) in self.receive()? {
                if s != seq {
                    continue;
                }
                match reply {
                    Reply::Message(RouteNetlinkMessage::NewLink(l)) => {
                        found = Some(codec::link(&l));
                    }
                    Reply::Ack => {
                        return found.ok_or_else(|| Error::Decode {
                            op: "looking up a link",
                            detail: format!("no link message for {name}"),
                        });
                    }
                    Reply::Refused(errno) => {
                        return Err(kernel(format!("looking up interface {name}"), errno));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        let mut found = Vec::new();
        self.dump(codec::dump_links(), "listing links", |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                found.push(codec::link(&l));
            }
        })?;
        Ok(found)
    }

    fn dump(
        &mut self,
        message: RouteNetlinkMessage,
        op: &'static str,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> Result<(), Error> {
        let seq = self.send(message, codec::DUMP_FLAGS)?;
        loop {
            for (s, _, reply) in self.receive()? {
                if s != seq {
                    continue;
                }
                match reply {
                    Reply::Message(m) => each(m),
                    Reply::Done(0) | Reply::Ack => return Ok(()),
                    Reply::Done(errno) | Reply::Refused(errno) => {
                        return Err(kernel(op.to_string(), errno));
                    }
                    Reply::Skipped => {}
                }
            }
        }
    }

    /// Sends one request and waits for its acknowledgement. `Ok(true)` when the kernel
    /// carried it out, `Ok(false)` when it refused with one of `tolerated` (the object was
    /// already there, or already gone: such requests are idempotent); any other refusal is
    /// an [`Error::Kernel`] naming the request as `what` says.
    pub(crate) fn ack_idempotent(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        tolerated: &[i32],
        what: impl FnOnce() -> String,
    ) -> Result<bool, Error> {
        match self.request_ack(message, flags) {
            Ok(()) => Ok(true),
            Err(errno) if tolerated.contains(&errno) => Ok(false),
            Err(errno) => Err(kernel(what(), errno)),
        }
    }

    /// [`Self::ack_idempotent`] of a request that tolerates no refusal.
    pub(crate) fn ack(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        self.ack_idempotent(message, flags, &[], what).map(drop)
    }

    /// Sends one request and waits for its acknowledgement: `Err(errno)` when refused.
    fn request_ack(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<(), i32> {
        let seq = self.send(message, flags).map_err(errno_of)?;
        loop {
            for (s, _, reply) in self.receive().map_err(errno_of)? {
                match reply {
                    Reply::Ack if s == seq => return Ok(()),
                    Reply::Refused(errno) if s == seq => return Err(errno),
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = codec::request(message, flags, self.seq);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| Error::Socket {
                op: "sending a request",
                source,
            })?;
        Ok(self.seq)
    }

    fn receive(&mut self) -> Result<Vec<(u32, u16, Reply)>, Error> {
        receive(&self.socket, &mut self.buf, 0)?;
        Ok(codec::replies(&self.buf))
    }
}

/// Receives one datagram into `buf` (cleared first). A datagram larger than the buffer
/// is an error (`MSG_TRUNC`), never silently cut; `EINTR` is retried.
pub(crate) fn receive(socket: &Socket, buf: &mut Vec<u8>, flags: libc::c_int) -> Result<(), Error> {
    loop {
        buf.clear();
        let capacity = buf.capacity();
        match socket.recv(buf, flags | libc::MSG_TRUNC) {
            Ok(n) if n > capacity => {
                return Err(Error::Decode {
                    op: "receiving",
                    detail: format!("a {n}-byte datagram exceeds the {capacity}-byte buffer"),
                });
            }
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Socket {
                    op: "receiving",
                    source,
                });
            }
        }
    }
}

/// A bound `NETLINK_ROUTE` socket connected to the kernel (port 0).
pub(crate) fn open_socket(op: &'static str) -> Result<Socket, Error> {
    let wrap = |source| Error::Socket { op, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(wrap)?;
    socket.bind_auto().map_err(wrap)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(wrap)?;
    Ok(socket)
}

fn socket_error(op: &'static str) -> Error {
    Error::Socket {
        op,
        source: std::io::Error::last_os_error(),
    }
}

/// A create request refused with `EEXIST` found what it asked for.
pub(crate) const ALREADY_THERE: &[i32] = &[libc::EEXIST];
/// A delete request refused with `ESRCH` or `ENOENT` found nothing to remove.
pub(crate) const ALREADY_GONE: &[i32] = &[libc::ESRCH, libc::ENOENT];

/// A route delete without `RTA_OIF` matches any interface, and with `RT_SCOPE_NOWHERE`
/// any scope (as `ip route del`).
fn any_interface(mut message: RouteNetlinkMessage) -> RouteNetlinkMessage {
    if let RouteNetlinkMessage::DelRoute(m) = &mut message {
        m.header.scope = netlink_packet_route::route::RouteScope::NoWhere;
        m.attributes
            .retain(|a| !matches!(a, netlink_packet_route::route::RouteAttribute::Oif(_)));
    }
    message
}

fn kernel(op: String, errno: i32) -> Error {
    Error::Kernel {
        op,
        source: std::io::Error::from_raw_os_error(errno),
    }
}

/// The errno a socket failure carries, `EIO` when it has none (a decode error).
fn errno_of(e: Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}
