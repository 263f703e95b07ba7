//! sd_notify: tell systemd (Type=notify) when we are ready, reloading and stopping. A
//! no-op when not started by systemd (no NOTIFY_SOCKET).

use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// systemd 253+ wants the monotonic time with RELOADING=1.
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Reloading),
    ]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// One watchdog ping (`WATCHDOG=1`); the supervisor sends it only while every worker is
/// alive and fresh.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}
