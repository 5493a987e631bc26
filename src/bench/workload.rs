//! What the load generator sends: the workload (ping, set, get, incr, mixed),
//! how keys are chosen, and the per-connection [`RequestGen`] that writes
//! request frames into a send buffer without allocating.
//!
//! Frames are never encoded per request. Before the timed section every
//! command the workload uses is encoded once with [`Request::encode`] into a
//! *template* whose key has a fixed width; per request the template is
//! copied and, when keys vary, the key's variable suffix is patched in place
//! (16 hex digits for unique keys, 12 decimal digits for a key space). The
//! key's offset is found in the encoded template, so this module never
//! hard-codes the wire layout. Constant workloads copy a pre-built block of
//! back-to-back frames, one `memcpy` per pipelined batch.
//!
//! Key schemes:
//!
//! * fixed: `hello` for SET/GET/mixed (upstream's), `counter` for INCR;
//! * `-r` unique: upstream's 32 lowercase hex characters (§6.2), a 64-bit
//!   per-run random prefix then a 64-bit counter that starts at a random
//!   value; each connection owns a disjoint counter range, so keys are
//!   unique across threads without any shared atomic;
//! * `--keyspace N`: `key:` + 12 decimal digits (16 bytes), or `ctr:` + 12
//!   digits for INCR so counters never collide with preloaded string values;
//!   chosen uniformly or Zipfian ([`super::random`]).

use std::fmt;

use super::random::{SplitMix64, Zipf};
use crate::protocol::Request;

/// Upstream's fixed key and value (§6.2).
pub const FIXED_KEY: &[u8] = b"hello";
pub const DEFAULT_VALUE_PATTERN: &[u8] = b"world";
/// The fixed key of the INCR workload.
pub const FIXED_COUNTER_KEY: &[u8] = b"counter";

/// Key-space keys are a 4-byte prefix and this many decimal digits.
pub const KEYSPACE_DIGITS: usize = 12;
/// The largest `--keyspace` (keys are `0..N` in 12 digits).
pub const KEYSPACE_KEYS_MAX: u64 = 1_000_000_000_000;
const KEYSPACE_PREFIX: &[u8; 4] = b"key:";
const COUNTER_KEYSPACE_PREFIX: &[u8; 4] = b"ctr:";
/// Unique keys: 16 hex digits of prefix, then 16 of counter.
const UNIQUE_HEX_DIGITS: usize = 16;

/// Frames in the pre-built block of a constant workload.
const CONSTANT_BLOCK_FRAMES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Ping,
    Set,
    Get,
    Incr,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Set => "set",
            Command::Get => "get",
            Command::Incr => "incr",
        }
    }
}

/// The `-t` workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Single(Command),
    /// GET and SET drawn at random with weights `gets : sets`.
    Mixed {
        gets: u32,
        sets: u32,
    },
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Single(command) => f.write_str(command.name()),
            Kind::Mixed { gets, sets } => write!(f, "mixed({gets}:{sets})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Uniform,
    Zipf { theta: f64 },
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => f.write_str("uniform"),
            Distribution::Zipf { theta } => write!(f, "zipf:{theta}"),
        }
    }
}

/// How each request picks its key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keys {
    Fixed,
    Unique,
    Space { keys: u64, distribution: Distribution },
}

/// Everything the user chose about the requests themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub kind: Kind,
    pub keys: Keys,
    /// `-d`: SET value bytes, or PING payload bytes (default 5 and 0).
    pub data_bytes: Option<usize>,
    pub seed: u64,
}

/// One encoded request whose key suffix may be patched.
#[derive(Debug, Clone)]
struct Template {
    frame: Vec<u8>,
    /// Offset in `frame` of the variable part of the key.
    patch_at: usize,
}

/// The prepared workload, shared read-only by every worker thread.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    value: Vec<u8>,
    /// One per command used; mixed holds GET then SET.
    templates: Vec<(Command, Template)>,
    /// Back-to-back copies of the only frame, for constant workloads.
    constant_block: Option<Vec<u8>>,
    zipf: Option<Zipf>,
    unique_first: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("-d {bytes}: {source}")]
    TooLarge { bytes: usize, source: crate::protocol::request::RequestTooLarge },
}

impl Workload {
    pub fn new(spec: WorkloadSpec) -> Result<Workload, WorkloadError> {
        let value_bytes = match spec.kind {
            Kind::Single(Command::Ping) => spec.data_bytes.unwrap_or(0),
            _ => spec.data_bytes.unwrap_or(DEFAULT_VALUE_PATTERN.len()),
        };
        let value: Vec<u8> = DEFAULT_VALUE_PATTERN.iter().copied().cycle().take(value_bytes).collect();
        let commands = match spec.kind {
            Kind::Single(command) => vec![command],
            Kind::Mixed { .. } => vec![Command::Get, Command::Set],
        };
        let mut seeds = SplitMix64::new(spec.seed);
        let unique_prefix = seeds.next_u64();
        let unique_first = seeds.next_u64();
        let mut templates = Vec::new();
        for command in commands {
            let template = encode_template(command, &spec.keys, &value, unique_prefix)
                .map_err(|source| WorkloadError::TooLarge { bytes: value_bytes, source })?;
            templates.push((command, template));
        }
        let constant_block = match (spec.kind, spec.keys) {
            (Kind::Single(_), Keys::Fixed) => Some(templates[0].1.frame.repeat(CONSTANT_BLOCK_FRAMES)),
            _ => None,
        };
        let zipf = match spec.keys {
            Keys::Space { keys, distribution: Distribution::Zipf { theta } } => Some(Zipf::new(keys, theta)),
            _ => None,
        };
        Ok(Workload { spec, value, templates, constant_block, zipf, unique_first })
    }

    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The longest frame any request of this workload can be.
    pub fn frame_bytes_max(&self) -> usize {
        self.templates.iter().map(|(_, t)| t.frame.len()).max().unwrap_or(0)
    }

    /// Whether GETs need the keys written first (`get` and `mixed`).
    pub fn reads_keys(&self) -> bool {
        matches!(self.spec.kind, Kind::Single(Command::Get) | Kind::Mixed { .. })
    }

    /// The fixed key of a key-less workload.
    pub fn fixed_key(&self) -> &'static [u8] {
        match self.spec.kind {
            Kind::Single(Command::Incr) => FIXED_COUNTER_KEY,
            _ => FIXED_KEY,
        }
    }

    /// Writes key-space key `index` (for the preload step).
    pub fn keyspace_key(&self, index: u64) -> [u8; 4 + KEYSPACE_DIGITS] {
        let mut key = [0; 4 + KEYSPACE_DIGITS];
        key[..4].copy_from_slice(self.keyspace_prefix());
        write_decimal(&mut key[4..], index);
        key
    }

    fn keyspace_prefix(&self) -> &'static [u8; 4] {
        match self.spec.kind {
            Kind::Single(Command::Incr) => COUNTER_KEYSPACE_PREFIX,
            _ => KEYSPACE_PREFIX,
        }
    }

    /// A generator for one connection. `conn_index` seeds its random
    /// stream; `unique_offset` is where its slice of unique-key counters
    /// starts (the sum of the quotas of the connections before it).
    pub fn generator(&self, conn_index: u64, unique_offset: u64) -> RequestGen<'_> {
        RequestGen {
            workload: self,
            rng: SplitMix64::new(self.spec.seed ^ super::random::mix64(conn_index.wrapping_add(1))),
            next_unique: self.unique_first.wrapping_add(unique_offset),
        }
    }

    /// A short description for the report: `keys fixed "hello"`, …
    pub fn describe_keys(&self) -> String {
        match self.spec.keys {
            Keys::Fixed => format!("fixed key \"{}\"", String::from_utf8_lossy(self.fixed_key())),
            Keys::Unique => "unique 32-hex keys".to_string(),
            Keys::Space { keys, distribution } => format!("keyspace {keys} {distribution}"),
        }
    }
}

fn encode_template(
    command: Command,
    keys: &Keys,
    value: &[u8],
    unique_prefix: u64,
) -> Result<Template, crate::protocol::request::RequestTooLarge> {
    let (key, patch_from): (Vec<u8>, usize) = match keys {
        Keys::Fixed => {
            let key = if command == Command::Incr { FIXED_COUNTER_KEY } else { FIXED_KEY };
            (key.to_vec(), key.len())
        }
        Keys::Unique => {
            let mut key = vec![b'0'; 2 * UNIQUE_HEX_DIGITS];
            write_hex(&mut key[..UNIQUE_HEX_DIGITS], unique_prefix);
            (key, UNIQUE_HEX_DIGITS)
        }
        Keys::Space { .. } => {
            let prefix = if command == Command::Incr { COUNTER_KEYSPACE_PREFIX } else { KEYSPACE_PREFIX };
            let mut key = prefix.to_vec();
            key.extend_from_slice(&[b'0'; KEYSPACE_DIGITS]);
            (key, prefix.len())
        }
    };
    let request = match command {
        Command::Ping => Request::Ping { payload: value },
        Command::Set => Request::Set { key: &key, value, expiry_seconds: None },
        Command::Get => Request::Get { key: &key },
        Command::Incr => Request::Incr { key: &key },
    };
    let mut frame = Vec::new();
    request.encode(&mut frame)?;
    // The key is the first argument, so its first occurrence is the key
    // even when the value happens to contain the same bytes.
    let key_at = if command == Command::Ping {
        0
    } else {
        frame.windows(key.len()).position(|window| window == key.as_slice()).unwrap_or(0)
    };
    Ok(Template { frame, patch_at: key_at + patch_from })
}

/// Writes requests of one connection; see the module doc.
#[derive(Debug, Clone)]
pub struct RequestGen<'w> {
    workload: &'w Workload,
    rng: SplitMix64,
    next_unique: u64,
}

impl RequestGen<'_> {
    /// Appends `count` request frames to `out`.
    #[inline]
    pub fn push_batch(&mut self, out: &mut Vec<u8>, count: usize) {
        if let Some(block) = &self.workload.constant_block {
            let frame_bytes = block.len() / CONSTANT_BLOCK_FRAMES;
            let mut left = count;
            while left > 0 {
                let frames = left.min(CONSTANT_BLOCK_FRAMES);
                out.extend_from_slice(&block[..frames * frame_bytes]);
                left -= frames;
            }
            return;
        }
        for _ in 0..count {
            self.push(out);
        }
    }

    /// Appends one request frame to `out`.
    #[inline]
    pub fn push(&mut self, out: &mut Vec<u8>) {
        let workload = self.workload;
        let template = match workload.spec.kind {
            Kind::Mixed { gets, sets } => {
                let pick_get = self.rng.below(u64::from(gets) + u64::from(sets)) < u64::from(gets);
                &workload.templates[usize::from(!pick_get)].1
            }
            Kind::Single(_) => &workload.templates[0].1,
        };
        let start = out.len();
        out.extend_from_slice(&template.frame);
        let at = start + template.patch_at;
        match workload.spec.keys {
            Keys::Fixed => {}
            Keys::Unique => {
                write_hex(&mut out[at..at + UNIQUE_HEX_DIGITS], self.next_unique);
                self.next_unique = self.next_unique.wrapping_add(1);
            }
            Keys::Space { keys, .. } => {
                let index = match &workload.zipf {
                    Some(zipf) => zipf.sample(&mut self.rng),
                    None => self.rng.below(keys),
                };
                write_decimal(&mut out[at..at + KEYSPACE_DIGITS], index);
            }
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Big-endian lowercase hex of `value` into exactly 16 bytes.
#[inline]
fn write_hex(out: &mut [u8], value: u64) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = HEX_DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// `"00"` to `"99"`: two digits per division when writing decimals.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Zero-padded decimal of `value` filling `out` (the caller bounds `value`).
/// Two digits a step: a key-space GET at depth 128 is client-bound, and
/// this halves the divisions of its 12-digit key.
#[inline]
fn write_decimal(out: &mut [u8], mut value: u64) {
    let mut end = out.len();
    while end >= 2 {
        let pair = (value % 100) as usize * 2;
        out[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        value /= 100;
        end -= 2;
    }
    if end == 1 {
        out[0] = b'0' + (value % 10) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{split_frame, FrameSplit};

    fn spec(kind: Kind, keys: Keys) -> WorkloadSpec {
        WorkloadSpec { kind, keys, data_bytes: None, seed: 42 }
    }

    fn frames(bytes: &[u8]) -> Vec<Request<'_>> {
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let FrameSplit::Frame { core, frame_bytes } = split_frame(rest) else { panic!("bad frame") };
            out.push(Request::parse(core).unwrap());
            rest = &rest[frame_bytes..];
        }
        out
    }

    #[test]
    fn decimals_are_zero_padded_to_any_width() {
        for (width, value, text) in [
            (12, 0, "000000000000"),
            (12, 1_234, "000000001234"),
            (12, 999_999_999_999, "999999999999"),
            (5, 12_345, "12345"),
            (3, 7, "007"),
            (1, 9, "9"),
        ] {
            let mut out = vec![b'x'; width];
            write_decimal(&mut out, value);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn upstream_ping_and_set_frames_byte_for_byte() {
        let ping = Workload::new(spec(Kind::Single(Command::Ping), Keys::Fixed)).unwrap();
        let mut out = Vec::new();
        ping.generator(0, 0).push_batch(&mut out, 2);
        assert_eq!(out, [0, 3, 5, 0, 0, 0, 3, 5, 0, 0]);

        let set = Workload::new(spec(Kind::Single(Command::Set), Keys::Fixed)).unwrap();
        out.clear();
        set.generator(0, 0).push_batch(&mut out, 300);
        let expected =
            [0x00, 0x0f, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0x00, 0x05, b'w', b'o', b'r', b'l', b'd'];
        assert_eq!(out.len(), 300 * expected.len());
        assert!(out.chunks(expected.len()).all(|frame| frame == expected));
    }

    #[test]
    fn unique_keys_are_32_hex_and_follow_the_connection_range() {
        let workload = Workload::new(spec(Kind::Single(Command::Set), Keys::Unique)).unwrap();
        let mut out = Vec::new();
        let mut first = workload.generator(0, 0);
        first.push_batch(&mut out, 2);
        let mut second = workload.generator(1, 2);
        second.push_batch(&mut out, 1);
        let keys: Vec<Vec<u8>> = frames(&out)
            .into_iter()
            .map(|request| match request {
                Request::Set { key, value, .. } => {
                    assert_eq!(value, b"world");
                    key.to_vec()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(keys.iter().all(|k| k.len() == 32 && k.iter().all(|b| HEX_DIGITS.contains(b))));
        assert!(keys.iter().all(|k| k[..16] == keys[0][..16]), "one prefix per run");
        let counter = |k: &[u8]| u64::from_str_radix(std::str::from_utf8(&k[16..]).unwrap(), 16).unwrap();
        assert_eq!(counter(&keys[1]), counter(&keys[0]).wrapping_add(1));
        assert_eq!(counter(&keys[2]), counter(&keys[0]).wrapping_add(2));
    }

    #[test]
    fn keyspace_keys_stay_in_range_and_match_the_preload_names() {
        let keys = Keys::Space { keys: 50, distribution: Distribution::Zipf { theta: 0.9 } };
        let workload = Workload::new(spec(Kind::Mixed { gets: 3, sets: 1 }, keys)).unwrap();
        let mut out = Vec::new();
        workload.generator(0, 0).push_batch(&mut out, 2000);
        let names: std::collections::HashSet<Vec<u8>> = (0..50).map(|i| workload.keyspace_key(i).to_vec()).collect();
        let (mut gets, mut sets) = (0, 0);
        for request in frames(&out) {
            match request {
                Request::Get { key } => {
                    gets += 1;
                    assert!(names.contains(key), "{key:?}");
                }
                Request::Set { key, .. } => {
                    sets += 1;
                    assert!(names.contains(key), "{key:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(gets > 2 * sets && sets > 0, "{gets}:{sets}");
        assert_eq!(&workload.keyspace_key(1234), b"key:000000001234");
    }

    #[test]
    fn incr_keys_never_collide_with_string_keys_and_data_size_applies() {
        let keys = Keys::Space { keys: 10, distribution: Distribution::Uniform };
        let incr = Workload::new(spec(Kind::Single(Command::Incr), keys)).unwrap();
        assert!(incr.keyspace_key(3).starts_with(b"ctr:"));
        let mut sized = spec(Kind::Single(Command::Set), Keys::Fixed);
        sized.data_bytes = Some(12);
        assert_eq!(Workload::new(sized).unwrap().value(), b"worldworldwo");
        let mut huge = spec(Kind::Single(Command::Set), Keys::Fixed);
        huge.data_bytes = Some(70_000);
        assert!(Workload::new(huge).is_err());
    }
}
