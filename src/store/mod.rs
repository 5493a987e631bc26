//! The keyspace: byte-string keys mapping to byte-string values, each with an
//! integer tag and an optional expiry deadline (PROTOCOL.md §2.0).
//!
//! Pure and I/O-free: time comes in as a `now` argument (monotonic
//! milliseconds, §7.2 Q32), and nothing here knows about frames. This room
//! owns the hash function, the index, the entry layout and its memory, lazy
//! and sampled expiry, incremental growth, and memory accounting.
//!
//! # Layout
//! - **Index** ([`table`], [`group`]): open addressing over 64-byte groups,
//!   each one cache line with twelve 8-bit tags (matched with one SSE2
//!   compare), two counters and twelve 32-bit entry references. Overflow
//!   counters instead of tombstones: deleting always empties the slot.
//! - **Entries** ([`entry`], [`arena`]): key, value, integer tag and deadline
//!   in one block from the store's own size-classed pages, carved from one
//!   reserved address range ([`os_memory`]): the global allocator is never
//!   called, and a 32-bit reference becomes an address without a lookup or
//!   a bounds check.
//! - **Hash** ([`hash`]): CRC32C on the SSE4.2 instruction, 8 bytes a step.
//!
//! # Cost per operation (back of the envelope, table larger than the caches)
//! - GET hit: hash (~1.5 ns, no memory), **one miss** for the home group,
//!   **one miss** for the entry (a 40-byte block straddles two lines half
//!   the time, its header and key a quarter of the time; the second line
//!   usually arrives with the first). About two DRAM misses; `hashbrown`
//!   with boxed keys and values takes three (control bytes, bucket, key
//!   box) plus the value box.
//! - GET miss: one miss for the home group; a tag false-positive reads an
//!   entry with probability ~12·load/255 per group (~4% at full load).
//! - SET of a new key: the lookup (one miss per table), a block carved from
//!   the class's current page (sequential, cached), the insertion into a
//!   group already in cache; amortised growth moves each key once per
//!   doubling (one entry read to rehash it, as `hashbrown`'s resize does).
//! - Memory at 16-byte keys and values: a 40-byte block plus 64/12 = 5.3
//!   index bytes per slot at a load between 7/16 and 7/8, so 46–52 bytes
//!   per key when no growth is under way (measured: 46.1–52.2, see
//!   docs/performance.md).
//! - A pipelined batch hides those misses by running [`Store::prefetch_index`]
//!   and [`Store::prefetch_entry`] some frames ahead of itself (the
//!   connection core does, `io::conn`): measured on 1M keys, 27 ns a hit
//!   against 54 for a plain loop of lookups.
//!
//! # Growth is incremental
//! When the keys reach 7/8 of the slots, a table twice as large becomes the
//! current one and the old one is *drained*: every write, and every expiry
//! tick, moves a bounded number of the old table's groups over
//! ([`MIGRATE_GROUPS_PER_WRITE`]); lookups consult both tables until it is
//! empty. One group per write is enough to finish before the new table
//! fills: the old table has half the groups, and the new one room for more
//! than twice its keys. Table memory comes lazily zeroed from the OS and a
//! drained table goes back a few hundred KiB per write ([`group_memory`]),
//! so neither the first nor the last write of a growth pays for the whole.
//! Entries never move during growth: only their 4-byte references do.
//!
//! # Hash flooding
//! CRC32C is linear and unkeyed, so colliding keys are cheap to compute (the
//! tests make thousands), and no seed helps: two equal-length keys that
//! collide under one initial value collide under every one. What protects
//! the table is a probe-length bound: every insertion counts the full groups
//! it passes, and when one passes more than [`FLOOD_PROBE_GROUPS_MAX`] the
//! store rehashes, incrementally like a growth (even while a growth is
//! draining: up to [`DRAINS_MAX`] tables drain at once), into a table keyed
//! with SipHash-1-3 under a random key ([`hash::KeyHasher::Keyed`]). From
//! then on the table stays keyed, at an estimated 10 ns more per hash (not
//! measured here). Filling 2^21 groups to 7/8 with random keys (simulated)
//! the longest probe passed 19 groups, each further group about half as
//! likely, so 40 is out of their reach; and a false alarm costs only the
//! slower hash. Flooded keys all
//! follow one probe path, so the attacker needs 480 of them to trip the
//! bound; until the keyed table has drained the flooded one
//! ([`MIGRATE_GROUPS_PER_WRITE_FLOODED`] per write), a lookup on that path
//! costs at most about 40 groups and 500 key comparisons.
//!
//! # Expiry
//! The deadline lives in the entry, and each group keeps a bit per slot
//! saying which entries have one. Reads check the deadline of the entry they
//! found (lazy expiry); [`Store::expire_cycle`] walks the slots from a cursor
//! with a budget, reading only entries whose bit is set.

mod arena;
mod entry;
mod group;
mod group_memory;
mod hash;
#[cfg(any(test, feature = "model"))]
pub mod model;
mod os_memory;
mod table;

#[cfg(test)]
mod tests;

use std::ops::ControlFlow;

use arena::{class_for, Arena, EntryRef};
use entry::EntryView;
use group::SLOTS_PER_GROUP;
use group_memory::{RetiredMemory, RETIRED_BYTES_PER_STEP};
use hash::KeyHasher;
use table::{Hit, SlotAt, Table};

/// Monotonic time in milliseconds, as the server's clock reports it.
pub type Millis = u64;

/// A live entry as the commands see it. Its fields are decoded when asked
/// for, so a GET pays for the value only.
#[derive(Clone, Copy)]
pub struct Entry<'a>(EntryView<'a>);

impl<'a> Entry<'a> {
    #[inline]
    pub fn value(self) -> &'a [u8] {
        self.0.value()
    }

    /// The value parsed as a full-range i64 when it was written (§2.0).
    #[inline]
    pub fn is_integer(self) -> bool {
        self.0.is_integer()
    }

    #[inline]
    pub fn deadline(self) -> Option<Millis> {
        self.0.deadline()
    }
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.value(), self.is_integer(), self.deadline()) == (other.value(), other.is_integer(), other.deadline())
    }
}

impl Eq for Entry<'_> {}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("value", &self.value())
            .field("is_integer", &self.is_integer())
            .field("deadline", &self.deadline())
            .finish()
    }
}

/// A key between the two stages of a prefetch: its hash, so that the second
/// stage does not compute it again.
#[derive(Clone, Copy, Debug)]
pub struct Prefetched {
    hash: u32,
}

/// The shape of the index, for benchmarks, tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableShape {
    /// Slots of the current table.
    pub slots: usize,
    /// An older table is still being drained into the current one.
    pub draining: bool,
    /// The current table hashes with the keyed fallback (a flood was seen).
    pub keyed_hash: bool,
    /// The most full groups one insertion passed since this table was made.
    pub probe_groups_max: usize,
}

/// Groups of a new store's table: 96 slots in one 4 KiB OS page. (The
/// first key adds the first 256 KiB arena page.)
const GROUP_COUNT_MIN: usize = 8;

/// Groups of the draining table moved per write (SET, DEL).
pub const MIGRATE_GROUPS_PER_WRITE: usize = 1;

/// Groups moved per write while a keyed rehash drains.
pub const MIGRATE_GROUPS_PER_WRITE_FLOODED: usize = 8;

/// An insertion passing more full groups than this starts a keyed rehash.
pub const FLOOD_PROBE_GROUPS_MAX: usize = 40;

/// Tables draining at once: a growth, and a keyed rehash started during it.
pub const DRAINS_MAX: usize = 2;

/// Which table a slot belongs to: the current one or a draining one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Current,
    Draining(u8),
}

/// A key found in the index: which table, where, its hash in that table,
/// its block, and whether it has a deadline. Sixteen bytes, so that it comes
/// back from a call in registers: a larger result goes through memory, and
/// the copies showed up as a tenth of a GET's instructions.
#[derive(Clone, Copy)]
struct Found {
    group: u32,
    hash: u32,
    entry: EntryRef,
    slot: u8,
    side: Side,
    has_deadline: bool,
}

const _: () = assert!(std::mem::size_of::<Option<Found>>() == 16);

impl Found {
    fn new(side: Side, hash: u32, at: SlotAt, entry: EntryRef, has_deadline: bool) -> Found {
        Found { group: at.group as u32, hash, entry, slot: at.slot as u8, side, has_deadline }
    }

    fn from_hit(side: Side, hash: u32, hit: Hit) -> Found {
        Found::new(side, hash, hit.at, hit.entry, hit.view.has_deadline())
    }

    fn at(self) -> SlotAt {
        SlotAt { group: self.group as usize, slot: usize::from(self.slot) }
    }
}

/// The table being emptied into the current one, group by group.
struct Drain {
    table: Table,
    /// Groups below this index are empty.
    next_group: usize,
    groups_per_write: usize,
}

pub struct Store {
    arena: Arena,
    table: Table,
    /// Older tables being emptied into `table`, oldest first.
    draining: Vec<Drain>,
    /// Memory of drained tables, going back to the OS step by step.
    retired: Vec<RetiredMemory>,
    /// Next slot of the current table the expiry cycle examines.
    expiry_cursor_slot: usize,
    /// An insertion passed too many full groups: rehash with a keyed hash
    /// at the end of this write (or, with [`DRAINS_MAX`] drains under way,
    /// of the first write after one finishes).
    keyed_rehash_pending: bool,
    keyed_generation: u32,
    probe_groups_max: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            arena: Arena::new(),
            table: Table::new(GROUP_COUNT_MIN, KeyHasher::Crc32c),
            draining: Vec::with_capacity(DRAINS_MAX),
            retired: Vec::new(),
            expiry_cursor_slot: 0,
            keyed_rehash_pending: false,
            keyed_generation: 0,
            probe_groups_max: 0,
        }
    }

    /// Keys stored, including expired keys not yet reclaimed.
    pub fn len(&self) -> usize {
        self.table.len + self.draining.iter().map(|drain| drain.table.len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the store holds on the heap and in its mappings: its tables'
    /// groups (draining tables, and retired ones not yet given back,
    /// included), its arena pages whether their blocks are in use or free,
    /// and its bookkeeping lists. Not the `Store` value itself.
    pub fn memory_bytes(&self) -> usize {
        self.arena.held_bytes()
            + self.table.held_bytes()
            + self.draining.iter().map(|drain| drain.table.held_bytes()).sum::<usize>()
            + self.draining.capacity() * std::mem::size_of::<Drain>()
            + self.retired.iter().map(RetiredMemory::held_bytes).sum::<usize>()
            + self.retired.capacity() * std::mem::size_of::<RetiredMemory>()
    }

    pub fn shape(&self) -> TableShape {
        TableShape {
            slots: self.table.slot_count(),
            draining: !self.draining.is_empty(),
            keyed_hash: self.table.hasher.is_keyed(),
            probe_groups_max: self.probe_groups_max,
        }
    }

    /// First stage of a prefetch: starts loading the index line a lookup
    /// of `key` reads first, and returns what the second stage,
    /// [`Store::prefetch_entry`], needs to go on from there.
    #[inline]
    pub fn prefetch_index(&self, key: &[u8]) -> Prefetched {
        let hash = self.table.hash(key);
        self.table.prefetch_index(hash);
        Prefetched { hash }
    }

    /// Second stage of a prefetch: reads the index line (which
    /// [`Store::prefetch_index`] should have loaded a while before) and
    /// starts loading the entry whose tag matches the key's, if one does.
    ///
    /// A batch of lookups that runs these two stages some distance ahead of
    /// itself (MICA's software pipeline) overlaps the cache misses of many
    /// lookups; measured on 1M keys, a plain lookup loop does not, because
    /// each lookup's two dependent misses fill the CPU's reorder window.
    /// Both stages are hints: should the table change in between (a growth
    /// starts), the second stage loads a useless line, nothing worse.
    #[inline]
    pub fn prefetch_entry(&self, prefetched: Prefetched) {
        self.table.prefetch_entry(prefetched.hash, &self.arena);
    }

    /// The live entry for `key`; an expired entry is deleted first (lazy
    /// expiry) and reported missing.
    #[inline(always)]
    pub fn get(&mut self, key: &[u8], now: Millis) -> Option<Entry<'_>> {
        let hash = self.table.hash(key);
        let Some(hit) = self.table.find(hash, key, &self.arena) else {
            let found = if self.draining.is_empty() { None } else { self.find_live_in_drains(hash, key, now) };
            return found.map(|found| Entry(self.entry(found.entry)));
        };
        if hit.view.has_deadline() {
            let found = self.live(Found::from_hit(Side::Current, hash, hit), now)?;
            return Some(Entry(self.entry(found.entry)));
        }
        // SAFETY: `hit.view` was detached by the lookup just above from
        // `self.arena`, which nothing has modified since, and is returned
        // with the lifetime of this `&mut self` borrow, during which the
        // arena cannot change.
        Some(Entry(unsafe { hit.view.attach() }))
    }

    /// [`Store::find_live`] in the draining tables, for a key not in the
    /// current one: out of line, so it does not weigh on the common path.
    #[inline(never)]
    fn find_live_in_drains(&mut self, hash: u32, key: &[u8], now: Millis) -> Option<Found> {
        let found = self.find_in_drains(hash, key)?;
        self.live(found, now)
    }

    /// Stores `value` under `key`, replacing any value and deadline. Does not
    /// look at whether the old value had expired (§2.2).
    ///
    /// Panics if the key or the value is longer than 65 535 bytes (the wire
    /// format cannot carry such a SET).
    pub fn set(&mut self, key: &[u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) {
        assert!(
            key.len() <= entry::KEY_BYTES_MAX && value.len() <= entry::VALUE_BYTES_MAX,
            "store keys and values are at most 65 535 bytes"
        );
        match self.find(key) {
            Ok(found) => self.rewrite(found, key, value, is_integer, deadline),
            Err(hash) => self.insert_new(hash, key, value, is_integer, deadline),
        }
        self.background_step();
    }

    /// Removes `key` whether or not it had expired; true if it was present.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let found = self.find(key).ok();
        if let Some(found) = found {
            self.remove(found);
        }
        self.background_step();
        found.is_some()
    }

    /// Replaces the deadline of a live key (`None` makes it permanent). An
    /// expired key counts as missing and is deleted (§7.2 Q7). True if the
    /// key was live.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Option<Millis>, now: Millis) -> bool {
        let Some(found) = self.find_live(key, now) else {
            return false;
        };
        let entry_ref = found.entry;
        let entry = self.entry(entry_ref);
        let (class, content_bytes) = (entry.class(), entry.content_bytes());
        let bytes_needed =
            entry::bytes_needed(entry.key().len(), entry.value().len(), entry.is_integer(), deadline.is_some());
        let (entry_ref, class) = if entry::stays_in(class, bytes_needed) {
            (entry_ref, class)
        } else {
            let moved_class = class_for(bytes_needed);
            let moved = self.arena.allocate(moved_class);
            self.arena.copy(entry_ref, moved, moved_class, content_bytes);
            entry::set_class(self.arena.block_mut(moved, moved_class), moved_class);
            self.arena.free(entry_ref, class);
            (moved, moved_class)
        };
        entry::write_deadline(self.arena.block_mut(entry_ref, class), deadline);
        self.table_mut(found.side).replace(found.at(), entry_ref, deadline.is_some());
        true
    }

    /// Calls `visit` with every live key, deleting expired keys met on the
    /// way (those deletions stand even if `visit` breaks early, §2.11).
    pub fn for_each_live_key(&mut self, now: Millis, mut visit: impl FnMut(&[u8]) -> ControlFlow<()>) {
        for side in self.sides() {
            for group in 0..self.table_of(side).group_count() {
                for slot in self.table_of(side).groups()[group].match_full() {
                    let at = SlotAt { group, slot };
                    let table = self.table_of(side);
                    let entry_ref = table.entry_ref(at);
                    let entry = EntryView::at(&self.arena, entry_ref);
                    if entry.is_expired(now) {
                        let hash = table.hash(entry.key());
                        self.remove(Found::new(side, hash, at, entry_ref, true));
                    } else if visit(entry.key()).is_break() {
                        return;
                    }
                }
            }
        }
    }

    /// One step of the background expiry cycle, examining at most
    /// `slots_budget` slots: while a growth drains, half the budget moves
    /// groups (each counting as its twelve slots); the rest walks the
    /// current table from a cursor that wraps around, reclaiming entries
    /// whose deadline has passed. Slots without a deadline cost a bit test.
    /// Returns how many keys were reclaimed.
    pub fn expire_cycle(&mut self, now: Millis, slots_budget: usize) -> usize {
        let mut slots_left = slots_budget;
        if !self.draining.is_empty() {
            let groups = slots_budget / 2 / SLOTS_PER_GROUP;
            self.migrate(groups);
            slots_left -= groups * SLOTS_PER_GROUP;
        }
        self.release_retired_step();

        let slot_count = self.table.slot_count();
        let mut slots_left = slots_left.min(slot_count);
        let mut cursor = self.expiry_cursor_slot % slot_count;
        let mut reclaimed = 0;
        while slots_left > 0 {
            let (group, first_slot) = (cursor / SLOTS_PER_GROUP, cursor % SLOTS_PER_GROUP);
            let slots = (SLOTS_PER_GROUP - first_slot).min(slots_left);
            let window = ((1u16 << slots) - 1) << first_slot;
            let candidates = self.table.groups()[group].deadline_mask & window;
            for slot in group::SlotMask(candidates) {
                let at = SlotAt { group, slot };
                let entry_ref = self.table.entry_ref(at);
                let entry = EntryView::at(&self.arena, entry_ref);
                if entry.is_expired(now) {
                    let hash = self.table.hash(entry.key());
                    self.remove(Found::new(Side::Current, hash, at, entry_ref, true));
                    reclaimed += 1;
                }
            }
            slots_left -= slots;
            cursor = (cursor + slots) % slot_count;
        }
        self.expiry_cursor_slot = cursor;
        reclaimed
    }

    /// Every table holding keys: draining ones, then the current one.
    fn sides(&self) -> impl Iterator<Item = Side> {
        (0..self.draining.len() as u8).map(Side::Draining).chain([Side::Current])
    }

    #[inline]
    fn table_of(&self, side: Side) -> &Table {
        match side {
            Side::Current => &self.table,
            Side::Draining(index) => &self.draining[usize::from(index)].table,
        }
    }

    #[inline]
    fn table_mut(&mut self, side: Side) -> &mut Table {
        match side {
            Side::Current => &mut self.table,
            Side::Draining(index) => &mut self.draining[usize::from(index)].table,
        }
    }

    #[inline]
    fn entry(&self, entry: EntryRef) -> EntryView<'_> {
        EntryView::at(&self.arena, entry)
    }

    /// Where `key` is, or its hash in the current table if it is nowhere.
    #[inline(always)]
    fn find(&self, key: &[u8]) -> Result<Found, u32> {
        let hash = self.table.hash(key);
        if let Some(hit) = self.table.find(hash, key, &self.arena) {
            return Ok(Found::from_hit(Side::Current, hash, hit));
        }
        if self.draining.is_empty() {
            return Err(hash);
        }
        self.find_in_drains(hash, key).ok_or(hash)
    }

    /// The draining tables' part of [`Store::find`], out of line: it runs
    /// only while a growth is under way, and would crowd the hot path.
    #[inline(never)]
    fn find_in_drains(&self, hash: u32, key: &[u8]) -> Option<Found> {
        for (index, drain) in self.draining.iter().enumerate() {
            let drain_hash =
                if drain.table.hasher.same_function(&self.table.hasher) { hash } else { drain.table.hash(key) };
            if let Some(hit) = drain.table.find(drain_hash, key, &self.arena) {
                return Some(Found::from_hit(Side::Draining(index as u8), drain_hash, hit));
            }
        }
        None
    }

    /// Where live `key` is; an expired one is removed on the way.
    #[inline(always)]
    fn find_live(&mut self, key: &[u8], now: Millis) -> Option<Found> {
        let found = self.find(key).ok()?;
        self.live(found, now)
    }

    /// `found` if its key is live; lazy expiry removes it otherwise.
    #[inline(always)]
    fn live(&mut self, found: Found, now: Millis) -> Option<Found> {
        if found.has_deadline && self.remove_if_expired(found, now) {
            None
        } else {
            Some(found)
        }
    }

    /// Lazy expiry: removes the entry at `found`, which has a deadline, if
    /// that has passed. Out of line, so that neither the deadline's decoding
    /// nor the deletion's setup sits on the path of keys without one; it
    /// returns a bool, not the entry, so that the caller's result stays in
    /// registers.
    #[inline(never)]
    fn remove_if_expired(&mut self, found: Found, now: Millis) -> bool {
        let expired = self.entry(found.entry).is_expired(now);
        if expired {
            self.remove(found);
        }
        expired
    }

    fn remove(&mut self, found: Found) {
        let class = self.entry(found.entry).class();
        self.arena.free(found.entry, class);
        self.table_mut(found.side).remove(found.at(), found.hash);
    }

    /// Overwrites the entry at `found`: in its block when the new contents
    /// fit without wasting half of it, else in a block of the right class.
    fn rewrite(&mut self, found: Found, key: &[u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) {
        let entry_ref = found.entry;
        let class = self.entry(entry_ref).class();
        let bytes_needed = entry::bytes_needed(key.len(), value.len(), is_integer, deadline.is_some());
        if entry::stays_in(class, bytes_needed) {
            entry::rewrite_value(self.arena.block_mut(entry_ref, class), value, is_integer, deadline);
            self.table_mut(found.side).set_has_deadline(found.at(), deadline.is_some());
            return;
        }
        let moved = self.allocate_entry(key, value, is_integer, deadline);
        self.arena.free(entry_ref, class);
        self.table_mut(found.side).replace(found.at(), moved, deadline.is_some());
    }

    fn allocate_entry(&mut self, key: &[u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) -> EntryRef {
        let class = class_for(entry::bytes_needed(key.len(), value.len(), is_integer, deadline.is_some()));
        let entry_ref = self.arena.allocate(class);
        entry::write(self.arena.block_mut(entry_ref, class), class, key, value, is_integer, deadline);
        entry_ref
    }

    /// Adds a key found in neither table; `hash` is its current-table hash.
    fn insert_new(&mut self, hash: u32, key: &[u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) {
        if self.draining.is_empty() && self.len() >= self.table.len_max() {
            // Growth keeps the hash function, so `hash` stays valid.
            self.start_drain(self.table.group_count() * 2, self.table.hasher.clone(), MIGRATE_GROUPS_PER_WRITE);
        }
        let entry_ref = self.allocate_entry(key, value, is_integer, deadline);
        let groups_passed = self.table.insert(hash, entry_ref, deadline.is_some());
        self.note_probe(groups_passed);
    }

    /// Records an insertion's probe length; a long one means flooding.
    #[inline]
    fn note_probe(&mut self, groups_passed: usize) {
        self.probe_groups_max = self.probe_groups_max.max(groups_passed);
        if groups_passed > FLOOD_PROBE_GROUPS_MAX {
            self.keyed_rehash_pending = true;
        }
    }

    /// Makes a fresh table of `group_count` groups current and starts
    /// draining the old one into it.
    fn start_drain(&mut self, group_count: usize, hasher: KeyHasher, groups_per_write: usize) {
        debug_assert!(self.draining.len() < DRAINS_MAX);
        let old = std::mem::replace(&mut self.table, Table::new(group_count, hasher));
        self.draining.push(Drain { table: old, next_group: 0, groups_per_write });
        self.expiry_cursor_slot = 0;
        self.probe_groups_max = 0;
    }

    /// The bounded work a write does besides its own: drain some groups,
    /// start a keyed rehash if a flood was seen, give back retired memory.
    #[inline]
    fn background_step(&mut self) {
        if let Some(groups_per_write) = self.draining.iter().map(|drain| drain.groups_per_write).max() {
            self.migrate(groups_per_write);
        }
        if self.keyed_rehash_pending && self.draining.len() < DRAINS_MAX {
            self.start_keyed_rehash();
        }
        self.release_retired_step();
    }

    /// Rehashes into a table keyed with a fresh random key, twice as large
    /// if the keys fill more than half of the current one.
    fn start_keyed_rehash(&mut self) {
        self.keyed_rehash_pending = false;
        self.keyed_generation += 1;
        let group_count = self.table.group_count();
        let group_count = if 2 * self.len() > self.table.len_max() { 2 * group_count } else { group_count };
        self.start_drain(group_count, KeyHasher::keyed(self.keyed_generation), MIGRATE_GROUPS_PER_WRITE_FLOODED);
    }

    /// Moves up to `group_count_max` groups of the newest draining table
    /// (after a flood, the flooded one) into the current one; retires a
    /// draining table once it is empty.
    fn migrate(&mut self, group_count_max: usize) {
        let Some(drain) = self.draining.last_mut() else {
            return;
        };
        let end = (drain.next_group + group_count_max).min(drain.table.group_count());
        let mut groups_passed_max = 0;
        for group in drain.next_group..end {
            for slot in drain.table.groups()[group].match_full() {
                let (entry_ref, has_deadline) = drain.table.take(SlotAt { group, slot });
                let hash = self.table.hash(EntryView::at(&self.arena, entry_ref).key());
                groups_passed_max = groups_passed_max.max(self.table.insert(hash, entry_ref, has_deadline));
            }
        }
        drain.next_group = end;
        if end == drain.table.group_count() {
            debug_assert_eq!(drain.table.len, 0);
            if let Some(drain) = self.draining.pop() {
                self.retired.push(drain.table.into_memory().retire());
            }
        }
        self.note_probe(groups_passed_max);
    }

    fn release_retired_step(&mut self) {
        if let Some(retired) = self.retired.last_mut() {
            if retired.release_step(RETIRED_BYTES_PER_STEP) {
                self.retired.pop();
            }
        }
    }
}
