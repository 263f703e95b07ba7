//! Link state followed from `RTNLGRP_LINK` events.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use netlink_packet_core::NLM_F_DUMP_INTR;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::Error;
use crate::codec::{self, Link, Reply};
use crate::route::{open_socket, receive};

/// `RTNLGRP_LINK` (linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;

/// Every link's last known state, by name. Pure: fed the messages of a dump and of
/// events in the order the kernel sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTable {
    by_name: HashMap<String, Link>,
}

impl LinkTable {
    /// Applies one routing message; `true` when it changed a link's state. A link renamed
    /// or re-created under another index replaces its old entry.
    pub fn apply(&mut self, message: &RouteNetlinkMessage) -> bool {
        match message {
            RouteNetlinkMessage::NewLink(m) => {
                let link = codec::link(m);
                if link.name.is_empty() {
                    return false;
                }
                // A rename leaves the old name behind under the same index.
                let before = self.by_name.len();
                self.by_name
                    .retain(|name, l| l.index != link.index || *name == link.name);
                let renamed = self.by_name.len() != before;
                let old = self.by_name.insert(link.name.clone(), link.clone());
                renamed || old.as_ref() != Some(&link)
            }
            RouteNetlinkMessage::DelLink(m) => {
                let index = m.header.index;
                let before = self.by_name.len();
                self.by_name.retain(|_, l| l.index != index);
                self.by_name.len() != before
            }
            _ => false,
        }
    }

    /// The link called `name`, if the kernel has one.
    pub fn get(&self, name: &str) -> Option<&Link> {
        self.by_name.get(name)
    }

    /// Whether `name` is up with carrier; a link that does not exist is not.
    pub fn is_running(&self, name: &str) -> bool {
        self.get(name).is_some_and(Link::is_running)
    }
}

/// A subscription to link events with the table they keep up to date. The first dump
/// and the events share one socket, so they are read in the kernel's order and a late
/// event never overwrites a newer dump entry.
#[derive(Debug)]
pub struct LinkWatch {
    fd: AsyncFd<Socket>,
    table: LinkTable,
    buf: Vec<u8>,
    /// The dump in progress, if one is: its sequence number and the table it builds
    /// (events read meanwhile go into it too, in order), which replaces the old one whole
    /// when it ends, so links deleted while events were lost go too.
    dumping: Option<(u32, LinkTable)>,
    seq: u32,
}

impl LinkWatch {
    /// Subscribes to `RTNLGRP_LINK` and reads every link's state once. Must be called
    /// inside a tokio runtime.
    pub async fn open() -> Result<Self, Error> {
        let socket = open_socket("opening a link event socket")?;
        socket
            .add_membership(RTNLGRP_LINK)
            .map_err(|source| Error::Socket {
                op: "joining RTNLGRP_LINK",
                source,
            })?;
        socket
            .set_non_blocking(true)
            .map_err(|source| Error::Socket {
                op: "making the link event socket non-blocking",
                source,
            })?;
        // SAFETY: the Socket owns its descriptor for as long as the AsyncFd holds it, and
        // its as_raw_fd always returns that same descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }.map_err(
            |e| Error::Socket {
                op: "registering the link event socket",
                source: e.into_parts().1,
            },
        )?;
        let mut watch = Self {
            fd,
            table: LinkTable::default(),
            buf: Vec::with_capacity(64 * 1024),
            dumping: None,
            seq: 0,
        };
        watch.start_dump()?;
        while watch.dumping.is_some() {
            watch.changed().await?;
        }
        Ok(watch)
    }

    /// The links as last reported.
    pub fn table(&self) -> &LinkTable {
        &self.table
    }

    /// Waits until the kernel reports a change of some link (or a dump entry differing
    /// from what was known) and applies it. Cancel-safe: a datagram is read and applied
    /// without an await between the two.
    pub async fn changed(&mut self) -> Result<(), Error> {
        loop {
            let mut guard = self.fd.readable().await.map_err(|source| Error::Socket {
                op: "waiting for link events",
                source,
            })?;
            let socket = self.fd.get_ref();
            match receive(socket, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(()) => {}
                Err(Error::Socket { source, .. })
                    if source.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    guard.clear_ready();
                    continue;
                }
                // Events were dropped (the socket's buffer overflowed): read the whole
                // table again rather than trust it.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.start_dump()?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            drop(guard);
            // A finished dump counts as a change: it may have replaced stale entries.
            let mut changed = false;
            let mut redo = false;
            for (seq, flags, reply) in codec::replies(&self.buf) {
                match (reply, &mut self.dumping) {
                    (Reply::Message(m), Some((_, fresh))) => {
                        fresh.apply(&m);
                    }
                    (Reply::Message(m), None) => changed |= self.table.apply(&m),
                    // A dump the kernel marks inconsistent (links changed while it ran)
                    // or refuses is asked again.
                    (Reply::Done(0), Some((dump, fresh)))
                        if seq == *dump && flags & NLM_F_DUMP_INTR == 0 =>
                    {
                        self.table = std::mem::take(fresh);
                        self.dumping = None;
                        changed = true;
                    }
                    (Reply::Done(_) | Reply::Refused(_), Some((dump, _))) if seq == *dump => {
                        redo = true;
                    }
                    _ => {}
                }
            }
            if redo {
                self.start_dump()?;
            }
            if changed && self.dumping.is_none() {
                return Ok(());
            }
        }
    }

    fn start_dump(&mut self) -> Result<(), Error> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = codec::request(codec::dump_links(), codec::DUMP_FLAGS, self.seq);
        self.fd
            .get_ref()
            .send(&bytes, 0)
            .map_err(|source| Error::Socket {
                op: "asking for the links",
                source,
            })?;
        self.dumping = Some((self.seq, LinkTable::default()));
        Ok(())
    }
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

    use super::*;

    fn link(index: u32, name: &str, flags: LinkFlags) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m
    }

    #[test]
    fn table_follows_new_del_and_rename() {
        let mut t = LinkTable::default();
        let up = LinkFlags::Up | LinkFlags::Running;
        assert!(t.apply(&RouteNetlinkMessage::NewLink(link(3, "eth0", up))));
        assert!(t.is_running("eth0"));
        // The same state again is no change.
        assert!(!t.apply(&RouteNetlinkMessage::NewLink(link(3, "eth0", up))));
        // Carrier lost.
        assert!(t.apply(&RouteNetlinkMessage::NewLink(link(
            3,
            "eth0",
            LinkFlags::Up
        ))));
        assert!(!t.is_running("eth0"));
        // Renamed: the old name is gone.
        assert!(t.apply(&RouteNetlinkMessage::NewLink(link(3, "wan", up))));
        assert!(t.get("eth0").is_none());
        assert!(t.is_running("wan"));
        // Deleted.
        assert!(t.apply(&RouteNetlinkMessage::DelLink(link(3, "wan", up))));
        assert!(!t.is_running("wan"));
        assert!(!t.apply(&RouteNetlinkMessage::DelLink(link(3, "wan", up))));
    }

    /// Every namespace has `lo`; the first dump must find it.
    #[tokio::test]
    async fn first_dump_knows_loopback() {
        let watch = LinkWatch::open().await.unwrap();
        assert!(watch.table().get("lo").is_some());
    }
}
