//! Running a program of the nftables datapath (`nft` here, `conntrack` in vigild) with a
//! time limit: stdin is fed and the output pipes drained on threads of their own (a
//! transaction of megabytes cannot deadlock on a full pipe), and the child is killed
//! when it overruns.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a running child is looked at.
const POLL: Duration = Duration::from_millis(2);

/// A program that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// What it wrote to stdout, when the command piped it (empty otherwise).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a program has no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// Waiting for it failed.
    #[error("{program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    /// It did not finish within `after` and was killed.
    #[error("{program} timed out after {after:?}")]
    Timeout { program: String, after: Duration },
}

/// Runs `cmd` with `input` on its stdin (none: `/dev/null`) and its stderr captured;
/// stdout as `cmd` has it (captured when piped). Killed after `timeout`.
pub fn run(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
    let writer = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut stdin)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Timeout {
                    program,
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(source) => return Err(RunError::Wait { program, source }),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(Finished {
        status,
        stdout: joined(stdout),
        stderr: joined(stderr),
    })
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = p.read_to_end(&mut b);
            b
        })
    })
}

fn joined(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn feeds_stdin_and_captures_what_was_piped() {
        let mut c = sh("cat; echo oops >&2; exit 3");
        c.stdout(Stdio::piped());
        let done = run(&mut c, Some(b"table"), Duration::from_secs(10)).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"table");
        assert_eq!(done.stderr, b"oops\n");
        let mut c = sh("echo out; echo err >&2");
        c.stdout(Stdio::null());
        let done = run(&mut c, None, Duration::from_secs(10)).unwrap();
        assert!(done.status.success());
        assert_eq!(
            (done.stdout.as_slice(), done.stderr.as_slice()),
            (&b""[..], &b"err\n"[..])
        );
    }

    #[test]
    fn an_overrun_is_killed_and_a_missing_program_named() {
        let started = Instant::now();
        // `exec`: the shell becomes the sleep, so the kill leaves no grandchild holding
        // stderr open for 10 s after the test.
        let err = run(&mut sh("exec sleep 10"), None, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.to_string(), "sh timed out after 100ms");
        let err = run(
            &mut Command::new("/nonexistent/nft"),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cannot run /nonexistent/nft: "),
            "{err}"
        );
    }
}
