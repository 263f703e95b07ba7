//! Counters and a scheduling-lateness histogram kept by the checker shell.

use std::time::Duration;

use serde::Serialize;

use crate::failure::FailureCause;

/// Buckets grow by 5 %: percentiles are exact to within 5 %, at a fixed 3 KiB.
const GROWTH: f64 = 1.05;
const BUCKETS: usize = 420;

/// A log-bucketed histogram of durations from 1 µs to about 14 minutes.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: Duration,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let micros = d.as_secs_f64() * 1e6;
        let bucket = if micros <= 1.0 {
            0
        } else {
            ((micros.ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
        };
        self.counts[bucket] += 1;
        self.total += 1;
        self.max = self.max.max(d);
    }

    /// Adds `other`'s samples (another scheduler's, for one figure over all).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// The upper bound of the bucket holding the `q` quantile (0.0–1.0), never above the
    /// maximum seen.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let micros = GROWTH.powi(i32::try_from(i).unwrap_or(i32::MAX));
                return Duration::from_secs_f64(micros / 1e6).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> LatenessSummary {
        LatenessSummary {
            samples: self.total,
            p50_us: micros(self.quantile(0.50)),
            p99_us: micros(self.quantile(0.99)),
            max_us: micros(self.max),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Percentiles of a duration: how late checks started after they were due, or how long
/// probes took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatenessSummary {
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Upper bounds, in seconds, of the probe-latency buckets kept per check kind: the
/// buckets of a Prometheus histogram (`le`), from a loopback connect to a timeout.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Results and probe latency of one kind of check (`tcp`, `http`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    pub passed: u64,
    pub failed: u64,
    /// Probes per bucket of [`LATENCY_BUCKETS_S`], not cumulative; slower ones are only
    /// in the total (`passed + failed`).
    pub latency_buckets: [u64; LATENCY_BUCKETS_S.len()],
    pub latency_sum_us: u64,
    /// Failures by cause; they add up to `failed`.
    pub failed_by_cause: std::collections::BTreeMap<FailureCause, u64>,
}

impl KindStats {
    /// One run: passed when `cause` is `None`.
    pub fn record(&mut self, cause: Option<FailureCause>, latency: Duration) {
        match cause {
            None => self.passed += 1,
            Some(cause) => {
                self.failed += 1;
                *self.failed_by_cause.entry(cause).or_default() += 1;
            }
        }
        let seconds = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|&le| seconds <= le) {
            self.latency_buckets[i] += 1;
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(micros(latency));
    }

    /// Adds `other`'s results (another scheduler's).
    pub fn merge(&mut self, other: &KindStats) {
        self.passed += other.passed;
        self.failed += other.failed;
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        for (cause, n) in &other.failed_by_cause {
            *self.failed_by_cause.entry(*cause).or_default() += n;
        }
    }
}

/// What the checker has done since it started or since stats were last reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub checks: u64,
    pub passed: u64,
    pub failed: u64,
    pub in_flight: usize,
    /// Due checks waiting for an in-flight slot.
    pub backlog: usize,
    pub lateness: LatenessSummary,
    /// How long the probes took (connect to verdict).
    pub probe_latency: LatenessSummary,
    /// Results and latency by check kind.
    pub per_kind: std::collections::BTreeMap<&'static str, KindStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_stats_count_results_and_bucket_latency() {
        let mut k = KindStats::default();
        k.record(None, Duration::from_micros(300));
        k.record(None, Duration::from_micros(1000));
        k.record(Some(FailureCause::Timeout), Duration::from_secs(3));
        assert_eq!((k.passed, k.failed), (2, 1));
        assert_eq!(k.failed_by_cause.get(&FailureCause::Timeout), Some(&1));
        assert_eq!(k.latency_buckets[0], 1, "0.3 ms <= 0.5 ms");
        assert_eq!(k.latency_buckets[1], 1, "1 ms <= 1 ms");
        assert_eq!(
            k.latency_buckets.iter().sum::<u64>(),
            2,
            "3 s is above every bucket"
        );
        assert_eq!(k.latency_sum_us, 3_001_300);
    }

    #[test]
    fn merged_histograms_and_kind_stats_are_one_over_both() {
        let (mut a, mut b, mut both) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for i in 1..=100u64 {
            let d = Duration::from_micros(i * 37);
            if i % 3 == 0 {
                a.record(d)
            } else {
                b.record(d)
            }
            both.record(d);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.max(), both.max());
        assert_eq!(a.summary(), both.summary());
        let (mut x, mut y) = (KindStats::default(), KindStats::default());
        x.record(None, Duration::from_micros(300));
        x.record(Some(FailureCause::Refused), Duration::from_millis(1));
        y.record(Some(FailureCause::Refused), Duration::from_millis(29));
        y.record(Some(FailureCause::HttpStatus), Duration::ZERO);
        x.merge(&y);
        assert_eq!((x.passed, x.failed, x.latency_sum_us), (1, 3, 30_300));
        assert_eq!(x.failed_by_cause.get(&FailureCause::Refused), Some(&2));
        assert_eq!(x.failed_by_cause.get(&FailureCause::HttpStatus), Some(&1));
        assert_eq!(x.latency_buckets.iter().sum::<u64>(), 4);
    }

    #[test]
    fn quantiles_within_five_percent() {
        let mut h = Histogram::default();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i * 10));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((5000.0..=5250.0).contains(&p50), "{p50}");
        assert!((9900.0..=10000.0).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_micros(10_000));
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
