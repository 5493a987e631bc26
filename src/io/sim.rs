//! An in-memory backend: drives one [`Conn`] with scripted byte streams, the
//! way a real backend would, but with no sockets and no clock of its own.
//!
//! It proves the seam (the core needs nothing but bytes and buffers) and
//! makes framing, splitting, backpressure and half-close testable
//! deterministically from seeded random scripts.

use super::conn::{CloseReason, Conn};
use crate::commands::Engine;
use crate::store::Millis;

/// How delivered bytes reach the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Copied into the connection's own receive space, like `read(2)`.
    RecvSpace,
    /// Lent from a buffer the backend owns, like an io_uring provided
    /// buffer or a user-space stack's packet.
    Lent,
}

pub struct SimConnection {
    conn: Conn,
    delivery: Delivery,
    /// Bytes the simulated client has read, in order.
    received: Vec<u8>,
}

impl SimConnection {
    pub fn new(delivery: Delivery) -> Self {
        SimConnection { conn: Conn::new(), delivery, received: Vec::new() }
    }

    /// Offers `bytes` from the client; returns how many the server took
    /// (fewer under backpressure, as a full socket buffer would).
    pub fn deliver(&mut self, bytes: &[u8], engine: &mut Engine, now: Millis) -> usize {
        match self.delivery {
            Delivery::Lent => self.conn.ingest(bytes, engine, now),
            Delivery::RecvSpace => {
                let mut taken = 0;
                while taken < bytes.len() && self.conn.wants_input() {
                    let space = self.conn.recv_space();
                    let chunk = space.len().min(bytes.len() - taken);
                    space[..chunk].copy_from_slice(&bytes[taken..taken + chunk]);
                    self.conn.on_received(chunk, engine, now);
                    taken += chunk;
                }
                taken
            }
        }
    }

    /// The client reads up to `max_bytes` of pending replies.
    pub fn client_reads(&mut self, max_bytes: usize, engine: &mut Engine, now: Millis) -> usize {
        let sent = self.conn.output_pending().min(max_bytes);
        self.received.extend_from_slice(&self.conn.output()[..sent]);
        self.conn.on_sent(sent, engine, now);
        sent
    }

    /// The client shuts down its write side.
    pub fn client_closes_write(&mut self, engine: &mut Engine, now: Millis) {
        self.conn.on_peer_closed(engine, now);
    }

    pub fn output_pending(&self) -> usize {
        self.conn.output_pending()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.conn.close_reason()
    }

    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Forgets what the client has read so far, keeping the buffer.
    pub fn clear_received(&mut self) {
        self.received.clear();
    }
}
