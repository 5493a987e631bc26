//! A plain map with the store's semantics, for the property tests
//! (`store::tests`) and the cargo-fuzz target (`tests/fuzz`, which turns on
//! the `model` feature) to check the store against: lazy expiry, expired
//! entries kept until touched, SET replacing value, tag and deadline.

use std::collections::HashMap;

use super::{Entry, Millis};

/// What the store answers for a live key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    pub value: Vec<u8>,
    pub is_integer: bool,
    pub deadline: Option<Millis>,
}

impl ModelEntry {
    /// The store's entry, copied.
    pub fn of(entry: Entry<'_>) -> ModelEntry {
        ModelEntry { value: entry.value().to_vec(), is_integer: entry.is_integer(), deadline: entry.deadline() }
    }

    pub fn is_expired(&self, now: Millis) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }
}

#[derive(Default)]
pub struct Model {
    pub entries: HashMap<Vec<u8>, ModelEntry>,
}

impl Model {
    /// The live entry for `key`; an expired one is forgotten first.
    pub fn live(&mut self, key: &[u8], now: Millis) -> Option<&mut ModelEntry> {
        if self.entries.get(key).is_some_and(|entry| entry.is_expired(now)) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>, is_integer: bool, deadline: Option<Millis>) {
        self.entries.insert(key, ModelEntry { value, is_integer, deadline });
    }
}

/// An 8-byte key whose CRC32C is 0xFFFF_FFFF: CRC is linear, so feeding the
/// register's own state back as the next 32-bit word zeroes it. Distinct
/// `i` give distinct keys, all on one probe path: a flood.
pub fn colliding_key(i: u32) -> [u8; 8] {
    let prefix = i.to_le_bytes();
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&prefix);
    key[4..].copy_from_slice(&(!crc32c::crc32c(&prefix)).to_le_bytes());
    key
}
