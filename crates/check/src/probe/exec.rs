//! exec: run a program directly (never through a shell) as an unprivileged user; exit 0
//! means up. It runs in a process group of its own so that on timeout the whole group,
//! children included, is killed.

use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, User};
use tokio::io::AsyncReadExt;

use super::Verdict;
use super::net::strip_os_error;
use crate::target::Target;

/// Deliberately small and fixed: the check must not depend on the daemon's environment.
/// Of a failing program's stderr, this much is kept (its first line goes in the reason).
const MAX_STDERR: usize = 1024;
const STDERR_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub(crate) struct ExecProbe {
    program: String,
    args: Vec<String>,
    user: String,
    uid: u32,
    gid: u32,
    env: Vec<(&'static str, String)>,
}

impl ExecProbe {
    pub(crate) fn new(target: &Target, command: &[String], user: &str) -> Result<Self, String> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| "exec check has an empty command".to_string())?;
        let account = User::from_name(user)
            .map_err(|e| format!("cannot look up user `{user}`: {e}"))?
            .ok_or_else(|| format!("user `{user}` does not exist"))?;
        let probe = target.probe_address();
        let env = vec![
            ("PATH", PATH.to_string()),
            ("VIGIL_VIRTUAL_SERVER", target.virtual_server.clone()),
            ("VIGIL_REAL_ADDRESS", target.key.real.ip().to_string()),
            ("VIGIL_REAL_PORT", target.key.real.port().to_string()),
            ("VIGIL_CHECK_ADDRESS", probe.ip().to_string()),
            ("VIGIL_CHECK_PORT", probe.port().to_string()),
        ];
        Ok(ExecProbe {
            program: program.clone(),
            args: args.to_vec(),
            user: user.to_string(),
            uid: account.uid.as_raw(),
            gid: account.gid.as_raw(),
            env,
        })
    }

    pub(crate) fn program(&self) -> &str {
        &self.program
    }

    pub(crate) fn timeout_reason(&self, within: &str) -> String {
        format!(
            "{} did not exit within {within}: its process group was killed",
            self.program
        )
    }

    pub(crate) async fn run(&self) -> Verdict {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // The first line of stderr goes into the reason of a failure.
            .stderr(Stdio::piped())
            // std drops the supplementary groups too when it changes the uid as root.
            .uid(self.uid)
            .gid(self.gid)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot run {} as user {}: {}",
                self.program,
                self.user,
                strip_os_error(&e)
            )
        })?;
        // Declared after `child`, so dropped before it: if this future is dropped (the
        // timeout), the group is killed while its leader is still unreaped, so the group
        // id cannot have been reused.
        let mut group = child.id().map(GroupKiller);
        let mut stderr = child.stderr.take();
        let mut said = Vec::new();
        let wait = child.wait();
        tokio::pin!(wait);
        let status = tokio::select! {
            biased;
            // Read while it runs, so a chatty program never blocks on a full pipe.
            () = read_capped(stderr.as_mut(), &mut said) => wait.await,
            status = &mut wait => status,
        };
        // Whatever it wrote just before exiting; a grandchild that keeps the pipe open
        // costs at most this grace.
        let _ = tokio::time::timeout(STDERR_GRACE, read_capped(stderr.as_mut(), &mut said)).await;
        let status = status.map_err(|e| {
            format!(
                "waiting for {} failed: {}",
                self.program,
                strip_os_error(&e)
            )
        });
        if let Some(g) = group.as_mut() {
            g.disarm();
        }
        let status = status?;
        let verdict = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(0), _) => return Ok(format!("{} exited 0", self.program)),
            (Some(code), _) => format!("{} exited with status {code}", self.program),
            (None, Some(signal)) => format!("{} was killed by signal {signal}", self.program),
            (None, None) => format!("{} ended abnormally", self.program),
        };
        match first_line(&said) {
            Some(line) => Err(format!("{verdict}: {line}")),
            None => Err(verdict),
        }
    }
}

/// Reads stderr up to the cap, then discards the rest until EOF.
async fn read_capped(stderr: Option<&mut tokio::process::ChildStderr>, said: &mut Vec<u8>) {
    let Some(stderr) = stderr else {
        return;
    };
    let mut chunk = [0u8; 256];
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = MAX_STDERR.saturating_sub(said.len());
                said.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The first non-empty line, trimmed and printable.
fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).take(160).collect())
}

/// Kills a process group when dropped, unless disarmed.
#[derive(Debug)]
struct GroupKiller(u32);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = 0;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0)
            && pgid > 1
        {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}
