//! One group of the index: twelve slots in one 64-byte cache line.
//!
//! ```text
//! bytes  0..12  tags: 0 = empty, else the key's tag (1..=255, [`tag_of`])
//! bytes 12..14  overflow_count: keys that probed past this group
//! bytes 14..16  deadline_mask: bit i set when slot i's entry has a deadline
//! bytes 16..64  entry_refs: twelve u32 arena references
//! ```
//!
//! The first 16 bytes are matched with one SSE2 compare (the two counters
//! ride along and are masked off). Tags take 255 values, not the 128 of a
//! SwissTable's control bytes (which spend the top bit on "full"): a lookup
//! whose tag matches a slot holding another key reads that key's entry, a
//! cache miss for nothing, and a missing key meets such a false match half
//! as often (7.6 full slots per home group at 1M keys: 2.9% of misses
//! instead of 5.8%). Measured, those reads were half the time of a miss. Putting tags and references in the same
//! line is what makes a lookup cost one miss in the index instead of the two
//! of a SwissTable (control bytes and slots in separate arrays); twelve
//! slots instead of sixteen is the price.
//!
//! `overflow_count` replaces tombstones (the F14 scheme): a lookup stops at
//! the first group that no key ever overflowed past, so a deletion can always
//! mark its slot empty, and it decrements the counters its key's insertion
//! incremented.

pub(super) const SLOTS_PER_GROUP: usize = 12;

/// Tag of an empty slot; full slots hold a non-zero tag.
pub(super) const TAG_EMPTY: u8 = 0;

const SLOT_MASK_ALL: u16 = (1 << SLOTS_PER_GROUP) - 1;

/// The tag stored for a key with this hash: its 8 low bits, with 0 (empty)
/// taken as 1.
#[inline]
pub(super) fn tag_of(hash: u32) -> u8 {
    let byte = hash as u8;
    byte + u8::from(byte == TAG_EMPTY)
}

/// A group is valid when all-zero (every slot empty, counters 0), which is
/// what lets the table come from lazily zeroed pages.
#[repr(C, align(64))]
pub(super) struct Group {
    pub(super) tags: [u8; SLOTS_PER_GROUP],
    pub(super) overflow_count: u16,
    pub(super) deadline_mask: u16,
    pub(super) entry_refs: [u32; SLOTS_PER_GROUP],
}

const _: () = assert!(std::mem::size_of::<Group>() == 64);

impl Group {
    /// Slots whose tag equals `tag`.
    #[inline]
    pub(super) fn match_tag(&self, tag: u8) -> SlotMask {
        SlotMask(self.byte_mask_equal(tag) & SLOT_MASK_ALL)
    }

    /// Empty slots.
    #[inline]
    pub(super) fn match_empty(&self) -> SlotMask {
        SlotMask(self.byte_mask_equal(TAG_EMPTY) & SLOT_MASK_ALL)
    }

    /// Full slots.
    #[inline]
    pub(super) fn match_full(&self) -> SlotMask {
        SlotMask(!self.byte_mask_equal(TAG_EMPTY) & SLOT_MASK_ALL)
    }

    /// Counts one more key that probed past this group; saturates, and a
    /// saturated counter is never decremented again (lookups then always
    /// continue past this group, which stays correct).
    #[inline]
    pub(super) fn overflow_add(&mut self) {
        self.overflow_count = self.overflow_count.saturating_add(1);
    }

    #[inline]
    pub(super) fn overflow_remove(&mut self) {
        debug_assert!(self.overflow_count > 0);
        if self.overflow_count != u16::MAX {
            self.overflow_count -= 1;
        }
    }

    #[inline]
    pub(super) fn set_has_deadline(&mut self, slot: usize, has_deadline: bool) {
        let bit = 1u16 << slot;
        if has_deadline {
            self.deadline_mask |= bit;
        } else {
            self.deadline_mask &= !bit;
        }
    }

    /// Bit i set when byte i of the first 16 bytes equals `byte`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn byte_mask_equal(&self, byte: u8) -> u16 {
        use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_load_si128, _mm_movemask_epi8, _mm_set1_epi8};
        // SAFETY: SSE2 is part of the x86-64 baseline. The load reads the
        // first 16 bytes of `self`: `Group` is repr(C), 64-byte aligned and
        // starts with 16 bytes of plain integers (tags and two counters, no
        // padding), so the read is in bounds, aligned and initialised.
        unsafe {
            let bytes = _mm_load_si128(self as *const Group as *const __m128i);
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8))) as u16
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    fn byte_mask_equal(&self, byte: u8) -> u16 {
        self.tags.iter().enumerate().fold(0, |mask, (slot, &tag)| mask | (u16::from(tag == byte) << slot))
    }
}

/// A set of slots within one group, iterated lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotMask(pub(super) u16);

impl SlotMask {
    #[inline]
    pub(super) fn lowest(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }
}

impl Iterator for SlotMask {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let slot = self.lowest()?;
        self.0 &= self.0 - 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_group() -> Group {
        Group { tags: [TAG_EMPTY; SLOTS_PER_GROUP], overflow_count: 0, deadline_mask: 0, entry_refs: [0; 12] }
    }

    #[test]
    fn matching_ignores_the_counters_that_share_the_vector() {
        let mut group = empty_group();
        group.tags[3] = tag_of(5);
        group.tags[11] = tag_of(5);
        group.tags[7] = tag_of(6);
        // Counter bytes that look like a full tag must not match.
        group.overflow_count = u16::from_le_bytes([tag_of(5), tag_of(5)]);
        group.deadline_mask = 0xffff;
        assert_eq!(group.match_tag(tag_of(5)).collect::<Vec<_>>(), [3, 11]);
        assert_eq!(group.match_full().collect::<Vec<_>>(), [3, 7, 11]);
        assert_eq!(group.match_empty().0.count_ones(), 9);
        assert_eq!(group.match_empty().lowest(), Some(0));
        // Zero counters look like empty slots and must not match either.
        group.overflow_count = 0;
        group.deadline_mask = 0;
        assert_eq!(group.match_empty().0.count_ones(), 9);
        assert_eq!(group.match_full().collect::<Vec<_>>(), [3, 7, 11]);
    }

    #[test]
    fn tags_take_every_byte_but_empty() {
        let tags: std::collections::HashSet<u8> =
            (0..=u8::MAX).map(|byte| tag_of(0x1234_5600 | u32::from(byte))).collect();
        assert_eq!(tags.len(), 255);
        assert!(!tags.contains(&TAG_EMPTY));
    }

    #[test]
    fn saturated_overflow_counter_sticks() {
        let mut group = empty_group();
        group.overflow_count = u16::MAX - 1;
        group.overflow_add();
        group.overflow_add();
        group.overflow_remove();
        assert_eq!(group.overflow_count, u16::MAX);
    }
}
