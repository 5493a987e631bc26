//! The fkvs wire format (PROTOCOL.md §1–§3), pure and allocation-free.
//!
//! Every message in both directions is one frame: a big-endian `u16` core
//! length `C` followed by `C` core bytes. This room owns:
//!
//! * [`frame`]: splitting a byte stream into frames (`need more bytes`,
//!   `oversized → close`), without copying;
//! * [`request`]: the borrowed [`Request`] a frame core decodes to, with the
//!   per-command validation of §3.3, and the encoder clients use;
//! * [`reply`]: reply encoders that append to a caller's buffer, and the
//!   decoder clients use;
//! * [`int`]: the one strict decimal parser of §2.1 and a stack formatter.
//!
//! Nothing here does I/O or knows about the store.

pub mod frame;
pub mod int;
pub mod reply;
pub mod request;

pub use frame::{split_frame, split_reply_frame, FrameSplit, CORE_BYTES_MAX, FRAME_BYTES_MAX, HEADER_BYTES};
pub use reply::{Reply, ReplyDecodeError};
pub use request::{CommandId, Request};
