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

use std::ptr::NonNull;

use super::arena::{class_bytes, Class, BLOCK_BYTES_MAX};
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

const _: () = assert!(HEADER_BYTES + KEY_BYTES_MAX + VALUE_BYTES_MAX + DEADLINE_BYTES <= BLOCK_BYTES_MAX);

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
    let value_at = HEADER_BYTES + EntryView::new(block).key_len;
    block[value_at..value_at + value.len()].copy_from_slice(value);
    write_deadline(block, deadline);
}

/// Sets or clears the deadline of the entry in `block`, which has room.
#[inline]
pub(super) fn write_deadline(block: &mut [u8], deadline: Option<Millis>) {
    let entry = EntryView::new(block);
    let deadline_at = HEADER_BYTES + entry.key_len + entry.value_len;
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

/// A read-only view of an entry at the start of `bytes`, its header
/// decoded once (one bounds check for the header, one per field read).
#[derive(Clone, Copy)]
pub(super) struct EntryView<'a> {
    /// Key, value and deadline: everything after the header.
    body: &'a [u8],
    class: Class,
    flags: u8,
    key_len: usize,
    value_len: usize,
}

impl<'a> EntryView<'a> {
    #[inline]
    pub(super) fn new(bytes: &'a [u8]) -> EntryView<'a> {
        let Some((&[class, flags, key_low, key_high, value_low, value_high], body)) =
            bytes.split_first_chunk::<HEADER_BYTES>()
        else {
            unreachable!("an arena block is at least 8 bytes");
        };
        EntryView {
            body,
            class,
            flags,
            key_len: usize::from(u16::from_le_bytes([key_low, key_high])),
            value_len: usize::from(u16::from_le_bytes([value_low, value_high])),
        }
    }

    #[inline]
    pub(super) fn class(self) -> Class {
        self.class
    }

    #[inline]
    pub(super) fn is_integer(self) -> bool {
        self.flags & FLAG_INTEGER != 0
    }

    #[inline]
    pub(super) fn key(self) -> &'a [u8] {
        &self.body[..self.key_len]
    }

    #[inline]
    pub(super) fn value(self) -> &'a [u8] {
        &self.body[self.key_len..self.key_len + self.value_len]
    }

    #[inline]
    pub(super) fn deadline(self) -> Option<Millis> {
        if self.flags & FLAG_DEADLINE == 0 {
            return None;
        }
        let deadline = self.body[self.key_len + self.value_len..].first_chunk::<DEADLINE_BYTES>()?;
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
        HEADER_BYTES + self.key_len + self.value_len
    }

    /// The same view without its borrow, to carry across code that needs
    /// `&mut` of the store on a path that does not use the view (see
    /// [`DetachedEntry::attach`]).
    #[inline]
    pub(super) fn detach(self) -> DetachedEntry {
        DetachedEntry {
            body: NonNull::from(self.body).cast(),
            body_len: self.body.len(),
            class: self.class,
            flags: self.flags,
            key_len: self.key_len,
            value_len: self.value_len,
        }
    }
}

/// An [`EntryView`] with its lifetime erased.
///
/// A GET finds the entry with a shared borrow of the arena, then either
/// returns a view of it or, if it expired, deletes it, which needs `&mut`.
/// The borrow checker (NLL) rejects a borrow that is returned on one path
/// while `&mut` is taken on another, even though the paths are disjoint;
/// deriving the view again costs a tenth of a GET's instructions. Detaching
/// and re-attaching is the narrow way around that.
#[derive(Clone, Copy)]
pub(super) struct DetachedEntry {
    body: NonNull<u8>,
    body_len: usize,
    class: Class,
    flags: u8,
    key_len: usize,
    value_len: usize,
}

impl DetachedEntry {
    /// # Safety
    /// The arena this entry was detached from must be alive and unmodified
    /// since [`EntryView::detach`], and must stay so while the returned view
    /// (of caller-chosen lifetime `'a`) is used: tie `'a` to a borrow of the
    /// arena (or of the store owning it).
    #[inline]
    pub(super) unsafe fn attach<'a>(self) -> EntryView<'a> {
        EntryView {
            // SAFETY: `body` and `body_len` come from a `&[u8]` into arena
            // memory that, per this function's contract, is still alive and
            // unmodified, and no `&mut` to it exists while `'a` lasts.
            body: unsafe { std::slice::from_raw_parts(self.body.as_ptr(), self.body_len) },
            class: self.class,
            flags: self.flags,
            key_len: self.key_len,
            value_len: self.value_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::arena::class_for;
    use super::*;

    #[test]
    fn an_entry_reads_back_what_was_written() {
        let mut block = [0u8; 64];
        let class = class_for(bytes_needed(3, 5, false, true));
        write(&mut block, class, b"key", b"value", false, Some(77));
        let entry = EntryView::new(&block);
        assert_eq!((entry.key(), entry.value(), entry.is_integer()), (&b"key"[..], &b"value"[..], false));
        assert_eq!((entry.deadline(), entry.class()), (Some(77), class));
        assert!(!entry.is_expired(76) && entry.is_expired(77));

        rewrite_value(&mut block, b"-12", true, None);
        let entry = EntryView::new(&block);
        assert_eq!(
            (entry.key(), entry.value(), entry.is_integer(), entry.deadline()),
            (&b"key"[..], &b"-12"[..], true, None)
        );
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
