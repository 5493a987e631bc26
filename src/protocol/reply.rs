//! Reply frames (PROTOCOL.md §1.5): encoders that append to the caller's
//! buffer, and the decoder clients use.
//!
//! There are four shapes: OK `00 01 01`, FAIL `00 01 00`,
//! VALUE `[3+n][01][n][bytes]` and TYPED `[3+n][t][n][bytes]` where `t` is the
//! PING, INFO or KEYS id. A client tells OK from VALUE by `C == 1`.

use super::frame::push_header;
use super::int::I64Text;
use super::request::CommandId;

/// Status byte of OK, and the type byte of VALUE.
pub const STATUS_OK: u8 = 0x01;
/// Status byte of FAIL.
pub const STATUS_FAIL: u8 = 0x00;

/// The largest payload a VALUE or TYPED reply can carry: `C = 3 + n <= 65 535`.
pub const PAYLOAD_BYTES_MAX: usize = u16::MAX as usize - 3;

pub const OK_FRAME: [u8; 3] = [0x00, 0x01, STATUS_OK];
pub const FAIL_FRAME: [u8; 3] = [0x00, 0x01, STATUS_FAIL];

#[inline]
pub fn push_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(&OK_FRAME);
}

#[inline]
pub fn push_fail(out: &mut Vec<u8>) {
    out.extend_from_slice(&FAIL_FRAME);
}

/// Appends a TYPED frame (VALUE when `type_byte` is `01`); FAIL if the
/// payload cannot fit a frame.
#[inline]
pub fn push_typed(out: &mut Vec<u8>, type_byte: u8, payload: &[u8]) {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return push_fail(out);
    }
    push_header(out, 3 + payload.len());
    out.push(type_byte);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

#[inline]
pub fn push_value(out: &mut Vec<u8>, payload: &[u8]) {
    push_typed(out, STATUS_OK, payload);
}

/// VALUE carrying the canonical decimal text of `value`.
#[inline]
pub fn push_value_i64(out: &mut Vec<u8>, value: i64) {
    push_value(out, I64Text::new(value).as_bytes());
}

/// Builds a TYPED reply whose payload is written in place, so INFO and KEYS
/// texts need no intermediate buffer.
pub struct TypedReplyWriter {
    frame_start: usize,
}

impl TypedReplyWriter {
    /// Reserves the header; the caller appends the payload to `out`.
    pub fn begin(out: &mut Vec<u8>, id: CommandId) -> Self {
        let frame_start = out.len();
        out.extend_from_slice(&[0, 0, id as u8, 0, 0]);
        TypedReplyWriter { frame_start }
    }

    /// Bytes of payload appended so far.
    pub fn payload_bytes(&self, out: &[u8]) -> usize {
        out.len() - self.frame_start - 5
    }

    /// Patches the lengths. A payload over `payload_bytes_max` (or over what a
    /// frame can carry) is discarded and replaced by FAIL.
    pub fn finish(self, out: &mut Vec<u8>, payload_bytes_max: usize) {
        let payload_bytes = self.payload_bytes(out);
        if payload_bytes > payload_bytes_max.min(PAYLOAD_BYTES_MAX) {
            return self.abandon(out);
        }
        let start = self.frame_start;
        out[start..start + 2].copy_from_slice(&((3 + payload_bytes) as u16).to_be_bytes());
        out[start + 3..start + 5].copy_from_slice(&(payload_bytes as u16).to_be_bytes());
    }

    /// Discards the partial frame and appends FAIL instead.
    pub fn abandon(self, out: &mut Vec<u8>) {
        out.truncate(self.frame_start);
        push_fail(out);
    }
}

/// A decoded reply, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok,
    Fail,
    Value(&'a [u8]),
    /// PING, INFO or KEYS reply, tagged with its command id.
    Typed(CommandId, &'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyDecodeError {
    #[error("reply core of {0} bytes is neither a status nor a value frame")]
    BadLength(usize),
    #[error("reply status byte {0:#04x} is unknown")]
    BadStatus(u8),
    #[error("reply type byte {0:#04x} is unknown")]
    BadType(u8),
    #[error("reply inner length {inner} does not match the frame's {outer} payload bytes")]
    LengthMismatch { inner: usize, outer: usize },
}

impl<'a> Reply<'a> {
    /// Decodes one reply frame core.
    pub fn decode(core: &'a [u8]) -> Result<Reply<'a>, ReplyDecodeError> {
        match *core {
            [STATUS_OK] => return Ok(Reply::Ok),
            [STATUS_FAIL] => return Ok(Reply::Fail),
            [status] => return Err(ReplyDecodeError::BadStatus(status)),
            [type_byte, hi, lo, ref payload @ ..] => {
                let inner = usize::from(u16::from_be_bytes([hi, lo]));
                if inner != payload.len() {
                    return Err(ReplyDecodeError::LengthMismatch { inner, outer: payload.len() });
                }
                return match type_byte {
                    STATUS_OK => Ok(Reply::Value(payload)),
                    t => match CommandId::from_byte(t) {
                        Some(id @ (CommandId::Ping | CommandId::Info | CommandId::Keys)) => {
                            Ok(Reply::Typed(id, payload))
                        }
                        _ => Err(ReplyDecodeError::BadType(t)),
                    },
                };
            }
            _ => {}
        }
        Err(ReplyDecodeError::BadLength(core.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_section_1_5() {
        let mut out = Vec::new();
        push_ok(&mut out);
        push_fail(&mut out);
        push_value(&mut out, b"");
        push_value(&mut out, b"bar");
        push_typed(&mut out, CommandId::Ping as u8, b"hi");
        push_value_i64(&mut out, -1);
        assert_eq!(
            out,
            [
                0, 1, 1, //
                0, 1, 0, //
                0, 3, 1, 0, 0, //
                0, 6, 1, 0, 3, b'b', b'a', b'r', //
                0, 5, 5, 0, 2, b'h', b'i', //
                0, 5, 1, 0, 2, b'-', b'1',
            ]
        );
    }

    #[test]
    fn oversized_payload_becomes_fail() {
        let mut out = Vec::new();
        push_value(&mut out, &vec![0; PAYLOAD_BYTES_MAX + 1]);
        assert_eq!(out, FAIL_FRAME);
        out.clear();
        push_value(&mut out, &vec![0; PAYLOAD_BYTES_MAX]);
        assert_eq!(&out[..2], &[0xff, 0xff]);
    }

    #[test]
    fn typed_writer_patches_lengths_or_fails() {
        let mut out = vec![9];
        let writer = TypedReplyWriter::begin(&mut out, CommandId::Keys);
        out.extend_from_slice(b"1) a");
        writer.finish(&mut out, 100);
        assert_eq!(out, [9, 0, 7, 0x0d, 0, 4, b'1', b')', b' ', b'a']);

        let mut out = vec![9];
        let writer = TypedReplyWriter::begin(&mut out, CommandId::Info);
        out.extend_from_slice(&[b'x'; 10]);
        writer.finish(&mut out, 9);
        assert_eq!(out, [9, 0, 1, 0]);
    }

    #[test]
    fn decodes_every_shape_and_rejects_garbage() {
        assert_eq!(Reply::decode(&[1]), Ok(Reply::Ok));
        assert_eq!(Reply::decode(&[0]), Ok(Reply::Fail));
        assert_eq!(Reply::decode(&[1, 0, 0]), Ok(Reply::Value(b"")));
        assert_eq!(Reply::decode(&[0x0d, 0, 1, b'x']), Ok(Reply::Typed(CommandId::Keys, b"x")));
        assert_eq!(Reply::decode(&[7]), Err(ReplyDecodeError::BadStatus(7)));
        assert_eq!(Reply::decode(&[1, 0]), Err(ReplyDecodeError::BadLength(2)));
        assert_eq!(Reply::decode(&[]), Err(ReplyDecodeError::BadLength(0)));
        assert!(matches!(Reply::decode(&[1, 0, 2, b'x']), Err(ReplyDecodeError::LengthMismatch { .. })));
        assert_eq!(Reply::decode(&[2, 0, 0]), Err(ReplyDecodeError::BadType(2)));
    }
}
