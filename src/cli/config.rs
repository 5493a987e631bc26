//! The client config file (PROTOCOL.md §5.2), in the server's line format:
//! a line whose first byte is `#` is a comment, otherwise the first two
//! whitespace-separated tokens are `key value`, later tokens are ignored,
//! lines with fewer than two tokens are ignored, unknown keys are ignored and
//! the last repeated key wins.
//!
//! Keys: `bind` (host to connect to), `port` (1..65535), `verbose`
//! (`true`/`false` only: Q21, upstream turned verbose on for *any* value) and
//! `unixsocket` (its presence selects the Unix socket). Upstream requires the
//! file; here a missing *default* `./client.conf` means the embedded
//! defaults, while a missing file named with `-d` is an error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use crate::config_file::ConfigError;
use crate::config_file::{apply_pairs, is_c_space, parse_bool, parse_int};

/// The file read when `-d` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "client.conf";

/// Where the client connects unless told otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub bind: String,
    pub port: u16,
    pub verbose: bool,
    pub unixsocket: Option<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { bind: DEFAULT_BIND.into(), port: crate::client::DEFAULT_PORT, verbose: false, unixsocket: None }
    }
}

impl ClientConfig {
    /// Loads `explicit` (`-d PATH`, which must exist), or else
    /// `./client.conf` when present, or else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<ClientConfig, ConfigError> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if explicit.is_none() && err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientConfig::default());
            }
            Err(err) => return Err(ConfigError::unreadable(path, &err)),
        };
        ClientConfig::parse(&text, &path.display().to_string())
    }

    /// Parses config text over the defaults; `file_name` names errors.
    pub fn parse(text: &[u8], file_name: &str) -> Result<ClientConfig, ConfigError> {
        let mut config = ClientConfig::default();
        apply_pairs(text, file_name, |key, value| config.apply(key, value))?;
        Ok(config)
    }

    /// Applies one `key value` pair; unknown keys are ignored.
    fn apply(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let text = || String::from_utf8_lossy(value);
        match key {
            b"bind" => self.bind = parse_host(&text())?,
            b"port" => self.port = parse_int(value, 1, 65_535)? as u16,
            b"verbose" => self.verbose = parse_bool(value)?,
            b"unixsocket" => self.unixsocket = Some(PathBuf::from(OsStr::from_bytes(value))),
            _ => {}
        }
        Ok(())
    }
}

/// A host name or an IPv4/IPv6 literal; IPv6 may be written in brackets.
pub fn parse_host(text: &str) -> Result<String, String> {
    let host = match text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        Some(inner) => inner,
        None => text,
    };
    if host.is_empty() || host.bytes().any(|b| is_c_space(b) || b == b'/') {
        return Err(format!("value '{text}' is not a host name or IP address"));
    }
    Ok(host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
        ClientConfig::parse(text.as_bytes(), "client.conf")
    }

    #[test]
    fn the_shipped_upstream_file_is_quiet_tcp() {
        let config = parse(
            "# Client configuration\n# print additional information\nverbose false\n\
             # port the client should bind to on the server\nport 5995\n\
             # server the client should connect to\nbind 127.0.0.1\n\
             # Specify the path for the Unix socket\n# unixsocket /tmp/fkvs/fkvs.sock\n",
        )
        .unwrap();
        assert_eq!(config, ClientConfig::default(), "Q21: 'verbose false' means quiet");
    }

    #[test]
    fn every_key() {
        let config = parse("bind ::1\nport 6000\nverbose true\nunixsocket /run/fkvs.sock\n").unwrap();
        assert_eq!(config.bind, "::1");
        assert_eq!(config.port, 6000);
        assert!(config.verbose);
        assert_eq!(config.unixsocket, Some(PathBuf::from("/run/fkvs.sock")));
        assert_eq!(parse("bind [::1]\nbind db.example\n").unwrap().bind, "db.example", "last one wins");
        assert_eq!(parse("bind [fe80::1]\n").unwrap().bind, "fe80::1");
    }

    #[test]
    fn comments_extra_tokens_short_lines_and_unknown_keys() {
        let config =
            parse("port 7000 # note\n  # indented: key '#', ignored\nlonely\nmystery 1\r\n\tport\t7001\r\n").unwrap();
        assert_eq!(config.port, 7001);
    }

    #[test]
    fn bad_values_name_the_file_line_and_key() {
        let err = parse("port 6000\nverbose yes\n").unwrap_err();
        assert_eq!(err.origin, "client.conf:2");
        assert_eq!(err.key.as_deref(), Some("verbose"));
        assert_eq!(
            err.to_string(),
            "config error at client.conf:2: 'verbose' value 'yes' is not a boolean (true or false)"
        );
        for text in ["verbose True", "verbose 1", "port 0", "port 65536", "port x", "port -1", "port 5x"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = ClientConfig::load(Some(Path::new("/nonexistent/fkvs/client.conf"))).unwrap_err();
        assert!(err.to_string().starts_with("config error at /nonexistent/fkvs/client.conf: cannot read"), "{err}");
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("localhost").unwrap(), "localhost");
        assert_eq!(parse_host("[::1]").unwrap(), "::1");
        assert!(parse_host("").is_err());
        assert!(parse_host("[]").is_err());
        assert!(parse_host("a b").is_err());
    }
}
