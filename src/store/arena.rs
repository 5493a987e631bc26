//! Where entries live: size-classed blocks carved from 256 KiB pages.
//!
//! Each entry (key, value, deadline and tags, see [`super::entry`]) is one
//! block. Blocks of a class are 8-byte multiples up to 512 bytes, then four
//! classes per doubling (at most 25% rounding) up to the largest possible
//! entry. A class takes blocks from its free list first, else from the page
//! it is carving, else from a new page: the global allocator is called once
//! per page, never per key. Freed blocks go on their class's free list
//! (linked through their first four bytes); pages are kept for reuse, never
//! returned, so `held_bytes` only grows.
//!
//! A block is named by a 32-bit [`EntryRef`]: page index and offset in
//! 8-byte units. Four bytes per slot instead of an eight-byte pointer is
//! what keeps the index at about 5.3 bytes per slot; the price is a look-up
//! in the page list (a few KiB, always cached) and a 32 GiB arena limit.

/// Names one block: `page << PAGE_UNITS_SHIFT | unit`.
pub(super) type EntryRef = u32;

/// Blocks are placed and sized in units of this many bytes.
const UNIT_BYTES: usize = 8;

const PAGE_UNITS_SHIFT: u32 = 15;

/// Bytes of one arena page: exactly what an [`EntryRef`]'s 15-bit unit
/// offset spans, so that every offset is provably inside its page and the
/// compiler drops the bounds checks on the hot path. (The allocator's header
/// then spills into one more OS page per arena page: 1.6% more resident
/// arena, bought back many times in instructions per lookup.)
pub(super) const PAGE_BYTES: usize = (1 << PAGE_UNITS_SHIFT) * UNIT_BYTES;

type Page = Box<[u8; PAGE_BYTES]>;

/// Pages an [`EntryRef`] can name: 2^17 pages of 256 KiB, 32 GiB.
const PAGE_COUNT_MAX: usize = 1 << (32 - PAGE_UNITS_SHIFT);

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
    pages: Vec<Page>,
    classes: [ClassState; CLASS_COUNT],
}

impl Arena {
    pub(super) fn new() -> Arena {
        Arena { pages: Vec::new(), classes: [CLASS_STATE_FRESH; CLASS_COUNT] }
    }

    /// Bytes taken from the global allocator: pages and the page list.
    pub(super) fn held_bytes(&self) -> usize {
        self.pages.len() * PAGE_BYTES + self.pages.capacity() * std::mem::size_of::<Page>()
    }

    /// The bytes from the start of block `entry` to the end of its page;
    /// the entry's header says how many of them it uses.
    #[inline]
    pub(super) fn bytes_from(&self, entry: EntryRef) -> &[u8] {
        let (page, offset) = split(entry);
        &self.pages[page][offset..]
    }

    /// Block `entry` of class `class`.
    #[inline]
    pub(super) fn block_mut(&mut self, entry: EntryRef, class: Class) -> &mut [u8] {
        let (page, offset) = split(entry);
        &mut self.pages[page][offset..offset + class_bytes(class.into())]
    }

    /// A block of class `class`, uninitialised in meaning (old bytes).
    pub(super) fn allocate(&mut self, class: Class) -> EntryRef {
        let state = &mut self.classes[usize::from(class)];
        if state.free_head != FREE_LIST_END {
            let entry = state.free_head;
            let (page, offset) = split(entry);
            let mut next = [0u8; 4];
            next.copy_from_slice(&self.pages[page][offset..offset + 4]);
            state.free_head = EntryRef::from_le_bytes(next);
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
    /// class `to_class` (distinct blocks).
    pub(super) fn copy(&mut self, from: EntryRef, to: EntryRef, to_class: Class, bytes: usize) {
        assert!(bytes <= class_bytes(to_class.into()), "copy of {bytes} bytes overflows a class {to_class} block");
        let ((from_page, from_offset), (to_page, to_offset)) = (split(from), split(to));
        if from_page == to_page {
            self.pages[from_page].copy_within(from_offset..from_offset + bytes, to_offset);
            return;
        }
        let (low, high) = self.pages.split_at_mut(from_page.max(to_page));
        let (from_bytes, to_bytes) =
            if from_page < to_page { (&low[from_page], &mut high[0]) } else { (&high[0], &mut low[to_page]) };
        to_bytes[to_offset..to_offset + bytes].copy_from_slice(&from_bytes[from_offset..from_offset + bytes]);
    }

    /// Returns block `entry` of class `class` to its class's free list.
    pub(super) fn free(&mut self, entry: EntryRef, class: Class) {
        let state = &mut self.classes[usize::from(class)];
        let (page, offset) = split(entry);
        self.pages[page][offset..offset + 4].copy_from_slice(&state.free_head.to_le_bytes());
        state.free_head = entry;
    }

    fn start_page(&mut self, class: Class) {
        assert!(self.pages.len() < PAGE_COUNT_MAX, "the store's arena is full (32 GiB)");
        let page = self.pages.len() as u32;
        // Through a Vec so the zeroed page never sits on the stack.
        let Ok(zeroed) = Page::try_from(vec![0u8; PAGE_BYTES].into_boxed_slice()) else {
            unreachable!("a {PAGE_BYTES}-byte slice converts to a {PAGE_BYTES}-byte array");
        };
        self.pages.push(zeroed);
        let state = &mut self.classes[usize::from(class)];
        state.carve_page = page;
        state.carve_unit = 0;
        state.carve_unit_end = (PAGE_BYTES / UNIT_BYTES) as u32;
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
                let (page, offset) = split(entry);
                let mut next = [0u8; 4];
                next.copy_from_slice(&self.pages[page][offset..offset + 4]);
                entry = EntryRef::from_le_bytes(next);
            }
        }
        blocks
    }

    /// Byte range a block occupies, as (page, first byte, end byte).
    pub(super) fn block_span(entry: EntryRef, class: Class) -> (usize, usize, usize) {
        let (page, offset) = split(entry);
        (page, offset, offset + class_bytes(class.into()))
    }
}

#[inline]
fn split(entry: EntryRef) -> (usize, usize) {
    let page = (entry >> PAGE_UNITS_SHIFT) as usize;
    let unit = (entry & ((1 << PAGE_UNITS_SHIFT) - 1)) as usize;
    (page, unit * UNIT_BYTES)
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
        assert_eq!(arena.pages.len(), 1);
    }

    #[test]
    fn a_class_moves_to_a_new_page_when_its_page_is_carved() {
        let mut arena = Arena::new();
        let class = class_for(BLOCK_BYTES_MAX);
        let first = arena.allocate(class);
        let second = arena.allocate(class);
        assert_eq!(split(first).0, 0);
        assert_eq!(split(second).0, 1);
        assert_eq!(arena.held_bytes(), 2 * PAGE_BYTES + arena.pages.capacity() * 8);
    }
}
