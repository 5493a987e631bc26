//! Framing over real sockets (PROTOCOL.md §3.2–§3.4): pipelining, frames
//! split across reads, the frame size limit, and bad input that must leave
//! the server, other clients and stored keys untouched.

mod common;

use std::io::{Read, Write};

use common::*;
use fkvs::protocol::{CommandId, Reply, Request};

fn set_frame(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    Request::Set { key, value, expiry_seconds: None }.encode(&mut frame).unwrap();
    frame
}

fn get_frame(key: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    Request::Get { key }.encode(&mut frame).unwrap();
    frame
}

fn value_frame(value: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    fkvs::protocol::reply::push_value(&mut frame, value);
    frame
}

#[test]
fn thousands_of_pipelined_frames_in_one_write_answer_in_order() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut client = server.client();
        const FRAMES: usize = 10_000;
        for i in 0..FRAMES {
            let key = format!("key:{i}");
            client.queue(&Request::Set { key: key.as_bytes(), value: key.as_bytes(), expiry_seconds: None }).unwrap();
            client.queue(&Request::Incr { key: b"counter" }).unwrap();
        }
        client.flush().unwrap();
        for i in 0..FRAMES {
            let key = format!("key:{i}");
            assert_eq!(client.recv().unwrap(), Reply::Value(key.as_bytes()));
            let count = (i + 1).to_string();
            assert_eq!(client.recv().unwrap(), Reply::Value(count.as_bytes()));
        }
        // Read back in one more pipeline.
        for i in 0..FRAMES {
            client.queue(&Request::Get { key: format!("key:{i}").as_bytes() }).unwrap();
        }
        client.flush().unwrap();
        for i in 0..FRAMES {
            assert_eq!(client.recv().unwrap(), Reply::Value(format!("key:{i}").as_bytes()));
        }
    }
}

#[test]
fn frames_split_down_to_single_bytes() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut stream = server.tcp();
        let mut requests = set_frame(b"split", &[7u8; 300]);
        requests.extend(get_frame(b"split"));
        requests.extend(hex("00 05 05 00 02 68 69"));
        for byte in &requests {
            stream.write_all(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(read_frame(&mut stream), value_frame(&[7u8; 300]));
        assert_eq!(read_frame(&mut stream), value_frame(&[7u8; 300]));
        assert_eq!(read_frame(&mut stream), hex("00 05 05 00 02 68 69"));
    }
}

#[test]
fn frames_split_at_every_point_of_a_pipeline() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut stream = server.tcp();
        let mut pipeline = Vec::new();
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let value = vec![i; usize::from(i) * 37];
            pipeline.extend(set_frame(&[i], &value));
            expected.extend(value_frame(&value));
        }
        for cut in (1..pipeline.len()).step_by(97) {
            stream.write_all(&pipeline[..cut]).unwrap();
            stream.write_all(&pipeline[cut..]).unwrap();
            assert_eq!(read_exactly(&mut stream, expected.len()), expected, "cut at {cut}");
        }
    }
}

#[test]
fn largest_frame_is_served_and_one_more_byte_closes_the_connection() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut keeper = server.client();
        assert_eq!(
            keeper.call(&Request::Set { key: b"kept", value: b"v", expiry_seconds: None }).unwrap(),
            Reply::Value(b"v")
        );

        // C = 65 534: PING with a 65 531-byte payload, the largest frame.
        let mut stream = server.tcp();
        let mut ping = vec![0xff, 0xfe, 0x05, 0xff, 0xfb];
        ping.extend(vec![b'p'; 65_531]);
        stream.write_all(&ping).unwrap();
        let reply = read_frame(&mut stream);
        assert_eq!(&reply[..5], [0xff, 0xfe, 0x05, 0xff, 0xfb]);
        assert_eq!(reply.len(), 2 + 65_534);

        // C = 65 535 closes the connection at once, without waiting for a body.
        stream.write_all(&[0xff, 0xff]).unwrap();
        assert_eq!(read_to_eof(&mut stream), b"", "no reply before the close");

        // The server, other clients and stored data are untouched.
        assert_eq!(keeper.call(&Request::Get { key: b"kept" }).unwrap(), Reply::Value(b"v"));
        let mut fresh = server.client();
        assert_eq!(fresh.call(&Request::Ping { payload: b"up" }).unwrap(), Reply::Typed(CommandId::Ping, b"up"));
    }
}

#[test]
fn unknown_ids_and_empty_frames_keep_pipelines_in_step() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut stream = server.tcp();
        let mut pipeline = hex("00 00 00 04 20 00 01 78 00 01 ff");
        pipeline.extend(hex("00 05 05 00 02 68 69"));
        stream.write_all(&pipeline).unwrap();
        let replies = read_exactly(&mut stream, 3 * 3 + 7);
        assert_eq!(replies, hex("00 01 00 00 01 00 00 01 00 00 05 05 00 02 68 69"));
    }
}

#[test]
fn a_partial_frame_then_close_loses_nothing_stored() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut client = server.client();
        client.call(&Request::Set { key: b"k", value: b"v", expiry_seconds: None }).unwrap();
        {
            let mut stream = server.tcp();
            // Announces 100 bytes, sends 3, hangs up.
            stream.write_all(&[0x00, 0x64, 0x01, 0x00]).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"");
        }
        assert_eq!(client.call(&Request::Get { key: b"k" }).unwrap(), Reply::Value(b"v"));
    }
}
