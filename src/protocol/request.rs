//! Request cores: decoding with the validation of PROTOCOL.md §3.3, and the
//! encoder that clients use.
//!
//! A request core is `[id: u8]` followed by length-prefixed arguments
//! (`[len: u16be][bytes]`). Decoding borrows every argument from the core, so
//! the server never copies a key or value before the store needs it.

use super::frame::{push_header, CORE_BYTES_MAX};

/// The thirteen command ids of §1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CommandId {
    Set = 0x01,
    Get = 0x02,
    Incr = 0x03,
    IncrBy = 0x04,
    Ping = 0x05,
    Decr = 0x06,
    Info = 0x07,
    DecrBy = 0x08,
    Del = 0x09,
    Expire = 0x0A,
    Ttl = 0x0B,
    Persist = 0x0C,
    Keys = 0x0D,
}

impl CommandId {
    pub const ALL: [CommandId; 13] = [
        CommandId::Set,
        CommandId::Get,
        CommandId::Incr,
        CommandId::IncrBy,
        CommandId::Ping,
        CommandId::Decr,
        CommandId::Info,
        CommandId::DecrBy,
        CommandId::Del,
        CommandId::Expire,
        CommandId::Ttl,
        CommandId::Persist,
        CommandId::Keys,
    ];

    pub fn from_byte(byte: u8) -> Option<CommandId> {
        CommandId::ALL.get(usize::from(byte).wrapping_sub(1)).copied()
    }

    /// The upper-case name used by the CLI and in diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            CommandId::Set => "SET",
            CommandId::Get => "GET",
            CommandId::Incr => "INCR",
            CommandId::IncrBy => "INCRBY",
            CommandId::Ping => "PING",
            CommandId::Decr => "DECR",
            CommandId::Info => "INFO",
            CommandId::DecrBy => "DECRBY",
            CommandId::Del => "DEL",
            CommandId::Expire => "EXPIRE",
            CommandId::Ttl => "TTL",
            CommandId::Persist => "PERSIST",
            CommandId::Keys => "KEYS",
        }
    }
}

/// A decoded request; every slice borrows from the frame core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `expiry_seconds` is the raw seconds text; it is validated by the
    /// command, because a bad expiry is a FAIL, not a malformed frame.
    Set {
        key: &'a [u8],
        value: &'a [u8],
        expiry_seconds: Option<&'a [u8]>,
    },
    Get {
        key: &'a [u8],
    },
    Incr {
        key: &'a [u8],
    },
    IncrBy {
        key: &'a [u8],
        amount: &'a [u8],
    },
    Ping {
        payload: &'a [u8],
    },
    Decr {
        key: &'a [u8],
    },
    Info,
    DecrBy {
        key: &'a [u8],
        amount: &'a [u8],
    },
    Del {
        key: &'a [u8],
    },
    Expire {
        key: &'a [u8],
        seconds: &'a [u8],
    },
    Ttl {
        key: &'a [u8],
    },
    Persist {
        key: &'a [u8],
    },
    Keys,
}

/// Why a frame core is not a request. Every case is answered with FAIL
/// (§3.3, and §7.2's decision on Q1 for the first two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A zero-length core (`00 00`).
    Empty,
    /// An id outside `0x01..=0x0D`.
    UnknownCommand(u8),
    /// A known command whose arguments do not fit the frame.
    Malformed(CommandId),
}

/// Reads one `[len: u16be][bytes]` argument at `core[at..]`.
#[inline]
fn arg(core: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len_bytes = core.get(at..at + 2)?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let start = at + 2;
    let bytes = core.get(start..start + len)?;
    Some((bytes, start + len))
}

/// Reads the first argument, right after the id byte.
#[inline]
fn first_arg(core: &[u8]) -> Option<(&[u8], usize)> {
    arg(core, 1)
}

/// Reads two arguments after the id byte.
#[inline]
fn two_args(core: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let (first, next) = first_arg(core)?;
    let (second, end) = arg(core, next)?;
    Some((first, second, end))
}

impl<'a> Request<'a> {
    /// The key the request reads or writes, if it names one.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        match *self {
            Request::Set { key, .. }
            | Request::Get { key }
            | Request::Incr { key }
            | Request::IncrBy { key, .. }
            | Request::Decr { key }
            | Request::DecrBy { key, .. }
            | Request::Del { key }
            | Request::Expire { key, .. }
            | Request::Ttl { key }
            | Request::Persist { key } => Some(key),
            Request::Ping { .. } | Request::Info | Request::Keys => None,
        }
    }

    /// Decodes one frame core. Trailing bytes after the last argument are
    /// ignored, except for KEYS, which must be exactly its id byte.
    pub fn parse(core: &'a [u8]) -> Result<Request<'a>, Invalid> {
        let Some((&id_byte, _)) = core.split_first() else {
            return Err(Invalid::Empty);
        };
        let id = CommandId::from_byte(id_byte).ok_or(Invalid::UnknownCommand(id_byte))?;
        let key_only = || first_arg(core).map(|(key, _)| key);
        let request = match id {
            CommandId::Set => Self::parse_set(core),
            CommandId::Get => key_only().map(|key| Request::Get { key }),
            CommandId::Incr => key_only().map(|key| Request::Incr { key }),
            CommandId::Decr => key_only().map(|key| Request::Decr { key }),
            CommandId::Del => key_only().map(|key| Request::Del { key }),
            CommandId::Ttl => key_only().map(|key| Request::Ttl { key }),
            CommandId::Persist => key_only().map(|key| Request::Persist { key }),
            CommandId::Ping => key_only().map(|payload| Request::Ping { payload }),
            CommandId::IncrBy => two_args(core).map(|(key, amount, _)| Request::IncrBy { key, amount }),
            CommandId::DecrBy => two_args(core).map(|(key, amount, _)| Request::DecrBy { key, amount }),
            CommandId::Expire => two_args(core).map(|(key, seconds, _)| Request::Expire { key, seconds }),
            CommandId::Info => Some(Request::Info),
            CommandId::Keys => (core.len() == 1).then_some(Request::Keys),
        };
        request.ok_or(Invalid::Malformed(id))
    }

    /// SET carries an expiry when the core is longer than its key and value;
    /// there is no keyword on the wire (§1.4).
    fn parse_set(core: &'a [u8]) -> Option<Request<'a>> {
        let (key, value, end) = two_args(core)?;
        let expiry_seconds = if end < core.len() { Some(arg(core, end)?.0) } else { None };
        Some(Request::Set { key, value, expiry_seconds })
    }

    pub fn command(&self) -> CommandId {
        match self {
            Request::Set { .. } => CommandId::Set,
            Request::Get { .. } => CommandId::Get,
            Request::Incr { .. } => CommandId::Incr,
            Request::IncrBy { .. } => CommandId::IncrBy,
            Request::Ping { .. } => CommandId::Ping,
            Request::Decr { .. } => CommandId::Decr,
            Request::Info => CommandId::Info,
            Request::DecrBy { .. } => CommandId::DecrBy,
            Request::Del { .. } => CommandId::Del,
            Request::Expire { .. } => CommandId::Expire,
            Request::Ttl { .. } => CommandId::Ttl,
            Request::Persist { .. } => CommandId::Persist,
            Request::Keys => CommandId::Keys,
        }
    }

    /// The arguments in wire order.
    fn args(&self) -> ([&'a [u8]; 3], usize) {
        let none: &[u8] = &[];
        match *self {
            Request::Set { key, value, expiry_seconds: Some(seconds) } => ([key, value, seconds], 3),
            Request::Set { key, value, expiry_seconds: None } => ([key, value, none], 2),
            Request::IncrBy { key, amount } | Request::DecrBy { key, amount } => ([key, amount, none], 2),
            Request::Expire { key, seconds } => ([key, seconds, none], 2),
            Request::Get { key }
            | Request::Incr { key }
            | Request::Decr { key }
            | Request::Del { key }
            | Request::Ttl { key }
            | Request::Persist { key } => ([key, none, none], 1),
            Request::Ping { payload } => ([payload, none, none], 1),
            Request::Info | Request::Keys => ([none; 3], 0),
        }
    }

    /// Appends this request as one frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), RequestTooLarge> {
        let (args, count) = self.args();
        let args = &args[..count];
        let core_bytes = 1 + args.iter().map(|a| 2 + a.len()).sum::<usize>();
        if core_bytes > CORE_BYTES_MAX || args.iter().any(|a| a.len() > usize::from(u16::MAX)) {
            return Err(RequestTooLarge { core_bytes });
        }
        out.reserve(2 + core_bytes);
        push_header(out, core_bytes);
        out.push(self.command() as u8);
        for a in args {
            out.extend_from_slice(&(a.len() as u16).to_be_bytes());
            out.extend_from_slice(a);
        }
        Ok(())
    }
}

/// A request whose core would exceed [`CORE_BYTES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request too large: core of {core_bytes} bytes exceeds the {CORE_BYTES_MAX}-byte frame limit")]
pub struct RequestTooLarge {
    pub core_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn core_of(frame: &[u8]) -> &[u8] {
        &frame[2..]
    }

    #[test]
    fn set_with_and_without_expiry() {
        let plain = [0x00, 0x0b, 0x01, 0, 3, b'f', b'o', b'o', 0, 3, b'b', b'a', b'r'];
        assert_eq!(
            Request::parse(core_of(&plain)),
            Ok(Request::Set { key: b"foo", value: b"bar", expiry_seconds: None })
        );
        let ex = [0x00, 0x0f, 0x01, 0, 3, b'f', b'o', b'o', 0, 3, b'b', b'a', b'r', 0, 2, b'1', b'0'];
        assert_eq!(
            Request::parse(core_of(&ex)),
            Ok(Request::Set { key: b"foo", value: b"bar", expiry_seconds: Some(b"10") })
        );
    }

    #[test]
    fn set_validation_rows_of_section_3_3() {
        let malformed = Err(Invalid::Malformed(CommandId::Set));
        assert_eq!(Request::parse(&[1]), malformed, "C < 3");
        assert_eq!(Request::parse(&[1, 0, 5, b'a']), malformed, "3 + K > C");
        assert_eq!(Request::parse(&[1, 0, 1, b'a']), malformed, "5 + K > C");
        assert_eq!(Request::parse(&[1, 0, 1, b'a', 0, 3, b'x']), malformed, "5 + K + V > C");
        assert_eq!(Request::parse(&[1, 0, 1, b'a', 0, 1, b'x', 0]), malformed, "no room for E");
        assert_eq!(Request::parse(&[1, 0, 1, b'a', 0, 1, b'x', 0, 2, b'1']), malformed, "7 + K + V + E > C");
        assert_eq!(
            Request::parse(&[1, 0, 1, b'a', 0, 1, b'x', 0, 1, b'1', 9, 9]),
            Ok(Request::Set { key: b"a", value: b"x", expiry_seconds: Some(b"1") }),
            "bytes after the expiry are ignored"
        );
    }

    #[test]
    fn key_commands_fail_when_the_key_overruns_the_frame() {
        for id in [CommandId::Get, CommandId::Incr, CommandId::Decr, CommandId::Del, CommandId::Ttl, CommandId::Persist]
        {
            assert_eq!(Request::parse(&[id as u8, 0]), Err(Invalid::Malformed(id)));
            assert_eq!(Request::parse(&[id as u8, 0, 2, b'k']), Err(Invalid::Malformed(id)));
            assert!(Request::parse(&[id as u8, 0, 1, b'k', 7, 7]).is_ok(), "trailing bytes ignored");
        }
    }

    #[test]
    fn ping_info_keys_and_unknown() {
        assert_eq!(Request::parse(&[5]), Err(Invalid::Malformed(CommandId::Ping)));
        assert_eq!(Request::parse(&[5, 0, 0]), Ok(Request::Ping { payload: b"" }));
        assert_eq!(Request::parse(&[5, 0, 1, b'x', b'y']), Ok(Request::Ping { payload: b"x" }));
        assert_eq!(Request::parse(&[7, 1, 2, 3]), Ok(Request::Info));
        assert_eq!(Request::parse(&[0x0d]), Ok(Request::Keys));
        assert_eq!(Request::parse(&[0x0d, 0]), Err(Invalid::Malformed(CommandId::Keys)));
        assert_eq!(Request::parse(&[]), Err(Invalid::Empty));
        assert_eq!(Request::parse(&[0]), Err(Invalid::UnknownCommand(0)));
        assert_eq!(Request::parse(&[0x0e]), Err(Invalid::UnknownCommand(0x0e)));
        assert_eq!(Request::parse(&[0x20, 0, 1, b'x']), Err(Invalid::UnknownCommand(0x20)));
    }

    #[test]
    fn encodes_the_worked_examples() {
        let mut out = Vec::new();
        Request::Set { key: b"foo", value: b"bar", expiry_seconds: Some(b"10") }.encode(&mut out).unwrap();
        assert_eq!(out, [0x00, 0x0f, 0x01, 0, 3, b'f', b'o', b'o', 0, 3, b'b', b'a', b'r', 0, 2, b'1', b'0']);
        out.clear();
        Request::Keys.encode(&mut out).unwrap();
        assert_eq!(out, [0, 1, 0x0d]);
        out.clear();
        Request::DecrBy { key: b"n", amount: b"3" }.encode(&mut out).unwrap();
        assert_eq!(out, [0x00, 0x07, 0x08, 0x00, 0x01, 0x6e, 0x00, 0x01, 0x33]);
    }

    #[test]
    fn refuses_to_encode_an_oversized_frame() {
        let payload = vec![0u8; CORE_BYTES_MAX - 2];
        let mut out = Vec::new();
        assert!(Request::Ping { payload: &payload }.encode(&mut out).is_err());
        assert!(Request::Ping { payload: &payload[1..] }.encode(&mut out).is_ok());
        assert_eq!(out.len(), 2 + CORE_BYTES_MAX);
    }

    fn any_request() -> impl Strategy<Value = (u8, Vec<Vec<u8>>)> {
        (1u8..=13, prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..=3))
    }

    proptest! {
        #[test]
        fn parse_never_panics(core in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::parse(&core);
        }

        #[test]
        fn encode_then_parse_round_trips((id, args) in any_request()) {
            let borrowed: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let a = |i: usize| borrowed.get(i).copied().unwrap_or(b"");
            let request = match CommandId::from_byte(id).unwrap() {
                CommandId::Set => Request::Set { key: a(0), value: a(1), expiry_seconds: borrowed.get(2).copied() },
                CommandId::Get => Request::Get { key: a(0) },
                CommandId::Incr => Request::Incr { key: a(0) },
                CommandId::IncrBy => Request::IncrBy { key: a(0), amount: a(1) },
                CommandId::Ping => Request::Ping { payload: a(0) },
                CommandId::Decr => Request::Decr { key: a(0) },
                CommandId::Info => Request::Info,
                CommandId::DecrBy => Request::DecrBy { key: a(0), amount: a(1) },
                CommandId::Del => Request::Del { key: a(0) },
                CommandId::Expire => Request::Expire { key: a(0), seconds: a(1) },
                CommandId::Ttl => Request::Ttl { key: a(0) },
                CommandId::Persist => Request::Persist { key: a(0) },
                CommandId::Keys => Request::Keys,
            };
            let mut frame = Vec::new();
            request.encode(&mut frame).unwrap();
            prop_assert_eq!(Request::parse(&frame[2..]), Ok(request));
        }
    }
}
