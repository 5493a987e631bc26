//! Memory for a table's groups: zeroed, 64-byte aligned, and cheap to take
//! and give back in bounded steps.
//!
//! Why not `Box<[Group]>`: the global allocator zeroes a 64-byte-aligned
//! block with `memset` (measured here: 25 ms for 64 MiB), and freeing a
//! resident 32 MiB block costs about 2 ms; either would land on the one
//! request that starts or finishes a growth, far over the 1 ms budget. On
//! Unix the groups therefore come from an anonymous `mmap` (zero pages
//! appear lazily, on first touch), and a drained table is handed back with
//! `munmap` a few hundred KiB per step ([`RetiredMemory`]). Under Miri and on
//! other platforms the global allocator serves, without those latency
//! guarantees.

use std::ptr::NonNull;

use super::group::Group;
use super::os_memory as os;

/// Bytes of a retired table given back per [`RetiredMemory::release_step`]
/// (about 20 µs of `munmap` for resident pages).
pub(super) const RETIRED_BYTES_PER_STEP: usize = 256 * 1024;

/// A table's groups, all-zero when created (every slot empty).
pub(super) struct GroupMemory {
    groups: NonNull<Group>,
    group_count: usize,
    held_bytes: usize,
}

// SAFETY: `GroupMemory` owns its groups exclusively, like a `Box<[Group]>`;
// nothing else holds the pointer, so moving it to another thread is sound.
unsafe impl Send for GroupMemory {}

impl GroupMemory {
    pub(super) fn zeroed(group_count: usize) -> GroupMemory {
        assert!(group_count > 0, "a table has at least one group");
        let (base, held_bytes) = os::allocate_zeroed(group_count * std::mem::size_of::<Group>());
        GroupMemory { groups: base.cast(), group_count, held_bytes }
    }

    #[inline]
    pub(super) fn groups(&self) -> &[Group] {
        // SAFETY: `groups` points to `group_count` groups that this value
        // owns; they were zeroed at allocation, and all-zero is a valid
        // `Group` (plain integers). `&self` guarantees no `&mut` is live.
        unsafe { std::slice::from_raw_parts(self.groups.as_ptr(), self.group_count) }
    }

    #[inline]
    pub(super) fn groups_mut(&mut self) -> &mut [Group] {
        // SAFETY: as in `groups`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.groups.as_ptr(), self.group_count) }
    }

    /// Bytes of memory this table holds (its mapping, rounded to pages).
    pub(super) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Stops using the groups; the memory goes back in bounded steps.
    pub(super) fn retire(self) -> RetiredMemory {
        let retired = RetiredMemory { base: self.groups.cast(), held_bytes: self.held_bytes };
        std::mem::forget(self);
        retired
    }
}

impl Drop for GroupMemory {
    fn drop(&mut self) {
        // SAFETY: `groups` and `held_bytes` describe the allocation made in
        // `zeroed`, which nothing else frees (`retire` forgets `self`).
        unsafe { os::release(self.groups.cast(), self.held_bytes) }
    }
}

/// The memory of a table that no longer holds entries, on its way back.
pub(super) struct RetiredMemory {
    base: NonNull<u8>,
    held_bytes: usize,
}

// SAFETY: owned exclusively, as `GroupMemory` was.
unsafe impl Send for RetiredMemory {}

impl RetiredMemory {
    pub(super) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Gives back up to `bytes_max` bytes (all of it where the platform
    /// cannot release part of an allocation). True once nothing is held.
    pub(super) fn release_step(&mut self, bytes_max: usize) -> bool {
        // SAFETY: `base` and `held_bytes` describe what is still held of the
        // allocation; `release_tail` returns what remains held.
        self.held_bytes = unsafe { os::release_tail(self.base, self.held_bytes, bytes_max) };
        self.held_bytes == 0
    }
}

impl Drop for RetiredMemory {
    fn drop(&mut self) {
        if self.held_bytes > 0 {
            // SAFETY: what is still held of the allocation, freed once.
            unsafe { os::release(self.base, self.held_bytes) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_groups_are_empty_and_retire_in_steps() {
        let group_count = 5_000;
        let mut memory = GroupMemory::zeroed(group_count);
        assert_eq!(memory.groups().len(), group_count);
        assert!(memory.held_bytes() >= group_count * 64);
        assert!(memory.groups().iter().all(|group| group.match_full().lowest().is_none() && group.overflow_count == 0));
        memory.groups_mut()[4_999].tags[0] = 0x80;
        assert_eq!(memory.groups()[4_999].match_full().lowest(), Some(0));
        let mut retired = memory.retire();
        let mut steps = 0;
        while !retired.release_step(64 * 1024) {
            steps += 1;
            assert!(steps < 1_000);
        }
        assert_eq!(retired.held_bytes(), 0);
    }
}
