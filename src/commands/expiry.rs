//! EXPIRE, TTL and PERSIST (§2.6–§2.8), and the deadline arithmetic SET uses.
//!
//! Deliberate deviation (§7.2, Q7): an expired key that has not been
//! reclaimed yet counts as missing here too, so EXPIRE cannot revive it and
//! PERSIST cannot make it permanent.

use crate::protocol::int::{parse_seconds, I64Text};
use crate::protocol::reply::{push_fail, push_ok, push_value};
use crate::store::{Millis, Store};

/// The deadline `seconds` from `now`, or `None` if the text is not valid
/// seconds or the deadline would overflow i64 milliseconds (§2.1).
pub fn deadline_after(seconds_text: &[u8], now: Millis) -> Option<Millis> {
    let seconds = parse_seconds(seconds_text)?;
    let now = i64::try_from(now).ok()?;
    if seconds > (i64::MAX - now) / 1000 {
        return None;
    }
    Some((now + seconds * 1000) as Millis)
}

pub fn expire(store: &mut Store, key: &[u8], seconds: &[u8], now: Millis, out: &mut Vec<u8>) {
    match deadline_after(seconds, now) {
        Some(deadline) if store.set_deadline(key, Some(deadline), now) => push_ok(out),
        _ => push_fail(out),
    }
}

/// `-2` missing, `-1` no deadline, else whole seconds left, rounded down (Q8).
pub fn ttl(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>) {
    let seconds = match store.get(key, now) {
        None => -2,
        Some(entry) => match entry.deadline() {
            None => -1,
            Some(deadline) => (deadline.saturating_sub(now) / 1000) as i64,
        },
    };
    push_value(out, I64Text::new(seconds).as_bytes());
}

/// Always OK, whether or not there was anything to persist.
pub fn persist(store: &mut Store, key: &[u8], now: Millis, out: &mut Vec<u8>) {
    store.set_deadline(key, None, now);
    push_ok(out);
}
