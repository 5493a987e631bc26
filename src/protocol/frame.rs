//! Frame boundaries: `[C: u16be][core: C bytes]`.

/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 2;

/// The largest core the server accepts. A header announcing `C = 65 535`
/// closes the connection (PROTOCOL.md §3.1, Q3: upstream's 65 536-byte read
/// buffer cannot hold `2 + 65 535` bytes, and clients rely on the close).
pub const CORE_BYTES_MAX: usize = 65_534;

/// The largest whole frame, header included.
pub const FRAME_BYTES_MAX: usize = HEADER_BYTES + CORE_BYTES_MAX;

/// What the front of a byte stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSplit<'a> {
    /// A complete frame: its core, and how many stream bytes it spans.
    Frame { core: &'a [u8], frame_bytes: usize },
    /// A prefix of a frame; wait for more bytes.
    Incomplete,
    /// The header announces a core longer than [`CORE_BYTES_MAX`]. The
    /// connection must be closed; no reply is sent.
    Oversized,
}

/// Looks at the front of a request stream and says whether a whole frame is
/// there.
///
/// The header is judged as soon as its two bytes are present, so an
/// oversized frame is rejected without waiting for its body.
#[inline]
pub fn split_frame(stream: &[u8]) -> FrameSplit<'_> {
    split_frame_up_to(stream, CORE_BYTES_MAX)
}

/// Like [`split_frame`] for a reply stream: replies may use the whole u16
/// range (§1.5), so they are never oversized.
#[inline]
pub fn split_reply_frame(stream: &[u8]) -> FrameSplit<'_> {
    split_frame_up_to(stream, usize::from(u16::MAX))
}

#[inline]
fn split_frame_up_to(stream: &[u8], core_bytes_max: usize) -> FrameSplit<'_> {
    let [hi, lo, ..] = *stream else {
        return FrameSplit::Incomplete;
    };
    let core_bytes = usize::from(u16::from_be_bytes([hi, lo]));
    if core_bytes > core_bytes_max {
        return FrameSplit::Oversized;
    }
    let frame_bytes = HEADER_BYTES + core_bytes;
    match stream.get(HEADER_BYTES..frame_bytes) {
        Some(core) => FrameSplit::Frame { core, frame_bytes },
        None => FrameSplit::Incomplete,
    }
}

/// Writes the header of a frame whose core is `core_bytes` long.
///
/// Callers guarantee `core_bytes <= u16::MAX`; encoders check limits first.
#[inline]
pub(crate) fn push_header(out: &mut Vec<u8>, core_bytes: usize) {
    debug_assert!(core_bytes <= usize::from(u16::MAX));
    out.extend_from_slice(&(core_bytes as u16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_two_header_bytes() {
        assert_eq!(split_frame(&[]), FrameSplit::Incomplete);
        assert_eq!(split_frame(&[0]), FrameSplit::Incomplete);
    }

    #[test]
    fn zero_length_frame_is_a_frame() {
        assert_eq!(split_frame(&[0, 0, 9]), FrameSplit::Frame { core: &[], frame_bytes: 2 });
    }

    #[test]
    fn body_must_be_complete() {
        assert_eq!(split_frame(&[0, 3, 5, 0]), FrameSplit::Incomplete);
        assert_eq!(split_frame(&[0, 3, 5, 0, 0, 1]), FrameSplit::Frame { core: &[5, 0, 0], frame_bytes: 5 });
    }

    #[test]
    fn limit_is_off_by_one_as_upstream() {
        assert_eq!(split_frame(&[0xff, 0xff]), FrameSplit::Oversized);
        assert_eq!(split_frame(&[0xff, 0xfe]), FrameSplit::Incomplete);
        assert_eq!(split_reply_frame(&[0xff, 0xff]), FrameSplit::Incomplete);
    }
}
