//! Drives the store with operations decoded from the fuzzer's bytes and
//! checks every answer against the store's model (`fkvs::store::model`,
//! shared with its property tests), plus sampled reclamation. Keys include
//! crafted full CRC32C collisions, so flood detection and the keyed rehash
//! run too, and batches of fresh keys make the table grow and drain.

#![no_main]

use std::ops::ControlFlow;

use fkvs::protocol::int::parse_i64;
use fkvs::store::model::{colliding_key, Model, ModelEntry};
use fkvs::store::{Millis, Store};
use libfuzzer_sys::fuzz_target;

struct Harness {
    store: Store,
    model: Model,
    now: Millis,
    fresh_keys: u32,
}

/// Reads the fuzzer's bytes front to back; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn bytes(&mut self, count: usize) -> Vec<u8> {
        let count = count.min(self.0.len());
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        taken.to_vec()
    }
}

fn key(input: &mut Input<'_>) -> Vec<u8> {
    match input.byte() {
        selector @ 0..=199 => format!("k{}", selector % 40).into_bytes(),
        selector @ 200..=239 => colliding_key(u32::from(selector - 200)).to_vec(),
        _ => vec![b'L'; 300 + usize::from(input.byte())],
    }
}

fn value(input: &mut Input<'_>) -> Vec<u8> {
    match input.byte() % 4 {
        0 => (i64::from(input.byte() as i8) * 1_000_003).to_string().into_bytes(),
        1 => i64::MAX.to_string().into_bytes(),
        2 => {
            let length = usize::from(input.byte()) * 8;
            input.bytes(length)
        }
        _ => {
            let length = usize::from(input.byte() % 48);
            input.bytes(length)
        }
    }
}

impl Harness {
    fn get(&mut self, key: &[u8]) -> Option<ModelEntry> {
        let stored = self.store.get(key, self.now).map(ModelEntry::of);
        assert_eq!(stored.as_ref(), self.model.live(key, self.now).map(|entry| &*entry), "GET {key:?}");
        stored
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>, is_integer: bool, deadline: Option<Millis>) {
        self.store.set(&key, &value, is_integer, deadline);
        self.model.set(key, value, is_integer, deadline);
    }

    fn step(&mut self, input: &mut Input<'_>) {
        match input.byte() % 12 {
            0 | 1 => {
                let (key, value) = (key(input), value(input));
                let ttl = input.byte();
                let deadline = (ttl < 128).then(|| self.now + Millis::from(ttl) * 16);
                let is_integer = parse_i64(&value).is_some();
                self.set(key, value, is_integer, deadline);
            }
            2 | 3 => {
                let key = key(input);
                self.get(&key);
            }
            4 => {
                // An expired key may already be reclaimed: either answer.
                let key = key(input);
                let deleted = self.store.delete(&key);
                match self.model.entries.remove(&key) {
                    Some(entry) if entry.is_expired(self.now) => {}
                    modelled => assert_eq!(deleted, modelled.is_some(), "DEL"),
                }
            }
            5 => {
                // INCRBY as commands::counters does it.
                let (key, amount) = (key(input), i64::from(input.byte() as i8));
                let current = match self.get(&key) {
                    None => Some((0, None)),
                    Some(entry) if entry.is_integer => parse_i64(&entry.value).map(|n| (n, entry.deadline)),
                    Some(_) => None,
                };
                if let Some((next, deadline)) = current.and_then(|(n, d)| Some((n.checked_add(amount)?, d))) {
                    self.set(key, next.to_string().into_bytes(), true, deadline);
                }
            }
            6 => {
                let (key, ttl) = (key(input), input.byte());
                let deadline = (ttl < 200).then(|| self.now + Millis::from(ttl) * 16);
                let live = self.model.live(&key, self.now).map(|entry| entry.deadline = deadline).is_some();
                assert_eq!(self.store.set_deadline(&key, deadline, self.now), live, "EXPIRE/PERSIST");
            }
            7 => self.now += Millis::from(input.byte()) * 8,
            8 => {
                let expired = self.model.entries.values().filter(|entry| entry.is_expired(self.now)).count();
                let reclaimed = self.store.expire_cycle(self.now, usize::from(input.byte()) * 4);
                assert!(reclaimed <= expired, "cycle reclaimed {reclaimed} of {expired} expired");
            }
            9 => {
                let mut visited = Vec::new();
                self.store.for_each_live_key(self.now, |key| {
                    visited.push(key.to_vec());
                    ControlFlow::Continue(())
                });
                let now = self.now;
                self.model.entries.retain(|_, entry| !entry.is_expired(now));
                visited.sort();
                let mut live: Vec<Vec<u8>> = self.model.entries.keys().cloned().collect();
                live.sort();
                assert_eq!(visited, live, "KEYS");
                assert_eq!(self.store.len(), self.model.entries.len(), "len after a full walk");
            }
            10 => {
                for _ in 0..usize::from(input.byte()) * 8 {
                    let key = format!("fresh-{}", self.fresh_keys).into_bytes();
                    self.fresh_keys += 1;
                    self.set(key, b"f".to_vec(), false, None);
                }
            }
            _ => {
                // Up to 510 keys on one probe path: enough to trip the
                // flood bound (41 full groups of 12).
                for index in 0..u32::from(input.byte()) * 2 {
                    self.set(colliding_key(1_000 + index).to_vec(), b"c".to_vec(), false, None);
                }
            }
        }
        // The store holds every live key and at most the model's expired
        // ones (counting live keys is linear: only on small models).
        assert!(self.store.len() <= self.model.entries.len(), "store holds keys the model dropped");
        if self.model.entries.len() <= 512 {
            let live = self.model.entries.values().filter(|entry| !entry.is_expired(self.now)).count();
            assert!(live <= self.store.len(), "store lost live keys");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut harness = Harness { store: Store::new(), model: Model::default(), now: 1_000, fresh_keys: 0 };
    let mut input = Input(data);
    while !input.0.is_empty() {
        harness.step(&mut input);
    }
    let keys: Vec<Vec<u8>> = harness.model.entries.keys().cloned().collect();
    for key in keys {
        harness.get(&key);
    }
});
