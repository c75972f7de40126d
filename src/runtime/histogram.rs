//! Latency histograms for the metrics exporter (`metrics` feature): fixed buckets, one writer.
//!
//! Each worker owns its histograms and is their only writer, so an observation is a bucket search
//! over 20 bounds and two relaxed load/store pairs (no locked read-modify-write), on cache lines
//! no other worker writes. Readers (a scrape) sum the workers' copies. Bounds are in seconds, as
//! Prometheus expects, from 10 µs to 10 s: wide enough to show a 50 µs handler and a 100 ms
//! blocking one in different buckets.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds (`le` labels are these in seconds); a last,
/// implicit `+Inf` bucket holds the rest.
pub(crate) const BOUNDS_NS: [u64; 20] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// One histogram, written by one worker only.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    /// Sum of all observations, in nanoseconds.
    sum_ns: AtomicU64,
}

/// Add to a counter that only the calling worker writes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Histogram {
    /// Record one observation (only the owning worker calls this).
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|&b| b < ns);
        bump(&self.buckets[i], 1);
        bump(&self.sum_ns, ns);
    }

    /// Add this histogram's current values into `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (acc, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *acc += b.load(Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Relaxed);
    }
}

/// A histogram's values read at one moment (possibly summed over workers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    pub buckets: [u64; BOUNDS_NS.len() + 1],
    /// Sum of observations in nanoseconds.
    pub sum_ns: u64,
}

#[cfg(test)]
impl Snapshot {
    /// Total observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Observations at or below `bound_ns` (which should be one of [`BOUNDS_NS`]).
    pub fn count_le(&self, bound_ns: u64) -> u64 {
        BOUNDS_NS
            .iter()
            .zip(&self.buckets)
            .take_while(|(b, _)| **b <= bound_ns)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The histograms of one worker.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerHistograms {
    /// From the read that completed a message to the end of its handler call.
    pub handler: Histogram,
    /// From a connection's oldest queued frame to the write that emptied its queue.
    pub queue_wait: Histogram,
    /// One event-loop turn: from poll's return to the end of the turn's flushes.
    pub turn: Histogram,
    /// How late the worker woke for a timer deadline it asked poll for.
    pub lag: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(5)); // <= 10 µs
        h.observe(Duration::from_micros(10)); // exactly on a bound: that bucket
        h.observe(Duration::from_millis(100)); // <= 100 ms
        h.observe(Duration::from_secs(60)); // +Inf
        let mut s = Snapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[12], 1);
        assert_eq!(s.buckets[BOUNDS_NS.len()], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.count_le(50_000_000), 2);
        assert_eq!(s.count_le(100_000_000), 3);
        assert_eq!(s.sum_ns, 5_000 + 10_000 + 100_000_000 + 60_000_000_000);
    }

    #[test]
    fn bounds_are_increasing() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }
}
