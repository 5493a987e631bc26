//! No heap allocation per request on the hot commands (DESIGN.md, "The hot
//! path"): GET, PING, DEL, TTL, PERSIST, the INCR family on an existing key
//! (also when its text grows, "9" → "10") and SET overwriting a value of the
//! same size class.
//!
//! A counting global allocator counts allocations made by the calling
//! thread (so parallel tests do not disturb each other). Each test builds an
//! engine with a few thousand keys, pre-encodes its request frames, warms
//! up, and then asserts that running the frames through
//! `Engine::execute_frame` into a pre-reserved output buffer leaves the
//! count where it was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fkvs::commands::{Engine, ServerInfo};
use fkvs::protocol::{split_frame, FrameSplit, Request};
use fkvs::store::Millis;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; counting touches only a thread-local integer and
// never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const NOW: Millis = 1_700_000_000_000;
const ROUNDS: usize = 1_000;

fn frame(request: Request<'_>) -> Vec<u8> {
    let mut frame = Vec::new();
    assert!(request.encode(&mut frame).is_ok(), "request too large");
    frame
}

/// An engine holding `key:0` … `key:4999` and the keys the tests use.
fn engine() -> Engine {
    let mut engine = Engine::new(ServerInfo {
        pid: 1,
        port: 5995,
        config_file: String::new(),
        started_ms: NOW,
        event_loop_max_events: 1_024,
        backend: "test",
        allocator: "counting",
    });
    let mut out = Vec::new();
    for i in 0..5_000 {
        let key = format!("key:{i}");
        run(&mut engine, &frame(Request::Set { key: key.as_bytes(), value: b"value", expiry_seconds: None }), &mut out);
    }
    engine
}

fn run(engine: &mut Engine, frame: &[u8], out: &mut Vec<u8>) {
    let FrameSplit::Frame { core, .. } = split_frame(frame) else {
        panic!("not a whole frame: {frame:02x?}");
    };
    out.clear();
    engine.execute_frame(core, NOW, out);
}

/// Runs `frames` once to warm up, then `ROUNDS` times; returns how many
/// allocations the measured rounds made, and the last round's replies.
fn allocations_running(engine: &mut Engine, frames: &[Vec<u8>]) -> (u64, Vec<Vec<u8>>) {
    let mut out = Vec::with_capacity(64 * 1024);
    for frame in frames {
        run(engine, frame, &mut out);
    }
    let mut replies: Vec<Vec<u8>> = frames.iter().map(|_| Vec::with_capacity(64)).collect();
    let before = allocations();
    for _ in 0..ROUNDS {
        for (frame, reply) in frames.iter().zip(&mut replies) {
            run(engine, frame, &mut out);
            reply.clear();
            reply.extend_from_slice(&out[..out.len().min(64)]);
        }
    }
    (allocations() - before, replies)
}

/// The canary: without it, a counter that saw nothing would pass every test
/// below. The store itself no longer calls the allocator even to grow (its
/// table and arena are mappings), so the canary is a reply larger than the
/// output buffer, which must grow it.
#[test]
fn the_counter_sees_allocations_such_as_a_growing_reply_buffer() {
    let mut engine = engine();
    let value = vec![b'x'; 60_000];
    run(&mut engine, &frame(Request::Set { key: b"large", value: &value, expiry_seconds: None }), &mut Vec::new());
    let get = frame(Request::Get { key: b"large" });
    let mut out = Vec::with_capacity(1024);
    let before = allocations();
    run(&mut engine, &get, &mut out);
    assert!(out.len() > value.len(), "GET of the large value: {} reply bytes", out.len());
    assert!(allocations() > before, "a 60 000-byte reply into a 1 024-byte buffer must grow it");
}

#[test]
fn get_ping_del_ttl_and_persist_do_not_allocate() {
    let mut engine = engine();
    let mut out = Vec::new();
    run(&mut engine, &frame(Request::Set { key: b"timed", value: b"v", expiry_seconds: Some(b"100") }), &mut out);
    let frames = [
        frame(Request::Get { key: b"key:42" }),
        frame(Request::Get { key: b"missing" }),
        frame(Request::Ping { payload: b"hello" }),
        frame(Request::Ttl { key: b"timed" }),
        frame(Request::Ttl { key: b"key:7" }),
        frame(Request::Persist { key: b"key:8" }),
        frame(Request::Del { key: b"key:9" }),
        frame(Request::Del { key: b"missing" }),
    ];
    let (allocated, replies) = allocations_running(&mut engine, &frames);
    assert_eq!(allocated, 0, "allocations over {ROUNDS} rounds");
    assert_eq!(replies[0], [0, 8, 1, 0, 5, b'v', b'a', b'l', b'u', b'e']);
}

#[test]
fn del_then_set_of_the_same_key_reuses_its_block() {
    let mut engine = engine();
    let frames = [
        frame(Request::Del { key: b"key:10" }),
        frame(Request::Set { key: b"key:10", value: b"other", expiry_seconds: None }),
    ];
    let (allocated, _) = allocations_running(&mut engine, &frames);
    assert_eq!(allocated, 0, "allocations over {ROUNDS} rounds");
}

#[test]
fn incr_family_on_an_existing_key_does_not_allocate_even_when_its_text_grows() {
    let mut engine = engine();
    let mut out = Vec::new();
    run(&mut engine, &frame(Request::Set { key: b"counter", value: b"9", expiry_seconds: None }), &mut out);
    run(&mut engine, &frame(Request::Set { key: b"timed", value: b"7", expiry_seconds: Some(b"100") }), &mut out);
    run(&mut engine, &frame(Request::Ping { payload: b"warm-up" }), &mut out);
    // The first INCR takes "9" to "10"; INCRBY then walks the text up to 19
    // digits and DECRBY back, every round.
    let frames = [
        frame(Request::Incr { key: b"counter" }),
        frame(Request::IncrBy { key: b"counter", amount: b"1000000000000000000" }),
        frame(Request::DecrBy { key: b"counter", amount: b"1000000000000000000" }),
        frame(Request::Decr { key: b"counter" }),
        frame(Request::Incr { key: b"counter" }),
        frame(Request::Incr { key: b"timed" }),
    ];
    let mut out = Vec::with_capacity(1024);
    let before = allocations();
    run(&mut engine, &frames[0], &mut out);
    assert_eq!(out, [0, 5, 1, 0, 2, b'1', b'0'], "9 became 10");
    assert_eq!(allocations() - before, 0, "INCR from 9 to 10 allocated");
    let (allocated, _) = allocations_running(&mut engine, &frames);
    assert_eq!(allocated, 0, "allocations over {ROUNDS} rounds");
}

#[test]
fn set_overwriting_a_value_of_the_same_size_class_does_not_allocate() {
    let mut engine = engine();
    let frames = [
        frame(Request::Set { key: b"key:1", value: b"other", expiry_seconds: None }),
        frame(Request::Set { key: b"key:1", value: b"value", expiry_seconds: None }),
        frame(Request::Set { key: b"key:2", value: b"12345", expiry_seconds: None }),
        frame(Request::Set { key: b"key:2", value: b"1234567890", expiry_seconds: None }),
    ];
    let (allocated, replies) = allocations_running(&mut engine, &frames);
    assert_eq!(allocated, 0, "allocations over {ROUNDS} rounds");
    assert_eq!(replies[3], [0, 13, 1, 0, 10, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9', b'0']);
}
