//! The epoll backend, on mio (edge-triggered readiness).
//!
//! One thread, one `Poll`. Each client is registered once for reads and
//! writes, so backpressure never costs a re-registration syscall. Per
//! readiness event: read until the socket is drained (or the core stops
//! wanting input), execute the frames, then one `write` of every reply the
//! batch produced. At pipeline depth 1 that is `epoll_wait` (shared by all
//! ready clients) + one `read` + one `write` per request: a read shorter
//! than the space offered is taken as "drained" unless the peer has closed,
//! which saves the `EAGAIN` read (Linux reports new data with a new edge).
//!
//! Adapting readiness to the completion-shaped core is the whole job here:
//! the backend receives into [`Conn::recv_space`] and sends from
//! [`Conn::output`].

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use super::conn::Conn;
use super::{Backend, ClientEnd, Listener, LoopConfig, LoopContext, EVENTS_PER_WAIT_MAX};
use crate::commands::{Engine, EXPIRY_TICK_MS};
use crate::log;
use crate::store::Millis;

/// Connections take tokens from the slab (`0..`); these sit above them.
const STOP_TOKEN: Token = Token(usize::MAX);
const LISTENER_TOKEN_BASE: usize = usize::MAX - 64;

/// Idle connections kept with their buffers for the next accept.
const CONN_POOL_MAX: usize = 64;

pub struct Epoll {
    poll: Poll,
    events: Events,
}

enum MioListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Stream::Tcp(stream) => registry.register(stream, token, interest),
            Stream::Unix(stream) => registry.register(stream, token, interest),
        }
    }
}

struct Client {
    conn: Conn,
    stream: Stream,
    /// The socket may have bytes we have not read (edge-triggered).
    readable: bool,
    /// The socket may accept bytes we have not written.
    writable: bool,
    /// The peer's FIN was reported: read to EOF, never trust a short read.
    read_closed: bool,
}

impl Backend for Epoll {
    const NAME: &'static str = "epoll";

    fn new(config: &LoopConfig) -> io::Result<Self> {
        let events_per_wait = config.events_per_wait.clamp(1, EVENTS_PER_WAIT_MAX);
        Ok(Epoll { poll: Poll::new()?, events: Events::with_capacity(events_per_wait) })
    }

    fn run(mut self, context: LoopContext) -> io::Result<()> {
        let LoopContext { mut engine, clock, listeners, stop, config } = context;
        // A second handle, so registering does not borrow the poll we wait on.
        let registry = &self.poll.registry().try_clone()?;
        let mut listeners = register_listeners(registry, listeners)?;
        registry.register(&mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&stop)), STOP_TOKEN, Interest::READABLE)?;

        let mut clients: Slab<Client> = Slab::new();
        let mut pool: Vec<Conn> = Vec::new();
        let mut next_tick = clock.now_ms() + EXPIRY_TICK_MS;
        let mut stop_deadline: Option<Millis> = None;

        loop {
            let now = clock.now_ms();
            let wait_ms = next_tick.saturating_sub(now).min(EXPIRY_TICK_MS);
            match self.poll.poll(&mut self.events, Some(Duration::from_millis(wait_ms))) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
            let now = clock.now_ms();
            for event in self.events.iter() {
                match event.token() {
                    STOP_TOKEN => {
                        if stop_deadline.is_none() && stop.is_raised() {
                            stop_deadline = Some(now + config.stop_flush_ms);
                            begin_stop(&mut listeners, registry, &mut clients, &mut engine, now, &mut pool);
                        }
                    }
                    Token(index) if index >= LISTENER_TOKEN_BASE => {
                        if let Some(listener) = listeners.get_mut(index - LISTENER_TOKEN_BASE) {
                            accept_all(listener, registry, &mut clients, &mut pool, &mut engine, &config);
                        }
                    }
                    Token(index) => {
                        let Some(client) = clients.get_mut(index) else { continue };
                        client.readable |= event.is_readable() || event.is_read_closed() || event.is_error();
                        client.writable |= event.is_writable() || event.is_error();
                        client.read_closed |= event.is_read_closed();
                        if let Some(end) = drive(client, &mut engine, now) {
                            close_client(&mut clients, index, end, &mut engine, &mut pool, config.verbose);
                        }
                    }
                }
            }
            if now >= next_tick {
                engine.tick(now);
                next_tick = now + EXPIRY_TICK_MS;
            }
            if let Some(deadline) = stop_deadline {
                if clients.is_empty() || now >= deadline {
                    return Ok(());
                }
            }
        }
    }
}

fn register_listeners(registry: &Registry, listeners: Vec<Listener>) -> io::Result<Vec<MioListener>> {
    let mut registered = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let token = Token(LISTENER_TOKEN_BASE + index);
        let mut listener = match listener {
            Listener::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                MioListener::Tcp(TcpListener::from_std(listener))
            }
            Listener::Unix(listener) => {
                listener.set_nonblocking(true)?;
                MioListener::Unix(UnixListener::from_std(listener))
            }
        };
        match &mut listener {
            MioListener::Tcp(l) => registry.register(l, token, Interest::READABLE)?,
            MioListener::Unix(l) => registry.register(l, token, Interest::READABLE)?,
        }
        registered.push(listener);
    }
    Ok(registered)
}

/// Accepts until the backlog is empty. Past `max_clients`, a connection is
/// accepted and closed at once, unread (§3.5).
fn accept_all(
    listener: &mut MioListener,
    registry: &Registry,
    clients: &mut Slab<Client>,
    pool: &mut Vec<Conn>,
    engine: &mut Engine,
    config: &LoopConfig,
) {
    loop {
        let accepted = match listener {
            MioListener::Tcp(l) => l.accept().map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }),
            MioListener::Unix(l) => l.accept().map(|(stream, _)| Stream::Unix(stream)),
        };
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                // EMFILE, ENFILE, ECONNABORTED…: the listener stays up and a
                // new connection attempt brings a new edge.
                log::warn(format_args!("accept failed: {err}"));
                return;
            }
        };
        if !config.admits_another_client(engine) {
            continue;
        }
        let entry = clients.vacant_entry();
        let token = Token(entry.key());
        if let Err(err) = stream.register(registry, token) {
            log::warn(format_args!("cannot register client: {err}"));
            continue;
        }
        let mut conn = pool.pop().unwrap_or_default();
        conn.reset();
        entry.insert(Client { conn, stream, readable: false, writable: false, read_closed: false });
        engine.stats.client_connected();
        if config.verbose {
            log::info(format_args!("client {} connected", token.0));
        }
    }
}

/// Moves bytes both ways until neither direction can progress. Returns why
/// the client ended, if it did.
fn drive(client: &mut Client, engine: &mut Engine, now: Millis) -> Option<ClientEnd> {
    loop {
        while client.readable && client.conn.wants_input() {
            let space = client.conn.recv_space();
            let offered = space.len();
            match client.stream.read(space) {
                Ok(0) => {
                    client.readable = false;
                    client.conn.on_peer_closed(engine, now);
                }
                Ok(received) => {
                    client.conn.on_received(received, engine, now);
                    client.readable = received == offered || client.read_closed;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => client.readable = false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Some(ClientEnd::Failed(err)),
            }
        }
        // One write carries every reply of the batch.
        while client.writable && client.conn.output_pending() > 0 {
            match client.stream.write(client.conn.output()) {
                Ok(sent) => client.conn.on_sent(sent, engine, now),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => client.writable = false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Some(ClientEnd::Failed(err)),
            }
        }
        if let Some(reason) = client.conn.close_reason() {
            return Some(ClientEnd::Closed(reason));
        }
        // Sending may have released held-back frames and re-opened intake.
        let can_read = client.readable && client.conn.wants_input();
        let can_write = client.writable && client.conn.output_pending() > 0;
        if !can_read && !can_write {
            return None;
        }
    }
}

fn close_client(
    clients: &mut Slab<Client>,
    index: usize,
    end: ClientEnd,
    engine: &mut Engine,
    pool: &mut Vec<Conn>,
    verbose: bool,
) {
    let Some(client) = clients.try_remove(index) else { return };
    end.record(index, engine, verbose);
    // Dropping the stream closes the socket, which also removes it from epoll.
    drop(client.stream);
    if pool.len() < CONN_POOL_MAX {
        pool.push(client.conn);
    }
}

/// Stops accepting and asks every client to flush what it owes.
fn begin_stop(
    listeners: &mut Vec<MioListener>,
    registry: &Registry,
    clients: &mut Slab<Client>,
    engine: &mut Engine,
    now: Millis,
    pool: &mut Vec<Conn>,
) {
    for listener in listeners.iter_mut() {
        let _ = match listener {
            MioListener::Tcp(l) => registry.deregister(l),
            MioListener::Unix(l) => registry.deregister(l),
        };
    }
    listeners.clear();
    let indices: Vec<usize> = clients.iter().map(|(index, _)| index).collect();
    for index in indices {
        let Some(client) = clients.get_mut(index) else { continue };
        client.conn.drain();
        if let Some(end) = drive(client, engine, now) {
            close_client(clients, index, end, engine, pool, false);
        }
    }
}
