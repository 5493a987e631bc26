//! The connection core shared by every backend: per-client buffers, frame
//! processing, backpressure and close decisions.
//!
//! It never sees a file descriptor or a syscall. A backend hands it received
//! bytes (either by receiving straight into [`Conn::recv_space`] or by
//! passing a buffer it owns to [`Conn::ingest`]), takes reply bytes from
//! [`Conn::output`] and reports how many left with [`Conn::on_sent`]. That is
//! the completion model of io_uring; epoll adapts to it, and a user-space
//! network stack would be one more caller.
//!
//! A backend whose kernel reads reply bytes after the call that queued them
//! returns (io_uring `SEND`, and `SEND_ZC` until its notification) takes
//! them out with [`Conn::hand_off_output`] instead: it then owns those bytes
//! and keeps them still, while the core appends new replies to a fresh
//! buffer. Handed-off bytes count against the output bound until the backend
//! reports them with [`Conn::on_handed_off_sent`].
//!
//! Costs per batch of frames: one pass over the input, replies appended to
//! one output buffer, at most one compaction of each buffer. No allocation
//! while the output stays within its initial capacity.
//!
//! Limits (PROTOCOL.md §3.1, §3.6 and §7.2 Q29):
//! * input holds at most [`INPUT_BYTES`], enough for any frame;
//! * pending output never passes [`OUTPUT_BYTES_MAX`]: frame execution stops
//!   once the output is within one maximal reply of the bound, reading stops
//!   with it (the kernel then pushes back on the client), and both resume as
//!   the client reads. A slow reader is throttled, not dropped, and never
//!   costs the server more than the bound.

use crate::commands::{Engine, PREFETCH_FRAMES_AHEAD};
use crate::protocol::{split_frame, FrameSplit, FRAME_BYTES_MAX};
use crate::store::{Millis, Prefetched};

/// Per-connection input buffer: one maximal frame fits, as upstream.
pub const INPUT_BYTES: usize = 64 * 1024;

/// Initial output capacity; grows by doubling up to the bound.
pub const OUTPUT_BYTES_INITIAL: usize = 64 * 1024;

/// The most reply bytes a connection may have pending (§3.1).
pub const OUTPUT_BYTES_MAX: usize = 1024 * 1024;

/// The largest single reply frame: a 65 535-byte core and its header.
const REPLY_BYTES_MAX: usize = 2 + u16::MAX as usize;

/// Frames are executed only while pending output is at or below this, so one
/// more reply cannot pass [`OUTPUT_BYTES_MAX`].
const OUTPUT_BYTES_EXECUTE_MAX: usize = OUTPUT_BYTES_MAX - REPLY_BYTES_MAX;

const _: () = assert!(FRAME_BYTES_MAX <= INPUT_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading and answering.
    Open,
    /// The peer sent FIN or the server is stopping: answer what was
    /// received, flush, then close (§7.2 Q12).
    Draining,
    /// Close now, discarding unsent output (oversized frame, Q30).
    Broken,
}

/// Why a connection's life ended; backends count and log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Drained after the peer's FIN or a server stop.
    Finished,
    /// A header announced a core longer than the limit (§3.4).
    OversizedFrame,
}

pub struct Conn {
    input: Box<[u8]>,
    /// Unprocessed input is `input[input_start..input_end]`.
    input_start: usize,
    input_end: usize,
    output: Vec<u8>,
    /// Bytes of `output` already handed to the network.
    output_sent: usize,
    /// Bytes moved out by [`Conn::hand_off_output`] and not yet reported
    /// sent; they still count as pending output.
    output_handed_off: usize,
    state: State,
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    pub fn new() -> Self {
        Conn {
            input: vec![0; INPUT_BYTES].into_boxed_slice(),
            input_start: 0,
            input_end: 0,
            output: Vec::with_capacity(OUTPUT_BYTES_INITIAL),
            output_sent: 0,
            output_handed_off: 0,
            state: State::Open,
        }
    }

    /// Makes a pooled connection ready for a new client, keeping buffers.
    pub fn reset(&mut self) {
        self.input_start = 0;
        self.input_end = 0;
        self.output.clear();
        self.output_sent = 0;
        self.output_handed_off = 0;
        self.state = State::Open;
    }

    /// Whether the backend should receive more bytes for this connection.
    #[inline]
    pub fn wants_input(&self) -> bool {
        self.state == State::Open && self.output_pending() <= OUTPUT_BYTES_EXECUTE_MAX && self.input_end < INPUT_BYTES
    }

    /// Free space to receive into; pass what was written to
    /// [`Conn::on_received`].
    #[inline]
    pub fn recv_space(&mut self) -> &mut [u8] {
        &mut self.input[self.input_end..]
    }

    /// Accounts `bytes` received into [`Conn::recv_space`] and executes every
    /// complete frame that backpressure allows.
    #[inline]
    pub fn on_received(&mut self, bytes: usize, engine: &mut Engine, now: Millis) {
        debug_assert!(self.input_end + bytes <= INPUT_BYTES);
        self.input_end += bytes;
        self.process(engine, now);
    }

    /// Takes bytes that arrived in a buffer the backend owns (a provided
    /// buffer ring, a user-space stack). Frames are executed straight from
    /// `bytes` when no partial frame is pending; only a trailing partial
    /// frame, or what backpressure leaves unexecuted, is copied in.
    ///
    /// Returns how many bytes were taken: fewer than `bytes.len()` only when
    /// backpressure stops intake; the backend offers the rest later.
    pub fn ingest(&mut self, mut bytes: &[u8], engine: &mut Engine, now: Millis) -> usize {
        let offered = bytes.len();
        while !bytes.is_empty() && self.wants_input() {
            if self.input_start == self.input_end {
                let executed = self.execute_frames_from(bytes, engine, now);
                bytes = &bytes[executed..];
                self.input_start = 0;
                self.input_end = 0;
                if self.state != State::Open {
                    return offered;
                }
            }
            let space = self.recv_space();
            let copied = space.len().min(bytes.len());
            space[..copied].copy_from_slice(&bytes[..copied]);
            bytes = &bytes[copied..];
            self.on_received(copied, engine, now);
        }
        offered - bytes.len()
    }

    /// The peer will send nothing more: answer what is complete, then close
    /// once the output is flushed.
    pub fn on_peer_closed(&mut self, engine: &mut Engine, now: Millis) {
        self.process(engine, now);
        if self.state == State::Open {
            self.state = State::Draining;
        }
    }

    /// Reply bytes waiting to be sent (not counting handed-off ones).
    #[inline]
    pub fn output(&self) -> &[u8] {
        &self.output[self.output_sent..]
    }

    /// Reply bytes owed to the client: waiting, or handed off and not yet
    /// reported sent.
    #[inline]
    pub fn output_pending(&self) -> usize {
        self.output.len() - self.output_sent + self.output_handed_off
    }

    /// Moves every byte of [`Conn::output`] into `buffer`, which the backend
    /// then owns: the core never touches it again, so the kernel may read it
    /// at leisure. `buffer` is cleared first and its allocation becomes the
    /// new output buffer, so two buffers trading places cost no allocation.
    #[inline]
    pub fn hand_off_output(&mut self, buffer: &mut Vec<u8>) {
        buffer.clear();
        compact_output(&mut self.output, &mut self.output_sent);
        self.output_handed_off += self.output.len();
        std::mem::swap(&mut self.output, buffer);
    }

    /// Accounts `bytes` of handed-off output as sent, and executes frames
    /// that backpressure had held back.
    #[inline]
    pub fn on_handed_off_sent(&mut self, bytes: usize, engine: &mut Engine, now: Millis) {
        debug_assert!(bytes <= self.output_handed_off);
        self.output_handed_off -= bytes.min(self.output_handed_off);
        if self.input_start < self.input_end {
            self.process(engine, now);
        }
    }

    /// Accounts `bytes` of [`Conn::output`] as sent, and executes frames that
    /// backpressure had held back.
    #[inline]
    pub fn on_sent(&mut self, bytes: usize, engine: &mut Engine, now: Millis) {
        debug_assert!(bytes <= self.output_pending());
        self.output_sent += bytes;
        if self.output_sent == self.output.len() {
            self.output.clear();
            self.output_sent = 0;
        }
        if self.input_start < self.input_end {
            self.process(engine, now);
        }
    }

    /// Stop reading; answer and flush what was received (server shutdown).
    pub fn drain(&mut self) {
        if self.state == State::Open {
            self.state = State::Draining;
        }
    }

    /// `Some` once the connection should be closed by the backend.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Open => None,
            State::Broken => Some(CloseReason::OversizedFrame),
            State::Draining => {
                let frames_left =
                    matches!(split_frame(&self.input[self.input_start..self.input_end]), FrameSplit::Frame { .. });
                (self.output_pending() == 0 && !frames_left).then_some(CloseReason::Finished)
            }
        }
    }

    /// Executes buffered frames, then compacts the input once per batch.
    fn process(&mut self, engine: &mut Engine, now: Millis) {
        if self.state == State::Broken {
            return;
        }
        let pending = &self.input[self.input_start..self.input_end];
        let executed = execute_frames(
            pending,
            &mut self.output,
            &mut self.output_sent,
            self.output_handed_off,
            &mut self.state,
            engine,
            now,
        );
        self.input_start += executed;
        if self.input_start == self.input_end {
            self.input_start = 0;
            self.input_end = 0;
        } else if self.input_end == INPUT_BYTES {
            // Only a partial frame (or held-back frames) remain and the
            // buffer is full up to its end: move them to the front.
            self.input.copy_within(self.input_start..self.input_end, 0);
            self.input_end -= self.input_start;
            self.input_start = 0;
        }
    }

    fn execute_frames_from(&mut self, bytes: &[u8], engine: &mut Engine, now: Millis) -> usize {
        let handed_off = self.output_handed_off;
        execute_frames(bytes, &mut self.output, &mut self.output_sent, handed_off, &mut self.state, engine, now)
    }
}

/// Executes complete frames from the front of `stream` while the output
/// (with `handed_off` bytes still owed from earlier buffers) has room,
/// returning the bytes consumed. An oversized header breaks the connection
/// and discards its unsent output (Q30). When the store is larger than the
/// caches and more than one frame is waiting, a [`Lookahead`] walks the
/// frames ahead of execution and prefetches what each command will read,
/// so a pipelined batch overlaps its cache misses instead of taking them
/// one after another. (A lone frame has nothing to overlap with.)
#[inline]
fn execute_frames(
    mut stream: &[u8],
    output: &mut Vec<u8>,
    output_sent: &mut usize,
    handed_off: usize,
    state: &mut State,
    engine: &mut Engine,
    now: Millis,
) -> usize {
    let offered = stream.len();
    compact_output(output, output_sent);
    let prefetch = engine.prefetch_pays() && holds_two_frames(stream);
    let mut lookahead = Lookahead::new(stream);
    while output.len() + handed_off <= OUTPUT_BYTES_EXECUTE_MAX {
        if prefetch {
            lookahead.run(engine);
        }
        match split_frame(stream) {
            FrameSplit::Frame { core, frame_bytes } => {
                engine.execute_frame(core, now, output);
                stream = &stream[frame_bytes..];
                if prefetch {
                    lookahead.on_executed();
                }
            }
            FrameSplit::Incomplete => break,
            FrameSplit::Oversized => {
                *state = State::Broken;
                output.clear();
                *output_sent = 0;
                return offered;
            }
        }
    }
    debug_assert!(output.len() + handed_off <= OUTPUT_BYTES_MAX);
    offered - stream.len()
}

/// Whether `stream` starts with two complete frames.
#[inline]
fn holds_two_frames(stream: &[u8]) -> bool {
    match split_frame(stream) {
        FrameSplit::Frame { frame_bytes, .. } => {
            matches!(split_frame(&stream[frame_bytes..]), FrameSplit::Frame { .. })
        }
        FrameSplit::Incomplete | FrameSplit::Oversized => false,
    }
}

/// Frames the [`Lookahead`] runs ahead of execution: the index stage this
/// far ahead, the entry stage half as far.
const LOOKAHEAD_FRAMES: usize = 2 * PREFETCH_FRAMES_AHEAD;

/// A cursor over the frames not yet executed, running up to
/// [`LOOKAHEAD_FRAMES`] ahead of execution: it parses each frame it passes
/// once and runs the index stage of the prefetch for its key, and runs the
/// entry stage for the frame [`PREFETCH_FRAMES_AHEAD`] ahead from what the
/// index stage returned. It stops at the first incomplete or oversized
/// frame, as execution will.
struct Lookahead<'a> {
    /// The stream after the frames looked at.
    rest: &'a [u8],
    /// What the index stage returned for each frame looked at and not yet
    /// executed: a ring, the next frame to execute at `next`.
    prefetched: [Option<Prefetched>; LOOKAHEAD_FRAMES],
    next: usize,
    /// Frames looked at and not yet executed.
    looked_at: usize,
    /// How many of those, from the next to execute on, had the entry stage.
    entries_prefetched: usize,
}

impl<'a> Lookahead<'a> {
    fn new(stream: &'a [u8]) -> Lookahead<'a> {
        Lookahead { rest: stream, prefetched: [None; LOOKAHEAD_FRAMES], next: 0, looked_at: 0, entries_prefetched: 0 }
    }

    #[inline]
    fn slot(&self, ahead: usize) -> usize {
        (self.next + ahead) % LOOKAHEAD_FRAMES
    }

    #[inline]
    fn run(&mut self, engine: &Engine) {
        while self.looked_at < LOOKAHEAD_FRAMES {
            let FrameSplit::Frame { core, frame_bytes } = split_frame(self.rest) else {
                break;
            };
            self.prefetched[self.slot(self.looked_at)] = engine.prefetch_index(core);
            self.rest = &self.rest[frame_bytes..];
            self.looked_at += 1;
        }
        while self.entries_prefetched < self.looked_at.min(PREFETCH_FRAMES_AHEAD) {
            if let Some(prefetched) = self.prefetched[self.slot(self.entries_prefetched)] {
                engine.prefetch_entry(prefetched);
            }
            self.entries_prefetched += 1;
        }
    }

    /// Execution passed one frame. `run` went before it, so that frame was
    /// looked at (execution and the lookahead see the same complete frames).
    #[inline]
    fn on_executed(&mut self) {
        debug_assert!(self.looked_at > 0 && self.entries_prefetched > 0);
        self.looked_at -= 1;
        self.entries_prefetched -= 1;
        self.next = self.slot(1);
    }
}

/// Drops already-sent bytes from the front, so `output.len()` is the pending
/// amount the bound applies to. Only partial sends leave such bytes.
#[inline]
fn compact_output(output: &mut Vec<u8>, output_sent: &mut usize) {
    if *output_sent > 0 {
        output.drain(..*output_sent);
        *output_sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::ServerInfo;
    use crate::protocol::request::Request;

    fn engine() -> Engine {
        Engine::new(ServerInfo {
            pid: 1,
            port: 5995,
            config_file: "none".into(),
            started_ms: 0,
            event_loop_max_events: 100_000,
            backend: "test",
            allocator: "test",
        })
    }

    fn frames(request: &Request<'_>, count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..count {
            request.encode(&mut bytes).unwrap();
        }
        bytes
    }

    #[test]
    fn handed_off_output_stays_put_while_new_replies_go_to_a_fresh_buffer() {
        let mut engine = engine();
        let mut conn = Conn::new();
        let ping = frames(&Request::Ping { payload: b"a" }, 1);
        assert_eq!(conn.ingest(&ping, &mut engine, 0), ping.len());
        let mut flight = Vec::with_capacity(OUTPUT_BYTES_INITIAL);
        conn.hand_off_output(&mut flight);
        assert_eq!(flight, ping, "the PING reply echoes the request");
        let address = flight.as_ptr();
        assert!(conn.output().is_empty());
        assert_eq!(conn.output_pending(), ping.len(), "handed-off bytes are still owed");

        // More frames while the first reply is in flight: the flight is untouched.
        assert_eq!(conn.ingest(&ping, &mut engine, 0), ping.len());
        assert_eq!((flight.as_ptr(), flight.as_slice()), (address, ping.as_slice()));
        assert_eq!(conn.output(), ping.as_slice());
        assert_eq!(conn.output_pending(), 2 * ping.len());

        conn.on_handed_off_sent(ping.len(), &mut engine, 0);
        assert_eq!(conn.output_pending(), ping.len());
        conn.reset();
        assert_eq!(conn.output_pending(), 0);
    }

    #[test]
    fn handed_off_bytes_count_against_the_output_bound() {
        let mut engine = engine();
        let value = vec![b'v'; 60_000];
        let mut set = Vec::new();
        Request::Set { key: b"k", value: &value, expiry_seconds: None }.encode(&mut set).unwrap();
        let mut conn = Conn::new();
        conn.ingest(&set, &mut engine, 0);
        let get = frames(&Request::Get { key: b"k" }, 40);
        let mut flight = Vec::new();
        conn.hand_off_output(&mut flight);
        let mut taken = 0;
        while taken < get.len() && conn.wants_input() {
            taken += conn.ingest(&get[taken..], &mut engine, 0);
        }
        assert!(!conn.wants_input(), "intake stops at the bound");
        assert!(conn.output_pending() <= OUTPUT_BYTES_MAX);
        assert!(conn.output().len() + flight.len() > OUTPUT_BYTES_EXECUTE_MAX);

        // Reporting flights sent runs the held-back frames and, once they
        // are answered, reopens intake.
        let mut flown = flight.len();
        conn.on_handed_off_sent(flight.len(), &mut engine, 0);
        while !conn.wants_input() {
            assert!(conn.output_pending() <= OUTPUT_BYTES_MAX);
            conn.hand_off_output(&mut flight);
            flown += flight.len();
            conn.on_handed_off_sent(flight.len(), &mut engine, 0);
        }
        let reply_bytes = 5 + value.len();
        let answered = (flown + conn.output().len()) / reply_bytes;
        assert_eq!(answered, 1 + taken / (get.len() / 40), "the SET and every whole GET taken answered once");
    }
}
