//! Every command over real sockets: the worked examples of PROTOCOL.md §1.7
//! byte for byte, the validation rows of §3.3, on every backend, over TCP
//! and Unix sockets.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::*;

/// One request and the exact reply bytes (one or more frames).
type Step = (&'static str, &'static str);

/// §1.7 in order, on one connection. TTL reads 99 unless asked within the
/// same millisecond as EXPIRE (then 100), so it is checked apart.
const WORKED_EXAMPLES: &[Step] = &[
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

const WORKED_EXAMPLES_AFTER_TTL: &[Step] = &[
    ("00 04 0c 00 01 6e", "00 01 01"),
    ("00 04 0b 00 01 6e", "00 05 01 00 02 2d 31"),
    ("00 07 0b 00 04 6e 6f 70 65", "00 05 01 00 02 2d 32"),
    ("00 0a 0a 00 04 6e 6f 70 65 00 01 35", "00 01 00"),
    ("00 06 09 00 03 66 6f 6f", "00 01 01"),
    ("00 03 05 00 00", "00 03 05 00 00"),
    ("00 05 05 00 02 68 69", "00 05 05 00 02 68 69"),
    ("00 01 0d", "00 07 0d 00 04 31 29 20 6e"),
    ("00 07 01 00 01 61 00 01 78 00 07 01 00 01 62 00 01 79", "00 04 01 00 01 78 00 04 01 00 01 79"),
];

const WORKED_EXAMPLES_TAIL: &[Step] = &[
    ("00 06 01 00 01 65 00 00", "00 03 01 00 00"),
    ("00 01 05", "00 01 00"),
    // §7.2 Q1: FAIL where upstream stays silent.
    ("00 04 20 00 01 78", "00 01 00"),
    ("00 00", "00 01 00"),
];

fn run_steps(stream: &mut (impl Read + Write), steps: &[Step]) {
    for (request, reply) in steps {
        let expected = hex(reply);
        stream.write_all(&hex(request)).unwrap();
        let mut replies = Vec::new();
        while replies.len() < expected.len() && expected.starts_with(&replies) {
            replies.extend(read_frame(stream));
        }
        assert_eq!(replies, expected, "request {request}");
    }
}

fn worked_examples(stream: &mut (impl Read + Write)) {
    run_steps(stream, WORKED_EXAMPLES);
    stream.write_all(&hex("00 04 0b 00 01 6e")).unwrap();
    let ttl = read_frame(stream);
    assert!(ttl == hex("00 05 01 00 02 39 39") || ttl == hex("00 06 01 00 03 31 30 30"), "TTL {ttl:02x?}");
    run_steps(stream, WORKED_EXAMPLES_AFTER_TTL);
    // KEYS with a, b, n: order is free, numbering is not.
    stream.write_all(&hex("00 01 0d")).unwrap();
    let listing = read_exactly(stream, 2 + 0x11);
    assert_eq!(&listing[..5], hex("00 11 0d 00 0e"));
    let text = String::from_utf8(listing[5..].to_vec()).unwrap();
    let mut keys: Vec<&str> = text.split('\n').map(|line| &line[3..]).collect();
    let numbers: Vec<&str> = text.split('\n').map(|line| &line[..3]).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b", "n"]);
    assert_eq!(numbers, ["1) ", "2) ", "3) "]);
    // INFO: C = 3 + n, type 07, then the text.
    stream.write_all(&hex("00 01 07")).unwrap();
    let header = read_exactly(stream, 5);
    let core = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let text_bytes = usize::from(u16::from_be_bytes([header[3], header[4]]));
    assert_eq!((header[2], core), (0x07, 3 + text_bytes));
    let text = read_exactly(stream, text_bytes);
    assert!(text.starts_with(b"# Server \npid: "), "{}", String::from_utf8_lossy(&text));
    run_steps(stream, WORKED_EXAMPLES_TAIL);
}

#[test]
fn worked_examples_over_tcp() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        worked_examples(&mut server.tcp());
    }
}

#[test]
fn worked_examples_over_unix_socket() {
    for backend in BACKENDS {
        let server = Server::builder().backend(backend).unix().start();
        let fkvs::client::Endpoint::Unix(path) = &server.endpoint else { unreachable!() };
        let mut stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        worked_examples(&mut stream);
    }
}

/// Every row of §3.3 that a complete frame can hit, with the Q4 fix (FAIL
/// where upstream reads past the frame). Each is followed by a check that the
/// connection still works.
#[test]
fn validation_rows_of_section_3_3() {
    const FAIL: &str = "00 01 00";
    let rows: &[(&str, &str)] = &[
        // SET
        ("00 01 01", FAIL),
        ("00 03 01 00 05", FAIL),                                        // 3 + K > C
        ("00 04 01 00 01 61", FAIL),                                     // 5 + K > C
        ("00 07 01 00 01 61 00 03 78", FAIL),                            // 5 + K + V > C
        ("00 08 01 00 01 61 00 01 78 00", FAIL),                         // no room for E
        ("00 0a 01 00 01 61 00 01 78 00 02 31", FAIL),                   // 7 + K + V + E > C
        ("00 0b 01 00 01 61 00 01 78 00 02 2d 31", FAIL),                // negative expiry
        ("00 0b 01 00 01 62 00 01 78 00 01 31 ff", "00 04 01 00 01 78"), // extra ignored
        // key-only commands: C < 3, 3 + K > C (Q4), extra bytes ignored
        ("00 01 02", FAIL),
        ("00 04 02 00 09 61", FAIL),
        ("00 01 09", FAIL),
        ("00 04 09 00 09 61", FAIL),
        ("00 01 0b", FAIL),
        ("00 04 0b 00 09 61", FAIL),
        ("00 01 0c", FAIL),
        ("00 04 0c 00 09 61", FAIL),
        ("00 01 06", FAIL),
        ("00 04 06 00 09 61", FAIL),
        ("00 01 03", FAIL),
        ("00 03 03 00 00", FAIL), // INCR of the empty key
        ("00 04 03 00 09 61", FAIL),
        ("00 06 09 00 01 7a ff ff", "00 01 01"),
        // INCRBY / DECRBY / EXPIRE
        ("00 01 04", FAIL),
        ("00 04 04 00 01 6b", FAIL),
        ("00 07 04 00 01 6b 00 05 31", FAIL),
        ("00 01 08", FAIL),
        ("00 07 08 00 01 6b 00 05 31", FAIL),
        ("00 01 0a", FAIL),
        ("00 04 0a 00 01 61", FAIL),
        ("00 07 0a 00 01 61 00 05 31", FAIL),
        // PING, INFO, KEYS
        ("00 01 05", FAIL),
        ("00 04 05 00 02 61", FAIL),
        ("00 05 05 00 01 61 62", "00 04 05 00 01 61"),
        ("00 02 0d 00", FAIL),
        // unknown ids and the empty frame (§7.2 Q1)
        ("00 01 00", FAIL),
        ("00 01 0e", FAIL),
        ("00 03 ff 00 00", FAIL),
        ("00 00", FAIL),
    ];
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut stream = server.tcp();
        run_steps(&mut stream, &[("00 07 01 00 01 61 00 01 76", "00 04 01 00 01 76")]);
        for (request, reply) in rows {
            run_steps(&mut stream, &[(request, reply), ("00 05 05 00 02 6f 6b", "00 05 05 00 02 6f 6b")]);
        }
        // Nothing above changed "a" or created "k".
        run_steps(&mut stream, &[("00 04 02 00 01 61", "00 04 01 00 01 76"), ("00 04 02 00 01 6b", FAIL)]);
    }
}

#[test]
fn semantics_over_the_wire() {
    use fkvs::protocol::{CommandId, Reply, Request};
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut c = server.client();
        let set = |key, value| Request::Set { key, value, expiry_seconds: None };
        assert_eq!(c.call(&set(b"num", b"007")).unwrap(), Reply::Value(b"007"));
        assert_eq!(c.call(&Request::Incr { key: b"num" }).unwrap(), Reply::Value(b"8"));
        assert_eq!(c.call(&Request::DecrBy { key: b"num", amount: b"-2" }).unwrap(), Reply::Value(b"10"));
        assert_eq!(c.call(&set(b"txt", b"alice")).unwrap(), Reply::Value(b"alice"));
        assert_eq!(c.call(&Request::Incr { key: b"txt" }).unwrap(), Reply::Fail);
        // Q6: a failing INCRBY on a missing key leaves nothing behind.
        assert_eq!(c.call(&Request::IncrBy { key: b"new", amount: b"x" }).unwrap(), Reply::Fail);
        assert_eq!(c.call(&Request::Get { key: b"new" }).unwrap(), Reply::Fail);
        // Q7: an expired key is missing for EXPIRE and PERSIST.
        let ex0 = Request::Set { key: b"gone", value: b"v", expiry_seconds: Some(b"0") };
        assert_eq!(c.call(&ex0).unwrap(), Reply::Value(b"v"));
        assert_eq!(c.call(&Request::Expire { key: b"gone", seconds: b"10" }).unwrap(), Reply::Fail);
        assert_eq!(c.call(&Request::Persist { key: b"gone" }).unwrap(), Reply::Ok);
        assert_eq!(c.call(&Request::Ttl { key: b"gone" }).unwrap(), Reply::Value(b"-2"));
        // Binary-safe keys and values, the empty key.
        assert_eq!(c.call(&set(b"\0\n\xff", b"\0\x01")).unwrap(), Reply::Value(b"\0\x01"));
        assert_eq!(c.call(&Request::Get { key: b"\0\n\xff" }).unwrap(), Reply::Value(b"\0\x01"));
        assert_eq!(c.call(&set(b"", b"empty-key")).unwrap(), Reply::Value(b"empty-key"));
        assert_eq!(c.call(&Request::Get { key: b"" }).unwrap(), Reply::Value(b"empty-key"));
        assert_eq!(c.call(&Request::Del { key: b"" }).unwrap(), Reply::Ok);
        assert_eq!(c.call(&Request::Del { key: b"" }).unwrap(), Reply::Ok, "DEL of a missing key is OK");
        // The largest value a frame can carry round-trips; one more byte cannot be encoded.
        let big = vec![b'v'; 65_529 - 1];
        assert_eq!(c.call(&set(b"k", &big)).unwrap(), Reply::Value(&big));
        assert!(matches!(c.call(&Request::Get { key: b"k" }).unwrap(), Reply::Value(v) if v == big.as_slice()));
        let ping = vec![b'p'; 65_531];
        assert!(
            matches!(c.call(&Request::Ping { payload: &ping }).unwrap(), Reply::Typed(CommandId::Ping, p) if p.len() == 65_531)
        );
    }
}
