//! Delivery decisions, pure: the bounded queue that drops its oldest entry, what a reply
//! or an error means (done, try again, give up), and how long to wait before the next
//! attempt.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

/// At most this many queued entries go in one POST: a receiver that was down gets the
/// backlog in a few requests, not thousands.
pub const MAX_BATCH: usize = 100;

/// A rendered entry (an event, or an Alertmanager alert) and when it was queued.
#[derive(Debug, Clone)]
pub struct Entry {
    pub item: Value,
    pub queued_at: Instant,
}

/// Entries waiting for delivery, at most `capacity`; a push into a full queue drops the
/// oldest (the newest state matters most) and says so.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Entry>,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `e`; returns how many entries were dropped to make room (0 or 1).
    pub fn push(&mut self, e: Entry) -> u64 {
        let mut dropped = 0;
        while self.items.len() >= self.capacity {
            self.items.pop_front();
            dropped += 1;
        }
        self.items.push_back(e);
        dropped
    }

    /// The next batch, oldest first, at most [`MAX_BATCH`].
    pub fn take_batch(&mut self) -> Vec<Entry> {
        let n = self.items.len().min(MAX_BATCH);
        self.items.drain(..n).collect()
    }

    /// A new capacity (a reload); returns how many entries it dropped, oldest first.
    pub fn resize(&mut self, capacity: usize) -> u64 {
        self.capacity = capacity.max(1);
        let mut dropped = 0;
        while self.items.len() > self.capacity {
            self.items.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Empties the queue; returns how many entries it held.
    pub fn clear(&mut self) -> u64 {
        let n = self.items.len() as u64;
        self.items.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Delivered,
    /// Worth another attempt: no connection, a timeout, 408, 429 or 5xx.
    Retry(String),
    /// The receiver refuses this request for good (any other status): sending the same
    /// body again cannot help.
    Rejected(String),
}

/// What an HTTP status means for delivery.
pub fn classify_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry(format!("HTTP {status}")),
        _ => Outcome::Rejected(format!("HTTP {status}")),
    }
}

/// The wait before retry number `retry` (0 for the first): `first`, doubled each time,
/// at most `max`.
pub fn backoff(first: Duration, retry: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(n: u64) -> Entry {
        Entry {
            item: json!(n),
            queued_at: Instant::now(),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_it() {
        let mut q = Queue::new(3);
        for n in 0..3 {
            assert_eq!(q.push(entry(n)), 0);
        }
        assert_eq!(q.push(entry(3)), 1);
        assert_eq!(q.len(), 3);
        let batch: Vec<Value> = q.take_batch().into_iter().map(|e| e.item).collect();
        assert_eq!(batch, vec![json!(1), json!(2), json!(3)]);
        assert!(q.is_empty());
    }

    #[test]
    fn batches_are_capped_and_in_order() {
        let mut q = Queue::new(1000);
        for n in 0..250 {
            q.push(entry(n));
        }
        let first = q.take_batch();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].item, json!(0));
        assert_eq!(q.take_batch()[0].item, json!(100));
        assert_eq!(q.take_batch().len(), 50);
        assert!(q.take_batch().is_empty());
    }

    #[test]
    fn shrinking_drops_the_oldest() {
        let mut q = Queue::new(10);
        for n in 0..10 {
            q.push(entry(n));
        }
        assert_eq!(q.resize(4), 6);
        assert_eq!(q.take_batch()[0].item, json!(6));
        q.push(entry(1));
        assert_eq!(q.clear(), 1);
    }

    #[test]
    fn statuses_are_delivered_retried_or_rejected() {
        assert_eq!(classify_status(200), Outcome::Delivered);
        assert_eq!(classify_status(204), Outcome::Delivered);
        for s in [408, 429, 500, 502, 503] {
            assert!(matches!(classify_status(s), Outcome::Retry(_)), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 413] {
            assert!(matches!(classify_status(s), Outcome::Rejected(_)), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let max = Duration::from_secs(60);
        assert_eq!(backoff(ms(500), 0, max), ms(500));
        assert_eq!(backoff(ms(500), 1, max), ms(1000));
        assert_eq!(backoff(ms(500), 3, max), ms(4000));
        assert_eq!(backoff(ms(500), 10, max), max);
        assert_eq!(backoff(ms(500), 200, max), max);
    }
}
