//! The bytes of one entry, in one arena block:
//!
//! ```text
//! 0      class u8        the block's size class (blocks may hold less)
//! 1      flags u8        bit 0: integer tag, bit 1: has a deadline
//! 2..4   key_len u16le
//! 4..6   value_len u16le
//! 6..    key, then value, then the deadline (u64le) if it has one
//! ```
//!
//! A 16-byte key with a 16-byte value takes 38 bytes, a 40-byte block. An
//! integer-tagged value reserves room for the longest i64 text (20 bytes),
//! so INCR and friends always rewrite in place ("9" → "10" included).

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::arena::{class_bytes, Arena, Class, EntryRef, BLOCK_BYTES_MAX};
use super::Millis;

const HEADER_BYTES: usize = 6;
const FLAG_INTEGER: u8 = 1;
const FLAG_DEADLINE: u8 = 2;
const DEADLINE_BYTES: usize = 8;

/// Value bytes reserved for an integer-tagged value: `-9223372036854775808`.
const INTEGER_VALUE_BYTES_RESERVED: usize = 20;

/// Longest key and longest value an entry holds (the wire allows less).
pub(super) const KEY_BYTES_MAX: usize = u16::MAX as usize;
pub(super) const VALUE_BYTES_MAX: usize = u16::MAX as usize;

const _: () = assert!(ENTRY_BYTES_MAX <= BLOCK_BYTES_MAX);

/// Bytes an entry with these contents needs.
#[inline]
pub(super) fn bytes_needed(key_len: usize, value_len: usize, is_integer: bool, has_deadline: bool) -> usize {
    let value_room = if is_integer { value_len.max(INTEGER_VALUE_BYTES_RESERVED) } else { value_len };
    HEADER_BYTES + key_len + value_room + if has_deadline { DEADLINE_BYTES } else { 0 }
}

/// Whether contents needing `bytes` may stay in a block of class `class`:
/// they fit, and do not waste more than half of it. Same-class rewrites
/// always stay; shrinking by a deadline always stays.
#[inline]
pub(super) fn stays_in(class: Class, bytes: usize) -> bool {
    let block_bytes = class_bytes(class.into());
    bytes <= block_bytes && 2 * bytes > block_bytes
}

/// Writes a whole entry into `block` (of class `class`).
#[inline]
pub(super) fn write(
    block: &mut [u8],
    class: Class,
    key: &[u8],
    value: &[u8],
    is_integer: bool,
    deadline: Option<Millis>,
) {
    debug_assert!(block.len() >= bytes_needed(key.len(), value.len(), is_integer, deadline.is_some()));
    block[0] = class;
    block[2..4].copy_from_slice(&(key.len() as u16).to_le_bytes());
    block[HEADER_BYTES..HEADER_BYTES + key.len()].copy_from_slice(key);
    rewrite_value(block, value, is_integer, deadline);
}

/// Rewrites the value, tag and deadline of an entry whose key stays.
#[inline]
pub(super) fn rewrite_value(block: &mut [u8], value: &[u8], is_integer: bool, deadline: Option<Millis>) {
    block[1] = if is_integer { FLAG_INTEGER } else { 0 };
    block[4..6].copy_from_slice(&(value.len() as u16).to_le_bytes());
    let value_at = HEADER_BYTES + Header::read(block).key_len();
    block[value_at..value_at + value.len()].copy_from_slice(value);
    write_deadline(block, deadline);
}

/// Sets or clears the deadline of the entry in `block`, which has room.
#[inline]
pub(super) fn write_deadline(block: &mut [u8], deadline: Option<Millis>) {
    let header = Header::read(block);
    let deadline_at = HEADER_BYTES + header.key_len() + header.value_len();
    match deadline {
        Some(deadline) => {
            block[1] |= FLAG_DEADLINE;
            block[deadline_at..deadline_at + DEADLINE_BYTES].copy_from_slice(&deadline.to_le_bytes());
        }
        None => block[1] &= !FLAG_DEADLINE,
    }
}

/// Records in a copied entry the class of the block it now occupies.
#[inline]
pub(super) fn set_class(block: &mut [u8], class: Class) {
    block[0] = class;
}

/// An entry's header, decoded.
#[derive(Clone, Copy)]
struct Header {
    class: Class,
    flags: u8,
    key_len: u16,
    value_len: u16,
}

impl Header {
    #[inline(always)]
    fn decode([class, flags, key_low, key_high, value_low, value_high]: [u8; HEADER_BYTES]) -> Header {
        Header {
            class,
            flags,
            key_len: u16::from_le_bytes([key_low, key_high]),
            value_len: u16::from_le_bytes([value_low, value_high]),
        }
    }

    /// The header at the start of `block` (at least 8 bytes, a block).
    #[inline]
    fn read(block: &[u8]) -> Header {
        match block.first_chunk() {
            Some(&header) => Header::decode(header),
            None => unreachable!("an arena block is at least 8 bytes"),
        }
    }

    #[inline(always)]
    fn has_deadline(self) -> bool {
        self.flags & FLAG_DEADLINE != 0
    }

    #[inline(always)]
    fn key_len(self) -> usize {
        usize::from(self.key_len)
    }

    #[inline(always)]
    fn value_len(self) -> usize {
        usize::from(self.value_len)
    }
}

/// A read-only view of the entry in one arena block, borrowing the arena.
///
/// It reads the header once and builds the key and value slices without
/// bounds checks: an entry's fields span at most [`ENTRY_BYTES_MAX`] bytes
/// from its start (its lengths are u16), and [`Arena::block_start`]
/// guarantees more than that is readable from any block start. A GET is
/// short enough that the checks were a fifth of its instructions.
#[derive(Clone, Copy)]
pub(super) struct EntryView<'a> {
    start: NonNull<u8>,
    header: Header,
    arena: PhantomData<&'a Arena>,
}

/// The most bytes an entry spans: header, longest key and value, deadline.
const ENTRY_BYTES_MAX: usize = HEADER_BYTES + KEY_BYTES_MAX + VALUE_BYTES_MAX + DEADLINE_BYTES;

impl<'a> EntryView<'a> {
    /// The entry in block `entry` of `arena`.
    #[inline(always)]
    pub(super) fn at(arena: &'a Arena, entry: EntryRef) -> EntryView<'a> {
        let start = arena.block_start(entry);
        // SAFETY: `block_start` guarantees `BLOCK_BYTES_MAX` (at least
        // `HEADER_BYTES`) initialised bytes from `start`; any bytes are a
        // valid `[u8; N]`, and the read is unaligned-safe for a byte array.
        let header = Header::decode(unsafe { start.cast::<[u8; HEADER_BYTES]>().read() });
        EntryView { start, header, arena: PhantomData }
    }

    /// `len` bytes of the entry from byte `from`.
    ///
    /// # Safety
    /// `from + len <= ENTRY_BYTES_MAX`: true of every field, since the
    /// header's lengths are u16.
    #[inline(always)]
    unsafe fn bytes(self, from: usize, len: usize) -> &'a [u8] {
        debug_assert!(from + len <= ENTRY_BYTES_MAX);
        // SAFETY: `from + len <= ENTRY_BYTES_MAX <= BLOCK_BYTES_MAX` (the
        // contract), which `Arena::block_start` guarantees mapped and
        // initialised from `start`, for as long as the arena borrowed for
        // `'a` lives; that borrow also excludes any `&mut` into the arena.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr().add(from), len) }
    }

    #[inline]
    pub(super) fn class(self) -> Class {
        self.header.class
    }

    #[inline]
    pub(super) fn is_integer(self) -> bool {
        self.header.flags & FLAG_INTEGER != 0
    }

    /// Whether the entry carries a deadline (without reading it).
    #[inline]
    pub(super) fn has_deadline(self) -> bool {
        self.header.has_deadline()
    }

    #[inline]
    pub(super) fn key(self) -> &'a [u8] {
        // SAFETY: HEADER_BYTES + a u16 length is within ENTRY_BYTES_MAX.
        unsafe { self.bytes(HEADER_BYTES, self.header.key_len()) }
    }

    #[inline]
    pub(super) fn value(self) -> &'a [u8] {
        // SAFETY: HEADER_BYTES + two u16 lengths is within ENTRY_BYTES_MAX.
        unsafe { self.bytes(HEADER_BYTES + self.header.key_len(), self.header.value_len()) }
    }

    #[inline]
    pub(super) fn deadline(self) -> Option<Millis> {
        if !self.has_deadline() {
            return None;
        }
        let at = HEADER_BYTES + self.header.key_len() + self.header.value_len();
        // SAFETY: HEADER_BYTES + two u16 lengths + DEADLINE_BYTES is
        // ENTRY_BYTES_MAX at most.
        let deadline = unsafe { self.bytes(at, DEADLINE_BYTES) }.first_chunk::<DEADLINE_BYTES>()?;
        Some(Millis::from_le_bytes(*deadline))
    }

    #[inline]
    pub(super) fn is_expired(self, now: Millis) -> bool {
        self.deadline().is_some_and(|deadline| deadline <= now)
    }

    /// Bytes of header, key and value: what a move must copy (the deadline
    /// is written again after it).
    #[inline]
    pub(super) fn content_bytes(self) -> usize {
        HEADER_BYTES + self.header.key_len() + self.header.value_len()
    }

    /// The same view without its borrow, to carry across code that needs
    /// `&mut` of the store on a path that does not use the view (see
    /// [`DetachedEntry::attach`]).
    #[inline]
    pub(super) fn detach(self) -> DetachedEntry {
        DetachedEntry { start: self.start, header: self.header }
    }
}

/// An [`EntryView`] with its borrow of the arena erased.
///
/// A GET finds the entry with a shared borrow of the arena, then either
/// returns a view of it or, if it expired, deletes it, which needs `&mut`.
/// The borrow checker (NLL) rejects a borrow that is returned on one path
/// while `&mut` is taken on another, even though the paths are disjoint;
/// deriving the view again costs a tenth of a GET's instructions. Detaching
/// and re-attaching is the narrow way around that.
#[derive(Clone, Copy)]
pub(super) struct DetachedEntry {
    start: NonNull<u8>,
    header: Header,
}

impl DetachedEntry {
    /// Whether the entry carries a deadline: decoded with the header, so
    /// no read of the arena.
    #[inline]
    pub(super) fn has_deadline(self) -> bool {
        self.header.has_deadline()
    }

    /// # Safety
    /// The arena this entry was detached from must be alive and unmodified
    /// since [`EntryView::detach`], and must stay so while the returned view
    /// (of caller-chosen lifetime `'a`) is used: tie `'a` to a borrow of the
    /// arena (or of the store owning it).
    #[inline]
    pub(super) unsafe fn attach<'a>(self) -> EntryView<'a> {
        // The view's reads rely on `start` being a block start of a live
        // arena with no writer, which the contract provides.
        EntryView { start: self.start, header: self.header, arena: PhantomData }
    }
}

#[cfg(test)]
mod tests {
    use super::super::arena::class_for;
    use super::*;

    #[test]
    fn an_entry_reads_back_what_was_written() {
        let mut arena = Arena::new();
        let class = class_for(bytes_needed(3, 5, false, true));
        let block = arena.allocate(class);
        write(arena.block_mut(block, class), class, b"key", b"value", false, Some(77));
        let entry = EntryView::at(&arena, block);
        assert_eq!((entry.key(), entry.value(), entry.is_integer()), (&b"key"[..], &b"value"[..], false));
        assert_eq!((entry.deadline(), entry.class(), entry.has_deadline()), (Some(77), class, true));
        assert!(!entry.is_expired(76) && entry.is_expired(77));

        rewrite_value(arena.block_mut(block, class), b"-12", true, None);
        let entry = EntryView::at(&arena, block);
        assert_eq!(
            (entry.key(), entry.value(), entry.is_integer(), entry.deadline()),
            (&b"key"[..], &b"-12"[..], true, None)
        );
    }

    /// The view trusts the header's lengths; the arena's guard is what makes
    /// that sound for any reference and any header. The largest entry at
    /// the last reference reads to the end of the guard (Miri checks every
    /// byte of it; natively, a short guard would fault).
    #[test]
    fn the_largest_entry_at_the_last_reference_stays_in_the_arena() {
        let mut arena = Arena::new();
        let last = EntryRef::MAX;
        let block = arena.block_mut(last, class_for(BLOCK_BYTES_MAX));
        block[..HEADER_BYTES].copy_from_slice(&[0, FLAG_DEADLINE, 0xff, 0xff, 0xff, 0xff]);
        let entry = EntryView::at(&arena, last);
        assert_eq!((entry.key().len(), entry.value().len()), (KEY_BYTES_MAX, VALUE_BYTES_MAX));
        assert_eq!(entry.deadline(), Some(0));
        assert_eq!(entry.content_bytes() + DEADLINE_BYTES, ENTRY_BYTES_MAX);
    }

    #[test]
    fn sixteen_byte_key_and_value_fit_forty_bytes() {
        assert_eq!(class_bytes(class_for(bytes_needed(16, 16, false, false)).into()), 40);
        assert_eq!(class_bytes(class_for(bytes_needed(16, 16, false, true)).into()), 48);
    }

    #[test]
    fn integers_grow_in_place_and_a_dropped_deadline_stays() {
        let class = class_for(bytes_needed(1, 1, true, true));
        assert!(stays_in(class, bytes_needed(1, 20, true, true)));
        assert!(stays_in(class, bytes_needed(1, 2, true, false)));
        assert!(!stays_in(class, bytes_needed(1, 100, false, false)));
        assert!(!stays_in(class_for(1000), bytes_needed(1, 2, false, false)));
    }
}
