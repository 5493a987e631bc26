//! PING, INFO and KEYS (§2.9–§2.11): the replies typed with their own id.

use std::io::Write;
use std::ops::ControlFlow;

use super::Engine;
use crate::protocol::int::I64Text;
use crate::protocol::reply::{push_typed, TypedReplyWriter};
use crate::protocol::request::CommandId;
use crate::store::{Millis, Store};

/// INFO text must stay under 768 bytes, or the reply is FAIL (§2.10).
pub const INFO_TEXT_BYTES_MAX: usize = 767;

/// KEYS fails as a whole once its lines, each counted with a newline, would
/// pass this many bytes (§2.11, Q18).
pub const KEYS_COUNTED_BYTES_MAX: usize = 65_500;

/// What INFO says about the process; fixed at start-up.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub pid: u32,
    pub port: u16,
    pub config_file: String,
    pub started_ms: Millis,
    pub event_loop_max_events: u64,
    /// The backend actually running (§7.2, Q11).
    pub backend: &'static str,
    pub allocator: &'static str,
}

/// Echoes the payload; the server never invents `PONG` (Q10).
pub fn ping(payload: &[u8], out: &mut Vec<u8>) {
    push_typed(out, CommandId::Ping as u8, payload);
}

/// The upstream text, trailing spaces and `#Stats` included (§2.10, Q15),
/// byte for byte; "Memory Usage" reports the store's accounted bytes. A
/// `# Keyspace` and an `# I/O` section follow the template (extensions: the
/// template has no key count or backend counters), so clients that read the
/// template lines are unaffected.
pub fn info(engine: &Engine, now: Millis, out: &mut Vec<u8>) {
    let info = &engine.info;
    let stats = &engine.stats;
    let uptime_s = now.saturating_sub(info.started_ms) / 1000;
    let memory = engine.store.memory_bytes();
    let writer = TypedReplyWriter::begin(out, CommandId::Info);
    let written = write!(
        out,
        "# Server \npid: {pid} \nport: {port} \nconfig file: {config} \n\
         Uptime: {days} days, {hours} hours, {mins} min, {secs} sec \n\
         event_loop_max_events: {max_events} \nevent_dispatcher_kind: {backend} \n\n\
         # Clients \nconnected clients: {connected} \ndisconnected clients: {disconnected} \n\n\
         #Stats \ncommands executed: {executed} \n\n\
         # Memory \nMemory Usage: {memory} bytes ({memory_kib} KiB)\nmem_allocator: {allocator} \n\n\
         # Keyspace \nkeys: {keys} \nexpired keys reclaimed: {reclaimed} \n\n\
         # I/O \nzero-copy sends: {zc_sends} \nzero-copy sends copied: {zc_copied} \n\
         receive buffers exhausted: {exhausted} \n\n",
        pid = info.pid,
        port = info.port,
        config = info.config_file,
        days = uptime_s / 86_400,
        hours = uptime_s / 3_600 % 24,
        mins = uptime_s / 60 % 60,
        secs = uptime_s % 60,
        max_events = info.event_loop_max_events,
        backend = info.backend,
        connected = stats.connected_clients,
        disconnected = stats.disconnected_clients,
        executed = stats.commands_executed,
        memory_kib = memory / 1024,
        allocator = info.allocator,
        keys = engine.store.len(),
        reclaimed = stats.expired_keys_reclaimed,
        zc_sends = stats.zc_sends,
        zc_copied = stats.zc_copied,
        exhausted = stats.recv_buffers_exhausted,
    );
    match written {
        Ok(()) => writer.finish(out, INFO_TEXT_BYTES_MAX),
        Err(_) => writer.abandon(out),
    }
}

/// Lists live keys as `"<i>) <key>"` lines joined by `\n`, reclaiming expired
/// keys on the way; FAIL as a whole past the size limit.
pub fn keys(store: &mut Store, now: Millis, out: &mut Vec<u8>) {
    let writer = TypedReplyWriter::begin(out, CommandId::Keys);
    let mut listed: i64 = 0;
    let mut counted_bytes = 0;
    let mut overflowed = false;
    store.for_each_live_key(now, |key| {
        listed += 1;
        let number = I64Text::new(listed);
        let line_bytes = number.as_bytes().len() + 2 + key.len();
        counted_bytes += line_bytes + 1;
        if counted_bytes > KEYS_COUNTED_BYTES_MAX {
            overflowed = true;
            return ControlFlow::Break(());
        }
        if listed > 1 {
            out.push(b'\n');
        }
        out.extend_from_slice(number.as_bytes());
        out.extend_from_slice(b") ");
        out.extend_from_slice(key);
        ControlFlow::Continue(())
    });
    if overflowed {
        writer.abandon(out);
    } else {
        writer.finish(out, KEYS_COUNTED_BYTES_MAX);
    }
}
