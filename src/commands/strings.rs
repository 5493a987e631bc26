//! SET, GET and DEL (§2.2, §2.3, §2.5).

use super::expiry::deadline_after;
use crate::protocol::int::parse_i64;
use crate::protocol::reply::{push_fail, push_ok, push_value};
use crate::store::{Millis, Store};

/// Stores the value, tagging it integer when it parses as an i64, and echoes
/// it. A present but invalid expiry fails before anything is written; a
/// plain SET clears any deadline.
pub fn set(store: &mut Store, key: &[u8], value: &[u8], expiry_seconds: Option<&[u8]>, now: Millis, out: &mut Vec<u8>) {
    let deadline = match expiry_seconds.map(|text| deadline_after(text, now)) {
        None => None,
        Some(Some(deadline)) => Some(deadline),
        Some(None) => return push_fail(out),
    };
    store.set(key, value, parse_i64(value).is_some(), deadline);
    push_value(out, value);
}

pub fn get(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>) {
    match store.get(key, now) {
        Some(entry) => push_value(out, entry.value()),
        None => push_fail(out),
    }
}

/// OK whether or not the key existed; there is no count on the wire.
pub fn del(store: &mut Store, key: &[u8], out: &mut Vec<u8>) {
    store.delete(key);
    push_ok(out);
}
