//! Counters and a scheduling-lateness histogram kept by the checker shell.

use std::time::Duration;

use serde::Serialize;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
