//! Health checkers for vigil.
//!
//! Owns: probing real servers (TCP, HTTP/HTTPS, DNS, UDP, ICMP, SMTP, exec, file) and the
//! sans-IO scheduler that decides when each check runs and when a server goes up or down
//! (rise/fall hysteresis, retry delay, start spread), and the sans-IO [`Combiner`] that
//! makes one verdict (and a dynamic weight) of a real server's several checks.
//!
//! Must not: touch the kernel's tables (IPVS, addresses, routes) or know about VRRP. It only
//! reports health; `vigild` turns health into a desired IPVS table.
//!
//! # Pieces
//!
//! - [`Target`]: what to check, keyed by [`CheckKey`] = (virtual server [`ServiceKey`],
//!   real server address). The check itself is [`vigil_config::Check`], used as is.
//!   [`targets_from_config`] lists every check of a [`Config`].
//! - [`Scheduler`]: the pure core. `add`/`update`/`remove`/`set_targets` the checks,
//!   `poll(now)` for the [`Due`] ones, `on_result(key, run, outcome, now)` with each
//!   [`Outcome`], which returns a [`Transition`] when the health changes,
//!   `next_deadline()` to know when to poll again, `status(key)`/`statuses()` for the
//!   state. It reads no clock: tests drive it with made-up instants.
//! - [`Checker`]: the tokio shell. It owns a scheduler, runs each due probe as a task (at
//!   most [`CheckerOptions::max_in_flight`] at once), and sends a [`HealthEvent`] for every
//!   transition. By default it runs on a thread of its own with a single-threaded runtime
//!   ([`CheckerOptions::own_thread`]), so a check's wakeups never cross threads; at high
//!   check rates the checks are split by real server over several such threads
//!   ([`CheckerOptions::threads`], [`threads_for`]).
//! - [`run_once`]: every check once, now, for `vigild check-once`; [`format_table`]
//!   prints its results.
//!
//! # Wiring it into the daemon
//!
//! ```no_run
//! # async fn daemon(config: vigil_config::Config, reloaded: vigil_config::Config) -> Result<(), vigil_check::CheckerError> {
//! use vigil_check::{Checker, CheckerOptions, Health, targets_from_config};
//!
//! // Inside a tokio runtime with I/O and time enabled (2 workers recommended, see
//! // docs/benchmarks.md). Every check starts in its `initial_state` (visible in the
//! // snapshot at once); events report each check's first verdict (which may confirm the
//! // initial state) and every change after it.
//! let (checker, mut events) = Checker::spawn(targets_from_config(&config), CheckerOptions::default());
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         // event.key identifies (virtual server, real server); event.reason is for people:
//!         // "HTTP 503 from 10.0.0.11:80 GET /healthz".
//!         let weight_on = event.health == Health::Up;
//!         # let _ = weight_on;
//!     }
//! });
//! // On reload: unchanged checks keep their state and schedule; changed ones keep their
//! // health and restart counting; removed ones stop; new ones start in their initial state.
//! checker.update(targets_from_config(&reloaded))?;
//! // For the status socket / `vigilctl services` (serde::Serialize):
//! let snapshot = checker.snapshot().await?;
//! # let _ = snapshot;
//! # Ok(()) }
//! ```
//!
//! `vigild check-once FILE [--json]`: `run_once(&targets_from_config(&config), 256).await`
//! gives one [`OnceResult`] per check in file order (serialisable for `--json`);
//! [`format_table`] renders the table (virtual server, real server, check, verdict,
//! latency, reason).
//!
//! # Rules
//!
//! - A real server with several checks is up only when all are up, down as soon as one
//!   is down ([`Combiner`]); [`HealthEvent`]s are per real server, with the weight its
//!   dynamic checks give it. All checks of a real server run on one checker thread.
//! - A file check's file is watched with inotify (its directory, so a rename onto it is
//!   seen): a change makes the check due at once; its interval is the poll behind that.
//! - Health changes after `rise` passes in a row (down → up) or `fall` failures in a row
//!   (up → down); the transition carries the reason of the deciding result. A check's
//!   first verdict is reported too when it confirms the initial state (`rise` passes
//!   when initially up, `fall` failures when initially down), so the daemon can tell
//!   "checked and down" from "not yet checked".
//! - A check never overlaps itself: the next run is scheduled when the result is back,
//!   one interval after the previous run was *due* (so lateness does not accumulate), or
//!   at once if that is already past. After a failure while still up, `retry_delay`
//!   replaces the interval, so a real failure is confirmed quickly.
//! - A new check first runs at a uniformly random point of its `start_spread`.
//! - The [`Checker`] runs the checks due within [`CheckerOptions::batch_window`] (50 ms,
//!   at most 1/20 of the shortest interval) of a wakeup in that wakeup, up to that much
//!   early: one wakeup for many checks instead of one each. Lateness is unaffected and
//!   the schedule keeps its place (the next run is due one interval after this one was
//!   due).
//! - Every probe runs within the check's timeout on a fresh connection (its own
//!   handshake and source port; keeping connections open would hide a dead server). The
//!   TCP socket under it is reused between checks on the same thread, reset and emptied
//!   in between, because making and freeing sockets costs as much as the connection. A
//!   slow server costs its own check a timeout, never the scheduler.
//! - A check that cannot run on this system (unknown exec user, unreadable CA file) fails
//!   every run with that reason, so it shows in the status rather than in a log only.
//!
//! # Probes
//!
//! | kind | passes when | reasons look like |
//! | --- | --- | --- |
//! | tcp | connect (then `send`, and the reply matches `expect`) | `connect to 10.0.0.12:80 refused` |
//! | http/https | for each URL: status in `expect_status`, body matches `body_regex` (or not, `regex_no_match`) / `body_sha256` / `body_md5` (reading at most `max_body_bytes`) | `HTTP 503 from 10.0.0.11:80 GET /healthz` |
//! | dns | the real server answers the question asked with `expect_rcode` and all `expect_addresses` (UDP or TCP; no system resolver, no cache) | `DNS SERVFAIL for example.org A from 10.0.0.53:53` |
//! | udp | a reply arrives (matching `expect`), or with `require_reply = false` no ICMP port unreachable within the timeout; ICMP port unreachable is down | `UDP port 10.0.0.9:514 unreachable (ICMP port unreachable)` |
//! | icmp | an echo reply arrives (ping socket, raw socket if not allowed) | `no reply within 500ms (icmp 10.0.0.7)` |
//! | smtp | the greeting is 220 and `HELO helo_name` is answered 2xx (then `QUIT`) | `SMTP greeting from 10.0.0.25:25 is 554 (220 expected): no service` |
//! | exec | the program exits 0 (or 2–255 with `dynamic_weight`: weight = status − 2) | `/usr/lib/vigil/check-db exited with status 2` |
//! | file | the number in the file is 0 (non-zero with `reverse`), or with a `weight` the value × weight is added to the server's weight | `/run/web.down reads 1 (non-zero means down)` |
//!
//! A failure's reason is for people; beside it every failed [`Outcome`] carries a
//! [`FailureCause`] (`refused`, `timeout`, `http_status`, `dns_rcode`, ...), a closed set
//! that metrics and tables group by. The checker counts failures by kind and cause
//! ([`KindStats::failed_by_cause`]) and keeps each check's last failure
//! ([`CheckState::last_failure`]) after it passes again.
//!
//! HTTPS uses rustls with ring: verification is on unless `tls_verify = false`, against
//! `tls_ca_file` if given, else the Mozilla roots (webpki-roots) or, with
//! `tls_trust = "system"`, the system's CA bundle; SNI (unless `tls_sni = false`) and the
//! verified name are `tls_server_name`, else the Host header, else the address; a client
//! certificate is presented when `tls_client_cert`/`tls_client_key` are set. Every probe
//! socket takes the check's source (`bind`, `bind_port`, `bind_interface`, `fwmark`). DNS messages are
//! encoded and decoded with hickory-proto, the protocol crate alone (a resolver would
//! bring caching and retries that a check must not have): EDNS(0) unless `edns = false`,
//! and a reply must carry the query's id and repeat its question. exec runs the program
//! directly (no shell) as the configured user, sandboxed by `vigil-child` (no
//! capabilities, `no_new_privs`, a cleared environment: `PATH`, `LANG` and
//! `VIGIL_VIRTUAL_SERVER`, `VIGIL_REAL_ADDRESS`, `VIGIL_REAL_PORT`, `VIGIL_CHECK_ADDRESS`,
//! `VIGIL_CHECK_PORT`), `/` as working directory, stdin from /dev/null, its own session;
//! the first line of its stderr (else stdout) goes into the reason of a failure. Its whole
//! process tree is killed at the timeout, when it exits, or when the checker stops.
//!
//! [`ServiceKey`]: vigil_config::ServiceKey
//! [`Config`]: vigil_config::Config

mod checker;
mod combine;
mod failure;
mod once;
mod probe;
mod scheduler;
mod stats;
mod target;
mod watch;

pub use checker::{
    BATCH_MAX_EARLY, CHECKS_PER_THREAD, ChangeState, CheckState, Checker, CheckerError,
    CheckerOptions, FailureState, HEARTBEAT, HealthEvent, HealthEvents, Liveness, ResultState,
    Snapshot, threads_for,
};
pub use failure::FailureCause;
pub use once::{OnceResult, format_table, run_once};
pub use stats::{Histogram, KindStats, LATENCY_BUCKETS_S, LatenessSummary, Stats};

pub use combine::{Combined, Combiner, MAX_WEIGHT};
pub use scheduler::{
    CheckStatus, Due, Health, LastFailure, LastResult, Outcome, RunId, Scheduler, Transition,
    WeightEffect,
};
pub use target::{CheckKey, Target, targets_from_config};
