//! The store against `hashbrown::HashMap<Box<[u8]>, Box<[u8]>>` (foldhash,
//! its default) on a table of 1 000 000 keys of 16 bytes with 16-byte
//! values: lookups of present keys, of absent keys, and inserting all the
//! keys into an empty table (growth included).
//!
//! ```text
//! taskset -c 1 cargo bench --bench store -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Lookups go through the keys in a fixed random order, 1 000 per timed
//! iteration, so both tables miss the caches as a large keyspace does. The
//! keys to look up are laid out in that order beforehand, so reading them is
//! a sequential stream for both. `hit` and `miss` lookups are independent of
//! each other, so the CPU overlaps several: they measure throughput, which
//! rewards few instructions per lookup. `hit_chained` makes each lookup
//! depend on the value the previous one read (as a GET must read its value
//! to copy it), which measures latency: the chain of cache misses.
//! `hit_pipelined` and `miss_pipelined` run the same lookups the way the
//! server runs a pipelined batch of frames (`io::conn`): each lookup is
//! preceded by the two prefetch stages of lookups further on
//! ([`Store::prefetch_index`] twice [`PREFETCH_FRAMES_AHEAD`] ahead,
//! [`Store::prefetch_entry`] that far ahead).

mod common;
use common::sixteen_bytes;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fkvs::commands::PREFETCH_FRAMES_AHEAD;
use fkvs::store::Store;
use hashbrown::HashMap;

const KEY_COUNT: usize = 1_000_000;
const LOOKUPS_PER_ITERATION: usize = 1_000;
/// How far ahead the index stage runs, as in the server.
const LOOKAHEAD: usize = 2 * PREFETCH_FRAMES_AHEAD;

type Baseline = HashMap<Box<[u8]>, Box<[u8]>>;

fn key(i: usize) -> [u8; 16] {
    sixteen_bytes(b"key:", i)
}

fn absent_key(i: usize) -> [u8; 16] {
    sixteen_bytes(b"nop:", i)
}

/// Not an integer, so the store does not reserve integer room.
fn value(i: usize) -> [u8; 16] {
    sixteen_bytes(b"val-", i)
}

/// 0..n in a fixed pseudo-random order (Fisher–Yates with xorshift64).
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

fn filled_store() -> Store {
    let mut store = Store::new();
    for i in 0..KEY_COUNT {
        store.set(&key(i), &value(i), false, None);
    }
    while store.shape().draining {
        store.expire_cycle(0, 20_000);
    }
    store
}

fn filled_baseline() -> Baseline {
    let mut map = Baseline::new();
    for i in 0..KEY_COUNT {
        map.insert(Box::from(&key(i)[..]), Box::from(&value(i)[..]));
    }
    map
}

/// The next `LOOKUPS_PER_ITERATION` keys of `keys`, wrapping around.
fn next_batch<'a>(keys: &'a [[u8; 16]], cursor: &mut usize) -> &'a [[u8; 16]] {
    let batch = &keys[*cursor..*cursor + LOOKUPS_PER_ITERATION];
    *cursor = (*cursor + LOOKUPS_PER_ITERATION) % keys.len();
    batch
}

/// The next position in the lookup order, depending on a byte just read (a
/// digit, so always 1 or 2 ahead).
fn next_in_chain(cursor: usize, last_byte: u8) -> usize {
    (cursor + 1 + usize::from(last_byte & 1)) % KEY_COUNT
}

fn lookups(c: &mut Criterion) {
    let order = shuffled(KEY_COUNT);
    let present: Vec<[u8; 16]> = order.iter().map(|&i| key(i)).collect();
    let absent: Vec<[u8; 16]> = order.iter().map(|&i| absent_key(i)).collect();
    let mut store = filled_store();
    let baseline = filled_baseline();

    let mut group = c.benchmark_group("lookup_1m_keys");
    group.throughput(Throughput::Elements(LOOKUPS_PER_ITERATION as u64));
    for (name, keys) in [("hit", &present), ("miss", &absent)] {
        group.bench_function(format!("{name}/fkvs"), |b| {
            let mut cursor = 0;
            b.iter(|| {
                for key in next_batch(keys, &mut cursor) {
                    black_box(store.get(key, 0).map(|entry| entry.value()));
                }
            })
        });
        group.bench_function(format!("{name}/hashbrown"), |b| {
            let mut cursor = 0;
            b.iter(|| {
                for key in next_batch(keys, &mut cursor) {
                    black_box(baseline.get(&key[..]).map(|value| &value[..]));
                }
            })
        });
    }
    for (name, keys) in [("hit_pipelined", &present), ("miss_pipelined", &absent)] {
        group.bench_function(format!("{name}/fkvs"), |b| {
            let mut cursor = 0;
            b.iter(|| {
                let batch = next_batch(keys, &mut cursor);
                // What the index stage returned for lookup i, at i % LOOKAHEAD.
                let mut prefetched = [None; LOOKAHEAD];
                for (i, key) in batch.iter().enumerate() {
                    if let Some(ahead) = batch.get(i + LOOKAHEAD) {
                        prefetched[i % LOOKAHEAD] = Some(store.prefetch_index(ahead));
                    }
                    if let Some(ahead) = prefetched[(i + PREFETCH_FRAMES_AHEAD) % LOOKAHEAD].take() {
                        store.prefetch_entry(ahead);
                    }
                    black_box(store.get(key, 0).map(|entry| entry.value()));
                }
            })
        });
    }
    group.bench_function("hit_chained/fkvs", |b| {
        let mut cursor = 0;
        b.iter(|| {
            for _ in 0..LOOKUPS_PER_ITERATION {
                let last_byte = store.get(&present[cursor], 0).map_or(0, |entry| entry.value()[15]);
                cursor = next_in_chain(cursor, last_byte);
            }
        })
    });
    group.bench_function("hit_chained/hashbrown", |b| {
        let mut cursor = 0;
        b.iter(|| {
            for _ in 0..LOOKUPS_PER_ITERATION {
                let last_byte = baseline.get(&present[cursor][..]).map_or(0, |value| value[15]);
                cursor = next_in_chain(cursor, last_byte);
            }
        })
    });
    group.finish();
}

fn inserts(c: &mut Criterion) {
    let keys: Vec<[u8; 16]> = (0..KEY_COUNT).map(key).collect();
    let values: Vec<[u8; 16]> = (0..KEY_COUNT).map(value).collect();

    let mut group = c.benchmark_group("insert_1m_keys");
    group.throughput(Throughput::Elements(KEY_COUNT as u64));
    group.sample_size(10);
    group.bench_function("fkvs", |b| {
        b.iter_batched(
            Store::new,
            |mut store| {
                for (key, value) in keys.iter().zip(&values) {
                    store.set(key, value, false, None);
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hashbrown", |b| {
        b.iter_batched(
            Baseline::new,
            |mut map| {
                for (key, value) in keys.iter().zip(&values) {
                    map.insert(Box::from(&key[..]), Box::from(&value[..]));
                }
                map
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Expiry cycles on 1M keys that all have a deadline, none passed, so every
/// slot's entry is read (the worst case), and on 1M keys without deadlines
/// (the best). 240 000 slots is the largest tick `Engine::tick` allows.
fn expiry_tick(c: &mut Criterion) {
    let mut store = Store::new();
    for i in 0..KEY_COUNT {
        store.set(&key(i), &value(i), false, Some(u64::MAX));
    }
    while store.shape().draining {
        store.expire_cycle(0, 20_000);
    }
    let mut without_deadlines = filled_store();
    let mut group = c.benchmark_group("expire_cycle_1m_keys");
    for slots in [20_000, 240_000] {
        group.bench_function(format!("{slots}_slots/all_with_deadlines"), |b| {
            b.iter(|| black_box(store.expire_cycle(0, slots)))
        });
        group.bench_function(format!("{slots}_slots/no_deadlines"), |b| {
            b.iter(|| black_box(without_deadlines.expire_cycle(0, slots)))
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, inserts, expiry_tick);
criterion_main!(benches);
