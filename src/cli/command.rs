//! From tokens to a [`Request`], or to the client-side error upstream prints
//! instead of sending anything (PROTOCOL.md §5.4, with the Q20 fix).
//!
//! Upstream offers the raw line to every command's prefix test, so
//! `set a 1` ran *and* printed `Unknown command `, `PINGX` ran PING and
//! `  GET k` ran nothing. Here the verb is the first token, matched
//! case-insensitively against the thirteen command names; exactly one thing
//! happens per line: a request, a usage error, or `Unknown command `.
//!
//! Two choices the contract leaves open:
//! * `INFO` ignores extra tokens (`INFO server` sends INFO), as upstream ran
//!   INFO for any line starting with `INFO` and the server ignores anything
//!   after the INFO id byte.
//! * `KEYS` takes no arguments: `KEYS *` is a usage error
//!   (`Usage: KEYS`), where upstream printed `Unknown command `.

use std::io::{self, Write};

use crate::protocol::request::RequestTooLarge;
use crate::protocol::{CommandId, Request};

/// The payload a bare `PING` sends, so the server echoes `PONG` back.
pub const BARE_PING_PAYLOAD: &[u8] = b"PONG";

/// Why a line produced no request. Nothing is sent for any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// No tokens at all.
    Empty,
    /// The first token names no command.
    Unknown,
    /// A known command with the wrong number of tokens.
    Usage(CommandId),
    /// The arguments do not fit one frame (only reachable from command-line
    /// words; typed tokens are at most 8 × 511 bytes).
    TooLarge(RequestTooLarge),
}

impl LineError {
    /// Writes what upstream prints on stdout for this error. `Empty` prints
    /// nothing; `TooLarge` has no upstream counterpart.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            LineError::Empty => Ok(()),
            LineError::Unknown => out.write_all(b"Unknown command \n"),
            LineError::Usage(CommandId::Set) => out.write_all(
                b"(error) ERR syntax error in 'set' command\n(info) Usage: SET <key> <value> [EX seconds]\n",
            ),
            LineError::Usage(id) => {
                let name = id.name();
                writeln!(out, "(error) ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase())?;
                writeln!(out, "(info) Usage: {}", usage_arguments(*id))
            }
            LineError::TooLarge(err) => writeln!(out, "(error) {err}"),
        }
    }
}

/// The usage line after `(info) Usage: `.
fn usage_arguments(id: CommandId) -> &'static str {
    match id {
        CommandId::Set => "SET <key> <value> [EX seconds]",
        CommandId::Get => "GET <key>",
        CommandId::Incr => "INCR <key>",
        CommandId::Decr => "DECR <key>",
        CommandId::Del => "DEL <key>",
        CommandId::Ttl => "TTL <key>",
        CommandId::Persist => "PERSIST <key>",
        CommandId::IncrBy => "INCRBY <key> <value>",
        CommandId::DecrBy => "DECRBY <key> <value>",
        CommandId::Expire => "EXPIRE <key> <seconds>",
        CommandId::Ping => "PING or PING <value>",
        CommandId::Info => "INFO",
        CommandId::Keys => "KEYS",
    }
}

/// The command whose name is `verb`, ignoring ASCII case.
pub fn verb(verb: &[u8]) -> Option<CommandId> {
    CommandId::ALL.into_iter().find(|id| id.name().as_bytes().eq_ignore_ascii_case(verb))
}

/// Turns a tokenized line (verb first) into the request to send.
pub fn recognize<'a>(tokens: &[&'a [u8]]) -> Result<Request<'a>, LineError> {
    let Some((&first, args)) = tokens.split_first() else {
        return Err(LineError::Empty);
    };
    let id = verb(first).ok_or(LineError::Unknown)?;
    let usage = Err(LineError::Usage(id));
    let request = match (id, args) {
        (CommandId::Set, &[key, value]) => Request::Set { key, value, expiry_seconds: None },
        (CommandId::Set, &[key, value, ex, seconds]) if ex.eq_ignore_ascii_case(b"EX") => {
            Request::Set { key, value, expiry_seconds: Some(seconds) }
        }
        (CommandId::Get, &[key]) => Request::Get { key },
        (CommandId::Incr, &[key]) => Request::Incr { key },
        (CommandId::Decr, &[key]) => Request::Decr { key },
        (CommandId::Del, &[key]) => Request::Del { key },
        (CommandId::Ttl, &[key]) => Request::Ttl { key },
        (CommandId::Persist, &[key]) => Request::Persist { key },
        (CommandId::IncrBy, &[key, amount]) => Request::IncrBy { key, amount },
        (CommandId::DecrBy, &[key, amount]) => Request::DecrBy { key, amount },
        (CommandId::Expire, &[key, seconds]) => Request::Expire { key, seconds },
        (CommandId::Ping, &[]) => Request::Ping { payload: BARE_PING_PAYLOAD },
        (CommandId::Ping, &[payload]) => Request::Ping { payload },
        (CommandId::Info, _) => Request::Info,
        (CommandId::Keys, &[]) => Request::Keys,
        _ => return usage,
    };
    request.encode(&mut Vec::new()).map_err(LineError::TooLarge)?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tokenize::tokenize;

    fn line(text: &str) -> Result<Request<'_>, LineError> {
        recognize(&tokenize(text.as_bytes()))
    }

    fn printed(err: LineError) -> String {
        let mut out = Vec::new();
        err.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_command_in_any_case() {
        assert_eq!(line("SET k v"), Ok(Request::Set { key: b"k", value: b"v", expiry_seconds: None }));
        assert_eq!(line("set k v ex 10"), Ok(Request::Set { key: b"k", value: b"v", expiry_seconds: Some(b"10") }));
        assert_eq!(line("Get k"), Ok(Request::Get { key: b"k" }));
        assert_eq!(line("incr k"), Ok(Request::Incr { key: b"k" }));
        assert_eq!(line("DECR k"), Ok(Request::Decr { key: b"k" }));
        assert_eq!(line("incrBY k -5"), Ok(Request::IncrBy { key: b"k", amount: b"-5" }));
        assert_eq!(line("decrby k 3"), Ok(Request::DecrBy { key: b"k", amount: b"3" }));
        assert_eq!(line("del k"), Ok(Request::Del { key: b"k" }));
        assert_eq!(line("expire k 9"), Ok(Request::Expire { key: b"k", seconds: b"9" }));
        assert_eq!(line("ttl k"), Ok(Request::Ttl { key: b"k" }));
        assert_eq!(line("persist k"), Ok(Request::Persist { key: b"k" }));
        assert_eq!(line("info"), Ok(Request::Info));
        assert_eq!(line("keys"), Ok(Request::Keys));
        assert_eq!(line("  KEYS  "), Ok(Request::Keys));
    }

    #[test]
    fn bare_ping_sends_pong_and_ping_x_sends_x() {
        assert_eq!(line("PING"), Ok(Request::Ping { payload: b"PONG" }));
        assert_eq!(line("ping"), Ok(Request::Ping { payload: b"PONG" }), "Q20: PING is case-insensitive too");
        assert_eq!(line("PING hello"), Ok(Request::Ping { payload: b"hello" }));
        assert_eq!(line("PING ''"), Ok(Request::Ping { payload: b"" }));
    }

    #[test]
    fn quoted_values_and_empty_keys_are_sent() {
        assert_eq!(line("SET '' \"a b\""), Ok(Request::Set { key: b"", value: b"a b", expiry_seconds: None }));
    }

    #[test]
    fn only_the_first_token_selects_the_command() {
        assert_eq!(line("PINGX"), Err(LineError::Unknown), "upstream ran PING for any PING prefix");
        assert_eq!(line("information"), Err(LineError::Unknown), "upstream ran INFO for any INFO prefix");
        assert_eq!(line("SETX k v"), Err(LineError::Unknown));
        assert_eq!(line("  GET k"), Ok(Request::Get { key: b"k" }), "leading whitespace is fine");
        assert_eq!(line("exit"), Err(LineError::Unknown));
        assert_eq!(line(""), Err(LineError::Empty));
        assert_eq!(line(" \t "), Err(LineError::Empty));
    }

    #[test]
    fn info_ignores_extra_tokens_keys_refuses_them() {
        assert_eq!(line("INFO server"), Ok(Request::Info));
        assert_eq!(line("KEYS *"), Err(LineError::Usage(CommandId::Keys)));
    }

    #[test]
    fn wrong_token_counts_are_usage_errors() {
        for (text, id) in [
            ("SET k", CommandId::Set),
            ("SET k v 10", CommandId::Set),
            ("SET k v PX 10", CommandId::Set),
            ("SET k v EX 10 extra", CommandId::Set),
            ("GET", CommandId::Get),
            ("GET a b", CommandId::Get),
            ("INCR", CommandId::Incr),
            ("DECR a b", CommandId::Decr),
            ("INCRBY k", CommandId::IncrBy),
            ("DECRBY k 1 2", CommandId::DecrBy),
            ("DEL", CommandId::Del),
            ("EXPIRE k", CommandId::Expire),
            ("TTL", CommandId::Ttl),
            ("PERSIST a b", CommandId::Persist),
            ("PING a b", CommandId::Ping),
            ("GET 1 2 3 4 5 6 7 8 9", CommandId::Get),
        ] {
            assert_eq!(line(text), Err(LineError::Usage(id)), "{text}");
        }
    }

    #[test]
    fn usage_texts_are_upstreams() {
        assert_eq!(printed(LineError::Unknown), "Unknown command \n");
        assert_eq!(printed(LineError::Empty), "");
        assert_eq!(
            printed(LineError::Usage(CommandId::Set)),
            "(error) ERR syntax error in 'set' command\n(info) Usage: SET <key> <value> [EX seconds]\n"
        );
        assert_eq!(
            printed(LineError::Usage(CommandId::Get)),
            "(error) ERR wrong number of arguments for 'get' command\n(info) Usage: GET <key>\n"
        );
        assert_eq!(
            printed(LineError::Usage(CommandId::IncrBy)),
            "(error) ERR wrong number of arguments for 'incrby' command\n(info) Usage: INCRBY <key> <value>\n"
        );
        assert_eq!(
            printed(LineError::Usage(CommandId::Expire)),
            "(error) ERR wrong number of arguments for 'expire' command\n(info) Usage: EXPIRE <key> <seconds>\n"
        );
        assert_eq!(
            printed(LineError::Usage(CommandId::Ping)),
            "(error) ERR wrong number of arguments for 'ping' command\n(info) Usage: PING or PING <value>\n"
        );
        assert_eq!(
            printed(LineError::Usage(CommandId::Keys)),
            "(error) ERR wrong number of arguments for 'keys' command\n(info) Usage: KEYS\n"
        );
    }

    #[test]
    fn arguments_too_large_for_a_frame_are_refused_before_sending() {
        let value = vec![b'v'; 70_000];
        let tokens: [&[u8]; 3] = [b"SET", b"k", &value];
        assert!(matches!(recognize(&tokens), Err(LineError::TooLarge(_))));
        assert!(printed(recognize(&tokens).unwrap_err()).starts_with("(error) request too large"));
        let value = vec![b'v'; 60_000];
        let tokens: [&[u8]; 3] = [b"SET", b"k", &value];
        assert!(recognize(&tokens).is_ok());
    }
}
