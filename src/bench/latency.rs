//! Latency recording: one HdrHistogram per worker thread, merged at the end.
//!
//! Values are recorded in **nanoseconds** (upstream records whole
//! microseconds) into a histogram covering 1 ns..60 s with 3 significant
//! digits, so every recorded value is within 0.1% of the true one. Recording
//! is one array increment plus three compares for the exact min, max and sum
//! kept beside the histogram (~3 ns).
//!
//! Percentiles follow upstream's definition (PROTOCOL.md §6.4, Q28): the
//! value at percentile p is the **lowest equivalent value** of the bucket in
//! which the cumulative count first reaches `round(p/100 × total)` (at least
//! 1). The `hdrhistogram` crate's own `value_at_quantile` would give the
//! highest equivalent value with a `ceil` rank instead; the two differ by at
//! most one bucket width (0.1%) and one sample's rank. `min`, `max` and
//! `mean` are exact, not bucketed.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded; larger values are clamped (60 s, upstream's
/// bound).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// The percentiles reported, with the labels used in text and JSON.
pub const PERCENTILES: [(f64, &str); 5] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9"), (99.99, "p99.99")];

#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    min_ns: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl LatencyRecorder {
    pub fn new() -> Result<LatencyRecorder, hdrhistogram::CreationError> {
        Ok(LatencyRecorder {
            histogram: Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)?,
            min_ns: u64::MAX,
            max_ns: 0,
            sum_ns: 0,
        })
    }

    #[inline]
    pub fn record(&mut self, latency_ns: u64) {
        let value = latency_ns.clamp(1, LATENCY_NS_MAX);
        self.histogram.saturating_record(value);
        self.min_ns = self.min_ns.min(value);
        self.max_ns = self.max_ns.max(value);
        self.sum_ns += u128::from(value);
    }

    pub fn samples(&self) -> u64 {
        self.histogram.len()
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    /// The lowest equivalent value at percentile `p` with upstream's rank.
    pub fn value_at_percentile_ns(&self, percentile: f64) -> u64 {
        let total = self.histogram.len();
        if total == 0 {
            return 0;
        }
        let rank = ((percentile / 100.0 * total as f64).round() as u64).clamp(1, total);
        let mut cumulative = 0;
        for step in self.histogram.iter_recorded() {
            cumulative += step.count_at_value();
            if cumulative >= rank {
                return self.histogram.lowest_equivalent(step.value_iterated_to());
            }
        }
        self.histogram.lowest_equivalent(self.histogram.max())
    }

    pub fn summary(&self) -> LatencySummary {
        let samples = self.samples();
        let us = |ns: u64| ns as f64 / 1000.0;
        let at = |p: f64| us(self.value_at_percentile_ns(p));
        LatencySummary {
            samples,
            min_us: if samples == 0 { 0.0 } else { us(self.min_ns) },
            p50_us: at(50.0),
            p90_us: at(90.0),
            p99_us: at(99.0),
            p99_9_us: at(99.9),
            p99_99_us: at(99.99),
            max_us: us(self.max_ns),
            mean_us: if samples == 0 { 0.0 } else { self.sum_ns as f64 / samples as f64 / 1000.0 },
        }
    }
}

/// Latency figures in microseconds (fractional: recorded in ns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    #[serde(rename = "p99.9_us")]
    pub p99_9_us: f64,
    #[serde(rename = "p99.99_us")]
    pub p99_99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl LatencySummary {
    /// The rows of the text block, in upstream's order.
    pub fn rows(&self) -> [(&'static str, f64); 8] {
        [
            ("min", self.min_us),
            (PERCENTILES[0].1, self.p50_us),
            (PERCENTILES[1].1, self.p90_us),
            (PERCENTILES[2].1, self.p99_us),
            (PERCENTILES[3].1, self.p99_9_us),
            (PERCENTILES[4].1, self.p99_99_us),
            ("max", self.max_us),
            ("mean", self.mean_us),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_upstream_rank_and_lowest_equivalent_values() {
        let mut recorder = LatencyRecorder::new().unwrap();
        for us in 1..=100u64 {
            recorder.record(us * 1000);
        }
        let summary = recorder.summary();
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.min_us, 1.0);
        assert_eq!(summary.max_us, 100.0);
        assert_eq!(summary.mean_us, 50.5);
        // rank round(0.5 × 100) = 50 → the 50th value, 50 µs; its bucket's
        // lowest value is within 0.1% below it.
        assert!((49.95..=50.0).contains(&summary.p50_us), "{}", summary.p50_us);
        assert!((98.9..=99.0).contains(&summary.p99_us), "{}", summary.p99_us);
        // rank round(0.9999 × 100) = 100 → the largest value's bucket.
        assert!((99.9..=100.0).contains(&summary.p99_99_us), "{}", summary.p99_99_us);
    }

    #[test]
    fn merge_and_empty_and_clamp() {
        let empty = LatencyRecorder::new().unwrap();
        assert_eq!(empty.summary().p50_us, 0.0);
        assert_eq!(empty.summary().min_us, 0.0);
        let mut a = LatencyRecorder::new().unwrap();
        let mut b = LatencyRecorder::new().unwrap();
        a.record(0);
        b.record(LATENCY_NS_MAX * 2);
        a.merge(&b);
        assert_eq!(a.samples(), 2);
        assert_eq!(a.summary().min_us, 0.001);
        assert_eq!(a.summary().max_us, LATENCY_NS_MAX as f64 / 1000.0);
    }
}
