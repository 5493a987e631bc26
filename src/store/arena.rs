//! Where entries live: size-classed blocks carved from 256 KiB pages of one
//! reserved range of address space.
//!
//! Each entry (key, value, deadline and tags, see [`super::entry`]) is one
//! block. Blocks of a class are 8-byte multiples up to 512 bytes, then four
//! classes per doubling (at most 25% rounding) up to the largest possible
//! entry. A class takes blocks from its free list first, else from the page
//! it is carving, else from the next page: pages are carved from the
//! reservation in order, and its memory is committed by the OS only where
//! written, so nothing is allocated per key, nor per page. Freed blocks go
//! on their class's free list (linked through their first four bytes);
//! pages are kept for reuse, never returned, so `held_bytes` only grows.
//!
//! A block is named by a 32-bit [`EntryRef`], its offset from the start of
//! the arena in 8-byte units: four bytes per slot instead of an eight-byte
//! pointer keeps the index at about 5.3 bytes per slot. Because the arena is
//! one range, a reference becomes an address with a shift, a mask and an
//! add: no page list to load and no bounds check on the lookup path. What
//! makes that sound for *any* `u32`, not only references the arena handed
//! out, is the reservation's shape: a power-of-two span that references are
//! masked into, followed by [`BLOCK_BYTES_MAX`] more bytes, so from every
//! block start [`Arena::block_start`] returns, that many bytes are mapped
//! and initialised. The span is 32 GiB, all a reference can name, unless
//! the OS refuses that much address space (strict overcommit, `ulimit -v`):
//! then it halves until the OS accepts, and that is the arena's capacity.

use std::ptr::NonNull;

use super::os_memory;

/// Names one block: its offset in the arena in 8-byte units, that is
/// `page << PAGE_UNITS_SHIFT | unit within the page`.
pub(super) type EntryRef = u32;

/// Blocks are placed and sized in units of this many bytes.
const UNIT_BYTES: usize = 8;

const PAGE_UNITS_SHIFT: u32 = 15;

/// Bytes of one arena page, the unit a class carves blocks from.
pub(super) const PAGE_BYTES: usize = (1 << PAGE_UNITS_SHIFT) * UNIT_BYTES;

/// Bytes an [`EntryRef`] can name: 2^32 units of 8 bytes, 32 GiB.
const SPAN_BYTES_MAX: usize = (1 << 32) * UNIT_BYTES;

/// Classes of 8-byte steps: 8, 16, …, 512 bytes.
const SMALL_CLASS_COUNT: usize = 64;
const SMALL_CLASS_BYTES_MAX: usize = SMALL_CLASS_COUNT * UNIT_BYTES;

/// Four geometric classes per doubling above 512 bytes, up to 160 KiB.
const CLASS_COUNT: usize = SMALL_CLASS_COUNT + 33;

/// The largest block a class provides.
pub(super) const BLOCK_BYTES_MAX: usize = class_bytes(CLASS_COUNT - 1);

const _: () = assert!(BLOCK_BYTES_MAX <= PAGE_BYTES);
const _: () = assert!(CLASS_COUNT <= u8::MAX as usize + 1);

const FREE_LIST_END: EntryRef = EntryRef::MAX;

/// Size class, an index into the class table; stored in each entry.
pub(super) type Class = u8;

/// Bytes of a block of class `class`.
#[inline]
pub(super) const fn class_bytes(class: usize) -> usize {
    if class < SMALL_CLASS_COUNT {
        (class + 1) * UNIT_BYTES
    } else {
        let step = class - SMALL_CLASS_COUNT;
        let doubling = 9 + step / 4;
        (5 + step % 4) << (doubling - 2)
    }
}

/// The smallest class whose blocks hold `bytes` (1 ≤ bytes ≤
/// [`BLOCK_BYTES_MAX`]).
#[inline]
pub(super) fn class_for(bytes: usize) -> Class {
    debug_assert!((1..=BLOCK_BYTES_MAX).contains(&bytes));
    if bytes <= SMALL_CLASS_BYTES_MAX {
        return (bytes.div_ceil(UNIT_BYTES) - 1) as Class;
    }
    // bytes - 1 lies in [2^doubling, 2^(doubling + 1)); its top three bits
    // pick one of the four classes of that doubling.
    let doubling = usize::BITS - 1 - (bytes - 1).leading_zeros();
    let quarter = ((bytes - 1) >> (doubling - 2)) - 4;
    (SMALL_CLASS_COUNT + (doubling as usize - 9) * 4 + quarter) as Class
}

#[derive(Clone, Copy)]
struct ClassState {
    free_head: EntryRef,
    /// Next unit to carve in `carve_page`, and the end of the page's room.
    carve_page: u32,
    carve_unit: u32,
    carve_unit_end: u32,
}

const CLASS_STATE_FRESH: ClassState =
    ClassState { free_head: FREE_LIST_END, carve_page: 0, carve_unit: 0, carve_unit_end: 0 };

pub(super) struct Arena {
    /// Start of the reservation: `span_mask + 1` bytes that references
    /// address, then [`BLOCK_BYTES_MAX`] more.
    base: NonNull<u8>,
    span_mask: usize,
    mapped_bytes: usize,
    /// Pages carved so far, from the start of the reservation.
    page_count: u32,
    classes: [ClassState; CLASS_COUNT],
}

// SAFETY: `Arena` owns its reservation exclusively, like a `Box<[u8]>`;
// nothing else holds the pointer, so moving it to another thread is sound.
unsafe impl Send for Arena {}

impl Arena {
    pub(super) fn new() -> Arena {
        let mut span_bytes = SPAN_BYTES_MAX;
        let (base, mapped_bytes) = loop {
            if let Some(reservation) = os_memory::reserve_zeroed(span_bytes + BLOCK_BYTES_MAX) {
                break reservation;
            }
            if span_bytes == PAGE_BYTES {
                // Not even one page: out of memory, as for `Box`.
                let (base, mapped_bytes) = os_memory::allocate_zeroed(span_bytes + BLOCK_BYTES_MAX);
                break (base, mapped_bytes);
            }
            span_bytes /= 2;
        };
        Arena {
            base,
            span_mask: span_bytes - 1,
            mapped_bytes,
            page_count: 0,
            classes: [CLASS_STATE_FRESH; CLASS_COUNT],
        }
    }

    /// Bytes of the pages carved so far (the rest of the reservation costs
    /// no memory).
    pub(super) fn held_bytes(&self) -> usize {
        self.page_count as usize * PAGE_BYTES
    }

    /// Where block `entry` starts. Whatever `entry` is, the
    /// [`BLOCK_BYTES_MAX`] bytes from there are mapped, initialised memory
    /// of this arena, valid as long as it is: readers may build slices
    /// inside them without a bounds check.
    #[inline(always)]
    pub(super) fn block_start(&self, entry: EntryRef) -> NonNull<u8> {
        let offset = (entry as usize * UNIT_BYTES) & self.span_mask;
        // SAFETY: `offset <= span_mask`, and the reservation holds
        // `span_mask + 1 + BLOCK_BYTES_MAX` bytes, so the result and the
        // `BLOCK_BYTES_MAX` bytes after it are inside it.
        unsafe { self.base.add(offset) }
    }

    /// Block `entry` of class `class`.
    #[inline]
    pub(super) fn block_mut(&mut self, entry: EntryRef, class: Class) -> &mut [u8] {
        let bytes = class_bytes(class.into());
        // SAFETY: `bytes <= BLOCK_BYTES_MAX`, which `block_start` guarantees
        // mapped and initialised; `&mut self` makes this the only reference
        // into the arena while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.block_start(entry).as_ptr(), bytes) }
    }

    /// A block of class `class`, uninitialised in meaning (old bytes).
    pub(super) fn allocate(&mut self, class: Class) -> EntryRef {
        let state = &mut self.classes[usize::from(class)];
        if state.free_head != FREE_LIST_END {
            let entry = state.free_head;
            let mut next = [0u8; 4];
            next.copy_from_slice(&self.block_mut(entry, class)[..4]);
            self.classes[usize::from(class)].free_head = EntryRef::from_le_bytes(next);
            return entry;
        }
        let block_units = (class_bytes(class.into()) / UNIT_BYTES) as u32;
        if state.carve_unit + block_units > state.carve_unit_end {
            self.start_page(class);
        }
        let state = &mut self.classes[usize::from(class)];
        let entry = state.carve_page << PAGE_UNITS_SHIFT | state.carve_unit;
        state.carve_unit += block_units;
        entry
    }

    /// Copies the first `bytes` bytes of block `from` to block `to` of
    /// class `to_class`.
    pub(super) fn copy(&mut self, from: EntryRef, to: EntryRef, to_class: Class, bytes: usize) {
        assert!(bytes <= class_bytes(to_class.into()), "copy of {bytes} bytes overflows a class {to_class} block");
        // SAFETY: both ranges are at most `BLOCK_BYTES_MAX` bytes from a
        // block start, so inside the reservation (`block_start`); `&mut self`
        // excludes any other reference into it; `ptr::copy` allows overlap.
        unsafe { std::ptr::copy(self.block_start(from).as_ptr(), self.block_start(to).as_ptr(), bytes) }
    }

    /// Returns block `entry` of class `class` to its class's free list.
    pub(super) fn free(&mut self, entry: EntryRef, class: Class) {
        let free_head = self.classes[usize::from(class)].free_head;
        self.block_mut(entry, class)[..4].copy_from_slice(&free_head.to_le_bytes());
        self.classes[usize::from(class)].free_head = entry;
    }

    fn start_page(&mut self, class: Class) {
        let page_count_max = (self.span_mask + 1) / PAGE_BYTES;
        assert!(
            (self.page_count as usize) < page_count_max,
            "the store's arena is full ({} MiB of address space)",
            (self.span_mask + 1) >> 20
        );
        let state = &mut self.classes[usize::from(class)];
        state.carve_page = self.page_count;
        state.carve_unit = 0;
        state.carve_unit_end = (PAGE_BYTES / UNIT_BYTES) as u32;
        self.page_count += 1;
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `base` and `mapped_bytes` describe the reservation made in
        // `new`, used by nothing else once the arena goes.
        unsafe { os_memory::release(self.base, self.mapped_bytes) }
    }
}

#[cfg(test)]
impl Arena {
    /// Blocks on the free lists, with their classes.
    pub(super) fn free_blocks(&self) -> Vec<(EntryRef, Class)> {
        let mut blocks = Vec::new();
        for (class, state) in self.classes.iter().enumerate() {
            let mut entry = state.free_head;
            while entry != FREE_LIST_END {
                blocks.push((entry, class as Class));
                // SAFETY: four bytes from a block start are inside the
                // reservation (`block_start`), and `&self` excludes writers.
                let next = unsafe { self.block_start(entry).cast::<[u8; 4]>().read() };
                entry = EntryRef::from_le_bytes(next);
            }
        }
        blocks
    }

    /// Byte range a block occupies in the arena, as (first byte, end byte).
    pub(super) fn block_span(entry: EntryRef, class: Class) -> (usize, usize) {
        let offset = entry as usize * UNIT_BYTES;
        (offset, offset + class_bytes(class.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_the_smallest_that_fit() {
        let mut bytes = 1;
        while bytes <= BLOCK_BYTES_MAX {
            let class = usize::from(class_for(bytes));
            assert!(class_bytes(class) >= bytes, "{bytes} bytes in class {class}");
            assert!(class == 0 || class_bytes(class - 1) < bytes, "{bytes} bytes: class {class} is not the smallest");
            assert_eq!(class_bytes(class) % UNIT_BYTES, 0);
            bytes += if cfg!(miri) { 997 } else { 1 };
        }
        assert_eq!(class_bytes(CLASS_COUNT - 1), 160 * 1024);
        assert_eq!(class_for(BLOCK_BYTES_MAX) as usize, CLASS_COUNT - 1);
    }

    #[test]
    fn freed_blocks_are_reused_before_new_ones_are_carved() {
        let mut arena = Arena::new();
        let class = class_for(40);
        let first = arena.allocate(class);
        let second = arena.allocate(class);
        assert_ne!(first, second);
        arena.block_mut(second, class).fill(0xAB);
        arena.free(first, class);
        assert_eq!(arena.allocate(class), first);
        assert!(arena.block_mut(second, class).iter().all(|&b| b == 0xAB));
        assert_eq!(arena.page_count, 1);
    }

    #[test]
    fn a_class_moves_to_a_new_page_when_its_page_is_carved() {
        let mut arena = Arena::new();
        let class = class_for(BLOCK_BYTES_MAX);
        let first = arena.allocate(class);
        let second = arena.allocate(class);
        assert_eq!(first as usize * UNIT_BYTES / PAGE_BYTES, 0);
        assert_eq!(second as usize * UNIT_BYTES / PAGE_BYTES, 1);
        assert_eq!(arena.held_bytes(), 2 * PAGE_BYTES);
    }
}
