//! Per-thread capability sets through capget/capset (version 3: 64 bits in two words).

use std::io;

const VERSION_3: u32 = 0x2008_0522;

pub(crate) const CAP_KILL: u32 = 5;
pub(crate) const CAP_SETGID: u32 = 6;
pub(crate) const CAP_SETUID: u32 = 7;
pub(crate) const CAP_SETPCAP: u32 = 8;

pub(crate) const fn bit(cap: u32) -> u64 {
    1u64 << cap
}

#[repr(C)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(crate) struct Data {
    pub(crate) effective: u32,
    pub(crate) permitted: u32,
    pub(crate) inheritable: u32,
}

/// One thread's three sets (ambient is read from /proc and changed with prctl).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sets {
    pub(crate) effective: u64,
    pub(crate) permitted: u64,
    pub(crate) inheritable: u64,
}

pub(crate) fn header() -> Header {
    Header {
        version: VERSION_3,
        pid: 0,
    }
}

/// The calling thread's sets.
pub(crate) fn get() -> io::Result<Sets> {
    let mut h = header();
    let mut d = [Data::default(); 2];
    // SAFETY: capget writes two `Data` words for version 3, which `d` holds.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(d[0].effective, d[1].effective),
        permitted: join(d[0].permitted, d[1].permitted),
        inheritable: join(d[0].inheritable, d[1].inheritable),
    })
}

/// Sets the calling thread's sets (only ever lowering them here).
pub(crate) fn set(s: Sets) -> io::Result<()> {
    let mut h = header();
    // Truncation is the point: the low and high words.
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(s.effective);
    let (p0, p1) = split(s.permitted);
    let (i0, i1) = split(s.inheritable);
    let d = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: capset reads two `Data` words for version 3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `mask` from the calling thread's effective, permitted and inheritable sets
/// (which lowers the ambient ones too); threads it creates later inherit the result.
pub(crate) fn drop_from_thread(mask: u64) -> io::Result<()> {
    let mut s = get()?;
    s.effective &= !mask;
    s.permitted &= !mask;
    s.inheritable &= !mask;
    set(s)
}

/// Keeps only `mask` in the calling thread's sets.
pub(crate) fn keep_only_in_thread(mask: u64) -> io::Result<()> {
    let mut s = get()?;
    s.effective &= mask;
    s.permitted &= mask;
    s.inheritable &= mask;
    set(s)
}

/// The highest capability number this kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_drops_capabilities_for_itself_only() {
        let before = get().expect("capget");
        let inner = std::thread::spawn(|| {
            drop_from_thread(bit(CAP_KILL)).expect("capset");
            get().expect("capget")
        })
        .join()
        .expect("thread");
        assert_eq!(inner.permitted & bit(CAP_KILL), 0);
        assert_eq!(inner.effective & bit(CAP_KILL), 0);
        assert_eq!(get().expect("capget"), before, "other threads keep theirs");
    }
}
