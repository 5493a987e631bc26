//! Server configuration: embedded defaults, the upstream config file format
//! (PROTOCOL.md §4.2–§4.3) and command-line overrides.
//!
//! File format: one `key value` pair per line; a line whose first byte is `#`
//! is a comment; tokens after the second are ignored; unknown keys are
//! ignored (Q17); the last repeated key wins. Every bad value is an error
//! that names the file, line and key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use crate::config_file::ConfigError;
use crate::config_file::{apply_pairs, parse_bool, parse_int};
use crate::io::uring::{UringOptions, RECV_BUFFERS_MAX};

pub const DEFAULT_PORT: u16 = 5995;
pub const DEFAULT_MAX_CLIENTS: u64 = 128;
pub const DEFAULT_EVENT_LOOP_MAX_EVENTS: u64 = 100_000;

/// Which event loop to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Epoll,
    /// io_uring, or exit with a clear message where the kernel lacks it.
    IoUring,
    /// io_uring where the kernel supports it, epoll otherwise.
    Auto,
}

impl BackendChoice {
    pub fn parse(text: &str) -> Option<BackendChoice> {
        match text {
            "epoll" => Some(BackendChoice::Epoll),
            "io_uring" => Some(BackendChoice::IoUring),
            "auto" => Some(BackendChoice::Auto),
            _ => None,
        }
    }
}

/// Bytes per io_uring receive buffer, at most.
const URING_RECV_BUFFER_BYTES_MAX: i64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `-c` path, if a file was loaded.
    pub config_file: Option<PathBuf>,
    /// TCP port; 0 (command line only) asks the kernel for a free port.
    pub port: u16,
    pub bind: IpAddr,
    pub max_clients: u64,
    pub event_loop_max_events: u64,
    /// When set, the server listens on this Unix socket only (§4.4).
    pub unixsocket: Option<PathBuf>,
    pub backend: BackendChoice,
    /// io_uring tuning: `zc-threshold`, and hidden knobs for tests and
    /// measurements (`uring-recv-buffers`, `uring-recv-buffer-bytes`,
    /// `uring-disable`).
    pub uring: UringOptions,
    pub verbose: bool,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    pub show_logo: bool,
    /// Parsed and validated for compatibility; logging goes to stdout.
    pub log_enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config_file: None,
            port: DEFAULT_PORT,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_clients: DEFAULT_MAX_CLIENTS,
            event_loop_max_events: DEFAULT_EVENT_LOOP_MAX_EVENTS,
            unixsocket: None,
            backend: BackendChoice::Epoll,
            uring: UringOptions::default(),
            verbose: false,
            daemonize: false,
            pidfile: None,
            show_logo: false,
            log_enabled: false,
        }
    }
}

impl Config {
    /// Reads an upstream-format config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|err| ConfigError::unreadable(path, &err))?;
        let mut config = Config { config_file: Some(path.to_path_buf()), ..Config::default() };
        config.apply_text(&text, &path.display().to_string())?;
        Ok(config)
    }

    fn apply_text(&mut self, text: &[u8], file_name: &str) -> Result<(), ConfigError> {
        apply_pairs(text, file_name, |key, value| {
            self.apply(&String::from_utf8_lossy(key), &String::from_utf8_lossy(value))
        })
    }

    /// Applies one `key value` pair; unknown keys are ignored (Q17).
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "port" => self.port = parse_int(value.as_bytes(), 1, 65_535)? as u16,
            "bind" => self.bind = parse_bind(value)?,
            "max-clients" => self.max_clients = parse_int(value.as_bytes(), 1, 4_294_967_295)? as u64,
            "event-loop-max-events" => {
                self.event_loop_max_events = parse_int(value.as_bytes(), 1, 2_147_483_647)? as u64
            }
            "unixsocket" => self.unixsocket = Some(PathBuf::from(value)),
            "use-io-uring" => {
                self.backend = if parse_use_io_uring(value)? { BackendChoice::IoUring } else { BackendChoice::Epoll }
            }
            "io-backend" => {
                self.backend = BackendChoice::parse(value)
                    .ok_or_else(|| format!("value '{value}' is not one of: epoll, io_uring, auto"))?
            }
            "zc-threshold" => self.uring.zc_threshold_bytes = parse_int(value.as_bytes(), 0, i64::MAX)? as usize,
            "uring-recv-buffers" => {
                let count = parse_int(value.as_bytes(), 1, i64::from(RECV_BUFFERS_MAX))?;
                if !(count as u64).is_power_of_two() {
                    return Err(format!("value '{value}' is not a power of two"));
                }
                self.uring.recv_buffers = count as u16;
            }
            "uring-recv-buffer-bytes" => {
                self.uring.recv_buffer_bytes = parse_int(value.as_bytes(), 1, URING_RECV_BUFFER_BYTES_MAX)? as u32
            }
            "uring-disable" => self.uring.disable(value)?,
            "verbose" => self.verbose = parse_bool(value.as_bytes())?,
            "daemonize" => self.daemonize = parse_bool(value.as_bytes())?,
            "pidfile" => self.pidfile = Some(PathBuf::from(value)),
            "show-logo" => self.show_logo = parse_bool(value.as_bytes())?,
            "log-enabled" => self.log_enabled = parse_bool(value.as_bytes())?,
            _ => {}
        }
        Ok(())
    }

    /// Events taken per wait: the configured value, capped (§3.1).
    pub fn events_per_wait(&self) -> usize {
        (self.event_loop_max_events as usize).min(crate::io::EVENTS_PER_WAIT_MAX)
    }
}

/// `use-io-uring` takes `true`/`false` as upstream, and `yes`/`no` as the
/// design asks.
fn parse_use_io_uring(value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => parse_bool(value.as_bytes()),
    }
}

/// An IPv4 or IPv6 literal (IPv6 is an extension; hostnames are refused).
fn parse_bind(value: &str) -> Result<IpAddr, String> {
    let literal = value.trim_start_matches('[').trim_end_matches(']');
    literal.parse().map_err(|_| format!("value '{value}' is not an IPv4 or IPv6 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply_text(text.as_bytes(), "test.conf")?;
        Ok(config)
    }

    #[test]
    fn shipped_upstream_config_parses() {
        let config = parse(
            "# fkvs\nport 5995\nbind 127.0.0.1\nmax-clients 128\nlogs-enabled false\nverbose false\n\
             daemonize false\nshow-logo true\nevent-loop-max-events 100000\n#unixsocket /tmp/fkvs/fkvs.sock\n\
             use-io-uring false\n",
        )
        .unwrap();
        assert_eq!(config.port, 5995);
        assert!(config.show_logo);
        assert_eq!(config.unixsocket, None);
        assert_eq!(config.backend, BackendChoice::Epoll);
    }

    #[test]
    fn comments_extra_tokens_unknown_keys_and_repeats() {
        let config = parse("port 1 # note\n  # indented is key '#', ignored\nmystery 9\nport 2\nlonely\n").unwrap();
        assert_eq!(config.port, 2);
        let config = parse("bind ::1\nmax-clients 4294967295\n").unwrap();
        assert_eq!(config.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(config.max_clients, 4_294_967_295);
    }

    #[test]
    fn bad_values_name_the_line_and_key() {
        let err = parse("verbose false\nport 70000\n").unwrap_err();
        assert_eq!(err.origin, "test.conf:2");
        assert_eq!(err.key.as_deref(), Some("port"));
        assert!(err.to_string().contains("1..65535"), "{err}");
        for text in
            ["verbose True", "verbose yes", "daemonize 1", "port 0", "port +", "bind localhost", "max-clients 0"]
        {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(parse("port 5 5").unwrap().port, 5, "a third token is ignored");
        assert!(parse("io-backend kqueue").is_err());
    }

    #[test]
    fn io_uring_is_chosen_by_either_key_and_tuned_by_its_own() {
        use crate::io::uring::RECV_BUFFER_BYTES_DEFAULT;
        assert_eq!(parse("use-io-uring true\n").unwrap().backend, BackendChoice::IoUring);
        assert_eq!(parse("use-io-uring yes\nuse-io-uring false\n").unwrap().backend, BackendChoice::Epoll);
        assert_eq!(parse("io-backend io_uring\n").unwrap().backend, BackendChoice::IoUring);
        assert_eq!(parse("io-backend auto\n").unwrap().backend, BackendChoice::Auto);
        let config = parse("zc-threshold 1\nuring-recv-buffers 4\nuring-recv-buffer-bytes 64\n").unwrap();
        assert_eq!(config.uring.zc_threshold_bytes, 1);
        assert_eq!((config.uring.recv_buffers, config.uring.recv_buffer_bytes), (4, 64));
        assert_eq!(parse("zc-threshold 0\n").unwrap().uring.zc_threshold_bytes, 0, "0 turns zero-copy off");
        assert_eq!(Config::default().uring.recv_buffer_bytes, RECV_BUFFER_BYTES_DEFAULT);
        for text in ["zc-threshold -1", "uring-recv-buffers 3", "uring-recv-buffers 65536", "uring-disable sqpoll"] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
