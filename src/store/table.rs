//! The index: an open-addressing table of [`Group`]s mapping keys to arena
//! blocks, with its own hash function.
//!
//! The group count is a power of two. A key's home group is the top bits of
//! its hash times [`HOME_MIX`], its tag the 8 low bits of the hash
//! ([`tag_of`]), and its probe stride `2 × (7 low bits) + 1` groups (double
//! hashing, as F14 does; odd, so a probe visits every group). Keys that
//! share a home but not those bits part ways after one group. Simulated at
//! 7/8 load on 2^21 groups with random keys, the longest insertion passed
//! 19 full groups, against 60 with linear probing, and each further group
//! was about half as likely as the one before.
//!
//! The multiply matters because CRC32C is linear: the top bits of the raw
//! CRCs of keys that differ only in ASCII digits are structured, and such
//! keys (`key:0000000000`, `key:0000000001`, …) passed 0.78 full groups per
//! insertion at 4096 groups, against 0.12 for random keys. The multiply's
//! carries mix every bit into the top ones (simulated: 0.13, on every key
//! set tried). It is a bijection, so it neither adds nor removes collisions.
//!
//! A lookup compares the tag against all twelve slots of a group at once,
//! reads the entry only for matching tags (a false match costs 12/255 entry
//! reads per group at full load), and stops at the first group whose
//! overflow counter is zero. An insertion takes the first empty slot from
//! home on, counting itself in the overflow counter of every full group it
//! passes.

use super::arena::{Arena, EntryRef};
use super::entry::{DetachedEntry, EntryView};
use super::group::{tag_of, Group, SLOTS_PER_GROUP, TAG_EMPTY};
use super::group_memory::GroupMemory;
use super::hash::KeyHasher;

/// Slots per group that may hold keys before the table grows: 7/8 of them.
/// At 7/8 a random group overflows rarely, and growth halves the load.
const LOAD_SLOTS_PER_GROUP_NUMERATOR: usize = SLOTS_PER_GROUP * 7;
const LOAD_SLOTS_PER_GROUP_DENOMINATOR: usize = 8;

/// Fibonacci hashing's constant, 2^32 / φ: odd, with well-spread bits.
const HOME_MIX: u32 = 0x9E37_79B1;

/// Where a key sits: group index and slot within the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotAt {
    pub(super) group: usize,
    pub(super) slot: usize,
}

/// What a lookup found: where, the entry's block, and the entry as decoded
/// while comparing keys.
#[derive(Clone, Copy)]
pub(super) struct Hit {
    pub(super) at: SlotAt,
    pub(super) entry: EntryRef,
    pub(super) view: DetachedEntry,
}

/// Asks the CPU to start loading the cache line at `address` (a hint).
#[inline(always)]
fn prefetch_line<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: whatever the address, it cannot fault
    // and changes nothing the program can observe except timing.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// The slot of `group` (at index `group_at`) holding `key`, whose tag is
/// `tag`. A false tag match costs one entry read.
#[inline(always)]
fn find_in_group(group: &Group, group_at: usize, tag: u8, key: &[u8], arena: &Arena) -> Option<Hit> {
    for slot in group.match_tag(tag) {
        let entry = group.entry_refs[slot];
        let view = EntryView::at(arena, entry);
        if view.key() == key {
            let at = SlotAt { group: group_at, slot };
            return Some(Hit { at, entry, view: view.detach() });
        }
    }
    None
}

pub(super) struct Table {
    memory: GroupMemory,
    /// `32 - log2(group count)`: a home is the top bits of a mixed hash.
    home_shift: u32,
    pub(super) hasher: KeyHasher,
    /// Full slots.
    pub(super) len: usize,
}

impl Table {
    pub(super) fn new(group_count: usize, hasher: KeyHasher) -> Table {
        assert!(group_count.is_power_of_two() && (8..=1 << 32).contains(&group_count), "group count {group_count}");
        let home_shift = 32 - group_count.trailing_zeros();
        Table { memory: GroupMemory::zeroed(group_count), home_shift, hasher, len: 0 }
    }

    #[inline]
    pub(super) fn groups(&self) -> &[Group] {
        self.memory.groups()
    }

    #[inline]
    pub(super) fn group_count(&self) -> usize {
        self.groups().len()
    }

    pub(super) fn slot_count(&self) -> usize {
        self.group_count() * SLOTS_PER_GROUP
    }

    /// Keys this table takes before it should grow.
    pub(super) fn len_max(&self) -> usize {
        self.group_count() * LOAD_SLOTS_PER_GROUP_NUMERATOR / LOAD_SLOTS_PER_GROUP_DENOMINATOR
    }

    pub(super) fn held_bytes(&self) -> usize {
        self.memory.held_bytes()
    }

    pub(super) fn into_memory(self) -> GroupMemory {
        self.memory
    }

    #[inline]
    pub(super) fn hash(&self, key: &[u8]) -> u32 {
        self.hasher.hash(key)
    }

    #[inline]
    pub(super) fn home(&self, hash: u32) -> usize {
        (hash.wrapping_mul(HOME_MIX) >> self.home_shift) as usize
    }

    /// The group after `group` on the probe path of a key with `hash`.
    #[inline]
    pub(super) fn next_group(&self, group: usize, hash: u32) -> usize {
        (group + 2 * (hash as usize & 0x7f) + 1) & (self.group_count() - 1)
    }

    #[inline]
    pub(super) fn entry_ref(&self, at: SlotAt) -> EntryRef {
        self.groups()[at.group].entry_refs[at.slot]
    }

    /// The home group of a key with `hash`, and its index.
    #[inline(always)]
    fn home_group(&self, hash: u32) -> (usize, &Group) {
        let home = self.home(hash);
        debug_assert!(home < self.group_count());
        // SAFETY: `home` is a `u32` shifted right by `32 - log2(group_count)`,
        // so less than `group_count`.
        (home, unsafe { self.groups().get_unchecked(home) })
    }

    /// Starts loading the home group of a key with `hash`.
    #[inline]
    pub(super) fn prefetch_index(&self, hash: u32) {
        prefetch_line(self.home_group(hash).1);
    }

    /// Starts loading the entry in the first slot of the home group whose
    /// tag matches `hash`'s: the key's own entry, unless a false match
    /// comes first (about 3% of the time at full load).
    #[inline]
    pub(super) fn prefetch_entry(&self, hash: u32, arena: &Arena) {
        let (_, group) = self.home_group(hash);
        if let Some(slot) = group.match_tag(tag_of(hash)).lowest() {
            prefetch_line(arena.block_start(group.entry_refs[slot]).as_ptr());
        }
    }

    /// Where `key` (with this table's `hash`) is stored, if it is.
    ///
    /// Inlined, and only the home group: that is where a key is found, or
    /// found missing, all but a few percent of the time. Walking on is out of
    /// line ([`Table::find_past_home`]), so the probe loop's setup and its
    /// registers stay off the hot path; independent lookups overlap in the
    /// CPU only as far as their instructions fit its reorder window.
    #[inline(always)]
    pub(super) fn find(&self, hash: u32, key: &[u8], arena: &Arena) -> Option<Hit> {
        let (group_at, group) = self.home_group(hash);
        if let Some(hit) = find_in_group(group, group_at, tag_of(hash), key, arena) {
            return Some(hit);
        }
        if group.overflow_count == 0 {
            return None;
        }
        self.find_past_home(group_at, hash, key, arena)
    }

    /// [`Table::find`] beyond the home group.
    #[inline(never)]
    fn find_past_home(&self, home: usize, hash: u32, key: &[u8], arena: &Arena) -> Option<Hit> {
        let groups = self.groups();
        let mut group_at = home;
        for _ in 1..groups.len() {
            group_at = self.next_group(group_at, hash);
            let group = &groups[group_at];
            if let Some(hit) = find_in_group(group, group_at, tag_of(hash), key, arena) {
                return Some(hit);
            }
            if group.overflow_count == 0 {
                return None;
            }
        }
        None
    }

    /// Points slot `at` (full) at another block.
    #[inline]
    pub(super) fn replace(&mut self, at: SlotAt, entry: EntryRef, has_deadline: bool) {
        let group = &mut self.memory.groups_mut()[at.group];
        group.entry_refs[at.slot] = entry;
        group.set_has_deadline(at.slot, has_deadline);
    }

    #[inline]
    pub(super) fn set_has_deadline(&mut self, at: SlotAt, has_deadline: bool) {
        self.memory.groups_mut()[at.group].set_has_deadline(at.slot, has_deadline);
    }

    /// Adds a key that is not in the table. Returns the number of full
    /// groups the insertion passed (0 when the home group had room).
    ///
    /// Panics if no slot is empty, which the load limit rules out.
    #[inline]
    pub(super) fn insert(&mut self, hash: u32, entry: EntryRef, has_deadline: bool) -> usize {
        let tag = tag_of(hash);
        let mut group_at = self.home(hash);
        for groups_passed in 0..self.group_count() {
            let group = &mut self.memory.groups_mut()[group_at];
            if let Some(slot) = group.match_empty().lowest() {
                group.tags[slot] = tag;
                group.entry_refs[slot] = entry;
                group.set_has_deadline(slot, has_deadline);
                self.len += 1;
                return groups_passed;
            }
            group.overflow_add();
            group_at = self.next_group(group_at, hash);
        }
        panic!("store table full: {} keys in {} groups", self.len, self.group_count());
    }

    /// Empties slot `at`, which holds a key with this table's `hash`, and
    /// takes that key out of the overflow counters its insertion raised.
    #[inline]
    pub(super) fn remove(&mut self, at: SlotAt, hash: u32) {
        let mut group_at = self.home(hash);
        while group_at != at.group {
            self.memory.groups_mut()[group_at].overflow_remove();
            group_at = self.next_group(group_at, hash);
        }
        self.take(at);
    }

    /// Empties slot `at` without touching overflow counters: for a table
    /// being drained, where counters may only overstate (lookups then probe
    /// a little further), never understate. Returns the slot's block and
    /// whether it had a deadline.
    #[inline]
    pub(super) fn take(&mut self, at: SlotAt) -> (EntryRef, bool) {
        let group = &mut self.memory.groups_mut()[at.group];
        debug_assert_ne!(group.tags[at.slot], TAG_EMPTY);
        let had_deadline = group.deadline_mask & (1 << at.slot) != 0;
        group.tags[at.slot] = TAG_EMPTY;
        group.set_has_deadline(at.slot, false);
        self.len -= 1;
        (group.entry_refs[at.slot], had_deadline)
    }
}
