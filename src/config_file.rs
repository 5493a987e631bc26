//! The upstream config file format, shared by `server.conf` and
//! `client.conf` (PROTOCOL.md §4.2, §5.2).
//!
//! One `key value` pair per line: a line whose first byte is `#` is a
//! comment; otherwise the first two whitespace-separated tokens are the key
//! and value, later tokens are ignored (so `port 5995 # note` works), lines
//! with fewer than two tokens are ignored. What keys mean, which are known
//! and what values they take belongs to each program; a bad value is an
//! error naming the file, line and key.

use std::fmt;
use std::path::Path;

use crate::protocol::int::parse_i64_in;

/// A config file that cannot be read, or a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `file`, `file:line`, or `command line`.
    pub origin: String,
    /// The offending key, when a value was bad.
    pub key: Option<String>,
    pub problem: String,
}

impl ConfigError {
    pub fn unreadable(path: &Path, err: &std::io::Error) -> ConfigError {
        ConfigError {
            origin: path.display().to_string(),
            key: None,
            problem: format!("cannot read the config file: {err}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "config error at {}: '{}' {}", self.origin, key, self.problem),
            None => write!(f, "config error at {}: {}", self.origin, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// C's `isspace`, which upstream's config reader and CLI tokenizer use.
pub fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Calls `apply(key, value)` for every pair in `text`, in order; the first
/// error is returned with `file_name:line` and the key.
pub fn apply_pairs(
    text: &[u8],
    file_name: &str,
    mut apply: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
) -> Result<(), ConfigError> {
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.first() == Some(&b'#') {
            continue;
        }
        let mut tokens = line.split(|&b| is_c_space(b)).filter(|t| !t.is_empty());
        let (Some(key), Some(value)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        apply(key, value).map_err(|problem| ConfigError {
            origin: format!("{file_name}:{}", index + 1),
            key: Some(String::from_utf8_lossy(key).into_owned()),
            problem,
        })?;
    }
    Ok(())
}

/// Exactly `true` or `false`, as upstream; anything else is an error.
pub fn parse_bool(value: &[u8]) -> Result<bool, String> {
    match value {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(format!("value '{}' is not a boolean (true or false)", String::from_utf8_lossy(value))),
    }
}

/// An integer in `min..=max` by the strict rules of §2.1.
pub fn parse_int(value: &[u8], min: i64, max: i64) -> Result<i64, String> {
    parse_i64_in(value, min, max)
        .ok_or_else(|| format!("value '{}' is not an integer in {min}..{max}", String::from_utf8_lossy(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let mut seen = Vec::new();
        apply_pairs(text.as_bytes(), "t.conf", |k, v| {
            seen.push((String::from_utf8_lossy(k).into(), String::from_utf8_lossy(v).into()));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn comments_short_lines_and_extra_tokens() {
        let seen = pairs("# c\nport 1 # note\n  # indented\nlonely\n\tbind\x0b::1\r\n").unwrap();
        let expected = [("port", "1"), ("#", "indented"), ("bind", "::1")];
        assert_eq!(seen, expected.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = apply_pairs(b"a 1\nb 2\n", "t.conf", |k, _| if k == b"b" { Err("bad".into()) } else { Ok(()) })
            .unwrap_err();
        assert_eq!(err.to_string(), "config error at t.conf:2: 'b' bad");
    }

    #[test]
    fn booleans_and_integers_are_strict() {
        assert_eq!(parse_bool(b"true"), Ok(true));
        assert!(parse_bool(b"True").is_err() && parse_bool(b"yes").is_err() && parse_bool(b"1").is_err());
        assert_eq!(parse_int(b"007", 1, 10), Ok(7));
        assert!(parse_int(b"11", 1, 10).is_err() && parse_int(b" 1", 1, 10).is_err());
    }
}
