//! The keyspace: byte-string keys mapping to byte-string values, each with an
//! integer tag and an optional expiry deadline (PROTOCOL.md §2.0).
//!
//! Pure and I/O-free: time comes in as a `now` argument (monotonic
//! milliseconds, §7.2 Q32), and nothing here knows about frames.
//!
//! This first implementation keeps entries in a dense vector indexed by a
//! `HashMap`, so the background expiry cycle can walk slots with a cursor and
//! bounded work. The API is the final one; the CRC32C open-addressing table
//! replaces the internals.

use std::collections::HashMap;
use std::ops::ControlFlow;

/// Monotonic time in milliseconds, as the server's clock reports it.
pub type Millis = u64;

/// A live entry as the commands see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub value: &'a [u8],
    /// The value parsed as a full-range i64 when it was written (§2.0).
    pub is_integer: bool,
    pub deadline: Option<Millis>,
}

struct Slot {
    key: Box<[u8]>,
    value: Vec<u8>,
    is_integer: bool,
    deadline: Option<Millis>,
}

impl Slot {
    fn is_expired(&self, now: Millis) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// Bytes this slot holds on the heap, as INFO reports them.
    fn accounted_bytes(&self) -> usize {
        std::mem::size_of::<Slot>() + self.key.len() + self.value.capacity() + INDEX_BYTES_PER_KEY + self.key.len()
    }
}

/// Rough cost of one index entry (hash, pointer, control byte).
const INDEX_BYTES_PER_KEY: usize = 32;

#[derive(Default)]
pub struct Store {
    index: HashMap<Box<[u8]>, usize>,
    slots: Vec<Slot>,
    expiry_cursor: usize,
    memory_bytes: usize,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys stored, including expired keys not yet reclaimed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes accounted to keys, values and their bookkeeping.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// The live entry for `key`; an expired entry is deleted first (lazy
    /// expiry) and reported missing.
    pub fn get(&mut self, key: &[u8], now: Millis) -> Option<Entry<'_>> {
        let at = self.live_slot(key, now)?;
        let slot = &self.slots[at];
        Some(Entry { value: &slot.value, is_integer: slot.is_integer, deadline: slot.deadline })
    }

    /// Stores `value` under `key`, replacing any value and deadline. Does not
    /// look at whether the old value had expired (§2.2).
    pub fn set(&mut self, key: &[u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) {
        match self.index.get(key) {
            Some(&at) => {
                let slot = &mut self.slots[at];
                self.memory_bytes -= slot.accounted_bytes();
                slot.value.clear();
                slot.value.extend_from_slice(value);
                slot.is_integer = is_integer;
                slot.deadline = deadline;
                self.memory_bytes += slot.accounted_bytes();
            }
            None => {
                let slot = Slot { key: key.into(), value: value.to_vec(), is_integer, deadline };
                self.memory_bytes += slot.accounted_bytes();
                self.index.insert(key.into(), self.slots.len());
                self.slots.push(slot);
            }
        }
    }

    /// Removes `key` whether or not it had expired; true if it was present.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        match self.index.remove(key) {
            Some(at) => {
                self.remove_slot(at);
                true
            }
            None => false,
        }
    }

    /// Replaces the deadline of a live key (`None` makes it permanent). An
    /// expired key counts as missing and is deleted (§7.2 Q7). True if the
    /// key was live.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Option<Millis>, now: Millis) -> bool {
        match self.live_slot(key, now) {
            Some(at) => {
                self.slots[at].deadline = deadline;
                true
            }
            None => false,
        }
    }

    /// Calls `visit` with every live key, deleting expired keys met on the
    /// way (those deletions stand even if `visit` breaks early, §2.11).
    pub fn for_each_live_key(&mut self, now: Millis, mut visit: impl FnMut(&[u8]) -> ControlFlow<()>) {
        let mut at = 0;
        while at < self.slots.len() {
            if self.slots[at].is_expired(now) {
                self.remove_expired_at(at);
                continue; // `at` now holds the slot that was last
            }
            if visit(&self.slots[at].key).is_break() {
                return;
            }
            at += 1;
        }
    }

    /// One step of the background expiry cycle: examines at most
    /// `slots_budget` slots from a cursor that wraps around, reclaiming those
    /// whose deadline has passed. Returns how many keys were reclaimed.
    pub fn expire_cycle(&mut self, now: Millis, slots_budget: usize) -> usize {
        let mut reclaimed = 0;
        for _ in 0..slots_budget.min(self.slots.len()) {
            if self.expiry_cursor >= self.slots.len() {
                self.expiry_cursor = 0;
            }
            if self.slots[self.expiry_cursor].is_expired(now) {
                self.remove_expired_at(self.expiry_cursor);
                reclaimed += 1;
            } else {
                self.expiry_cursor += 1;
            }
        }
        reclaimed
    }

    /// The slot of `key` if it is live, reclaiming it if it has expired.
    fn live_slot(&mut self, key: &[u8], now: Millis) -> Option<usize> {
        let at = *self.index.get(key)?;
        if self.slots[at].is_expired(now) {
            self.remove_expired_at(at);
            return None;
        }
        Some(at)
    }

    fn remove_expired_at(&mut self, at: usize) {
        let key = &self.slots[at].key;
        let removed = self.index.remove(key);
        debug_assert_eq!(removed, Some(at));
        self.remove_slot(at);
    }

    /// Swap-removes slot `at` (already unindexed) and re-points the index at
    /// the slot that moved into its place.
    fn remove_slot(&mut self, at: usize) {
        let removed = self.slots.swap_remove(at);
        self.memory_bytes -= removed.accounted_bytes();
        if let Some(moved) = self.slots.get(at) {
            if let Some(index) = self.index.get_mut(&moved.key) {
                *index = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_delete() {
        let mut store = Store::new();
        store.set(b"k", b"v", false, None);
        assert_eq!(store.get(b"k", 0).map(|e| e.value), Some(&b"v"[..]));
        assert!(store.delete(b"k"));
        assert!(!store.delete(b"k"));
        assert_eq!(store.get(b"k", 0), None);
        assert_eq!(store.memory_bytes(), 0);
    }

    #[test]
    fn expired_keys_are_invisible_and_reclaimed() {
        let mut store = Store::new();
        store.set(b"a", b"1", true, Some(10));
        store.set(b"b", b"2", true, None);
        assert!(store.get(b"a", 9).is_some());
        assert_eq!(store.get(b"a", 10), None);
        assert_eq!(store.len(), 1);
        store.set(b"c", b"3", true, Some(5));
        assert!(!store.set_deadline(b"c", None, 6), "expired counts as missing");
        store.set(b"d", b"4", true, Some(5));
        assert_eq!(store.expire_cycle(100, 10), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn keys_walk_skips_and_reaps_expired() {
        let mut store = Store::new();
        for i in 0..10u8 {
            store.set(&[i], b"v", false, (i % 2 == 0).then_some(1));
        }
        let mut seen = Vec::new();
        store.for_each_live_key(1, |key| {
            seen.push(key[0]);
            ControlFlow::Continue(())
        });
        seen.sort();
        assert_eq!(seen, [1, 3, 5, 7, 9]);
        assert_eq!(store.len(), 5);
    }
}
