//! What each command means (PROTOCOL.md §2), and the [`Engine`] that the I/O
//! backends hand frames to.
//!
//! A command reads its arguments from a borrowed [`Request`], acts on the
//! [`Store`] and appends exactly one reply frame to the caller's output
//! buffer. Nothing here touches a socket or knows which backend runs; time
//! arrives as `now`. Commands are grouped by what they act on:
//! [`strings`] (SET/GET/DEL), [`counters`] (the INCR family), [`expiry`]
//! (EXPIRE/TTL/PERSIST) and [`server`] (PING/INFO/KEYS).

mod counters;
mod expiry;
mod server;
mod strings;

pub use server::ServerInfo;

use crate::protocol::reply::push_fail;
use crate::protocol::request::{Invalid, Request};
use crate::store::{Millis, Prefetched, Store};

/// Table slots examined per expiry tick, at most. The sweep reads one
/// 12-slot group (one cache line) at a time and the entries that carry a
/// deadline; measured (benches/store.rs, `expiry_tick`): 240 000 slots cost
/// 4.3 ms when every key has a deadline and 0.1 ms when none has, so this
/// cap keeps a tick under about 2 ms. With ticks every [`EXPIRY_TICK_MS`] a
/// table of up to 2 M slots (about 1 M keys) is swept within two seconds;
/// larger ones take proportionally longer.
pub const EXPIRY_SLOTS_PER_TICK_MAX: usize = 100_000;

/// Slots examined per tick however small the table.
const EXPIRY_SLOTS_PER_TICK_MIN: usize = 1_000;

/// Interval between background expiry ticks.
pub const EXPIRY_TICK_MS: Millis = 100;

/// A store with fewer keys is not prefetched for: its index (under 1 MiB)
/// and entries (a few MiB at short keys) stay in the CPU's caches, where a
/// lookahead's extra parsing costs more than the misses it hides. Keys, not
/// bytes held: a few large values fill arena pages without making the
/// lookups miss.
const PREFETCH_KEYS_MIN: usize = 1 << 16;

/// Frames ahead of execution that a batch prefetches for: the entry at this
/// distance, the index line at twice it, so that each stage's line has
/// arrived by the time the next stage (or the command) reads it. Measured
/// on a loop of lookups of 1M keys: 50 ns a lookup without prefetching, 34
/// with the entry 4 ahead, 26 with 8, 36 with 16 (lines evicted unused).
pub const PREFETCH_FRAMES_AHEAD: usize = 8;

/// Counters that INFO reports; the I/O backend updates the client counts.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connected_clients: u64,
    /// Closed connections plus connections refused by max-clients.
    pub disconnected_clients: u64,
    /// Frames dispatched, including ones answered with FAIL.
    pub commands_executed: u64,
    /// Keys reclaimed by the background expiry cycle.
    pub expired_keys_reclaimed: u64,
    /// io_uring: `SEND_ZC` operations issued.
    pub zc_sends: u64,
    /// io_uring: zero-copy notifications flagged
    /// `IORING_NOTIF_USAGE_ZC_COPIED` (the kernel copied after all, as it
    /// always does on loopback). Not an error.
    pub zc_copied: u64,
    /// io_uring: receives ended because the provided-buffer ring was empty
    /// (`ENOBUFS`), then re-armed.
    pub recv_buffers_exhausted: u64,
}

impl Stats {
    pub fn client_connected(&mut self) {
        self.connected_clients += 1;
    }

    pub fn client_disconnected(&mut self) {
        self.connected_clients = self.connected_clients.saturating_sub(1);
        self.disconnected_clients += 1;
    }

    pub fn client_refused(&mut self) {
        self.disconnected_clients += 1;
    }
}

/// The single-threaded state every frame acts on.
pub struct Engine {
    pub store: Store,
    pub stats: Stats,
    pub info: ServerInfo,
}

impl Engine {
    pub fn new(info: ServerInfo) -> Self {
        Engine { store: Store::new(), stats: Stats::default(), info }
    }

    /// Whether a batch of frames should prefetch ahead of itself: only once
    /// the store has outgrown the CPU's caches.
    #[inline]
    pub fn prefetch_pays(&self) -> bool {
        self.store.len() >= PREFETCH_KEYS_MIN
    }

    /// First stage of the prefetch for the key of frame core `core`, which
    /// will execute soon (see [`Store::prefetch_index`]). A frame without a
    /// key, or not a request at all, prefetches nothing.
    #[inline]
    pub fn prefetch_index(&self, core: &[u8]) -> Option<Prefetched> {
        let key = Request::parse(core).ok()?.key()?;
        Some(self.store.prefetch_index(key))
    }

    /// Second stage, for a frame whose first stage ran a while before.
    #[inline]
    pub fn prefetch_entry(&self, prefetched: Prefetched) {
        self.store.prefetch_entry(prefetched);
    }

    /// Executes one frame core and appends its reply to `out`.
    ///
    /// Every frame gets exactly one reply: unknown ids and empty frames get
    /// FAIL, so pipelines never drift (§7.2, Q1).
    #[inline]
    pub fn execute_frame(&mut self, core: &[u8], now: Millis, out: &mut Vec<u8>) {
        match Request::parse(core) {
            Ok(request) => self.execute(request, now, out),
            Err(Invalid::Empty | Invalid::UnknownCommand(_) | Invalid::Malformed(_)) => push_fail(out),
        }
        // Counted after executing: INFO does not count itself (§2.10).
        self.stats.commands_executed += 1;
    }

    pub fn execute(&mut self, request: Request<'_>, now: Millis, out: &mut Vec<u8>) {
        let store = &mut self.store;
        match request {
            Request::Set { key, value, expiry_seconds } => strings::set(store, key, value, expiry_seconds, now, out),
            Request::Get { key } => strings::get(store, key, now, out),
            Request::Del { key } => strings::del(store, key, out),
            Request::Incr { key } => counters::incr(store, key, now, out),
            Request::Decr { key } => counters::decr(store, key, now, out),
            Request::IncrBy { key, amount } => counters::incr_by(store, key, amount, now, out),
            Request::DecrBy { key, amount } => counters::decr_by(store, key, amount, now, out),
            Request::Expire { key, seconds } => expiry::expire(store, key, seconds, now, out),
            Request::Ttl { key } => expiry::ttl(store, key, now, out),
            Request::Persist { key } => expiry::persist(store, key, now, out),
            Request::Ping { payload } => server::ping(payload, out),
            Request::Info => server::info(self, now, out),
            Request::Keys => server::keys(store, now, out),
        }
    }

    /// One background expiry step; call every [`EXPIRY_TICK_MS`].
    pub fn tick(&mut self, now: Millis) {
        // A twentieth of the slots per tick: a full pass every two seconds.
        let budget = (self.store.shape().slots / 20).clamp(EXPIRY_SLOTS_PER_TICK_MIN, EXPIRY_SLOTS_PER_TICK_MAX);
        let reclaimed = self.store.expire_cycle(now, budget);
        self.stats.expired_keys_reclaimed += reclaimed as u64;
    }
}

#[cfg(test)]
mod tests;
