//! The connection core driven by the in-memory backend (`io::sim`): framing,
//! splitting, backpressure and half-close, deterministically and without
//! sockets. Seeded random scripts must give exactly the replies that
//! executing the frames one by one gives.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fkvs::commands::{Engine, ServerInfo};
use fkvs::io::conn::{CloseReason, OUTPUT_BYTES_MAX};
use fkvs::io::sim::{Delivery, SimConnection};
use fkvs::protocol::{split_frame, FrameSplit, Request};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000_000;

fn engine() -> Engine {
    Engine::new(ServerInfo {
        pid: 1,
        port: 0,
        config_file: "none".into(),
        started_ms: NOW,
        event_loop_max_events: 1,
        backend: "sim",
        allocator: "counting",
    })
}

/// An engine whose store is past the size at which batches prefetch ahead
/// of themselves (`Engine::prefetch_pays`), so that the lookahead runs.
fn large_engine() -> Engine {
    let mut engine = engine();
    for i in 0..100_000u32 {
        engine.store.set(format!("fill:{i:011}").as_bytes(), &i.to_le_bytes(), false, None);
    }
    assert!(engine.prefetch_pays(), "a store of {} keys does not prefetch", engine.store.len());
    engine
}

/// What executing each frame of `stream` in order on `engine` replies.
fn reference_replies(stream: &[u8], mut engine: Engine) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let FrameSplit::Frame { core, frame_bytes } = split_frame(rest) {
        engine.execute_frame(core, NOW, &mut out);
        rest = &rest[frame_bytes..];
    }
    out
}

fn any_request() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::collection::vec(0u8..4, 0..3);
    let value = prop::collection::vec(any::<u8>(), 0..3000);
    (0u8..6, key, value).prop_map(|(kind, key, value)| {
        let mut frame = Vec::new();
        let request = match kind {
            0 => Request::Set { key: &key, value: &value, expiry_seconds: None },
            1 | 2 => Request::Get { key: &key },
            3 => Request::Incr { key: &key },
            4 => Request::Del { key: &key },
            _ => Request::Ping { payload: &value },
        };
        request.encode(&mut frame).unwrap();
        frame
    })
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![Just(Delivery::RecvSpace), Just(Delivery::Lent)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any split of the input and any pace of the reader give the same
    /// replies, and pending output never passes the bound.
    #[test]
    fn any_split_and_read_pace_gives_the_reference_replies(
        frames in prop::collection::vec(any_request(), 1..200),
        chunk_sizes in prop::collection::vec(1usize..5000, 1..50),
        read_sizes in prop::collection::vec(0usize..200_000, 1..50),
        delivery in delivery(),
    ) {
        let stream = frames.concat();
        prop_assert!(!engine().prefetch_pays());
        check_replies(&stream, &chunk_sizes, &read_sizes, delivery, engine)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The same with a store large enough that batches prefetch ahead of
    /// themselves: the lookahead must not change a reply.
    #[test]
    fn prefetching_batches_give_the_reference_replies(
        frames in prop::collection::vec(any_request(), 1..400),
        chunk_sizes in prop::collection::vec(1usize..20_000, 1..20),
        read_sizes in prop::collection::vec(0usize..200_000, 1..20),
        delivery in delivery(),
    ) {
        check_replies(&frames.concat(), &chunk_sizes, &read_sizes, delivery, large_engine)?;
    }
}

/// Delivers `stream` to a connection in chunks of `chunk_sizes` while the
/// client reads in steps of `read_sizes`, then half-closes; the replies must
/// be those of executing the frames one by one on an engine made the same
/// way, and pending output must never pass the bound.
fn check_replies(
    stream: &[u8],
    chunk_sizes: &[usize],
    read_sizes: &[usize],
    delivery: Delivery,
    new_engine: fn() -> Engine,
) -> Result<(), TestCaseError> {
    let expected = reference_replies(stream, new_engine());
    let mut engine = new_engine();
    let mut conn = SimConnection::new(delivery);
    let (mut offset, mut step) = (0, 0);
    while offset < stream.len() {
        let chunk = chunk_sizes[step % chunk_sizes.len()].min(stream.len() - offset);
        offset += conn.deliver(&stream[offset..offset + chunk], &mut engine, NOW);
        prop_assert!(conn.output_pending() <= OUTPUT_BYTES_MAX);
        conn.client_reads(read_sizes[step % read_sizes.len()], &mut engine, NOW);
        step += 1;
    }
    conn.client_closes_write(&mut engine, NOW);
    while conn.close_reason().is_none() {
        prop_assert!(conn.client_reads(usize::MAX, &mut engine, NOW) > 0, "stalled with frames left");
    }
    prop_assert_eq!(conn.close_reason(), Some(CloseReason::Finished));
    prop_assert_eq!(conn.received(), expected.as_slice());
    Ok(())
}

#[test]
fn a_reader_that_never_reads_stops_intake_at_the_bound() {
    let mut engine = engine();
    let value = vec![b'v'; 60_000];
    let mut set = Vec::new();
    Request::Set { key: b"big", value: &value, expiry_seconds: None }.encode(&mut set).unwrap();
    let mut get = Vec::new();
    Request::Get { key: b"big" }.encode(&mut get).unwrap();
    let gets = get.repeat(20_000); // 160 kB: more than the input buffer holds
    for delivery in [Delivery::RecvSpace, Delivery::Lent] {
        let mut conn = SimConnection::new(delivery);
        conn.deliver(&set, &mut engine, NOW);
        let taken = conn.deliver(&gets, &mut engine, NOW);
        assert!(taken < gets.len(), "intake must stop");
        assert!(conn.output_pending() <= OUTPUT_BYTES_MAX);
        assert!(conn.output_pending() > OUTPUT_BYTES_MAX - 2 * 65_537, "the bound is used, not wasted");
        assert_eq!(conn.deliver(&gets[taken..], &mut engine, NOW), 0, "no more intake until it reads");
        assert_eq!(conn.close_reason(), None, "throttled, not dropped");
    }
}

#[test]
fn oversized_header_breaks_the_connection_and_drops_its_output() {
    let mut engine = engine();
    for delivery in [Delivery::RecvSpace, Delivery::Lent] {
        let mut conn = SimConnection::new(delivery);
        conn.deliver(&[0, 3, 5, 0, 0, 0xff, 0xff], &mut engine, NOW);
        assert_eq!(conn.close_reason(), Some(CloseReason::OversizedFrame));
        assert_eq!(conn.output_pending(), 0);
    }
}

#[test]
fn half_close_with_a_partial_frame_answers_the_whole_ones() {
    let mut engine = engine();
    let mut conn = SimConnection::new(Delivery::RecvSpace);
    conn.deliver(&[0, 3, 5, 0, 0, 0, 9, 1], &mut engine, NOW);
    conn.client_closes_write(&mut engine, NOW);
    assert_eq!(conn.close_reason(), None, "a reply is still owed");
    conn.client_reads(usize::MAX, &mut engine, NOW);
    assert_eq!(conn.received(), [0, 3, 5, 0, 0]);
    assert_eq!(conn.close_reason(), Some(CloseReason::Finished));
}

// Allocation counting for the hot-path test below: counts only the current
// thread's allocations, so tests running in parallel do not disturb it.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers every operation to the system allocator unchanged; the
// counter is a thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// PING, GET, INCR and DEL through the whole core (framing, execution,
/// reply encoding, output buffer) allocate nothing once warm.
#[test]
fn hot_paths_through_the_core_do_not_allocate() {
    let mut engine = engine();
    let mut pipeline = Vec::new();
    Request::Set { key: b"k", value: b"some value", expiry_seconds: None }.encode(&mut pipeline).unwrap();
    Request::Set { key: b"n", value: b"1000", expiry_seconds: None }.encode(&mut pipeline).unwrap();
    let mut hot = Vec::new();
    for _ in 0..50 {
        Request::Ping { payload: b"hello" }.encode(&mut hot).unwrap();
        Request::Get { key: b"k" }.encode(&mut hot).unwrap();
        Request::Get { key: b"missing" }.encode(&mut hot).unwrap();
        Request::Incr { key: b"n" }.encode(&mut hot).unwrap();
        Request::Del { key: b"missing" }.encode(&mut hot).unwrap();
    }
    for delivery in [Delivery::RecvSpace, Delivery::Lent] {
        let mut conn = SimConnection::new(delivery);
        conn.deliver(&pipeline, &mut engine, NOW);
        conn.deliver(&hot, &mut engine, NOW); // warm-up
        conn.client_reads(usize::MAX, &mut engine, NOW);
        conn.clear_received();
        let before = allocations();
        for _ in 0..20 {
            conn.deliver(&hot, &mut engine, NOW);
            let pending = conn.output_pending();
            conn.client_reads(pending, &mut engine, NOW);
            // The simulated client's log is not the server's memory.
            conn.clear_received();
        }
        let allocated = allocations() - before;
        assert_eq!(allocated, 0, "{allocated} allocations on the hot path ({delivery:?})");
    }
}
