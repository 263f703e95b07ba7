//! Who is on the other end of a status socket connection, what they may do, and how many
//! connections and `events` subscriptions each may hold (docs/status-socket.md, "Who may
//! do what" and "Limits that protect the daemon").
//!
//! The decisions ([`Policy::is_admin`], [`Admission`]) are pure and unit-tested; reading
//! the peer's credentials off the socket ([`Peer::of`]) is the only I/O here.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use crate::state::Refusal;

/// Clients served at once (admins may use [`ADMIN_SLOTS`] more).
pub const MAX_CLIENTS: usize = 256;
/// Connections only root, the daemon's user and the admin group may take: a flood by
/// others never locks out `vigilctl` run by an admin.
pub const ADMIN_SLOTS: usize = 16;
/// Connections one non-admin uid may hold at once.
pub const MAX_PER_UID: usize = 32;
/// `events` and `vrrp-watch` streams at once (admins may use [`ADMIN_SUBSCRIBER_SLOTS`]
/// more).
pub const MAX_SUBSCRIBERS: usize = 64;
pub const ADMIN_SUBSCRIBER_SLOTS: usize = 8;

/// The credentials the kernel recorded when the peer connected (SO_PEERCRED and
/// SO_PEERGROUPS): they cannot be forged by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// SO_PEERGROUPS (Linux 4.13) as asm-generic numbers it; not every libc exports it.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

impl Peer {
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            groups: peer_groups(stream.as_raw_fd()),
        })
    }
}

/// The peer's supplementary groups; empty when the kernel cannot say (older than 4.13),
/// which only means membership by supplementary group is not recognised.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
fn peer_groups(fd: std::os::fd::RawFd) -> Vec<u32> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes; the kernel writes at most that
        // and sets `len` to the bytes written (or needed, with ERANGE).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return groups;
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && n > groups.len()
            && n <= 65_536
        {
            groups.resize(n, 0);
            continue;
        }
        return Vec::new();
    }
}

#[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
fn peer_groups(_fd: std::os::fd::RawFd) -> Vec<u32> {
    Vec::new()
}

/// Who may change things: root, the daemon's own user, and members of the admin group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub daemon_uid: u32,
    /// `director.status_socket_admin_group`: its name and gid.
    pub admin_group: Option<(String, u32)>,
}

impl Policy {
    pub fn is_admin(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.daemon_uid
            || self
                .admin_group
                .as_ref()
                .is_some_and(|(_, gid)| peer.gid == *gid || peer.groups.contains(gid))
    }

    /// What a refused write is told it needs.
    pub fn needs(&self, command: &str, peer: &Peer) -> String {
        let group = match &self.admin_group {
            Some((name, gid)) => format!(", or membership of group {name} (gid {gid})"),
            None => String::from(
                " (no director.status_socket_admin_group is set, so no group grants it)",
            ),
        };
        format!(
            "\"{command}\" changes the director and needs admin rights: root, the daemon's user (uid {}){group}; this connection is uid {} gid {}",
            self.daemon_uid, peer.uid, peer.gid
        )
    }
}

/// Connections and subscriptions held, by uid: decides whether one more may come in.
#[derive(Debug, Default)]
pub struct Admission {
    clients: usize,
    per_uid: HashMap<u32, usize>,
    subscribers: usize,
}

impl Admission {
    /// One more connection by `uid`: non-admins get one of the first [`MAX_CLIENTS`]
    /// slots and at most [`MAX_PER_UID`] each; admins any slot, reserved ones included.
    pub fn connect(&mut self, uid: u32, admin: bool) -> Result<(), Refusal> {
        if admin {
            if self.clients >= MAX_CLIENTS + ADMIN_SLOTS {
                return Err(Refusal::Clients);
            }
        } else {
            if self.clients >= MAX_CLIENTS {
                return Err(Refusal::Clients);
            }
            if self.per_uid.get(&uid).copied().unwrap_or(0) >= MAX_PER_UID {
                return Err(Refusal::PerUid);
            }
        }
        self.clients += 1;
        *self.per_uid.entry(uid).or_default() += 1;
        Ok(())
    }

    pub fn disconnect(&mut self, uid: u32) {
        self.clients = self.clients.saturating_sub(1);
        if let Some(n) = self.per_uid.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                self.per_uid.remove(&uid);
            }
        }
    }

    /// One more `events`/`vrrp-watch` stream, the same way.
    pub fn subscribe(&mut self, admin: bool) -> Result<(), Refusal> {
        let cap = MAX_SUBSCRIBERS + if admin { ADMIN_SUBSCRIBER_SLOTS } else { 0 };
        if self.subscribers >= cap {
            return Err(Refusal::Subscribers);
        }
        self.subscribers += 1;
        Ok(())
    }

    pub fn unsubscribe(&mut self) {
        self.subscribers = self.subscribers.saturating_sub(1);
    }

    pub fn clients(&self) -> usize {
        self.clients
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers
    }
}

/// What a refused connection or subscription is told.
pub fn refusal_message(refusal: Refusal, uid: u32) -> String {
    match refusal {
        Refusal::Clients => format!(
            "more than {MAX_CLIENTS} clients connected ({ADMIN_SLOTS} more are kept for admins); try again later"
        ),
        Refusal::PerUid => format!(
            "uid {uid} already holds {MAX_PER_UID} connections, the most one non-admin user may; close some"
        ),
        Refusal::Subscribers => format!(
            "{MAX_SUBSCRIBERS} clients already follow events ({ADMIN_SUBSCRIBER_SLOTS} more are kept for admins); try again later"
        ),
        other => format!("refused: {}", other.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(1),
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_the_daemon_user_and_the_admin_group_are_admins() {
        let policy = Policy {
            daemon_uid: 999,
            admin_group: Some(("vigil-admin".into(), 50)),
        };
        assert!(policy.is_admin(&peer(0, 0, &[])));
        assert!(policy.is_admin(&peer(999, 999, &[])));
        assert!(policy.is_admin(&peer(1000, 50, &[])), "primary group");
        assert!(policy.is_admin(&peer(1000, 100, &[7, 50])), "supplementary");
        assert!(!policy.is_admin(&peer(1000, 100, &[7])));
        let none = Policy {
            daemon_uid: 999,
            admin_group: None,
        };
        assert!(!none.is_admin(&peer(1000, 50, &[50])));
        assert!(
            none.needs("drain", &peer(1000, 100, &[]))
                .contains("uid 999")
        );
        assert!(
            policy
                .needs("drain", &peer(1000, 100, &[]))
                .contains("vigil-admin")
        );
    }

    #[test]
    fn one_uid_cannot_take_every_slot_and_admins_keep_theirs() {
        let mut a = Admission::default();
        for _ in 0..MAX_PER_UID {
            assert_eq!(a.connect(1000, false), Ok(()));
        }
        assert_eq!(a.connect(1000, false), Err(Refusal::PerUid));
        // Other users fill the rest of the shared slots...
        for uid in 0..(MAX_CLIENTS - MAX_PER_UID) as u32 {
            assert_eq!(a.connect(2000 + uid, false), Ok(()));
        }
        assert_eq!(a.connect(5000, false), Err(Refusal::Clients));
        // ...but admins still get in, up to the reserved slots.
        for _ in 0..ADMIN_SLOTS {
            assert_eq!(a.connect(0, true), Ok(()));
        }
        assert_eq!(a.connect(0, true), Err(Refusal::Clients));
        a.disconnect(1000);
        assert_eq!(a.clients(), MAX_CLIENTS + ADMIN_SLOTS - 1);
        // A slot freed by the flooding uid is its own again only below the shared cap.
        assert_eq!(a.connect(1000, false), Err(Refusal::Clients));
    }

    #[test]
    fn per_uid_counts_are_released() {
        let mut a = Admission::default();
        for _ in 0..MAX_PER_UID {
            a.connect(7, false).unwrap();
        }
        a.disconnect(7);
        assert_eq!(a.connect(7, false), Ok(()));
        for _ in 0..MAX_PER_UID {
            a.disconnect(7);
        }
        assert_eq!(a.clients(), 0);
        assert!(a.per_uid.is_empty());
    }

    #[test]
    fn subscribers_are_capped_with_room_for_admins() {
        let mut a = Admission::default();
        for _ in 0..MAX_SUBSCRIBERS {
            assert_eq!(a.subscribe(false), Ok(()));
        }
        assert_eq!(a.subscribe(false), Err(Refusal::Subscribers));
        for _ in 0..ADMIN_SUBSCRIBER_SLOTS {
            assert_eq!(a.subscribe(true), Ok(()));
        }
        assert_eq!(a.subscribe(true), Err(Refusal::Subscribers));
        a.unsubscribe();
        assert_eq!(a.subscribe(false), Err(Refusal::Subscribers));
        assert_eq!(
            a.subscribers(),
            MAX_SUBSCRIBERS + ADMIN_SUBSCRIBER_SLOTS - 1
        );
    }
}
