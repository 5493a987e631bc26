//! Key hashing: CRC32C of the key, and the keyed fallback a table switches to
//! when its probe lengths say someone is flooding it.
//!
//! CRC32C runs on the SSE4.2 `crc32` instruction, eight bytes per step
//! (about 1.4 ns for a 16-byte key here, PLATFORM.md). CPUs without SSE4.2,
//! and other architectures, get the `crc32c` crate, which computes the same
//! function (a unit test pins that for every length and alignment).
//!
//! CRC32C is linear and unkeyed: anyone can compute colliding keys offline,
//! and seeding it does not help (two keys of equal length that collide under
//! one initial value collide under all of them). So the flooding defence is
//! not a seed but a switch of function: see [`KeyHasher::Keyed`] and the
//! store's module documentation.

use std::hash::{BuildHasher, RandomState};

/// The function a table hashes keys with. Every table owns one; a table that
/// grows hands a copy to its successor, so both hash a key the same way.
#[derive(Clone)]
pub(super) enum KeyHasher {
    /// CRC32C, fast but predictable.
    Crc32c,
    /// SipHash-1-3 with a random key from the OS ([`RandomState`]), slower
    /// (an estimated 10 ns per short key, not measured here) but
    /// unpredictable to a client.
    /// `generation` tells two keyed hashers apart without comparing keys.
    Keyed { state: RandomState, generation: u32 },
}

impl KeyHasher {
    /// A keyed hasher with a fresh random key.
    pub(super) fn keyed(generation: u32) -> KeyHasher {
        KeyHasher::Keyed { state: RandomState::new(), generation }
    }

    pub(super) fn is_keyed(&self) -> bool {
        matches!(self, KeyHasher::Keyed { .. })
    }

    /// True when both compute the same function, so one hash serves both.
    pub(super) fn same_function(&self, other: &KeyHasher) -> bool {
        match (self, other) {
            (KeyHasher::Crc32c, KeyHasher::Crc32c) => true,
            (KeyHasher::Keyed { generation: a, .. }, KeyHasher::Keyed { generation: b, .. }) => a == b,
            _ => false,
        }
    }

    #[inline]
    pub(super) fn hash(&self, key: &[u8]) -> u32 {
        match self {
            KeyHasher::Crc32c => crc32c(key),
            KeyHasher::Keyed { state, .. } => keyed_hash(state, key),
        }
    }
}

/// Out of line and marked cold so that the SipHash rounds do not sit in
/// every inlined lookup (only a flooded store takes this path).
#[cold]
#[inline(never)]
fn keyed_hash(state: &RandomState, key: &[u8]) -> u32 {
    let hash = state.hash_one(key);
    (hash ^ (hash >> 32)) as u32
}

/// CRC32C (Castagnoli) of `bytes`, as the `crc32c` crate and RFC 3720 define
/// it: initial value and final xor `!0`.
#[inline]
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU supports SSE4.2, checked just above (a constant
        // `true` when the build targets SSE4.2).
        return unsafe { crc32c_sse42(bytes) };
    }
    crc32c::crc32c(bytes)
}

/// # Safety
/// The CPU must support SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};

    let mut crc = u64::from(u32::MAX);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(word);
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(word_bytes));
    }
    let mut crc = crc as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 2_000 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn crc32c_matches_the_crate_on_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..2_048),
            offset in 0usize..8,
        ) {
            let bytes = &bytes[offset.min(bytes.len())..];
            prop_assert_eq!(crc32c(bytes), crc32c::crc32c(bytes));
        }
    }

    #[test]
    fn crc32c_matches_the_crate_for_every_length_and_alignment() {
        let lengths = if cfg!(miri) { 40 } else { 300 };
        let buffer: Vec<u8> = (0..lengths + 8).map(|i| (i * 131 + 7) as u8).collect();
        for alignment in 0..8 {
            for length in 0..lengths {
                let bytes = &buffer[alignment..alignment + length];
                assert_eq!(crc32c(bytes), crc32c::crc32c(bytes), "length {length}, alignment {alignment}");
            }
        }
    }

    #[test]
    fn crc32c_of_the_rfc_3720_check_string() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn keyed_hashers_differ_by_generation_and_from_crc() {
        let crc = KeyHasher::Crc32c;
        let first = KeyHasher::keyed(1);
        let second = KeyHasher::keyed(2);
        assert!(crc.same_function(&KeyHasher::Crc32c));
        assert!(first.same_function(&first.clone()));
        assert!(!first.same_function(&second));
        assert!(!crc.same_function(&first));
        assert_eq!(first.hash(b"key"), first.clone().hash(b"key"));
    }
}
