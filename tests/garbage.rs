//! Random bytes thrown at a live server: it never exits, never answers with
//! anything but well-formed frames, and keeps every stored key.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::*;
use fkvs::protocol::{split_reply_frame, FrameSplit, Reply, Request};
use proptest::prelude::*;

/// Random bytes, biased towards plausible frames so the parser's deeper
/// branches are reached too.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let plausible = (0u8..=14, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(id, body)| {
        let core_bytes = (1 + body.len()) as u16;
        let mut frame = core_bytes.to_be_bytes().to_vec();
        frame.push(id);
        frame.extend(body);
        frame
    });
    let raw = prop::collection::vec(any::<u8>(), 0..200);
    prop::collection::vec(prop_oneof![plausible, raw], 1..8).prop_map(|parts| parts.concat())
}

#[test]
fn random_bytes_never_hurt_the_server() {
    for backend in BACKENDS {
        let mut server = Server::start(backend);
        let mut keeper = server.client();
        let sentinel = Request::Set { key: b"sentinel", value: b"kept", expiry_seconds: None };
        keeper.call(&sentinel).unwrap();
        let config = ProptestConfig { cases: 150, failure_persistence: None, ..ProptestConfig::default() };
        proptest!(config, |(bytes in garbage())| {
            let mut stream = server.tcp();
            stream.write_all(&bytes).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            let mut replies = Vec::new();
            // The server answers what it can, then closes (half-close, or an
            // oversized header). A reset is fine too; a hang is not.
            let _ = stream.read_to_end(&mut replies);
            let mut rest = replies.as_slice();
            while let FrameSplit::Frame { core, frame_bytes } = split_reply_frame(rest) {
                prop_assert!(Reply::decode(core).is_ok(), "malformed reply {:02x?}", core);
                rest = &rest[frame_bytes..];
            }
            prop_assert!(rest.is_empty(), "trailing partial reply {:02x?}", rest);
        });
        assert!(server.is_running());
        assert_eq!(keeper.call(&Request::Get { key: b"sentinel" }).unwrap(), Reply::Value(b"kept"));
        // Every case really reached the server on its own connection.
        let disconnected = info_field(&info(&mut keeper), "disconnected clients");
        assert!(disconnected >= 150, "only {disconnected} connections were served");
    }
}
