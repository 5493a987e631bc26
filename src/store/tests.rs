//! The store against a model, its internal invariants, growth, expiry and
//! the flooding defence. Sizes shrink under Miri.

use std::collections::HashSet;
use std::ops::ControlFlow;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::arena::class_bytes;
use super::group::tag_of;
use super::model::{colliding_key, Model, ModelEntry};
use super::*;
use crate::protocol::int::{parse_i64, I64Text};

impl Store {
    /// Everything the store relies on, checked slot by slot: each key is
    /// in one table once and reachable from its home group, tags, deadline
    /// bits and lengths agree with the entries, overflow counters are exact
    /// in the current table (an upper bound in a draining one), drained
    /// groups are empty, and no two blocks (live or free) overlap.
    fn check_invariants(&self) {
        let mut keys = HashSet::new();
        let mut spans = Vec::new();
        for side in self.sides() {
            let table = self.table_of(side);
            let mut overflow_expected = vec![0usize; table.group_count()];
            let mut full = 0;
            for (group_at, group) in table.groups().iter().enumerate() {
                for slot in group.match_full() {
                    full += 1;
                    let at = SlotAt { group: group_at, slot };
                    let entry = EntryView::at(&self.arena, table.entry_ref(at));
                    let hash = table.hash(entry.key());
                    assert!(keys.insert(entry.key().to_vec()), "key {:?} stored twice", entry.key());
                    assert_eq!(group.tags[slot], tag_of(hash));
                    let has_deadline = entry.deadline().is_some();
                    let hit = table
                        .find(hash, entry.key(), &self.arena)
                        .map(|hit| (hit.at, hit.entry, hit.view.has_deadline()));
                    assert_eq!(hit, Some((at, table.entry_ref(at), has_deadline)), "unreachable key");
                    assert_eq!(group.deadline_mask & (1 << slot) != 0, entry.deadline().is_some());
                    let bytes_needed = entry::bytes_needed(
                        entry.key().len(),
                        entry.value().len(),
                        entry.is_integer(),
                        entry.deadline().is_some(),
                    );
                    assert!(bytes_needed <= class_bytes(entry.class().into()));
                    spans.push(Arena::block_span(table.entry_ref(at), entry.class()));
                    let mut passed = table.home(hash);
                    while passed != group_at {
                        overflow_expected[passed] += 1;
                        passed = table.next_group(passed, hash);
                    }
                }
                if group.match_full().lowest().is_none() {
                    assert_eq!(group.deadline_mask, 0);
                }
            }
            assert_eq!(full, table.len);
            for (group, expected) in table.groups().iter().zip(overflow_expected) {
                let stored = usize::from(group.overflow_count);
                match side {
                    Side::Current => assert!(stored == expected || stored == usize::from(u16::MAX)),
                    Side::Draining(_) => assert!(stored >= expected),
                }
            }
            if let Side::Draining(index) = side {
                let drain = &self.draining[usize::from(index)];
                assert!(drain.table.groups()[..drain.next_group].iter().all(|g| g.match_full().lowest().is_none()));
            }
        }
        assert_eq!(keys.len(), self.len());
        spans.extend(self.arena.free_blocks().into_iter().map(|(entry, class)| Arena::block_span(entry, class)));
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "blocks overlap: {pair:?}");
        }
    }

    /// Whether `key` is stored at all, expired or not, without side effects.
    fn holds(&self, key: &[u8]) -> bool {
        self.find(key).is_ok()
    }

    /// Runs writes' background work until no drain is under way.
    fn finish_drains(&mut self) {
        while !self.draining.is_empty() {
            self.background_step();
        }
    }
}

#[test]
fn set_get_delete() {
    let mut store = Store::new();
    store.set(b"k", b"v", false, None);
    assert_eq!(store.get(b"k", 0).map(|e| e.value()), Some(&b"v"[..]));
    assert!(store.delete(b"k"));
    assert!(!store.delete(b"k"));
    assert_eq!(store.get(b"k", 0), None);
    assert!(store.is_empty());
    store.check_invariants();
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
    assert_eq!(store.expire_cycle(100, store.shape().slots), 1);
    assert_eq!(store.len(), 1);
    store.check_invariants();
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
    store.check_invariants();
}

#[test]
fn expire_cycle_examines_at_most_its_budget_and_wraps() {
    let mut store = Store::new();
    for i in 0..60u8 {
        store.set(&[i], b"v", false, Some(1));
    }
    let slots = store.shape().slots;
    let mut reclaimed = 0;
    for step in 0..slots / SLOTS_PER_GROUP {
        let before = store.len();
        reclaimed += store.expire_cycle(5, SLOTS_PER_GROUP);
        assert!(before - store.len() <= SLOTS_PER_GROUP, "step {step} reclaimed more than one group");
    }
    assert_eq!(reclaimed, 60);
    assert_eq!(store.expiry_cursor_slot, 0, "a full sweep ends where it began");
    store.check_invariants();
}

#[test]
fn integer_values_grow_in_place() {
    let mut store = Store::new();
    store.set(b"counter", b"9", true, Some(1_000));
    let Ok(before) = store.find(b"counter") else { panic!("counter missing") };
    let block = before.entry;
    store.set(b"counter", b"10", true, Some(1_000));
    store.set(b"counter", b"-9223372036854775808", true, Some(1_000));
    let Ok(after) = store.find(b"counter") else { panic!("counter missing") };
    assert_eq!(after.entry, block);
    assert_eq!(store.get(b"counter", 0).map(|e| e.value()), Some(&b"-9223372036854775808"[..]));
}

/// An entry's value, integer tag and deadline.
fn fields(entry: Option<Entry<'_>>) -> Option<(&[u8], bool, Option<Millis>)> {
    entry.map(|entry| (entry.value(), entry.is_integer(), entry.deadline()))
}

#[test]
fn a_deadline_that_does_not_fit_moves_the_entry_and_keeps_it_whole() {
    let mut store = Store::new();
    // 6 + 2 + 32 = 40 bytes: a full 40-byte block, no room for a deadline.
    let value = [7u8; 32];
    store.set(b"kk", &value, false, None);
    assert!(store.set_deadline(b"kk", Some(50), 0));
    assert_eq!(fields(store.get(b"kk", 0)), Some((&value[..], false, Some(50))));
    assert!(store.set_deadline(b"kk", None, 0));
    assert_eq!(fields(store.get(b"kk", 0)), Some((&value[..], false, None)));
    store.check_invariants();
}

#[test]
fn persist_moving_an_integer_entry_to_a_smaller_block_spares_its_neighbour() {
    // Found by the model test: the move copied the old deadline and the
    // integer reservation into a block sized without them.
    let mut store = Store::new();
    store.set(b"k9", &[0; 33], false, None);
    store.set(b"", b"0", true, None);
    assert!(store.set_deadline(b"k9", Some(0), 0));
    store.set(b"k9", b"0", true, Some(1));
    store.set(b"k2", b"-1534681617920237414", true, None);
    assert!(store.set_deadline(b"", Some(1_538), 0));
    assert!(store.set_deadline(b"k9", None, 0));
    assert_eq!(store.get(b"k2", 0).map(Entry::value), Some(&b"-1534681617920237414"[..]));
    assert_eq!(fields(store.get(b"k9", 0)), Some((&b"0"[..], true, None)));
    store.check_invariants();
}

#[test]
fn churn_reuses_blocks_instead_of_taking_memory() {
    let mut store = Store::new();
    let count = if cfg!(miri) { 100 } else { 5_000 };
    for i in 0..count {
        store.set(format!("first-{i:06}").as_bytes(), b"some value", false, None);
    }
    store.finish_drains();
    store.release_all_retired();
    let memory_bytes = store.memory_bytes();
    for i in 0..count {
        assert!(store.delete(format!("first-{i:06}").as_bytes()));
        // Same block class: 6 + 12 + 6 + 8 = 32 bytes, as 6 + 12 + 10 = 28.
        store.set(format!("again-{i:06}").as_bytes(), b"other!", false, Some(9));
    }
    assert_eq!(store.memory_bytes(), memory_bytes);
    store.check_invariants();
}

impl Store {
    fn release_all_retired(&mut self) {
        while !self.retired.is_empty() {
            self.release_retired_step();
        }
    }
}

#[test]
fn growth_drains_incrementally_and_keeps_every_key() {
    let count: u32 = if cfg!(miri) { 400 } else { 100_000 };
    let check_every = if cfg!(miri) { 50 } else { 9_973 };
    let mut store = Store::new();
    let mut drains_seen = 0;
    let mut was_draining = false;
    for i in 0..count {
        store.set(format!("key:{i}").as_bytes(), &i.to_le_bytes(), false, None);
        let draining = store.shape().draining;
        drains_seen += usize::from(draining && !was_draining);
        was_draining = draining;
        if i % check_every == 0 {
            store.check_invariants();
        }
    }
    // A table of g groups grows when it holds 7/8 of its 12·g slots.
    let mut growths_expected = 0;
    let mut len_max = GROUP_COUNT_MIN * SLOTS_PER_GROUP * 7 / 8;
    while len_max < count as usize {
        growths_expected += 1;
        len_max *= 2;
    }
    assert_eq!(drains_seen, growths_expected);
    for i in 0..count {
        assert_eq!(store.get(format!("key:{i}").as_bytes(), 0).map(|e| e.value()), Some(&i.to_le_bytes()[..]));
    }
    assert_eq!(store.len(), count as usize);
    assert!(!store.shape().keyed_hash);
    store.check_invariants();
}

#[test]
fn crafted_crc_collisions_switch_the_table_to_a_keyed_hash() {
    assert!((0..100).all(|i| hash::crc32c(&colliding_key(i)) == u32::MAX));
    let count = if cfg!(miri) { 600 } else { 50_000 };
    let mut store = Store::new();
    let mut probe_groups_max = 0;
    for i in 0..count {
        store.set(&colliding_key(i), b"v", false, None);
        probe_groups_max = probe_groups_max.max(store.shape().probe_groups_max);
    }
    store.finish_drains();
    let shape = store.shape();
    assert!(shape.keyed_hash);
    assert!(shape.probe_groups_max <= 3, "keyed table still clusters: {shape:?}");
    // Detection happens on the first long probe; the CRC table never gets
    // much past the bound before the keyed table takes the inserts.
    assert!(probe_groups_max <= 2 * FLOOD_PROBE_GROUPS_MAX, "probes reached {probe_groups_max} groups");
    assert!((0..count).all(|i| store.get(&colliding_key(i), 0).is_some()));
    store.check_invariants();
}

#[test]
fn sequential_keys_do_not_look_like_a_flood() {
    let count = if cfg!(miri) { 1_000 } else { 400_000 };
    let mut store = Store::new();
    let mut probe_groups_max = 0;
    for i in 0..count {
        store.set(format!("key:{i:010}").as_bytes(), b"v", false, None);
        probe_groups_max = probe_groups_max.max(store.shape().probe_groups_max);
    }
    assert!(!store.shape().keyed_hash);
    assert!(probe_groups_max <= FLOOD_PROBE_GROUPS_MAX / 2, "probes reached {probe_groups_max} groups");
}

// ---------------------------------------------------------------------
// Random operation sequences against a model.

#[derive(Clone, Debug)]
enum Op {
    Set { key: usize, value: Vec<u8>, ttl_ms: Option<u16> },
    Get { key: usize },
    Del { key: usize },
    Incr { key: usize, amount: i64 },
    Expire { key: usize, ttl_ms: u16 },
    Persist { key: usize },
    Advance { ms: u16 },
    ExpireCycle { slots_budget: u16 },
    Walk { stop_after: Option<u8> },
    Grow { keys: u16, ttl_ms: Option<u16> },
    KeyedRehash,
}

const MODEL_KEY_COUNT: usize = 24;

/// Model keys: the empty key, a long one, and short ones.
fn model_key(index: usize) -> Vec<u8> {
    match index {
        0 => Vec::new(),
        1 => vec![b'L'; 300],
        _ => format!("k{index}").into_bytes(),
    }
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        3 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        2 => (0i64..20).prop_map(|n| n.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 200..1_500),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = 0..MODEL_KEY_COUNT;
    let grow_keys = if cfg!(miri) { 40u16 } else { 400 };
    prop_oneof![
        6 => (key.clone(), value_strategy(), proptest::option::of(0u16..2_000))
            .prop_map(|(key, value, ttl_ms)| Op::Set { key, value, ttl_ms }),
        4 => key.clone().prop_map(|key| Op::Get { key }),
        2 => key.clone().prop_map(|key| Op::Del { key }),
        3 => (key.clone(), prop_oneof![-3i64..4, any::<i64>()]).prop_map(|(key, amount)| Op::Incr { key, amount }),
        2 => (key.clone(), 0u16..2_000).prop_map(|(key, ttl_ms)| Op::Expire { key, ttl_ms }),
        1 => key.prop_map(|key| Op::Persist { key }),
        2 => (0u16..1_000).prop_map(|ms| Op::Advance { ms }),
        2 => (0u16..400).prop_map(|slots_budget| Op::ExpireCycle { slots_budget }),
        1 => proptest::option::of(0u8..10).prop_map(|stop_after| Op::Walk { stop_after }),
        1 => (1..grow_keys, proptest::option::of(0u16..3_000)).prop_map(|(keys, ttl_ms)| Op::Grow { keys, ttl_ms }),
        1 => Just(Op::KeyedRehash),
    ]
}

/// Applies `ops` to a store and a model and checks they agree after each.
fn run_against_model(ops: &[Op]) {
    let mut store = Store::new();
    let mut model = Model::default();
    let mut now: Millis = 1_000;
    let mut grown = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let mut reclaimed_by_cycle = None;
        match op {
            Op::Set { key, value, ttl_ms } => {
                let key = model_key(*key);
                let is_integer = parse_i64(value).is_some();
                let deadline = ttl_ms.map(|ttl| now + Millis::from(ttl));
                store.set(&key, value, is_integer, deadline);
                model.set(key, value.clone(), is_integer, deadline);
            }
            Op::Get { key } => {
                let key = model_key(*key);
                assert_eq!(
                    store.get(&key, now).map(ModelEntry::of),
                    model.live(&key, now).cloned(),
                    "step {step}: {op:?}"
                );
            }
            Op::Del { key } => {
                let key = model_key(*key);
                assert_eq!(store.delete(&key), model.entries.remove(&key).is_some(), "step {step}: {op:?}");
            }
            Op::Incr { key, amount } => {
                // What the INCR family does with the store (commands::counters).
                let key = model_key(*key);
                let current = |entry: Option<ModelEntry>| match entry {
                    None => Some((0, None)),
                    Some(entry) if entry.is_integer => parse_i64(&entry.value).map(|n| (n, entry.deadline)),
                    Some(_) => None,
                };
                let from_store = current(store.get(&key, now).map(ModelEntry::of));
                assert_eq!(from_store, current(model.live(&key, now).cloned()), "step {step}: {op:?}");
                if let Some((next, deadline)) = from_store.and_then(|(n, d)| Some((n.checked_add(*amount)?, d))) {
                    let text = I64Text::new(next);
                    store.set(&key, text.as_bytes(), true, deadline);
                    model.set(key, text.as_bytes().to_vec(), true, deadline);
                }
            }
            Op::Expire { key, ttl_ms } => {
                let key = model_key(*key);
                let deadline = Some(now + Millis::from(*ttl_ms));
                let model_live = model.live(&key, now).map(|entry| entry.deadline = deadline).is_some();
                assert_eq!(store.set_deadline(&key, deadline, now), model_live, "step {step}: {op:?}");
            }
            Op::Persist { key } => {
                let key = model_key(*key);
                let model_live = model.live(&key, now).map(|entry| entry.deadline = None).is_some();
                assert_eq!(store.set_deadline(&key, None, now), model_live, "step {step}: {op:?}");
            }
            Op::Advance { ms } => now += Millis::from(*ms),
            Op::ExpireCycle { slots_budget } => {
                reclaimed_by_cycle = Some(store.expire_cycle(now, usize::from(*slots_budget)));
            }
            Op::Walk { stop_after } => {
                let mut visited = Vec::new();
                store.for_each_live_key(now, |key| {
                    visited.push(key.to_vec());
                    if stop_after.is_some_and(|stop| visited.len() > usize::from(stop)) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                let live: HashSet<Vec<u8>> =
                    model.entries.iter().filter(|(_, entry)| !entry.is_expired(now)).map(|(k, _)| k.clone()).collect();
                let visited_set: HashSet<Vec<u8>> = visited.iter().cloned().collect();
                assert_eq!(visited_set.len(), visited.len(), "step {step}: a key was visited twice");
                assert!(visited_set.is_subset(&live), "step {step}: visited a dead or unknown key");
                if stop_after.is_none() {
                    assert_eq!(visited_set, live, "step {step}: walk missed keys");
                }
            }
            Op::Grow { keys, ttl_ms } => {
                for _ in 0..*keys {
                    let key = format!("grow-{grown}").into_bytes();
                    grown += 1;
                    let deadline = ttl_ms.map(|ttl| now + Millis::from(ttl));
                    store.set(&key, b"g", false, deadline);
                    model.set(key, b"g".to_vec(), false, deadline);
                }
            }
            Op::KeyedRehash => store.keyed_rehash_pending = true,
        }
        // Keys the store reclaimed on its own (cycle, walk) must have been
        // expired; the model forgets them too.
        let gone: Vec<Vec<u8>> = model.entries.keys().filter(|key| !store.holds(key)).cloned().collect();
        for key in &gone {
            assert!(model.entries[key].is_expired(now), "step {step}: {op:?} lost live key {key:?}");
            model.entries.remove(key);
        }
        if let Some(reclaimed) = reclaimed_by_cycle {
            assert_eq!(reclaimed, gone.len(), "step {step}: cycle count");
        }
        assert_eq!(store.len(), model.entries.len(), "step {step}: {op:?}");
        if store.len() <= 200 || step % 16 == 0 {
            store.check_invariants();
        }
    }
    store.check_invariants();
}

fn model_config() -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig { cases: 3, failure_persistence: None, ..ProptestConfig::default() }
    } else {
        ProptestConfig {
            cases: 200,
            failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
            ..ProptestConfig::default()
        }
    }
}

proptest! {
    #![proptest_config(model_config())]

    #[test]
    fn random_operations_agree_with_the_model(
        ops in proptest::collection::vec(op_strategy(), 1..if cfg!(miri) { 40 } else { 300 })
    ) {
        run_against_model(&ops);
    }
}
