//! Write passes of a datapath thread that failed in a row, and what follows from them:
//! from the [`FAILED_PASSES_FOR_FAULT`]th on the datapath counts as not programmable
//! (VRRP follows it), and a datapath that retries its whole table (nftables) is told
//! when. Pure: the caller gives the time. IPVS retries each failed write in its
//! reconciler (a back-off per service and real server), so it uses only the count.

use std::time::{Duration, Instant};

use vigil_ipvs::Backoff;

/// Passes in a row with failed writes after which the datapath counts as not
/// programmable: with a back-off of 1 s, 2 s, ... that is about 3 s of failing writes,
/// so a single refused write does not move VRRP.
pub const FAILED_PASSES_FOR_FAULT: u32 = 3;

/// The failed passes in a row, the last failure, and the whole-table retry if any.
#[derive(Debug, Default)]
pub struct Failures {
    passes: u32,
    last_error: Option<String>,
    retry_at: Option<Instant>,
}

impl Failures {
    /// A pass failed with `error`. `true` when that error is new, worth a log line (the
    /// same error pass after pass is logged once).
    pub fn failed(&mut self, error: String) -> bool {
        let new = self.last_error.as_deref() != Some(error.as_str());
        self.passes = self.passes.saturating_add(1);
        self.last_error = Some(error);
        new
    }

    /// Schedules the retry of the whole table: `backoff`'s delay for this many failed
    /// passes in a row, from `now`. Returns the delay.
    pub fn retry_after(&mut self, backoff: &Backoff, now: Instant) -> Duration {
        let delay = backoff.delay(self.passes);
        self.retry_at = Some(now + delay);
        delay
    }

    /// A pass wrote everything: the count, the error and the retry are cleared.
    pub fn succeeded(&mut self) {
        *self = Failures::default();
    }

    pub fn retry_pending(&self) -> bool {
        self.retry_at.is_some()
    }

    pub fn retry_due(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now >= at)
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Why `datapath` ("IPVS", "nftables") cannot be programmed, if it cannot:
    /// [`FAILED_PASSES_FOR_FAULT`] failed passes in a row.
    pub fn fault(&self, datapath: &str) -> Option<String> {
        (self.passes >= FAILED_PASSES_FOR_FAULT).then(|| {
            format!(
                "{datapath} writes keep failing ({} passes in a row): {}",
                self.passes,
                self.last_error.as_deref().unwrap_or("unknown error")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_secs(1),
        factor: 2,
        max: Duration::from_secs(30),
    };

    #[test]
    fn a_fault_from_the_third_failed_pass_in_a_row() {
        let mut f = Failures::default();
        assert_eq!(f.fault("nftables"), None);
        assert!(f.failed("nft refused".into()));
        assert!(!f.failed("nft refused".into()), "the same error is not new");
        assert_eq!(f.fault("nftables"), None);
        assert!(f.failed("nft timed out".into()));
        assert_eq!(
            f.fault("nftables").as_deref(),
            Some("nftables writes keep failing (3 passes in a row): nft timed out")
        );
        f.succeeded();
        assert_eq!((f.fault("IPVS"), f.last_error()), (None, None));
        assert!(
            f.failed("nft timed out".into()),
            "new again after a success"
        );
    }

    #[test]
    fn whole_table_retries_back_off_from_the_injected_time() {
        let now = Instant::now();
        let mut f = Failures::default();
        assert!(!f.retry_pending() && !f.retry_due(now));
        let mut delays = Vec::new();
        for _ in 0..7 {
            f.failed("refused".into());
            delays.push(f.retry_after(&BACKOFF, now).as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert!(f.retry_pending());
        assert!(!f.retry_due(now + Duration::from_secs(29)));
        assert!(f.retry_due(now + Duration::from_secs(30)));
        f.succeeded();
        assert!(!f.retry_pending());
        f.failed("refused".into());
        assert_eq!(f.retry_after(&BACKOFF, now), Duration::from_secs(1));
    }
}
