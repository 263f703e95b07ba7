//! The delegated cgroup (v2): detection at start, one cgroup per child, `cgroup.kill`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Children's cgroups are named `vigil-child-N` under the daemon's own cgroup.
const PREFIX: &str = "vigil-child-";

/// Where the cgroup2 hierarchy is mounted, from /proc/self/mountinfo.
pub(crate) fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mount = f.next()?;
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape(mount)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The process's cgroup v2 path (`0::/path`) from /proc/self/cgroup.
pub(crate) fn own_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access on a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn delegate_xattr(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let Ok(n) = CString::new(*name) else {
            return false;
        };
        let mut v = [0u8; 4];
        // SAFETY: getxattr into a buffer of the given size.
        let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        r >= 1 && v[0] == b'1'
    })
}

/// The daemon's cgroup, when it was delegated to it: not the root of the hierarchy, and
/// either marked delegated by systemd (the `trusted.delegate`/`user.delegate` xattr) or
/// writable by a non-root daemon (only a delegation makes it so). `Err` says why not.
pub(crate) fn detect() -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup2 hierarchy is mounted")?;
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own_path(&cgroup).ok_or("the process is in no cgroup v2")?;
    if own == "/" {
        return Err("the process is in the root cgroup (not delegated)".into());
    }
    let dir = mount.join(own.trim_start_matches('/'));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let delegated =
        delegate_xattr(&dir) || (!root && writable(&dir) && writable(&dir.join("cgroup.procs")));
    if !delegated {
        return Err(format!(
            "cgroup {} is not delegated to vigild (systemd: Delegate=yes)",
            dir.display()
        ));
    }
    Ok(dir)
}

/// The delegated cgroup children are placed under.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) dir: PathBuf,
}

impl Base {
    /// Makes `dir` usable: moves the daemon into `dir/main` when controllers are enabled
    /// below `dir` (cgroup v2 lets no process sit beside child cgroups then), removes
    /// children's cgroups left by an earlier run, and proves a child cgroup can be made.
    pub(crate) fn set_up(dir: PathBuf) -> Result<Base, String> {
        let controllers =
            fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if !controllers.trim().is_empty() {
            let main = dir.join("main");
            match fs::create_dir(&main) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", main.display())),
            }
            fs::write(main.join("cgroup.procs"), std::process::id().to_string())
                .map_err(|e| format!("cannot move vigild into {}: {e}", main.display()))?;
        }
        let base = Base { dir };
        if let Ok(entries) = fs::read_dir(&base.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(PREFIX) {
                    let _ = kill(&e.path());
                    for _ in 0..100 {
                        if remove(&e.path()) {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        }
        let probe = base.dir.join(format!("{PREFIX}probe"));
        fs::create_dir(&probe)
            .map_err(|e| format!("cannot create a cgroup under {}: {e}", base.dir.display()))?;
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(probe.join("cgroup.procs"));
        let kill_file = probe.join("cgroup.kill").exists();
        let _ = fs::remove_dir(&probe);
        procs.map_err(|e| format!("cannot open a child cgroup's cgroup.procs: {e}"))?;
        if !kill_file {
            return Err("the kernel has no cgroup.kill (Linux 5.14 or later)".into());
        }
        Ok(base)
    }

    /// A new cgroup for child `id` and its `cgroup.procs`, opened for the child to join.
    pub(crate) fn create(&self, id: u64) -> io::Result<(PathBuf, OwnedFd)> {
        let dir = self.dir.join(format!("{PREFIX}{id}"));
        fs::create_dir(&dir)?;
        match fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(f) => Ok((dir, f.into())),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}

/// Kills every process in the cgroup, whatever its uid and however it detached.
pub(crate) fn kill(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("cgroup.kill"), "1")
}

/// Removes an emptied cgroup; `false` while processes are still dying in it.
pub(crate) fn remove(dir: &Path) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_and_own_path() {
        let mountinfo = "25 1 0:23 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("1 0 0:1 / /my\\040cg rw - cgroup2 cgroup2 rw\n"),
            Some(PathBuf::from("/my cg"))
        );
        assert_eq!(cgroup2_mount("1 0 0:1 / /x rw - ext4 /dev/sda rw\n"), None);
        let proc_cgroup = "4:memory:/x\n0::/system.slice/vigild.service\n";
        assert_eq!(
            own_path(proc_cgroup).as_deref(),
            Some("/system.slice/vigild.service")
        );
    }
}
