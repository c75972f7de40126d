//! Latency histograms: HdrHistogram in nanoseconds (3 significant digits, 1 ns .. 100 s), merged
//! across threads and processes, carried in JSON as `[value, count]` buckets so a merge after the
//! round trip is exact.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable value: 100 s in ns. Larger samples are clamped to it (and still counted).
const MAX_NS: u64 = 100_000_000_000;

/// A latency histogram in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Hist {
    /// An empty histogram.
    pub fn new() -> Self {
        Hist(Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds"))
    }

    /// Record one sample in ns (0 counts as 1 ns; beyond 100 s is clamped).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides, so this cannot fail.
        self.0.add(&other.0).expect("histograms share bounds");
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at percentile `p` (0..=100), in ns; 0 when empty.
    pub fn at(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_percentile(p)
        }
    }

    /// Largest sample (bucket-equivalent), in ns.
    pub fn max(&self) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.max()
        }
    }

    /// Smallest sample, in ns.
    pub fn min(&self) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.min()
        }
    }

    /// Mean, in ns.
    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.mean()
        }
    }

    /// Non-empty buckets as `(value, count)`, value being the bucket's highest equivalent value.
    pub fn buckets(&self) -> Vec<[u64; 2]> {
        self.0
            .iter_recorded()
            .map(|v| [v.value_iterated_to(), v.count_at_value()])
            .collect()
    }

    /// Rebuild from [`Hist::buckets`].
    pub fn from_buckets(buckets: &[[u64; 2]]) -> Self {
        let mut h = Hist::new();
        for &[v, c] in buckets {
            // saturating: a hand-edited file must not panic the tool.
            let _ = h.0.record_n(v.clamp(1, MAX_NS), c);
        }
        h
    }
}

/// The JSON form: summary figures for people and scripts, buckets for exact merges and plots.
#[derive(Serialize, Deserialize)]
struct HistJson {
    unit: String,
    count: u64,
    min: u64,
    mean: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    p9999: u64,
    max: u64,
    buckets: Vec<[u64; 2]>,
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HistJson {
            unit: "ns".into(),
            count: self.count(),
            min: self.min(),
            mean: self.mean(),
            p50: self.at(50.0),
            p90: self.at(90.0),
            p99: self.at(99.0),
            p999: self.at(99.9),
            p9999: self.at(99.99),
            max: self.max(),
            buckets: self.buckets(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = HistJson::deserialize(d)?;
        Ok(Hist::from_buckets(&j.buckets))
    }
}

/// Format nanoseconds for people: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn fmt_ns(ns: u64) -> String {
    let n = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", n / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", n / 1e6)
    } else {
        format!("{:.2}s", n / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Hist::new();
        let mut b = Hist::new();
        let mut all = Hist::new();
        for i in 1..=10_000u64 {
            let v = i * 997 % 5_000_000 + 1;
            if i % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 10_000);
        for p in [50.0, 90.0, 99.0, 99.9, 99.99, 100.0] {
            assert_eq!(a.at(p), all.at(p));
        }
    }

    #[test]
    fn percentiles_are_within_precision() {
        let mut h = Hist::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1µs .. 100ms, uniform
        }
        let p50 = h.at(50.0) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.002, "{p50}");
        let p99 = h.at(99.0) as f64;
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.002, "{p99}");
        assert!(h.max() >= 100_000_000);
        assert_eq!(h.min(), 1000);
    }

    #[test]
    fn json_round_trip_is_exact() {
        let mut h = Hist::new();
        for v in [1, 5, 999, 1000, 1001, 123_456, 7_000_000_000, u64::MAX] {
            h.record(v);
        }
        h.record(0);
        let s = serde_json::to_string(&h).unwrap();
        let back: Hist = serde_json::from_str(&s).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.count(), 9);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["unit"], "ns");
        assert_eq!(v["count"], 9);
        assert!(v["max"].as_u64().unwrap() >= MAX_NS);
    }

    #[test]
    fn empty_is_zero() {
        let h = Hist::new();
        assert_eq!((h.count(), h.at(99.0), h.max(), h.min()), (0, 0, 0, 0));
        assert_eq!(h.mean(), 0.0);
        let back: Hist = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back.count(), 0);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(850), "850ns");
        assert_eq!(fmt_ns(12_345), "12.3µs");
        assert_eq!(fmt_ns(4_560_000), "4.56ms");
        assert_eq!(fmt_ns(1_200_000_000), "1.20s");
    }
}
