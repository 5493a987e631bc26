//! Zeroed memory straight from the OS for the store's two large structures:
//! a table's groups ([`super::group_memory`]) and the arena's address space
//! ([`super::arena`]).
//!
//! On Unix both are anonymous private mappings: zero pages appear lazily on
//! first touch, so neither taking nor (with [`release_tail`]) giving back a
//! large block lands on one request. Under Miri and on other platforms the
//! global allocator serves, without those latency guarantees, and a
//! reservation is capped at [`RESERVE_BYTES_MAX`].

#[cfg(not(all(unix, not(miri))))]
pub(super) use global::{allocate_zeroed, release, release_tail, reserve_zeroed};
#[cfg(all(unix, not(miri)))]
pub(super) use mapped::{allocate_zeroed, release, release_tail, reserve_zeroed};

/// The largest reservation the global allocator is asked for: it commits
/// all of it, so this only has to be enough for the tests Miri runs.
#[cfg(not(all(unix, not(miri))))]
pub(super) const RESERVE_BYTES_MAX: usize = 16 << 20;

#[cfg(all(unix, not(miri)))]
mod mapped {
    use std::alloc::{handle_alloc_error, Layout};
    use std::ptr::NonNull;

    fn page_bytes() -> usize {
        // SAFETY: sysconf has no preconditions.
        let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(bytes).ok().filter(|&bytes| bytes.is_power_of_two()).unwrap_or(4096)
    }

    /// A private anonymous read-write mapping of at least `bytes`, with
    /// `extra_flags`: page-aligned and reading as zero. Returns it with its
    /// length, or `None` if the OS refuses.
    fn map(bytes: usize, extra_flags: libc::c_int) -> Option<(NonNull<u8>, usize)> {
        let held_bytes = bytes.next_multiple_of(page_bytes());
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                held_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        NonNull::new(base.cast::<u8>()).map(|base| (base, held_bytes))
    }

    /// At least `bytes` of zeroed memory, page-aligned (so 64-byte aligned);
    /// returns it with its length. Out of memory is fatal, as for `Box`.
    pub(in super::super) fn allocate_zeroed(bytes: usize) -> (NonNull<u8>, usize) {
        match map(bytes, 0) {
            Some(mapping) => mapping,
            None => handle_alloc_error(Layout::from_size_align(bytes, 64).unwrap_or(Layout::new::<u8>())),
        }
    }

    /// Address space for at least `bytes`, reading as zero, that costs
    /// memory only where it is written (`MAP_NORESERVE`: not counted
    /// against the overcommit limit either). `None` when the OS refuses:
    /// strict overcommit (`vm.overcommit_memory = 2`) or an address-space
    /// limit (`ulimit -v`) smaller than `bytes`.
    pub(in super::super) fn reserve_zeroed(bytes: usize) -> Option<(NonNull<u8>, usize)> {
        map(bytes, libc::MAP_NORESERVE)
    }

    /// # Safety
    /// `base..base + held_bytes` must be a mapping (or the head of one) made
    /// here and no longer used.
    pub(in super::super) unsafe fn release(base: NonNull<u8>, held_bytes: usize) {
        // SAFETY: per the contract. munmap only fails for invalid ranges,
        // which the contract excludes; there is nothing to do about it here.
        unsafe { libc::munmap(base.as_ptr().cast(), held_bytes) };
    }

    /// Unmaps the last `bytes_max` (rounded down to pages, at least one
    /// page) of the held range and returns how many bytes remain held.
    ///
    /// # Safety
    /// As for `release`.
    pub(in super::super) unsafe fn release_tail(base: NonNull<u8>, held_bytes: usize, bytes_max: usize) -> usize {
        let page_bytes = page_bytes();
        let release_bytes = (bytes_max / page_bytes).max(1) * page_bytes;
        let kept_bytes = held_bytes.saturating_sub(release_bytes);
        // SAFETY: `kept_bytes` is a multiple of the page size (both operands
        // are), so the tail starts on a page boundary inside the mapping.
        unsafe { release(base.add(kept_bytes), held_bytes - kept_bytes) };
        kept_bytes
    }
}

#[cfg(not(all(unix, not(miri))))]
mod global {
    use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
    use std::ptr::NonNull;

    fn layout(bytes: usize) -> Layout {
        match Layout::from_size_align(bytes, 64) {
            Ok(layout) => layout,
            Err(_) => handle_alloc_error(Layout::new::<u8>()),
        }
    }

    /// `bytes` (non-zero) of zeroed memory, 64-byte aligned.
    pub(in super::super) fn allocate_zeroed(bytes: usize) -> (NonNull<u8>, usize) {
        let layout = layout(bytes);
        // SAFETY: `layout` has a non-zero size (callers ask for at least
        // one group or one arena page).
        match NonNull::new(unsafe { alloc_zeroed(layout) }) {
            Some(base) => (base, bytes),
            None => handle_alloc_error(layout),
        }
    }

    /// `bytes` of zeroed memory, all committed, if no more than
    /// [`super::RESERVE_BYTES_MAX`].
    pub(in super::super) fn reserve_zeroed(bytes: usize) -> Option<(NonNull<u8>, usize)> {
        (bytes <= super::RESERVE_BYTES_MAX).then(|| allocate_zeroed(bytes))
    }

    /// # Safety
    /// `base` and `held_bytes` must be an allocation made here, whole and
    /// no longer used.
    pub(in super::super) unsafe fn release(base: NonNull<u8>, held_bytes: usize) {
        // SAFETY: per the contract, with the layout it was allocated with.
        unsafe { dealloc(base.as_ptr(), layout(held_bytes)) }
    }

    /// The global allocator cannot free part of a block: frees it all.
    ///
    /// # Safety
    /// As for `release`.
    pub(in super::super) unsafe fn release_tail(base: NonNull<u8>, held_bytes: usize, _bytes_max: usize) -> usize {
        // SAFETY: per the contract.
        unsafe { release(base, held_bytes) };
        0
    }
}
