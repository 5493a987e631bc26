//! Event loops behind one [`Backend`] trait, and what they share.
//!
//! A backend owns how bytes arrive and leave: readiness with epoll
//! ([`epoll`], via mio) or completions with io_uring ([`uring`]). Everything a
//! connection *means* lives in [`conn::Conn`], which sees buffers, never a
//! file descriptor; frames go on to [`crate::commands::Engine`]. The
//! [`sim`] driver pushes scripted byte streams through the same core without
//! sockets, for deterministic tests.

pub mod conn;
pub mod epoll;
pub mod sim;
pub mod uring;

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::clock::Clock;
use crate::commands::Engine;

/// The backends a server can run, chosen at start (§7.2 Q11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Epoll,
    IoUring,
}

impl BackendKind {
    /// The label in INFO and the start-up log (`event_dispatcher_kind`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Epoll => epoll::Epoll::NAME,
            BackendKind::IoUring => uring::Uring::NAME,
        }
    }
}

/// A bound listening socket handed to a backend.
#[derive(Debug)]
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(UnixListener),
}

/// Becomes readable when the server should stop; backends watch it like any
/// other socket, so a stop request interrupts a wait at once.
#[derive(Debug)]
pub struct StopSignal {
    reader: UnixStream,
}

impl StopSignal {
    /// A stop signal and the write end that raises it (one byte is enough).
    pub fn pair() -> io::Result<(StopSignal, UnixStream)> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok((StopSignal { reader }, writer))
    }

    /// True once a stop was requested; drains the wake-up bytes.
    pub fn is_raised(&self) -> bool {
        let mut scratch = [0u8; 16];
        let mut raised = false;
        loop {
            match (&self.reader).read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => raised = true,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return raised,
            }
        }
    }
}

impl AsRawFd for StopSignal {
    fn as_raw_fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }
}

/// What ended a client, for the counters and the log.
pub(crate) enum ClientEnd {
    Closed(conn::CloseReason),
    Failed(io::Error),
}

impl ClientEnd {
    /// Counts the disconnect and logs it: always for an oversized frame
    /// header (§3.4), otherwise only when verbose. Every backend calls this
    /// once per client.
    pub(crate) fn record(&self, client: usize, engine: &mut Engine, verbose: bool) {
        engine.stats.client_disconnected();
        if verbose {
            match self {
                ClientEnd::Closed(reason) => crate::log::info(format_args!("client {client} closed: {reason:?}")),
                ClientEnd::Failed(err) => crate::log::info(format_args!("client {client} failed: {err}")),
            }
        }
        if let ClientEnd::Closed(conn::CloseReason::OversizedFrame) = self {
            crate::log::warn(format_args!("client {client} sent an oversized frame header; connection closed"));
        }
    }
}

/// Bounds an event loop enforces.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Connections beyond this are accepted and closed at once (§3.5).
    pub max_clients: u64,
    /// Readiness events taken per wait (`event-loop-max-events`, capped).
    pub events_per_wait: usize,
    /// After a stop request, how long pending replies may take to flush.
    pub stop_flush_ms: u64,
    pub verbose: bool,
    /// Tuning the io_uring backend reads (zero-copy threshold, buffers).
    pub uring: uring::UringOptions,
}

impl LoopConfig {
    /// The accept policy (§3.5): false, counted as a refusal, once
    /// `max_clients` are connected; the backend then closes the new
    /// connection unread.
    pub(crate) fn admits_another_client(&self, engine: &mut Engine) -> bool {
        if engine.stats.connected_clients < self.max_clients {
            return true;
        }
        engine.stats.client_refused();
        if self.verbose {
            crate::log::warn(format_args!("client refused: max-clients {} reached", self.max_clients));
        }
        false
    }
}

/// Readiness events per wait never exceed this, as upstream (§3.1).
pub const EVENTS_PER_WAIT_MAX: usize = 1024;

/// Everything an event loop runs with.
pub struct LoopContext {
    pub engine: Engine,
    pub clock: Clock,
    pub listeners: Vec<Listener>,
    pub stop: StopSignal,
    pub config: LoopConfig,
}

/// An event loop. `run` serves until the stop signal is raised, then stops
/// accepting, lets every connection flush what it owes (bounded by
/// [`LoopConfig::stop_flush_ms`]) and returns.
pub trait Backend: Sized {
    /// The label INFO and the start-up log show.
    const NAME: &'static str;

    /// Creates the loop; fails with a clear error if the kernel lacks what
    /// the backend needs.
    fn new(config: &LoopConfig) -> io::Result<Self>;

    fn run(self, context: LoopContext) -> io::Result<()>;
}

/// Runs the chosen backend.
pub fn run(kind: BackendKind, context: LoopContext) -> io::Result<()> {
    match kind {
        BackendKind::Epoll => epoll::Epoll::new(&context.config)?.run(context),
        BackendKind::IoUring => uring::Uring::new(&context.config)?.run(context),
    }
}
