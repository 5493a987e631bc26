//! One benchmark connection: its request generator, send and receive
//! buffers, and the counts that make `completed + failed = requested` hold.
//!
//! A connection owns a *quota* of requests. `sent` counts requests written
//! into the send buffer, `answered` counts reply frames received; replies
//! arrive in request order (§3.2), so the open loop keeps the intended send
//! time of each request in flight in a FIFO and pops one per reply. A
//! connection that breaks (EOF, reset, timeout, a malformed or unsolicited
//! reply) is closed and everything it has not had answered is charged as
//! failed; nothing is retried.
//!
//! Buffers are sized once: the send buffer holds one pipelined batch (it
//! grows only if the open loop falls behind), the receive buffer
//! [`RECV_BUFFER_BYTES`] always has room for a maximal reply frame after
//! compaction. Compaction moves a partial frame to the front only when less
//! than one maximal frame of space is left, so it is rare.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::clock::Clock;
use super::latency::LatencyRecorder;
use super::workload::RequestGen;
use crate::client::nonblocking::NonBlockingStream;
use crate::protocol::{split_reply_frame, FrameSplit, Reply, ReplyDecodeError};

/// The largest reply frame: a 65 535-byte core and its header.
const REPLY_FRAME_BYTES_MAX: usize = 2 + u16::MAX as usize;
/// Receive buffer per connection: room for a full read burst plus one
/// maximal frame, so a partial frame can always be completed.
pub const RECV_BUFFER_BYTES: usize = 64 * 1024 + REPLY_FRAME_BYTES_MAX;

/// Why a connection stopped early.
#[derive(Debug)]
pub enum ConnError {
    Closed,
    Io(io::Error),
    Malformed(ReplyDecodeError),
    Unsolicited,
    TimedOut { seconds: f64 },
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Closed => f.write_str("the server closed the connection"),
            ConnError::Io(err) => write!(f, "{err}"),
            ConnError::Malformed(err) => write!(f, "malformed reply: {err}"),
            ConnError::Unsolicited => f.write_str("a reply arrived for no request"),
            ConnError::TimedOut { seconds } => write!(f, "no reply within {seconds} s"),
        }
    }
}

pub struct Conn<'w> {
    stream: NonBlockingStream,
    generator: RequestGen<'w>,
    send: Vec<u8>,
    send_from: usize,
    recv: Box<[u8]>,
    recv_from: usize,
    recv_to: usize,
    /// Requests this connection issues in the whole run.
    pub quota: u64,
    pub sent: u64,
    pub answered: u64,
    /// Replies that were the FAIL frame (still *completed*, Q26).
    pub fail_replies: u64,
    /// When the batch in flight was written (closed loop).
    pub batch_sent_ns: u64,
    /// Last time a reply arrived or the connection started a batch.
    pub last_progress_ns: u64,
    /// Intended send times of the requests in flight (open loop only).
    intended_ns: VecDeque<u64>,
    /// Write interest is registered (a write was partial).
    pub wants_write: bool,
    pub closed: bool,
}

impl<'w> Conn<'w> {
    pub fn new(stream: NonBlockingStream, generator: RequestGen<'w>, quota: u64, send_capacity: usize) -> Conn<'w> {
        Conn {
            stream,
            generator,
            send: Vec::with_capacity(send_capacity),
            send_from: 0,
            recv: vec![0; RECV_BUFFER_BYTES].into_boxed_slice(),
            recv_from: 0,
            recv_to: 0,
            quota,
            sent: 0,
            answered: 0,
            fail_replies: 0,
            batch_sent_ns: 0,
            last_progress_ns: 0,
            intended_ns: VecDeque::new(),
            wants_write: false,
            closed: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    #[inline]
    pub fn in_flight(&self) -> u64 {
        self.sent - self.answered
    }

    #[inline]
    pub fn unsent(&self) -> u64 {
        self.quota - self.sent
    }

    /// Everything answered, or given up.
    #[inline]
    pub fn finished(&self) -> bool {
        self.closed || self.answered == self.quota
    }

    #[inline]
    pub fn has_pending_bytes(&self) -> bool {
        self.send_from < self.send.len()
    }

    /// Appends the next `count` requests to the send buffer.
    #[inline]
    pub fn queue_batch(&mut self, count: u64) {
        debug_assert!(count <= self.unsent());
        self.generator.push_batch(&mut self.send, count as usize);
        self.sent += count;
    }

    /// Appends one request meant to be sent at `intended_ns` (open loop).
    #[inline]
    pub fn queue_scheduled(&mut self, intended_ns: u64) {
        debug_assert!(self.unsent() > 0);
        self.generator.push(&mut self.send);
        self.sent += 1;
        self.intended_ns.push_back(intended_ns);
    }

    /// Writes as much of the send buffer as the socket takes. `Ok(true)`
    /// when it is all written.
    pub fn flush(&mut self) -> Result<bool, ConnError> {
        while self.send_from < self.send.len() {
            match self.stream.write(&self.send[self.send_from..]) {
                Ok(written) => self.send_from += written,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ConnError::Io(err)),
            }
        }
        self.send.clear();
        self.send_from = 0;
        Ok(true)
    }

    /// Reads what the socket holds and consumes every complete reply. Open
    /// loop replies are charged from their intended send time into
    /// `latency`. Returns how many replies arrived.
    pub fn receive(&mut self, clock: &Clock, latency: &mut LatencyRecorder) -> Result<u64, ConnError> {
        let mut replies = 0;
        loop {
            let space = self.recv.len() - self.recv_to;
            let received = match self.stream.read(&mut self.recv[self.recv_to..]) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(received) => received,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(replies),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(ConnError::Io(err)),
            };
            let now_ns = clock.now_ns();
            self.recv_to += received;
            replies += self.consume_replies(now_ns, latency)?;
            if replies > 0 {
                self.last_progress_ns = now_ns;
            }
            if received < space {
                // Drained: the next edge reports anything newer.
                return Ok(replies);
            }
        }
    }

    fn consume_replies(&mut self, now_ns: u64, latency: &mut LatencyRecorder) -> Result<u64, ConnError> {
        let mut replies = 0;
        while let FrameSplit::Frame { core, frame_bytes } = split_reply_frame(&self.recv[self.recv_from..self.recv_to])
        {
            if self.answered == self.sent {
                return Err(ConnError::Unsolicited);
            }
            if Reply::decode(core).map_err(ConnError::Malformed)? == Reply::Fail {
                self.fail_replies += 1;
            }
            if let Some(intended_ns) = self.intended_ns.pop_front() {
                latency.record(now_ns.saturating_sub(intended_ns));
            }
            self.answered += 1;
            replies += 1;
            self.recv_from += frame_bytes;
        }
        if self.recv_from == self.recv_to {
            self.recv_from = 0;
            self.recv_to = 0;
        } else if self.recv.len() - self.recv_to < REPLY_FRAME_BYTES_MAX {
            self.recv.copy_within(self.recv_from..self.recv_to, 0);
            self.recv_to -= self.recv_from;
            self.recv_from = 0;
        }
        Ok(replies)
    }

    /// Gives up on the connection; returns how many requests it failed.
    pub fn close(&mut self) -> u64 {
        self.closed = true;
        self.intended_ns.clear();
        self.quota - self.answered
    }
}
