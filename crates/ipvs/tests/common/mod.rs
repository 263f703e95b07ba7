//! Shared by the in-kernel test binaries: one table, one trial at a time.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use vigil_ipvs::Client;

static TABLE: Mutex<()> = Mutex::new(());

/// Serialises the trials and hands each a client on an empty table.
pub(crate) fn setup() -> (MutexGuard<'static, ()>, Client) {
    let guard = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut c = Client::connect().unwrap();
    c.flush().unwrap();
    (guard, c)
}

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
