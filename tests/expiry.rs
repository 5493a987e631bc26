//! Expiry over the wire: lazy on access, and the background cycle reclaims
//! keys nobody touches within seconds (§7.2 Q37).

mod common;

use common::*;
use fkvs::client::Client;
use fkvs::protocol::{CommandId, Reply, Request};

fn keys_stored(client: &mut Client) -> u64 {
    info_field(&info(client), "keys")
}

#[test]
fn untouched_expired_keys_are_reclaimed_within_seconds() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut client = server.client();
        client.call(&Request::Set { key: b"permanent", value: b"v", expiry_seconds: None }).unwrap();
        for i in 0..20_000u32 {
            let key = i.to_be_bytes();
            client.queue(&Request::Set { key: &key, value: b"short-lived", expiry_seconds: Some(b"1") }).unwrap();
        }
        client.flush().unwrap();
        for _ in 0..20_000 {
            client.recv().unwrap();
        }
        assert_eq!(keys_stored(&mut client), 20_001);
        // Only INFO is sent from now on: nothing touches the keys.
        wait_until("expired keys are reclaimed in the background", || keys_stored(&mut client) == 1);
        assert_eq!(client.call(&Request::Get { key: b"permanent" }).unwrap(), Reply::Value(b"v"));
    }
}

#[test]
fn expired_keys_are_invisible_at_once() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut client = server.client();
        client.call(&Request::Set { key: b"k", value: b"v", expiry_seconds: Some(b"0") }).unwrap();
        assert_eq!(client.call(&Request::Get { key: b"k" }).unwrap(), Reply::Fail);
        assert_eq!(client.call(&Request::Ttl { key: b"k" }).unwrap(), Reply::Value(b"-2"));
        assert_eq!(client.call(&Request::Keys).unwrap(), Reply::Typed(CommandId::Keys, b""));
        assert_eq!(client.call(&Request::Incr { key: b"k" }).unwrap(), Reply::Value(b"1"));
    }
}
