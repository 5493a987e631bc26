//! Key generation shared by the store benchmarks.

/// 16 bytes: a 4-byte prefix and a 12-digit decimal number.
pub fn sixteen_bytes(prefix: &[u8; 4], number: usize) -> [u8; 16] {
    let mut bytes = [b'0'; 16];
    bytes[..4].copy_from_slice(prefix);
    let mut rest = number;
    for byte in bytes[4..].iter_mut().rev() {
        *byte = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    bytes
}
