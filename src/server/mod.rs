//! The server process: configuration (file + flags), listeners, lifecycle,
//! and the INFO identity, wired around the chosen event loop.
//!
//! No hot-path logic lives here: once [`serve`] hands the listeners and the
//! engine to a backend, this room only waits for the loop to return.

pub mod config;
pub mod lifecycle;
pub mod listen;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::clock::Clock;
use crate::commands::{Engine, ServerInfo};
use crate::io::{self, BackendKind, LoopConfig, LoopContext};
use crate::log;
use config::{BackendChoice, Config, ConfigError};

/// The allocator INFO reports (`mem_allocator`).
pub const ALLOCATOR_NAME: &str = "system (libc malloc)";

/// How long a stopping server waits for replies to flush.
const STOP_FLUSH_MS: u64 = 2_000;

/// Exit status for configuration and usage errors.
const EXIT_CONFIG: u8 = 2;

/// Exit status when the server cannot start or its loop fails.
const EXIT_RUNTIME: u8 = 1;

/// `fkvs-server [-c [FILE]] [--port N] …`: flags override the config file,
/// which overrides the embedded defaults (127.0.0.1:5995, epoll).
#[derive(Debug, Parser)]
#[command(name = "fkvs-server", version, about = "fkvs key-value server")]
pub struct Args {
    /// Upstream-format config file; `-c` alone reads ./server.conf
    #[arg(short = 'c', long = "config", value_name = "FILE", num_args = 0..=1, default_missing_value = "server.conf")]
    pub config: Option<PathBuf>,
    /// TCP port; 0 lets the kernel pick a free one (the log shows which)
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Address to listen on (IPv4 or IPv6 literal)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Listen on this Unix socket instead of TCP
    #[arg(long, value_name = "PATH")]
    pub unixsocket: Option<PathBuf>,
    /// Connections beyond this are closed at once
    #[arg(long, value_name = "N")]
    pub max_clients: Option<String>,
    /// Events per wait as configured (capped at 1024 in use)
    #[arg(long, value_name = "N")]
    pub event_loop_max_events: Option<String>,
    /// I/O backend: epoll, io_uring, or auto (io_uring when available)
    #[arg(long, value_name = "BACKEND")]
    pub io_backend: Option<String>,
    /// io_uring: replies of at least this many bytes go out with zero-copy
    /// send (SEND_ZC); 0 turns it off
    #[arg(long, value_name = "BYTES")]
    pub zc_threshold: Option<String>,
    /// io_uring: provided receive buffers (power of two; tests, tuning)
    #[arg(long, value_name = "N", hide = true)]
    pub uring_recv_buffers: Option<String>,
    /// io_uring: bytes per provided receive buffer (tests, tuning)
    #[arg(long, value_name = "BYTES", hide = true)]
    pub uring_recv_buffer_bytes: Option<String>,
    /// io_uring: features to turn off, comma-separated (measurements)
    #[arg(long, value_name = "LIST", hide = true)]
    pub uring_disable: Option<String>,
    /// Debug lines on stdout (true/false)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub verbose: Option<String>,
    /// Run in the background once the listeners are bound (true/false)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub daemonize: Option<String>,
    /// Write the server's pid to this file
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
}

impl Args {
    /// The effective configuration: defaults, then the file, then flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let flags = [
            ("bind", self.bind.as_deref()),
            ("max-clients", self.max_clients.as_deref()),
            ("event-loop-max-events", self.event_loop_max_events.as_deref()),
            ("io-backend", self.io_backend.as_deref()),
            ("zc-threshold", self.zc_threshold.as_deref()),
            ("uring-recv-buffers", self.uring_recv_buffers.as_deref()),
            ("uring-recv-buffer-bytes", self.uring_recv_buffer_bytes.as_deref()),
            ("uring-disable", self.uring_disable.as_deref()),
            ("verbose", self.verbose.as_deref()),
            ("daemonize", self.daemonize.as_deref()),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                config.apply(key, value).map_err(|problem| ConfigError {
                    origin: "command line".into(),
                    key: Some(format!("--{key}")),
                    problem,
                })?;
            }
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(path) = &self.unixsocket {
            config.unixsocket = Some(path.clone());
        }
        if let Some(path) = &self.pidfile {
            config.pidfile = Some(path.clone());
        }
        Ok(config)
    }
}

/// The whole `fkvs-server` program.
pub fn main() -> ExitCode {
    let clock = Clock::start();
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("fkvs-server: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match serve(&config, clock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fkvs-server: {err:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Binds, optionally daemonizes, then runs the event loop until SIGINT or
/// SIGTERM; the socket file and pidfile are removed on the way out.
pub fn serve(config: &Config, clock: Clock) -> anyhow::Result<()> {
    if config.show_logo {
        print_logo();
    }
    log::info(format_args!("Server starting"));
    let bound = listen::bind(config)?;
    if config.daemonize {
        lifecycle::daemonize()?;
    }
    // Taken after the fork, so it is the pid of the process serving (Q14).
    let pid = std::process::id();
    let _pidfile = config.pidfile.as_deref().map(lifecycle::Pidfile::create).transpose()?;
    let stop = lifecycle::install_stop_signals()?;
    let backend = resolve_backend(config.backend)?;

    let engine = Engine::new(ServerInfo {
        pid,
        port: bound.port,
        config_file: config.config_file.as_ref().map_or_else(|| "none".into(), |p| p.display().to_string()),
        started_ms: clock.started_ms(),
        event_loop_max_events: config.event_loop_max_events,
        backend: backend.name(),
        allocator: ALLOCATOR_NAME,
    });
    log::info(format_args!("Ready to accept connections via {}", bound.description));
    log::info(format_args!("event-loop-kind: {}", backend.name()));
    log::info(format_args!("allocator: {ALLOCATOR_NAME}"));

    let context = LoopContext {
        engine,
        clock,
        listeners: bound.listeners,
        stop,
        config: LoopConfig {
            max_clients: config.max_clients,
            events_per_wait: config.events_per_wait(),
            stop_flush_ms: STOP_FLUSH_MS,
            verbose: config.verbose,
            uring: config.uring.clone(),
        },
    };
    let result = io::run(backend, context);
    drop(bound.unix_socket);
    result.map_err(Into::into)
}

/// The backend to run: io_uring only where the kernel offers what it needs
/// (a probe ring is set up and dropped); `auto` falls back to epoll.
fn resolve_backend(choice: BackendChoice) -> anyhow::Result<BackendKind> {
    match choice {
        BackendChoice::Epoll => Ok(BackendKind::Epoll),
        BackendChoice::IoUring => match io::uring::probe() {
            Ok(_) => Ok(BackendKind::IoUring),
            Err(reason) => anyhow::bail!("{reason}; start with --io-backend epoll (or auto)"),
        },
        BackendChoice::Auto => match io::uring::probe() {
            Ok(_) => Ok(BackendKind::IoUring),
            Err(reason) => {
                log::warn(format_args!("{reason}; falling back to epoll"));
                Ok(BackendKind::Epoll)
            }
        },
    }
}

/// Prints `./logo.txt` as upstream does, or warns that it is missing.
fn print_logo() {
    match std::fs::read_to_string("logo.txt") {
        Ok(logo) => println!("{logo}"),
        Err(err) => log::warn(format_args!("show-logo: cannot read logo.txt: {err}")),
    }
}
