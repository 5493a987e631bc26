//! INCR, DECR, INCRBY and DECRBY (§2.4).
//!
//! Deliberate deviation (§7.2, Q6): upstream stores `"0"` under a missing key
//! before parsing the amount, so a failing INCRBY leaves the key behind. Here
//! every check happens first and a failure changes nothing.

use crate::protocol::int::{parse_i64, I64Text};
use crate::protocol::reply::{push_fail, push_value};
use crate::store::{Millis, Store};

/// INCR alone rejects the empty key (§3.7, Q5: kept because it is observable).
pub fn incr(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>) {
    if key.is_empty() {
        return push_fail(out);
    }
    apply(store, key, now, out, |current| current.checked_add(1));
}

pub fn decr(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>) {
    apply(store, key, now, out, |current| current.checked_sub(1));
}

pub fn incr_by(store: &mut Store, key: &[u8], amount: &[u8], now: Millis, out: &mut Vec<u8>) {
    match parse_i64(amount) {
        Some(amount) => apply(store, key, now, out, |current| current.checked_add(amount)),
        None => push_fail(out),
    }
}

pub fn decr_by(store: &mut Store, key: &[u8], amount: &[u8], now: Millis, out: &mut Vec<u8>) {
    match parse_i64(amount) {
        Some(amount) => apply(store, key, now, out, |current| current.checked_sub(amount)),
        None => push_fail(out),
    }
}

/// Reads the current integer (a missing or expired key counts as 0), applies
/// `step`, and stores the canonical result, keeping the deadline (Q38).
/// A raw (non-integer) value or an overflow is FAIL with nothing changed.
fn apply(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>, step: impl FnOnce(i64) -> Option<i64>) {
    let (current, deadline) = match store.get(key, now) {
        None => (0, None),
        Some(entry) if entry.is_integer() => match parse_i64(entry.value()) {
            Some(current) => (current, entry.deadline()),
            None => return push_fail(out),
        },
        Some(_) => return push_fail(out),
    };
    let Some(next) = step(current) else {
        return push_fail(out);
    };
    let text = I64Text::new(next);
    store.set(key, text.as_bytes(), true, deadline);
    push_value(out, text.as_bytes());
}
