//! The I/O shell: runs the `nft` program (its JSON interface) with a timeout
//! ([`crate::program`]).

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::diff::{Batch, describe, document_of};
use crate::error::Error;
use crate::model::{FAMILY, TABLE};
use crate::program::{self, RunError};

/// Above this many commands a refused batch is not searched for the failing command:
/// each `nft -c` of a prefix costs as much as the batch (seconds for a whole large table).
pub const BISECT_MAX_COMMANDS: usize = 5_000;

/// How to run `nft`.
#[derive(Debug, Clone)]
pub struct Nft {
    argv: Vec<OsString>,
    timeout: Duration,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft::new()
    }
}

struct Ran {
    ok: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: String,
}

impl Nft {
    /// `nft` from `PATH`, 30 s timeout.
    pub fn new() -> Nft {
        Nft::with_command(["nft"])
    }

    /// Another command line in front of nft's own arguments, e.g. `["ip", "netns",
    /// "exec", "lab-lb", "nft"]`.
    pub fn with_command<I, S>(argv: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Nft {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets the time after which nft is killed.
    pub fn timeout(mut self, timeout: Duration) -> Nft {
        self.timeout = timeout;
        self
    }

    fn run(&self, what: &'static str, args: &[&str], input: Option<&[u8]>) -> Result<Ran, Error> {
        let mut cmd = Command::new(self.argv.first().cloned().unwrap_or_default());
        cmd.args(self.argv.iter().skip(1))
            .args(args)
            .stdout(Stdio::piped());
        let done = program::run(&mut cmd, input, self.timeout).map_err(|e| match e {
            RunError::Spawn { program, source } | RunError::Wait { program, source } => {
                Error::Spawn { program, source }
            }
            RunError::Timeout { after, .. } => Error::Timeout { what, after },
        })?;
        Ok(Ran {
            ok: done.status.success(),
            status: done.status.to_string(),
            stdout: done.stdout,
            stderr: String::from_utf8_lossy(&done.stderr).trim().to_owned(),
        })
    }

    /// `nft -j list table inet vigil`; `None` if there is no such table.
    pub fn list(&self) -> Result<Option<Value>, Error> {
        let ran = self.run("listing", &["-j", "list", "table", FAMILY, TABLE], None)?;
        if !ran.ok {
            if ran.stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(Error::Nft {
                what: "listing",
                status: ran.status,
                stderr: ran.stderr,
                object: None,
            });
        }
        serde_json::from_slice(&ran.stdout)
            .map(Some)
            .map_err(|e| Error::Listing(e.to_string()))
    }

    /// Applies a batch as one transaction (`nft -j -f -`), then its clean-up
    /// ([`Batch::after`]) as a second one. If nft refuses one, finds the
    /// first command it refuses (`nft -c` on prefixes of the batch, a binary search) and
    /// names it in the error: nft's own message for JSON input has no position. Batches
    /// above [`BISECT_MAX_COMMANDS`] are reported without it.
    pub fn apply(&self, batch: &Batch) -> Result<(), Error> {
        self.transaction(&batch.commands)?;
        self.transaction(&batch.after)
    }

    fn transaction(&self, commands: &[Value]) -> Result<(), Error> {
        if commands.is_empty() {
            return Ok(());
        }
        let doc = document_of(commands);
        let ran = self.run("applying", &["-j", "-f", "-"], Some(doc.as_bytes()))?;
        if ran.ok {
            return Ok(());
        }
        if commands.len() > BISECT_MAX_COMMANDS {
            return Err(Error::Nft {
                what: "applying",
                status: ran.status,
                stderr: ran.stderr,
                object: None,
            });
        }
        let object = first_failing(commands.len(), |n| {
            let prefix = document_of(&commands[..n]);
            self.run(
                "checking",
                &["-c", "-j", "-f", "-"],
                Some(prefix.as_bytes()),
            )
            .ok()
            .map(|r| !r.ok)
        })
        .and_then(|i| commands.get(i))
        .map(describe);
        Err(Error::Nft {
            what: "applying",
            status: ran.status,
            stderr: ran.stderr,
            object,
        })
    }
}

/// The index of the first command whose prefix fails, given `fails(n)` for the first `n`
/// commands (`None`: could not tell). Assumes a failing prefix stays failing when it
/// grows, which holds for a batch whose every prefix is a valid batch.
pub fn first_failing(len: usize, mut fails: impl FnMut(usize) -> Option<bool>) -> Option<usize> {
    if fails(len)? {
        let (mut ok, mut bad) = (0usize, len);
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if fails(mid)? {
                bad = mid;
            } else {
                ok = mid;
            }
        }
        Some(bad - 1)
    } else {
        None
    }
}
