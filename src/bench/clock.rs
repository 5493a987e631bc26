//! The benchmark's one time base: nanoseconds on the monotonic clock since a
//! shared origin taken before the start gate.
//!
//! Every timestamp (batch sends, reply arrivals, intended send times) is a
//! `u64` of nanoseconds from the same origin, so worker threads can compare
//! them without converting. A read is one vDSO `clock_gettime` (~20 ns); the
//! workers take one per batch sent and one per socket read, never one per
//! request.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock { origin: Instant::now() }
    }

    /// Nanoseconds since the origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// A duration in nanoseconds as the clock counts them.
pub fn duration_ns(duration: Duration) -> u64 {
    duration.as_nanos().min(u128::from(u64::MAX)) as u64
}
