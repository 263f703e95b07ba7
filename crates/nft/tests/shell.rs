//! The nft shell's timeout and errors, with stand-in programs in place of `nft` (no root
//! needed): the shell appends nft's arguments, which `sh -c SCRIPT sh` ignores.

#![allow(clippy::unwrap_used)] // a test: it panics on what it set up itself

use std::time::{Duration, Instant};

use serde_json::json;
use vigil_nft::{Batch, Error, Nft};

fn fake(script: &str) -> Nft {
    Nft::with_command(["sh", "-c", script, "sh"])
}

fn batch() -> Batch {
    Batch {
        commands: vec![json!({"add": {"table": {"family": "inet", "name": "vigil"}}})],
        after: Vec::new(),
        full: true,
        services_changed: 0,
    }
}

#[test]
fn a_hanging_nft_is_killed_at_the_timeout() {
    let nft = fake("exec sleep 30").timeout(Duration::from_millis(200));
    let start = Instant::now();
    let err = nft.list().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                what: "listing",
                ..
            }
        ),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        err.to_string().contains("did not finish within 200ms"),
        "{err}"
    );
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = Nft::with_command(["/nonexistent/nft"]).list().unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(
        err.to_string().starts_with("cannot run /nonexistent/nft"),
        "{err}"
    );
}

#[test]
fn no_table_lists_as_none_and_other_failures_are_errors() {
    let absent = fake("echo 'Error: No such file or directory' >&2; exit 1");
    assert!(absent.list().unwrap().is_none());
    let denied = fake("echo 'Error: Operation not permitted' >&2; exit 1");
    let err = denied.list().unwrap_err();
    assert!(err.to_string().contains("Operation not permitted"), "{err}");
    let garbage = fake("echo not json");
    assert!(matches!(garbage.list().unwrap_err(), Error::Listing(_)));
}

#[test]
fn a_refused_batch_names_the_command_nft_refuses() {
    // Refuses any input that mentions "vigil"; reads its stdin like nft -f -.
    let nft = fake("if grep -q vigil; then echo 'Error: refused' >&2; exit 1; fi");
    let err = nft.apply(&batch()).unwrap_err();
    let Error::Nft { object, stderr, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(stderr, "Error: refused");
    assert_eq!(object.as_deref(), Some("add table vigil"));
    // An empty batch runs nothing.
    fake("exit 1").apply(&Batch::default()).unwrap();
}
