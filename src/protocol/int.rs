//! The strict decimal integer parser of PROTOCOL.md §2.1, and an i64
//! formatter that needs no heap.
//!
//! One parser serves SET's integer tag, INCRBY/DECRBY amounts, stored values
//! read by the INCR family, expiry seconds and integer config values.

/// The largest expiry in seconds: `i64::MAX / 1000` (§2.1).
pub const SECONDS_MAX: i64 = i64::MAX / 1000;

/// Seconds strings longer than this are rejected even when valid (§2.2, Q31).
pub const SECONDS_TEXT_BYTES_MAX: usize = 31;

/// Parses `text` as a decimal integer in `[min, max]`.
///
/// Optional single `+`/`-`, then at least one ASCII digit and nothing else;
/// leading zeros are fine; overflow is invalid, never wrapped. When
/// `min >= 0` a leading `-` is rejected, even in `"-0"`.
pub fn parse_i64_in(text: &[u8], min: i64, max: i64) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || (negative && min >= 0) {
        return None;
    }
    // Accumulate towards the sign so that i64::MIN parses without overflow.
    let mut value: i64 = 0;
    for &byte in digits {
        let digit = i64::from(byte.wrapping_sub(b'0'));
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?;
        value = if negative { value.checked_sub(digit)? } else { value.checked_add(digit)? };
    }
    (min..=max).contains(&value).then_some(value)
}

/// Parses a full-range signed 64-bit integer.
#[inline]
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    parse_i64_in(text, i64::MIN, i64::MAX)
}

/// Parses an expiry in seconds: at most 31 bytes, `0..=SECONDS_MAX`.
#[inline]
pub fn parse_seconds(text: &[u8]) -> Option<i64> {
    if text.len() > SECONDS_TEXT_BYTES_MAX {
        return None;
    }
    parse_i64_in(text, 0, SECONDS_MAX)
}

/// Room for the longest i64 text, `-9223372036854775808`.
pub const I64_TEXT_BYTES_MAX: usize = 20;

/// Formats `value` as canonical decimal into a stack buffer.
pub struct I64Text {
    bytes: [u8; I64_TEXT_BYTES_MAX],
    start: usize,
}

impl I64Text {
    pub fn new(value: i64) -> Self {
        let mut bytes = [0u8; I64_TEXT_BYTES_MAX];
        let mut start = I64_TEXT_BYTES_MAX;
        let mut magnitude = value.unsigned_abs();
        loop {
            start -= 1;
            bytes[start] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            bytes[start] = b'-';
        }
        I64Text { bytes, start }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_protocol_examples() {
        assert_eq!(parse_i64(b"007"), Some(7));
        assert_eq!(parse_i64(b"+5"), Some(5));
        assert_eq!(parse_i64(b"-0"), Some(0));
        assert_eq!(parse_i64(b"0000042"), Some(42));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn rejects_protocol_examples() {
        for text in [
            &b""[..],
            b"-",
            b"+",
            b" 5",
            b"5 ",
            b"1.0",
            b"1_0",
            b"0x10",
            b"1e3",
            b"5\0",
            b"+-5",
            b"9223372036854775808",
            b"-9223372036854775809",
        ] {
            assert_eq!(parse_i64(text), None, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn seconds_rules() {
        assert_eq!(parse_seconds(b"0"), Some(0));
        assert_eq!(parse_seconds(b"05"), Some(5));
        assert_eq!(parse_seconds(b"+5"), Some(5));
        assert_eq!(parse_seconds(b"-0"), None);
        assert_eq!(parse_seconds(b"-1"), None);
        assert_eq!(parse_seconds(b"9223372036854775"), Some(SECONDS_MAX));
        assert_eq!(parse_seconds(b"9223372036854776"), None);
        let thirty_one = [b"0".repeat(30), b"5".to_vec()].concat();
        assert_eq!(parse_seconds(&thirty_one), Some(5));
        let thirty_two = [b"0".repeat(31), b"5".to_vec()].concat();
        assert_eq!(parse_seconds(&thirty_two), None);
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(value: i64) {
            let text = I64Text::new(value);
            let expected = value.to_string();
            prop_assert_eq!(text.as_bytes(), expected.as_bytes());
            prop_assert_eq!(parse_i64(text.as_bytes()), Some(value));
        }

        #[test]
        fn agrees_with_a_simple_model(text in "[-+0-9 a.]{0,22}") {
            let model = {
                let digits = text.strip_prefix(['+', '-']).unwrap_or(text.as_str());
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    text.parse::<i64>().ok()
                } else {
                    None
                }
            };
            prop_assert_eq!(parse_i64(text.as_bytes()), model);
        }
    }
}
