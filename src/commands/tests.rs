//! Command semantics against the pure engine: no sockets, explicit time.

use super::*;
use crate::protocol::reply::{Reply, FAIL_FRAME, OK_FRAME};
use crate::protocol::split_frame;
use crate::protocol::FrameSplit;

const T0: Millis = 1_700_000_000_000;

fn engine() -> Engine {
    Engine::new(ServerInfo {
        pid: 42,
        port: 5995,
        config_file: "server.conf".into(),
        started_ms: T0,
        event_loop_max_events: 100_000,
        backend: "epoll",
        allocator: "system (libc malloc)",
    })
}

/// Runs `request` (one whole frame) at time `now` and returns the reply bytes.
fn run_at(engine: &mut Engine, now: Millis, request: &Request<'_>) -> Vec<u8> {
    let mut frame = Vec::new();
    request.encode(&mut frame).unwrap();
    run_frame_at(engine, now, &frame)
}

fn run_frame_at(engine: &mut Engine, now: Millis, frame: &[u8]) -> Vec<u8> {
    let FrameSplit::Frame { core, frame_bytes } = split_frame(frame) else {
        panic!("not a whole frame: {frame:02x?}");
    };
    assert_eq!(frame_bytes, frame.len());
    let mut out = Vec::new();
    engine.execute_frame(core, now, &mut out);
    out
}

fn run(engine: &mut Engine, request: &Request<'_>) -> Vec<u8> {
    run_at(engine, T0, request)
}

fn value(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::protocol::reply::push_value(&mut out, bytes);
    out
}

fn set<'a>(key: &'a [u8], value: &'a [u8]) -> Request<'a> {
    Request::Set { key, value, expiry_seconds: None }
}

fn set_ex<'a>(key: &'a [u8], value: &'a [u8], seconds: &'a [u8]) -> Request<'a> {
    Request::Set { key, value, expiry_seconds: Some(seconds) }
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

#[test]
fn worked_examples_of_section_1_7() {
    // (request, reply) in order on one engine; the KEYS listings with more
    // than one key are checked apart because their order is free.
    let steps = [
        ("00 01 0d", "00 03 0d 00 00"),
        ("00 0b 01 00 03 66 6f 6f 00 03 62 61 72", "00 06 01 00 03 62 61 72"),
        ("00 0f 01 00 03 66 6f 6f 00 03 62 61 72 00 02 31 30", "00 06 01 00 03 62 61 72"),
        ("00 06 02 00 03 66 6f 6f", "00 06 01 00 03 62 61 72"),
        ("00 07 02 00 04 6e 6f 70 65", "00 01 00"),
        ("00 04 03 00 01 6e", "00 04 01 00 01 31"),
        ("00 08 04 00 01 6e 00 02 31 30", "00 05 01 00 02 31 31"),
        ("00 04 06 00 01 6e", "00 05 01 00 02 31 30"),
        ("00 07 08 00 01 6e 00 01 33", "00 04 01 00 01 37"),
        ("00 09 0a 00 01 6e 00 03 31 30 30", "00 01 01"),
    ];
    let mut engine = engine();
    for (request, reply) in steps {
        assert_eq!(run_frame_at(&mut engine, T0, &hex(request)), hex(reply), "request {request}");
    }
    // TTL just after EXPIRE 100 reads 99 once a millisecond has passed (Q8).
    assert_eq!(run_frame_at(&mut engine, T0 + 1, &hex("00 04 0b 00 01 6e")), hex("00 05 01 00 02 39 39"));
    let later = [
        ("00 04 0c 00 01 6e", "00 01 01"),
        ("00 04 0b 00 01 6e", "00 05 01 00 02 2d 31"),
        ("00 07 0b 00 04 6e 6f 70 65", "00 05 01 00 02 2d 32"),
        ("00 0a 0a 00 04 6e 6f 70 65 00 01 35", "00 01 00"),
        ("00 06 09 00 03 66 6f 6f", "00 01 01"),
        ("00 03 05 00 00", "00 03 05 00 00"),
        ("00 05 05 00 02 68 69", "00 05 05 00 02 68 69"),
        ("00 01 0d", "00 07 0d 00 04 31 29 20 6e"),
        ("00 07 01 00 01 61 00 01 78", "00 04 01 00 01 78"),
        ("00 07 01 00 01 62 00 01 79", "00 04 01 00 01 79"),
        ("00 06 01 00 01 65 00 00", "00 03 01 00 00"),
        ("00 01 05", "00 01 00"),
        // §7.2 Q1: unknown ids and empty frames get FAIL instead of silence.
        ("00 04 20 00 01 78", "00 01 00"),
        ("00 00", "00 01 00"),
    ];
    for (request, reply) in later {
        assert_eq!(run_frame_at(&mut engine, T0 + 1, &hex(request)), hex(reply), "request {request}");
    }
    let listing = run_frame_at(&mut engine, T0 + 1, &hex("00 01 0d"));
    let Ok(Reply::Typed(CommandId::Keys, text)) = Reply::decode(&listing[2..]) else {
        panic!("KEYS reply {listing:02x?}");
    };
    let mut keys: Vec<&[u8]> = text.split(|&b| b == b'\n').map(|line| &line[3..]).collect();
    let numbers: Vec<&[u8]> = text.split(|&b| b == b'\n').map(|line| &line[..3]).collect();
    keys.sort();
    assert_eq!(keys, [&b"a"[..], b"b", b"e", b"n"]);
    assert_eq!(numbers, [&b"1) "[..], b"2) ", b"3) ", b"4) "]);
}

use crate::protocol::request::CommandId;

#[test]
fn set_tags_integers_and_keeps_bytes_exactly() {
    let mut e = engine();
    run(&mut e, &set(b"k", b"007"));
    assert_eq!(run(&mut e, &Request::Get { key: b"k" }), value(b"007"));
    assert_eq!(run(&mut e, &Request::Incr { key: b"k" }), value(b"8"));
    run(&mut e, &set(b"z", b"-0"));
    assert_eq!(run(&mut e, &Request::Incr { key: b"z" }), value(b"1"));
    for raw in [&b" 5"[..], b"5 ", b"1.0", b"9223372036854775808", b"", b"alice"] {
        run(&mut e, &set(b"r", raw));
        assert_eq!(run(&mut e, &Request::Incr { key: b"r" }), FAIL_FRAME, "{raw:?}");
        assert_eq!(run(&mut e, &Request::Get { key: b"r" }), value(raw), "unchanged after FAIL");
    }
}

#[test]
fn set_expiry_rules() {
    let mut e = engine();
    for bad in [&b"-1"[..], b"-0", b"abc", b" 5", b"", b"9223372036854776", &[b'0'; 32]] {
        assert_eq!(run(&mut e, &set_ex(b"k", b"v", bad)), FAIL_FRAME, "{bad:?}");
        assert_eq!(run(&mut e, &Request::Get { key: b"k" }), FAIL_FRAME, "nothing stored for {bad:?}");
    }
    assert_eq!(run(&mut e, &set_ex(b"k", b"v", b"+5")), value(b"v"));
    assert_eq!(run_at(&mut e, T0 + 1, &Request::Ttl { key: b"k" }), value(b"4"));
    assert_eq!(run(&mut e, &set_ex(b"k", b"v", b"05")), value(b"v"));
    // Expiry 0 stores an already expired key; the echo is still normal.
    assert_eq!(run(&mut e, &set_ex(b"z", b"v", b"0")), value(b"v"));
    assert_eq!(run(&mut e, &Request::Get { key: b"z" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::Ttl { key: b"z" }), value(b"-2"));
    // A plain SET clears the deadline.
    run(&mut e, &set(b"k", b"w"));
    assert_eq!(run(&mut e, &Request::Ttl { key: b"k" }), value(b"-1"));
}

#[test]
fn counters_follow_section_2_4() {
    let mut e = engine();
    assert_eq!(run(&mut e, &Request::Incr { key: b"" }), FAIL_FRAME, "INCR rejects the empty key (Q5)");
    assert_eq!(run(&mut e, &Request::Decr { key: b"" }), value(b"-1"), "DECR accepts it");
    assert_eq!(run(&mut e, &Request::IncrBy { key: b"i", amount: b"10" }), value(b"10"));
    assert_eq!(run(&mut e, &Request::DecrBy { key: b"d", amount: b"-5" }), value(b"5"));
    for bad in [&b""[..], b" 1", b"1 ", b"x", b"9223372036854775808"] {
        assert_eq!(run(&mut e, &Request::IncrBy { key: b"new", amount: bad }), FAIL_FRAME);
        assert_eq!(run(&mut e, &Request::DecrBy { key: b"new", amount: bad }), FAIL_FRAME);
    }
    // §7.2 Q6: a failed INCRBY/DECRBY leaves no key behind.
    assert_eq!(run(&mut e, &Request::Get { key: b"new" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::DecrBy { key: b"new", amount: b"-9223372036854775808" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::Get { key: b"new" }), FAIL_FRAME);
}

#[test]
fn counter_overflow_is_fail_and_changes_nothing() {
    let mut e = engine();
    run(&mut e, &set(b"max", b"9223372036854775807"));
    assert_eq!(run(&mut e, &Request::Incr { key: b"max" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::IncrBy { key: b"max", amount: b"1" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::IncrBy { key: b"max", amount: b"0" }), value(b"9223372036854775807"));
    run(&mut e, &set(b"min", b"-9223372036854775808"));
    assert_eq!(run(&mut e, &Request::Decr { key: b"min" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::DecrBy { key: b"min", amount: b"1" }), FAIL_FRAME);
    run(&mut e, &set(b"m1", b"-1"));
    assert_eq!(
        run(&mut e, &Request::DecrBy { key: b"m1", amount: b"-9223372036854775808" }),
        value(b"9223372036854775807")
    );
    run(&mut e, &set(b"zero", b"0"));
    assert_eq!(run(&mut e, &Request::DecrBy { key: b"zero", amount: b"-9223372036854775808" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::Get { key: b"zero" }), value(b"0"));
}

#[test]
fn counters_keep_the_deadline() {
    let mut e = engine();
    run(&mut e, &set_ex(b"n", b"1", b"100"));
    run(&mut e, &Request::Incr { key: b"n" });
    assert_eq!(run_at(&mut e, T0 + 1, &Request::Ttl { key: b"n" }), value(b"99"));
    // An expired counter counts as missing.
    assert_eq!(run_at(&mut e, T0 + 100_000, &Request::Incr { key: b"n" }), value(b"1"));
    assert_eq!(run_at(&mut e, T0 + 100_000, &Request::Ttl { key: b"n" }), value(b"-1"));
}

#[test]
fn expire_ttl_persist() {
    let mut e = engine();
    run(&mut e, &set(b"k", b"v"));
    for bad in [&b"-1"[..], b"", b"x", b"9223372036854776", &[b'0'; 32]] {
        assert_eq!(run(&mut e, &Request::Expire { key: b"k", seconds: bad }), FAIL_FRAME);
    }
    assert_eq!(run(&mut e, &Request::Ttl { key: b"k" }), value(b"-1"), "deadline unchanged after FAILs");
    assert_eq!(run(&mut e, &Request::Expire { key: b"k", seconds: b"10" }), OK_FRAME);
    assert_eq!(run_at(&mut e, T0, &Request::Ttl { key: b"k" }), value(b"10"));
    assert_eq!(run_at(&mut e, T0 + 9_001, &Request::Ttl { key: b"k" }), value(b"0"));
    assert_eq!(run(&mut e, &Request::Persist { key: b"k" }), OK_FRAME);
    assert_eq!(run(&mut e, &Request::Persist { key: b"missing" }), OK_FRAME);
    assert_eq!(run_at(&mut e, T0 + 20_000, &Request::Get { key: b"k" }), value(b"v"));
}

#[test]
fn expired_keys_cannot_be_revived_q7() {
    let mut e = engine();
    run(&mut e, &set(b"k", b"v"));
    assert_eq!(run(&mut e, &Request::Expire { key: b"k", seconds: b"0" }), OK_FRAME);
    assert_eq!(run(&mut e, &Request::Expire { key: b"k", seconds: b"10" }), FAIL_FRAME);
    assert_eq!(run(&mut e, &Request::Get { key: b"k" }), FAIL_FRAME);
    run(&mut e, &set_ex(b"p", b"v", b"0"));
    assert_eq!(run(&mut e, &Request::Persist { key: b"p" }), OK_FRAME);
    assert_eq!(run(&mut e, &Request::Get { key: b"p" }), FAIL_FRAME);
}

#[test]
fn keys_size_limit_of_q18() {
    let mut e = engine();
    let fits = vec![b'k'; 65_496];
    run(&mut e, &set(&fits, b""));
    let listing = run(&mut e, &Request::Keys);
    assert_eq!(listing.len(), 5 + 65_499);
    assert_eq!(&listing[5..8], b"1) ");
    let mut e = engine();
    let too_long = vec![b'k'; 65_497];
    run(&mut e, &set(&too_long, b""));
    assert_eq!(run(&mut e, &Request::Keys), FAIL_FRAME);
}

#[test]
fn keys_lists_the_empty_key() {
    let mut e = engine();
    run(&mut e, &set(b"", b"v"));
    assert_eq!(run(&mut e, &Request::Keys), hex("00 06 0d 00 03 31 29 20"));
}

#[test]
fn info_text_matches_the_upstream_template() {
    let mut e = engine();
    run(&mut e, &Request::Ping { payload: b"" });
    e.stats.client_connected();
    let reply = run_at(&mut e, T0 + 90_061_000, &Request::Info);
    let Ok(Reply::Typed(CommandId::Info, text)) = Reply::decode(&reply[2..]) else {
        panic!("INFO reply {reply:02x?}");
    };
    let text = std::str::from_utf8(text).unwrap();
    let memory = e.store.memory_bytes();
    let expected = format!(
        "# Server \npid: 42 \nport: 5995 \nconfig file: server.conf \n\
         Uptime: 1 days, 1 hours, 1 min, 1 sec \nevent_loop_max_events: 100000 \n\
         event_dispatcher_kind: epoll \n\n# Clients \nconnected clients: 1 \n\
         disconnected clients: 0 \n\n#Stats \ncommands executed: 1 \n\n# Memory \n\
         Memory Usage: {memory} bytes ({} KiB)\nmem_allocator: system (libc malloc) \n\n\
         # Keyspace \nkeys: 0 \nexpired keys reclaimed: 0 \n\n\
         # I/O \nzero-copy sends: 0 \nzero-copy sends copied: 0 \nreceive buffers exhausted: 0 \n\n",
        memory / 1024
    );
    assert_eq!(text, expected);
}

#[test]
fn info_fails_past_767_bytes() {
    let mut e = engine();
    e.info.config_file = "c".repeat(800);
    assert_eq!(run(&mut e, &Request::Info), FAIL_FRAME);
}

#[test]
fn background_cycle_reclaims_expired_keys() {
    let mut e = engine();
    for i in 0..5_000u32 {
        run(&mut e, &set_ex(&i.to_be_bytes(), b"v", b"1"));
    }
    run(&mut e, &set(b"keep", b"v"));
    let mut now = T0 + 1_000;
    let mut ticks = 0;
    while e.store.len() > 1 {
        e.tick(now);
        now += EXPIRY_TICK_MS;
        ticks += 1;
        assert!(ticks <= 20, "not reclaimed within two seconds of ticks");
    }
    assert_eq!(e.stats.expired_keys_reclaimed, 5_000);
}
