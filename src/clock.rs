//! The server's clock: monotonic milliseconds, anchored at the wall-clock
//! time of start-up.
//!
//! Deadlines are compared against this clock, so a wall-clock jump never
//! moves a TTL (§7.2 Q32). Anchoring at Unix time keeps the numeric limits of
//! §2.1 (`seconds <= (i64::MAX - now_ms) / 1000`) as upstream computes them.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::store::Millis;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: Instant,
    started_unix_ms: Millis,
}

impl Clock {
    pub fn start() -> Self {
        let started_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as Millis);
        Clock { started: Instant::now(), started_unix_ms }
    }

    /// The time at start-up, in the clock's own unit.
    pub fn started_ms(&self) -> Millis {
        self.started_unix_ms
    }

    pub fn now_ms(&self) -> Millis {
        self.started_unix_ms + self.started.elapsed().as_millis() as Millis
    }
}
