//! A provided-buffer ring: receive buffers the kernel picks from as data
//! arrives, so an idle connection holds no receive memory at all.
//!
//! Two anonymous mappings: the ring of `io_uring_buf` descriptors (16 bytes
//! each, page-aligned as the kernel requires) and the buffers themselves,
//! `count × buffer_bytes` contiguous bytes, buffer `bid` at `bid × bytes`.
//!
//! Ownership is the whole safety story. At any moment a buffer is either
//! the kernel's (published in the ring and not yet reported in a CQE) or the
//! loop's (reported by a CQE, not yet recycled). The loop reads a buffer only
//! between the CQE that names it and [`BufRing::recycle`], and the kernel
//! writes only buffers it took from the ring; so no byte is ever shared.
//! Recycling writes a descriptor at the local tail; [`BufRing::publish`]
//! then makes every recycled buffer visible with one release store of the
//! tail, once per loop turn.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The ring's size limit (the kernel refuses more).
pub const BUFFERS_MAX: u16 = 32_768;

pub struct BufRing {
    /// `count` descriptors; the kernel reads them, we write them.
    descriptors: NonNull<BufRingEntry>,
    descriptors_bytes: usize,
    /// `count × buffer_bytes` bytes of receive buffers.
    buffers: NonNull<u8>,
    buffers_bytes: usize,
    count: u16,
    buffer_bytes: u32,
    /// Next descriptor slot to fill (wrapping); published by `publish`.
    tail: u16,
    /// Whether each buffer is the loop's (reported, not yet recycled).
    held: Vec<bool>,
    group: u16,
}

impl BufRing {
    /// Maps `count` (a power of two, at most [`BUFFERS_MAX`]) buffers of
    /// `buffer_bytes` each and hands them all to the ring (unregistered).
    pub fn new(count: u16, buffer_bytes: u32, group: u16) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > BUFFERS_MAX || buffer_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a buffer ring needs a power-of-two count up to {BUFFERS_MAX} and non-empty buffers"),
            ));
        }
        let descriptors_bytes = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        let buffers_bytes = usize::from(count) * buffer_bytes as usize;
        let descriptors = map_anonymous(descriptors_bytes)?.cast::<BufRingEntry>();
        let buffers = match map_anonymous(buffers_bytes) {
            Ok(buffers) => buffers,
            Err(err) => {
                // SAFETY: `descriptors` was mapped just above with this length
                // and nothing refers to it yet.
                unsafe { libc::munmap(descriptors.as_ptr().cast(), descriptors_bytes) };
                return Err(err);
            }
        };
        let mut ring = BufRing {
            descriptors,
            descriptors_bytes,
            buffers,
            buffers_bytes,
            count,
            buffer_bytes,
            tail: 0,
            held: vec![true; usize::from(count)],
            group,
        };
        for bid in 0..count {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Registers the ring with `submitter` under its group id.
    pub fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: the descriptor mapping is page-aligned (mmap), holds
        // `count` entries and lives until `self` is dropped; the owner
        // unregisters the group (or tears the ring down) and waits for every
        // receive to complete before dropping `self`, so the kernel never
        // reads a descriptor or writes a buffer after the memory is gone.
        unsafe { submitter.register_buf_ring_with_flags(self.descriptors.as_ptr() as u64, self.count, self.group, 0) }
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn buffer_bytes(&self) -> u32 {
        self.buffer_bytes
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    /// The first `len` bytes of buffer `bid`, which a CQE has just handed to
    /// the loop. `None` if the kernel's report is out of range.
    pub fn take(&mut self, bid: u16, len: usize) -> Option<&[u8]> {
        let index = usize::from(bid);
        if index >= usize::from(self.count) || len > self.buffer_bytes as usize {
            return None;
        }
        debug_assert!(!self.held[index], "buffer {bid} reported twice without being recycled");
        self.held[index] = true;
        let offset = index * self.buffer_bytes as usize;
        // SAFETY: `offset + len` lies within the buffer mapping (checked
        // above); the kernel reported this buffer in a CQE, so it no longer
        // writes it until `recycle(bid)`, which needs `&mut self` and so
        // cannot run while the returned borrow lives.
        Some(unsafe { std::slice::from_raw_parts(self.buffers.as_ptr().add(offset), len) })
    }

    /// Gives buffer `bid` back to the kernel (visible after `publish`).
    pub fn recycle(&mut self, bid: u16) {
        let index = usize::from(bid);
        if index >= usize::from(self.count) || !self.held[index] {
            debug_assert!(false, "recycling buffer {bid}, which the loop does not hold");
            return;
        }
        self.held[index] = false;
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`, so the write stays inside the descriptor
        // mapping. The kernel only reads descriptors between its head and the
        // published tail; `slot` is at or past the published tail, so the
        // kernel is not reading it.
        let descriptor = unsafe { &mut *self.descriptors.as_ptr().add(slot) };
        descriptor.set_addr(self.buffers.as_ptr() as u64 + (index * self.buffer_bytes as usize) as u64);
        descriptor.set_len(self.buffer_bytes);
        descriptor.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer available to the kernel.
    pub fn publish(&mut self) {
        // SAFETY: the tail lives in the first descriptor's reserved field
        // (the kernel's layout), inside the mapping; it is a naturally
        // aligned u16 that the kernel reads with an acquire load, so a
        // release store orders every descriptor written before it.
        unsafe {
            let tail = BufRingEntry::tail(self.descriptors.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both mappings were created by `new` with these lengths;
        // the owner guarantees the kernel no longer uses them (see
        // `register`).
        unsafe {
            libc::munmap(self.buffers.as_ptr().cast(), self.buffers_bytes);
            libc::munmap(self.descriptors.as_ptr().cast(), self.descriptors_bytes);
        }
    }
}

/// A private, zero-filled, page-aligned anonymous mapping.
fn map_anonymous(bytes: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(address.cast()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))
}
