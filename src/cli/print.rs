//! How a reply is shown, byte for byte as upstream prints it
//! (PROTOCOL.md §5.6; Q19 keeps the quirks).
//!
//! | reply | printed |
//! |---|---|
//! | FAIL | `(nil) ` + `\n` (errors and misses alike) |
//! | OK, or VALUE of 0 bytes | `OK\n` |
//! | VALUE(x), PING(x) with x non-empty | `"` x `" ` + `\n`, unescaped |
//! | PING of 0 bytes | `PONG\n` |
//! | INFO(text) | text + `\n` |
//! | KEYS of 0 bytes | `(empty list)\n` |
//! | KEYS(listing) | listing + `\n` |
//!
//! Payloads are written as raw bytes: values are binary and are never
//! converted to text here (upstream's `printf("%s")` also stopped at a NUL;
//! we print the whole payload).

use std::io::{self, Write};

use crate::protocol::{CommandId, Reply};

/// Writes `reply` as upstream's CLI prints it.
pub fn write_reply(out: &mut dyn Write, reply: &Reply<'_>) -> io::Result<()> {
    match *reply {
        Reply::Fail => out.write_all(b"(nil) \n"),
        Reply::Ok | Reply::Value(b"") => out.write_all(b"OK\n"),
        Reply::Typed(CommandId::Ping, b"") => out.write_all(b"PONG\n"),
        Reply::Typed(CommandId::Keys, b"") => out.write_all(b"(empty list)\n"),
        Reply::Value(payload) | Reply::Typed(CommandId::Ping, payload) => write_quoted(out, payload),
        Reply::Typed(_, text) => write_line(out, text),
    }
}

fn write_quoted(out: &mut dyn Write, payload: &[u8]) -> io::Result<()> {
    out.write_all(b"\"")?;
    out.write_all(payload)?;
    out.write_all(b"\" \n")
}

fn write_line(out: &mut dyn Write, text: &[u8]) -> io::Result<()> {
    out.write_all(text)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(reply: Reply<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write_reply(&mut out, &reply).unwrap();
        out
    }

    #[test]
    fn status_replies() {
        assert_eq!(printed(Reply::Fail), b"(nil) \n");
        assert_eq!(printed(Reply::Ok), b"OK\n");
    }

    #[test]
    fn values_are_quoted_with_a_trailing_space() {
        assert_eq!(printed(Reply::Value(b"bar")), b"\"bar\" \n");
        assert_eq!(printed(Reply::Value(b"-1")), b"\"-1\" \n");
        assert_eq!(printed(Reply::Value(b"a \"b\"\n")), b"\"a \"b\"\n\" \n", "no escaping");
    }

    #[test]
    fn an_empty_value_prints_ok_q19() {
        assert_eq!(printed(Reply::Value(b"")), b"OK\n");
    }

    #[test]
    fn binary_values_are_written_raw() {
        assert_eq!(printed(Reply::Value(b"\xff\x00\xfe")), b"\"\xff\x00\xfe\" \n");
    }

    #[test]
    fn ping_replies() {
        assert_eq!(printed(Reply::Typed(CommandId::Ping, b"")), b"PONG\n");
        assert_eq!(printed(Reply::Typed(CommandId::Ping, b"PONG")), b"\"PONG\" \n");
        assert_eq!(printed(Reply::Typed(CommandId::Ping, b"hi")), b"\"hi\" \n");
    }

    #[test]
    fn info_text_gets_one_extra_newline() {
        assert_eq!(printed(Reply::Typed(CommandId::Info, b"# Server \nx:1\n")), b"# Server \nx:1\n\n");
    }

    #[test]
    fn keys_listing_or_empty_list() {
        assert_eq!(printed(Reply::Typed(CommandId::Keys, b"")), b"(empty list)\n");
        assert_eq!(printed(Reply::Typed(CommandId::Keys, b"1) a\n2) b")), b"1) a\n2) b\n");
    }
}
