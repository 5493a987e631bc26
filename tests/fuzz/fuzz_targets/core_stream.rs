//! Throws arbitrary bytes at the whole pure request path: the connection
//! core (framing, backpressure), the request parser, every command and the
//! store, through the in-memory backend. The first bytes choose how the
//! stream is split and how fast the simulated client reads. Whatever the
//! input, nothing panics, pending output stays within its bound, and every
//! byte the server sends is a well-formed reply frame (the last one may be
//! cut only when an oversized header killed the connection).

#![no_main]

use fkvs::commands::{Engine, ServerInfo};
use fkvs::io::conn::{CloseReason, OUTPUT_BYTES_MAX};
use fkvs::io::sim::{Delivery, SimConnection};
use fkvs::protocol::{split_reply_frame, FrameSplit, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, read, ref stream @ ..] = *data else { return };
    let delivery = if mode & 1 == 0 { Delivery::RecvSpace } else { Delivery::Lent };
    let chunk_bytes = usize::from(chunk).max(1) * 7;
    let read_bytes = usize::from(read) * 97;
    let now = 1_700_000_000_000 + u64::from(mode >> 1) * 1_000;
    let mut engine = Engine::new(ServerInfo {
        pid: 1,
        port: 0,
        config_file: "fuzz".into(),
        started_ms: now,
        event_loop_max_events: 1,
        backend: "sim",
        allocator: "fuzz",
    });
    let mut conn = SimConnection::new(delivery);
    let mut offset = 0;
    let mut stalled = false;
    while offset < stream.len() && conn.close_reason().is_none() {
        let end = (offset + chunk_bytes).min(stream.len());
        let taken = conn.deliver(&stream[offset..end], &mut engine, now);
        assert!(conn.output_pending() <= OUTPUT_BYTES_MAX);
        // A throttled client (nothing taken) reads all it is owed.
        let budget = if taken == 0 { usize::MAX } else { read_bytes };
        conn.client_reads(budget, &mut engine, now);
        if taken == 0 && stalled {
            panic!("no progress although the client read everything");
        }
        stalled = taken == 0;
        offset += taken;
    }
    // An oversized header kills the connection and drops unsent output
    // (Q30), which may cut a reply the client was half-way through reading,
    // as a killed TCP connection would.
    let killed = conn.close_reason() == Some(CloseReason::OversizedFrame);
    conn.client_closes_write(&mut engine, now);
    while conn.client_reads(usize::MAX, &mut engine, now) > 0 {}
    let mut replies = conn.received();
    while let FrameSplit::Frame { core, frame_bytes } = split_reply_frame(replies) {
        assert!(Reply::decode(core).is_ok(), "malformed reply {core:02x?}");
        replies = &replies[frame_bytes..];
    }
    assert!(replies.is_empty() || killed, "a partial reply frame was sent on a live connection");
});
