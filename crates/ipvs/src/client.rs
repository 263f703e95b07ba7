//! The synchronous IPVS client: one generic-netlink socket, one family id.
//!
//! Every request carries its own sequence number and (unless it is a dump) `NLM_F_ACK`,
//! so each one is answered by exactly one ack or error that names its sequence number.
//! [`Client::apply`] uses that to pipeline: it packs many requests into one datagram,
//! sends it, then matches the acks to the requests.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use crate::codec::{self, IPVS_GENL_NAME, Reply, Request};
use crate::error::{DecodeError, EncodeError, Errno, Error};
use crate::model::{
    Destination, DestinationEntry, DestinationKey, Family, Info, Operation, Service, ServiceEntry,
    ServiceKey, SyncDaemon, SyncState, Timeouts,
};
use crate::netlink::{self, Message, NLM_F_DUMP_INTR};
use crate::socket::NetlinkSocket;

/// Receive buffer for one datagram. Dumps come in datagrams of at most ~32 KiB (the kernel
/// caps `max_recvmsg_len` there); acks are small because we ask for `NETLINK_CAP_ACK`.
const RECV_BUF: usize = 64 * 1024;
/// Socket buffers asked for (granted in full to root through `SO_*BUFFORCE`).
const SOCKET_BUF: usize = 4 * 1024 * 1024;
/// Receive-buffer bytes budgeted per outstanding ack: an ack is ~40 bytes of payload but
/// the kernel charges the whole skb (its truesize, several hundred bytes) to our buffer.
const ACK_COST: usize = 2048;
/// How many times a dump that the kernel flags `NLM_F_DUMP_INTR` is retried.
const DUMP_RETRIES: usize = 3;

/// Tuning for [`Client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long one `recv` may wait for the kernel before the call fails.
    pub read_timeout: Duration,
    /// Socket buffer size asked for (send and receive).
    pub socket_buffer: usize,
    /// Most requests in flight in [`Client::apply`]; `None` derives it from the receive
    /// buffer the kernel granted.
    pub window: Option<usize>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            read_timeout: Duration::from_secs(60),
            socket_buffer: SOCKET_BUF,
            window: None,
        }
    }
}

/// A connection to the kernel's IPVS generic-netlink family.
///
/// Blocking. All protocol state (sequence numbers, pending acks) is here, not in the
/// socket, so the same logic can later be driven from an event loop.
#[derive(Debug)]
pub struct Client {
    sock: NetlinkSocket,
    family: u16,
    seq: u32,
    rbuf: Vec<u8>,
    sbuf: Vec<u8>,
    window: usize,
    max_datagram: usize,
}

fn io_err(op: Operation) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, source }
}

fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl Client {
    /// Opens a socket and resolves the "IPVS" family with default options.
    ///
    /// Fails with [`Error::Unavailable`] when the kernel has no IPVS (the controller
    /// autoloads `ip_vs` where module loading works).
    pub fn connect() -> Result<Client, Error> {
        Client::connect_with(ClientOptions::default())
    }

    /// As [`Client::connect`], with options.
    pub fn connect_with(options: ClientOptions) -> Result<Client, Error> {
        let sock = NetlinkSocket::open().map_err(io_err(Operation::Open))?;
        sock.set_read_timeout(Some(options.read_timeout))
            .map_err(io_err(Operation::Open))?;
        let rcvbuf = sock
            .set_buffers(options.socket_buffer)
            .map_err(io_err(Operation::Open))?;
        let sndbuf = sock.send_buffer().map_err(io_err(Operation::Open))?;
        let window = options.window.unwrap_or(rcvbuf / ACK_COST).clamp(1, 4096);
        // netlink_sendmsg refuses a datagram longer than sk_sndbuf - 32; a datagram may
        // overshoot this cap by one request (a few hundred bytes).
        let max_datagram = (sndbuf / 2).clamp(512, 256 * 1024);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        let mut client = Client {
            sock,
            family: 0,
            seq: seed | 1,
            rbuf: Vec::with_capacity(RECV_BUF),
            sbuf: Vec::with_capacity(max_datagram),
            window,
            max_datagram,
        };
        client.family = client.resolve_family()?;
        Ok(client)
    }

    /// The generic-netlink family id the kernel gave "IPVS".
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// Most requests [`Client::apply`] keeps in flight.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The underlying socket (for its fd, or to tune it).
    pub fn socket(&self) -> &NetlinkSocket {
        &self.sock
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let op = Operation::ResolveFamily;
        let seq = self.next_seq();
        self.sbuf.clear();
        netlink::encode_get_family(&mut self.sbuf, seq, IPVS_GENL_NAME);
        self.sock.send(&self.sbuf).map_err(io_err(op.clone()))?;
        let mut id = None;
        loop {
            self.sock
                .recv(&mut self.rbuf, false)
                .map_err(io_err(op.clone()))?;
            for m in netlink::messages(&self.rbuf) {
                let m = m.map_err(|source| Error::Decode {
                    op: op.clone(),
                    source,
                })?;
                if m.header().seq != seq {
                    continue;
                }
                match m {
                    Message::Data {
                        header, cmd, attrs, ..
                    } if header.msg_type == netlink::GENL_ID_CTRL
                        && cmd == netlink::CTRL_CMD_NEWFAMILY =>
                    {
                        let f = netlink::decode_family(attrs).map_err(|source| Error::Decode {
                            op: op.clone(),
                            source,
                        })?;
                        id = Some(f.id);
                    }
                    Message::Error { errno: 0, .. } => {
                        return id.ok_or(Error::Decode {
                            op,
                            source: DecodeError::MissingAttr {
                                what: "CTRL_CMD_NEWFAMILY reply",
                            },
                        });
                    }
                    Message::Error { errno, .. } if errno == libc::ENOENT => {
                        return Err(Error::Unavailable);
                    }
                    Message::Error { errno, ext_ack, .. } => {
                        return Err(Error::Kernel {
                            op,
                            errno: Errno(errno),
                            message: ext_ack.message,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends one request and collects its replies: data messages until the ack (or, for a
    /// dump, until `NLMSG_DONE`). `dest_family` is passed to the destination decoder.
    fn exec(&mut self, req: &Request, dest_family: Family) -> Result<Vec<Reply>, Error> {
        let mut attempt = 0;
        loop {
            match self.exec_once(req, dest_family)? {
                Some(replies) => return Ok(replies),
                None if attempt < DUMP_RETRIES => attempt += 1,
                None => {
                    return Err(Error::DumpInterrupted {
                        op: req.operation(),
                    });
                }
            }
        }
    }

    /// `Ok(None)`: the dump was interrupted and should be retried.
    fn exec_once(
        &mut self,
        req: &Request,
        dest_family: Family,
    ) -> Result<Option<Vec<Reply>>, Error> {
        let op = req.operation();
        let seq = self.next_seq();
        self.sbuf.clear();
        req.encode(self.family, seq, &mut self.sbuf)
            .map_err(|source| Error::Encode {
                op: op.clone(),
                source,
            })?;
        self.sock.send(&self.sbuf).map_err(io_err(op.clone()))?;
        let dump = req.is_dump();
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            self.sock
                .recv(&mut self.rbuf, false)
                .map_err(io_err(op.clone()))?;
            for m in netlink::messages(&self.rbuf) {
                let m = m.map_err(|source| Error::Decode {
                    op: op.clone(),
                    source,
                })?;
                let h = *m.header();
                if h.seq != seq {
                    continue; // a stale answer to an earlier, abandoned request
                }
                if h.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match m {
                    Message::Data {
                        header, cmd, attrs, ..
                    } if header.msg_type == self.family => {
                        let r = codec::decode_reply(cmd, attrs, dest_family).map_err(|source| {
                            Error::Decode {
                                op: op.clone(),
                                source,
                            }
                        })?;
                        replies.push(r);
                    }
                    Message::Error { errno: 0, .. } if !dump => return Ok(Some(replies)),
                    Message::Done { errno: 0, .. } if dump => {
                        return Ok(if interrupted { None } else { Some(replies) });
                    }
                    Message::Error { errno, ext_ack, .. }
                    | Message::Done { errno, ext_ack, .. }
                        if errno != 0 =>
                    {
                        return Err(Error::Kernel {
                            op,
                            errno: Errno(errno),
                            message: ext_ack.message,
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    fn exec_ack(&mut self, req: &Request) -> Result<(), Error> {
        self.exec(req, Family::Inet).map(drop)
    }

    fn unexpected(op: Operation, what: &str) -> Error {
        Error::Decode {
            op,
            source: DecodeError::Unexpected {
                what: what.to_owned(),
            },
        }
    }

    /// `IPVS_CMD_GET_INFO`: version and connection-table size.
    pub fn info(&mut self) -> Result<Info, Error> {
        let replies = self.exec(&Request::GetInfo, Family::Inet)?;
        match replies.into_iter().next() {
            Some(Reply::Info(i)) => Ok(i),
            _ => Err(Self::unexpected(
                Operation::GetInfo,
                "no IPVS_CMD_SET_INFO reply",
            )),
        }
    }

    /// All services with their statistics (`IPVS_CMD_GET_SERVICE` dump).
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        let replies = self.exec(&Request::ListServices, Family::Inet)?;
        let mut out = Vec::with_capacity(replies.len());
        for r in replies {
            match r {
                Reply::Service(s) => out.push(s),
                _ => {
                    return Err(Self::unexpected(
                        Operation::ListServices,
                        "a non-service reply",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// One service (`IPVS_CMD_GET_SERVICE`). A missing service is a
    /// [`Error::Kernel`] with `ESRCH`.
    pub fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, Error> {
        let replies = self.exec(&Request::GetService(*key), key.family())?;
        match replies.into_iter().next() {
            Some(Reply::Service(s)) => Ok(s),
            _ => Err(Self::unexpected(
                Operation::GetService(*key),
                "no IPVS_CMD_NEW_SERVICE reply",
            )),
        }
    }

    /// Adds a service (`EEXIST` if it exists; `ENOENT` for an unknown scheduler).
    pub fn add_service(&mut self, service: &Service) -> Result<(), Error> {
        self.exec_ack(&Request::AddService(service.clone()))
    }

    /// Replaces a service's settings (`ESRCH` if it does not exist).
    pub fn update_service(&mut self, service: &Service) -> Result<(), Error> {
        self.exec_ack(&Request::UpdateService(service.clone()))
    }

    /// Deletes a service and its destinations (`ESRCH` if it does not exist).
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        self.exec_ack(&Request::DeleteService(*key))
    }

    /// The destinations of a service (`IPVS_CMD_GET_DEST` dump). Note: for a service
    /// that does not exist the kernel ends the dump without an error, so this returns an
    /// empty list.
    pub fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, Error> {
        let replies = self.exec(&Request::ListDestinations(*service), service.family())?;
        let mut out = Vec::with_capacity(replies.len());
        for r in replies {
            match r {
                Reply::Destination(d) => out.push(d),
                _ => {
                    return Err(Self::unexpected(
                        Operation::ListDestinations(*service),
                        "a non-destination reply",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Adds a destination (`EEXIST` if present, `ESRCH` if the service is missing).
    pub fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        self.exec_ack(&Request::AddDestination(*service, destination.clone()))
    }

    /// Replaces a destination's settings (`ENOENT` if it is missing).
    pub fn update_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), Error> {
        self.exec_ack(&Request::UpdateDestination(*service, destination.clone()))
    }

    /// Deletes a destination (`ENOENT` if it is missing, `ESRCH` if the service is).
    pub fn delete_destination(
        &mut self,
        service: &ServiceKey,
        destination: &DestinationKey,
    ) -> Result<(), Error> {
        self.exec_ack(&Request::DeleteDestination(*service, *destination))
    }

    /// Zeroes the counters of one service, or of all services with `None`.
    pub fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), Error> {
        self.exec_ack(&Request::Zero(service.copied()))
    }

    /// Deletes **every** service and destination in this network namespace, including
    /// ones vigil did not create (kube-proxy's, an operator's `ipvsadm` entries). Meant
    /// for tests and explicit operator commands, never for reconciliation.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.exec_ack(&Request::Flush)
    }

    /// The running sync daemons (none, master, backup, or both).
    pub fn sync_daemons(&mut self) -> Result<Vec<SyncDaemon>, Error> {
        let replies = self.exec(&Request::ListSyncDaemons, Family::Inet)?;
        let mut out = Vec::with_capacity(replies.len());
        for r in replies {
            match r {
                Reply::SyncDaemon(d) => out.push(d),
                _ => {
                    return Err(Self::unexpected(
                        Operation::ListSyncDaemons,
                        "a non-daemon reply",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Starts a sync daemon (`EEXIST` if one in that role runs).
    pub fn start_sync_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), Error> {
        self.exec_ack(&Request::StartSyncDaemon(daemon.clone()))
    }

    /// Stops the sync daemon in `state` (`ESRCH` if none runs).
    pub fn stop_sync_daemon(&mut self, state: SyncState) -> Result<(), Error> {
        self.exec_ack(&Request::StopSyncDaemon(state))
    }

    /// The TCP, TCP-FIN and UDP timeouts.
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let replies = self.exec(&Request::GetTimeouts, Family::Inet)?;
        match replies.into_iter().next() {
            Some(Reply::Timeouts(t)) => Ok(t),
            _ => Err(Self::unexpected(
                Operation::GetTimeouts,
                "no IPVS_CMD_SET_CONFIG reply",
            )),
        }
    }

    /// Sets the timeouts; a 0 field leaves that timeout unchanged.
    pub fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        self.exec_ack(&Request::SetTimeouts(*timeouts))
    }

    /// Pipelined writes: sends the requests in windows of [`Client::window`] (each with
    /// its own sequence number and `NLM_F_ACK`, many per datagram) and matches the acks
    /// by sequence number. Returns one result per request, in order.
    ///
    /// The kernel processes every request, in order, whatever happened to the ones before
    /// (a failed add does not stop the next one). Dumps cannot be batched (they get an
    /// `Encode` error); replies of `Get*` requests are discarded. The outer error is only
    /// for a socket that stopped working.
    ///
    /// Should the receive buffer overflow anyway (`ENOBUFS`), the affected requests get
    /// [`Error::AckLost`]: processed, outcome unknown.
    pub fn apply(&mut self, requests: &[Request]) -> Result<Vec<Result<(), Error>>, Error> {
        let mut results: Vec<Option<Result<(), Error>>> = Vec::with_capacity(requests.len());
        results.resize_with(requests.len(), || None);
        let mut pending: HashMap<u32, usize> = HashMap::with_capacity(self.window);
        let mut next = 0;
        while next < requests.len() {
            self.sbuf.clear();
            pending.clear();
            while next < requests.len()
                && pending.len() < self.window
                && self.sbuf.len() < self.max_datagram
            {
                let req = &requests[next];
                if req.is_dump() {
                    results[next] = Some(Err(Error::Encode {
                        op: req.operation(),
                        source: EncodeError::NotBatchable,
                    }));
                } else {
                    let seq = self.next_seq();
                    match req.encode(self.family, seq, &mut self.sbuf) {
                        Ok(()) => {
                            pending.insert(seq, next);
                        }
                        Err(source) => {
                            results[next] = Some(Err(Error::Encode {
                                op: req.operation(),
                                source,
                            }));
                        }
                    }
                }
                next += 1;
            }
            if pending.is_empty() {
                continue;
            }
            if let Err(e) = self.sock.send(&self.sbuf) {
                for (_, idx) in pending.drain() {
                    results[idx] = Some(Err(Error::Io {
                        op: requests[idx].operation(),
                        source: copy_io_error(&e),
                    }));
                }
                continue;
            }
            self.collect_acks(requests, &mut pending, &mut results)?;
        }
        Ok(results
            .into_iter()
            .zip(requests)
            .map(|(r, req)| {
                r.unwrap_or_else(|| {
                    Err(Error::AckLost {
                        op: req.operation(),
                    })
                })
            })
            .collect())
    }

    fn collect_acks(
        &mut self,
        requests: &[Request],
        pending: &mut HashMap<u32, usize>,
        results: &mut [Option<Result<(), Error>>],
    ) -> Result<(), Error> {
        let mut overflowed = false;
        while !pending.is_empty() {
            // Netlink requests to the kernel are processed inside sendmsg(), so once the
            // send returned every ack is queued or was dropped: after an overflow, drain
            // what is there without waiting.
            match self.sock.recv(&mut self.rbuf, overflowed) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    overflowed = true;
                    continue;
                }
                Err(e) if overflowed && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    let op = pending
                        .values()
                        .min()
                        .map(|i| requests[*i].operation())
                        .unwrap_or(Operation::Open);
                    return Err(Error::Io { op, source: e });
                }
            }
            for m in netlink::messages(&self.rbuf) {
                let m = match m {
                    Ok(m) => m,
                    Err(source) => {
                        let op = pending
                            .values()
                            .min()
                            .map(|i| requests[*i].operation())
                            .unwrap_or(Operation::Open);
                        return Err(Error::Decode { op, source });
                    }
                };
                if let Message::Error {
                    header,
                    errno,
                    ext_ack,
                } = m
                    && let Some(idx) = pending.remove(&header.seq)
                {
                    results[idx] = Some(if errno == 0 {
                        Ok(())
                    } else {
                        Err(Error::Kernel {
                            op: requests[idx].operation(),
                            errno: Errno(errno),
                            message: ext_ack.message,
                        })
                    });
                }
            }
        }
        for (_, idx) in pending.drain() {
            results[idx] = Some(Err(Error::AckLost {
                op: requests[idx].operation(),
            }));
        }
        Ok(())
    }
}
