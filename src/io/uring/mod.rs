//! The io_uring backend: completions, not readiness.
//!
//! One ring per event-loop thread, created disabled with `SINGLE_ISSUER |
//! DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL` where the kernel accepts them
//! ([`setup`]) and enabled by the thread that drives it. A loop turn is:
//!
//! 1. one `io_uring_enter` that submits every SQE queued since the last turn
//!    and waits for at least one completion, or for the expiry tick (the
//!    timeout travels in the enter's extended argument, so the 100 ms timer
//!    costs no SQE);
//! 2. reap every CQE, touching only per-client state and marking clients
//!    dirty;
//! 3. service each dirty client once: feed it bytes it could not take
//!    before, hand its replies to one `SEND`, decide on receives and close.
//!
//! **Operations.** Listeners run a multishot `ACCEPT` into *direct
//! descriptors*: slots of a file table registered with the ring (one per
//! descriptor `RLIMIT_NOFILE` allows), named in every SQE with
//! `IOSQE_FIXED_FILE`, so no receive or send looks the socket up in the
//! process's file table or counts a reference on it. Such a socket takes
//! no `setsockopt`: TCP sockets inherit `TCP_NODELAY` from their listener,
//! set once. Each client has one
//! multishot `RECV` into the provided-buffer ring ([`bufring`]) that keeps
//! delivering until the peer closes, the ring runs dry (`ENOBUFS`, re-armed
//! at once, starved clients first) or the loop cancels it because the core
//! stopped wanting input (backpressure: `!Conn::wants_input`). Bytes the
//! core did not take go to a per-client stash that is fed back, in order,
//! before the receive is re-armed; the provided buffer itself is recycled
//! before the turn ends. The stop signal's socket is polled through the
//! ring (multishot `POLL_ADD`).
//!
//! **Sends.** A client has at most one send in the kernel. Its replies are
//! moved out of the core with [`Conn::hand_off_output`] into a *flight*: a
//! buffer the loop owns and never touches until the kernel is done with
//! it, while the core keeps appending to a fresh buffer. Flights at least
//! `zc_threshold_bytes` long go out with `SEND_ZC`, shorter ones with
//! `SEND` (both `MSG_WAITALL`, so the kernel finishes a large reply without
//! a round trip through the loop). A `SEND_ZC` flight is freed only after
//! its notification CQE; a notification flagged
//! `IORING_NOTIF_USAGE_ZC_COPIED` (always so on loopback) is counted in
//! `engine.stats.zc_copied`, not treated as an error, and that connection
//! sends plainly from then on: the kernel has said zero-copy does not pay
//! on its path, and a zero-copy send that copies costs 1.6–2× a plain one.
//!
//! **Lifetimes.** Every `user_data` carries the operation kind, a
//! generation and a slot index. A client slot is released only when no
//! receive or send of it is in the kernel: closing first cancels them and
//! waits for their last CQEs, then queues a `CLOSE` of the socket. So no
//! CQE can reach a reused slot, and the generation check is a second line
//! of defence. On exit every operation is cancelled and the loop waits
//! (bounded) for the last completion before any buffer is freed.
//!
//! **Back of the envelope, pipeline depth 1, `k` clients ready per turn.**
//! epoll: `epoll_wait` / k + `read` + `write` = 2 + 1/k syscalls a request.
//! Here: 1/k `io_uring_enter` a request; the receive costs no SQE
//! (multishot) and the send one SQE (64 bytes) plus one CQE (16 bytes). The
//! copies are the kernel's into a provided buffer, the core's reply
//! encoding, and the kernel's out of the flight: the same bytes as epoll.
//! Frames are executed straight from the provided buffer; only a frame
//! split across two buffers is copied into the connection's input.
//! Measured (docs/performance.md, 50 clients): 0.14 enters per request at
//! P=1 against epoll's 2.02 syscalls. At 116 ns a syscall that is ~5% of a
//! 4.4 µs loopback request, most of which is TCP; io_uring's own request
//! handling costs about as much, so P=1 is a draw. Nor can the load show
//! more: the client's cost mirrors the server's (each side's send runs the
//! peer's TCP receive inline), ~84% TCP on both, both ~95–99% busy.
//! Direct descriptors save the file lookup and reference count per
//! operation (0.8% of the server's samples, below this machine's noise);
//! batched waits (6.12 min-wait) were tried and cost req/s at every depth,
//! since a server that waits for more arrivals idles the closed-loop client.
//!
//! Batching pays at depth: one enter sends a whole turn's replies and wakes
//! the peer once, not once per `write` (SET at P=128: 0.76x epoll's
//! server CPU with session 1's interim driver, 0.84–0.91x with
//! `fkvs-benchmark`).

mod bufring;
mod setup;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use io_uring::cqueue;
use io_uring::opcode;
use io_uring::squeue::{self, Flags as SqeFlags};
use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{CompletionQueue, IoUring, SubmissionQueue, Submitter};
use slab::Slab;

use super::conn::{CloseReason, Conn, OUTPUT_BYTES_INITIAL};
use super::{Backend, ClientEnd, Listener, LoopConfig, LoopContext, StopSignal};
use crate::clock::Clock;
use crate::commands::{Engine, EXPIRY_TICK_MS};
use crate::log;
use crate::store::Millis;
use bufring::BufRing;
/// The most provided receive buffers a ring may have (the kernel's limit).
pub use bufring::BUFFERS_MAX as RECV_BUFFERS_MAX;
pub use setup::{probe, Capabilities};

/// Submission queue entries: one turn rarely queues more than a few per
/// client; a full queue is submitted early, never dropped.
const SQ_ENTRIES: u32 = 4096;

/// Completion queue entries. Overflow is safe (the kernel keeps the extra
/// CQEs, `NODROP`), only slower.
const CQ_ENTRIES: u32 = 16_384;

/// Provided receive buffers, by default: enough that a turn's burst from
/// hundreds of clients rarely runs the ring dry.
pub const RECV_BUFFERS_DEFAULT: u16 = 512;

/// Bytes per provided receive buffer: a pipelined batch of 128 small
/// requests (≈ 2.5 KiB) fits one buffer many times over, and a frame larger
/// than a buffer is simply assembled in the connection's input.
pub const RECV_BUFFER_BYTES_DEFAULT: u32 = 16 * 1024;

/// Flights at least this long are sent with `SEND_ZC`: see
/// docs/performance.md (`## I/O backends`) for the measurement.
pub const ZC_THRESHOLD_BYTES_DEFAULT: usize = 64 * 1024;

/// The provided-buffer group the receives select from.
const BUFFER_GROUP: u16 = 0;

/// Idle connections kept with their buffers for the next accept.
const CONN_POOL_MAX: usize = 64;

/// Output buffers kept for new clients; larger ones are freed. A live
/// client keeps its own pair (see `Client::spare_output`) however large.
const SPARE_OUTPUTS_MAX: usize = 256;
const SPARE_OUTPUT_BYTES_MAX: usize = 4 * OUTPUT_BYTES_INITIAL;

/// How long the exit path waits for cancelled operations to complete.
const QUIESCE_MS: Millis = 1_000;

/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the kernel
/// had to copy after all.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;

/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's `res`.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// Tuning of the io_uring backend (`--zc-threshold` and hidden flags that
/// the tests and the feature measurements use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UringOptions {
    /// Flights of at least this many bytes use `SEND_ZC`; 0 disables it.
    pub zc_threshold_bytes: usize,
    /// A connection whose zero-copy notification says the kernel copied
    /// anyway (loopback, a NIC without scatter-gather) sends plainly from
    /// then on: zero-copy costs more than a copy when it copies.
    pub zc_fallback: bool,
    /// Provided receive buffers (a power of two, at most 32 768).
    pub recv_buffers: u16,
    pub recv_buffer_bytes: u32,
    /// Receive with one multishot `RECV` per client (else one per arrival).
    pub multishot_recv: bool,
    /// Receive into the provided-buffer ring (else straight into each
    /// connection's input buffer, one-shot).
    pub provided_buffers: bool,
    /// Ask for `DEFER_TASKRUN` (with `SINGLE_ISSUER`).
    pub defer_taskrun: bool,
    /// Accept into direct descriptors (slots of a registered file table)
    /// and name sockets by slot (`IOSQE_FIXED_FILE`).
    pub direct_descriptors: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            zc_threshold_bytes: ZC_THRESHOLD_BYTES_DEFAULT,
            zc_fallback: true,
            recv_buffers: RECV_BUFFERS_DEFAULT,
            recv_buffer_bytes: RECV_BUFFER_BYTES_DEFAULT,
            multishot_recv: true,
            provided_buffers: true,
            defer_taskrun: true,
            direct_descriptors: true,
        }
    }
}

impl UringOptions {
    /// Turns off the features named in a comma-separated list
    /// (`multishot-recv`, `provided-buffers`, `defer-taskrun`, `zc`,
    /// `zc-fallback`, `direct-descriptors`), for measuring what each one
    /// contributes.
    pub fn disable(&mut self, list: &str) -> Result<(), String> {
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "multishot-recv" => self.multishot_recv = false,
                "provided-buffers" => self.provided_buffers = false,
                "defer-taskrun" => self.defer_taskrun = false,
                "zc" => self.zc_threshold_bytes = 0,
                "zc-fallback" => self.zc_fallback = false,
                "direct-descriptors" => self.direct_descriptors = false,
                "none" => {}
                _ => {
                    return Err(format!(
                        "'{name}' is not one of: multishot-recv, provided-buffers, defer-taskrun, zc, zc-fallback, direct-descriptors, none"
                    ))
                }
            }
        }
        Ok(())
    }
}

pub struct Uring {
    ring: IoUring,
    capabilities: Capabilities,
}

impl Backend for Uring {
    const NAME: &'static str = "io_uring";

    fn new(config: &LoopConfig) -> io::Result<Self> {
        let (ring, capabilities) = setup::build(SQ_ENTRIES, CQ_ENTRIES, config.uring.defer_taskrun)?;
        Ok(Uring { ring, capabilities })
    }

    fn run(mut self, context: LoopContext) -> io::Result<()> {
        setup::enable(&self.ring, &self.capabilities)?;
        let options = &context.config.uring;
        let multishot = self.capabilities.multishot_accept;
        let buffers = if options.provided_buffers && multishot {
            let ring = BufRing::new(options.recv_buffers, options.recv_buffer_bytes, BUFFER_GROUP)
                .and_then(|buffers| buffers.register(&self.ring.submitter()).map(|()| buffers));
            match ring {
                Ok(buffers) => Some(buffers),
                Err(err) => {
                    log::warn(format_args!("io_uring: no provided-buffer ring ({err}); receiving one-shot"));
                    None
                }
            }
        } else {
            None
        };
        let direct_descriptors = options.direct_descriptors && multishot && {
            match self.ring.submitter().register_files_sparse(direct_descriptor_slots()) {
                Ok(()) => true,
                Err(err) => {
                    log::warn(format_args!("io_uring: no registered file table ({err}); ordinary descriptors"));
                    false
                }
            }
        };
        let features = Features {
            multishot_accept: multishot,
            direct_descriptors,
            multishot_recv: options.multishot_recv && self.capabilities.send_zc && buffers.is_some(),
            zc_threshold_bytes: if self.capabilities.send_zc { options.zc_threshold_bytes } else { 0 },
            zc_fallback: options.zc_fallback,
        };
        if context.config.verbose {
            log::info(format_args!(
                "io_uring: {}; accept {}{}; receive {}; SEND_ZC {}",
                self.capabilities.describe(),
                if features.multishot_accept { "multishot" } else { "one-shot" },
                if features.direct_descriptors { " into direct descriptors" } else { "" },
                match (&buffers, features.multishot_recv) {
                    (Some(b), true) => format!("multishot, {} buffers of {} B", b.count(), b.buffer_bytes()),
                    (Some(b), false) => format!("one-shot, {} buffers of {} B", b.count(), b.buffer_bytes()),
                    (None, _) => "one-shot into connection buffers".into(),
                },
                match features.zc_threshold_bytes {
                    0 => "off".into(),
                    bytes => format!("from {bytes} B"),
                },
            ));
        }
        let (mut submitter, sq, cq) = self.ring.split();
        // Saves the kernel a file-table lookup per enter; optional.
        let _ = submitter.register_ring_fd();
        let mut reactor = Reactor::new(submitter, sq, cq, context, buffers, features);
        let served = reactor.serve();
        reactor.quiesce();
        served
    }
}

/// What this ring does, settled at start.
#[derive(Debug, Clone, Copy)]
struct Features {
    multishot_accept: bool,
    /// Accepted sockets live in the ring's file table, not the process's.
    direct_descriptors: bool,
    multishot_recv: bool,
    zc_threshold_bytes: usize,
    zc_fallback: bool,
}

/// The operation a CQE completes, from its `user_data`: kind in the top
/// byte, a 24-bit generation, the slot index in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Cancellations and closes: nothing to do on completion.
    Ignore,
    Accept {
        listener: usize,
    },
    Recv {
        client: usize,
        generation: u32,
    },
    Send {
        flight: usize,
        generation: u32,
    },
    StopPoll,
}

const GENERATION_MASK: u32 = (1 << 24) - 1;

impl Op {
    fn encode(self) -> u64 {
        let (kind, generation, index) = match self {
            Op::Ignore => (0u64, 0, 0),
            Op::Accept { listener } => (1, 0, listener),
            Op::Recv { client, generation } => (2, generation, client),
            Op::Send { flight, generation } => (3, generation, flight),
            Op::StopPoll => (4, 0, 0),
        };
        debug_assert!(index <= u32::MAX as usize);
        kind << 56 | u64::from(generation & GENERATION_MASK) << 32 | (index as u64 & u64::from(u32::MAX))
    }

    fn decode(user_data: u64) -> Op {
        let generation = (user_data >> 32) as u32 & GENERATION_MASK;
        let index = (user_data & u64::from(u32::MAX)) as usize;
        match user_data >> 56 {
            1 => Op::Accept { listener: index },
            2 => Op::Recv { client: index, generation },
            3 => Op::Send { flight: index, generation },
            4 => Op::StopPoll,
            _ => Op::Ignore,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Idle,
    Armed,
    /// A cancel was queued; the last CQE has not arrived yet.
    Cancelling,
}

struct Client {
    conn: Conn,
    /// Closed with a `CLOSE` SQE once no operation uses it.
    socket: Option<ClientSocket>,
    target: Target,
    generation: u32,
    tcp: bool,
    recv: RecvState,
    /// With receives into the core's own buffer: where the armed receive
    /// writes, to verify the core kept it still.
    recv_space_at: usize,
    /// The flight carrying this client's replies, while in the kernel.
    sending: Option<usize>,
    /// The buffer the next flight trades with the core's output: the last
    /// flight's, back from the kernel. Two buffers per client, each keeping
    /// the capacity its replies needed, as epoll's single buffer does.
    spare_output: Vec<u8>,
    /// The in-kernel send was asked to cancel (the client is closing).
    send_cancelled: bool,
    /// Received bytes the core did not take yet (backpressure); fed back
    /// before any newer byte. Bounded by what the kernel delivered before
    /// the receive's cancellation took effect.
    stash: Vec<u8>,
    stash_taken: usize,
    /// The peer's FIN arrived; the core hears of it once the stash is empty.
    peer_closed: bool,
    peer_close_told: bool,
    /// Plain sends only: SEND_ZC failed on this socket, or the kernel
    /// reported copying anyway (with `zc_fallback`).
    zc_refused: bool,
    end: Option<ClientEnd>,
    dirty: bool,
}

impl Client {
    fn stash_is_empty(&self) -> bool {
        self.stash_taken == self.stash.len()
    }
}

/// Reply bytes the kernel is sending (or has sent, awaiting the zero-copy
/// notification). The bytes are never touched while the flight exists.
struct Flight {
    bytes: Vec<u8>,
    sent: usize,
    target: Target,
    client: usize,
    client_generation: u32,
    generation: u32,
    zc: bool,
    /// A send SQE of this flight has not completed yet.
    in_kernel: bool,
    /// Zero-copy notifications still to come.
    notifications_pending: u32,
    /// No more sends will be issued for it.
    done: bool,
}

/// An accepted socket, owned by the loop until its `CLOSE` is queued.
enum ClientSocket {
    /// An ordinary descriptor in the process's file table.
    Plain(OwnedFd),
    /// A slot of the ring's registered file table: no syscall can name it,
    /// and the ring closes it if the loop does not.
    Direct(u32),
}

impl ClientSocket {
    fn target(&self) -> Target {
        match self {
            ClientSocket::Plain(socket) => Target::Fd(socket.as_raw_fd()),
            ClientSocket::Direct(slot) => Target::Direct(*slot),
        }
    }
}

/// How SQEs name a socket.
#[derive(Debug, Clone, Copy)]
enum Target {
    Fd(RawFd),
    Direct(u32),
}

impl Target {
    /// The SQE `build` makes for an ordinary descriptor; for a direct one
    /// the same SQE with the slot in the descriptor field and
    /// `IOSQE_FIXED_FILE`, which spares the kernel a file-table lookup and
    /// reference count per operation.
    fn sqe(self, build: impl FnOnce(Fd) -> squeue::Entry) -> squeue::Entry {
        match self {
            Target::Fd(fd) => build(Fd(fd)),
            Target::Direct(slot) => build(Fd(slot as RawFd)).flags(SqeFlags::FIXED_FILE),
        }
    }
}

/// Slots of the registered file table: one per descriptor the process may
/// open (`RLIMIT_NOFILE`), so direct descriptors admit as many clients as
/// ordinary ones would, up to the kernel's table limit.
fn direct_descriptor_slots() -> u32 {
    const SLOTS_MAX: u64 = 1 << 20;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the call's duration.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if known {
        limit.rlim_cur.clamp(64, SLOTS_MAX) as u32
    } else {
        1024
    }
}

struct ListenSocket {
    socket: Listener,
    armed: bool,
    /// An accept error ended the multishot: re-arm at the next tick rather
    /// than spin on a persistent error (EMFILE).
    retry_at_tick: bool,
}

impl ListenSocket {
    fn fd(&self) -> RawFd {
        match &self.socket {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    fn is_tcp(&self) -> bool {
        matches!(self.socket, Listener::Tcp(_))
    }
}

struct Reactor<'r> {
    submitter: Submitter<'r>,
    sq: SubmissionQueue<'r>,
    cq: CompletionQueue<'r>,
    /// SQEs that did not fit the submission queue; they go first next time.
    backlog: Vec<squeue::Entry>,
    engine: Engine,
    clock: Clock,
    config: LoopConfig,
    features: Features,
    buffers: Option<BufRing>,
    listeners: Vec<Option<ListenSocket>>,
    stop: StopSignal,
    stop_armed: bool,
    clients: Slab<Client>,
    flights: Slab<Flight>,
    conn_pool: Vec<Conn>,
    spare_outputs: Vec<Vec<u8>>,
    /// Clients to service this turn; `starved` (receives ended by ENOBUFS)
    /// go first so a busy client cannot keep the ring to itself.
    dirty: Vec<usize>,
    starved: Vec<usize>,
    next_generation: u32,
    stop_deadline: Option<Millis>,
    /// Something the kernel may still write into could not be proven idle
    /// at exit: leak instead of freeing.
    leak_on_drop: bool,
}

impl<'r> Reactor<'r> {
    fn new(
        submitter: Submitter<'r>,
        sq: SubmissionQueue<'r>,
        cq: CompletionQueue<'r>,
        context: LoopContext,
        buffers: Option<BufRing>,
        features: Features,
    ) -> Self {
        let LoopContext { engine, clock, listeners, stop, config } = context;
        let listeners = listeners
            .into_iter()
            .map(|socket| Some(ListenSocket { socket, armed: false, retry_at_tick: false }))
            .collect();
        Reactor {
            submitter,
            sq,
            cq,
            backlog: Vec::new(),
            engine,
            clock,
            config,
            features,
            buffers,
            listeners,
            stop,
            stop_armed: false,
            clients: Slab::new(),
            flights: Slab::new(),
            conn_pool: Vec::new(),
            spare_outputs: Vec::new(),
            dirty: Vec::new(),
            starved: Vec::new(),
            next_generation: 0,
            stop_deadline: None,
            leak_on_drop: false,
        }
    }

    fn serve(&mut self) -> io::Result<()> {
        for listener in self.listeners.iter().flatten() {
            if let (Listener::Tcp(socket), true) = (&listener.socket, self.features.direct_descriptors) {
                // A direct descriptor takes no setsockopt: accepted sockets
                // inherit TCP_NODELAY from their listener instead.
                socket2::SockRef::from(socket).set_tcp_nodelay(true)?;
            }
        }
        for index in 0..self.listeners.len() {
            self.arm_accept(index);
        }
        self.arm_stop_poll();
        let mut next_tick = self.clock.now_ms() + EXPIRY_TICK_MS;
        loop {
            let now = self.clock.now_ms();
            let wake_at = self.stop_deadline.map_or(next_tick, |deadline| deadline.min(next_tick));
            self.submit_and_wait(wake_at.saturating_sub(now))?;
            let now = self.clock.now_ms();
            self.reap(now);
            self.service_dirty(now);
            if now >= next_tick {
                self.engine.tick(now);
                next_tick = now + EXPIRY_TICK_MS;
                self.retry_accepts();
            }
            if let Some(deadline) = self.stop_deadline {
                if self.clients.is_empty() || now >= deadline {
                    return Ok(());
                }
            }
        }
    }

    // ---- submission ------------------------------------------------------

    /// Queues an SQE for the next enter.
    ///
    /// # Safety
    /// Every buffer `entry` points at must stay valid, and untouched by the
    /// loop where the kernel writes it, until the operation's last CQE.
    unsafe fn push(&mut self, entry: squeue::Entry) {
        if self.backlog.is_empty() {
            // SAFETY: forwarded from the caller.
            if unsafe { self.sq.push(&entry) }.is_ok() {
                return;
            }
            // Full: submit what is queued (no wait) and try once more.
            self.sq.sync();
            if let Err(err) = self.submitter.submit() {
                log::warn(format_args!("io_uring: early submit failed: {err}"));
            }
            self.sq.sync();
            // SAFETY: as above.
            if unsafe { self.sq.push(&entry) }.is_ok() {
                return;
            }
        }
        self.backlog.push(entry);
    }

    /// Moves backlogged SQEs into the queue, as many as fit.
    fn drain_backlog(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        self.sq.sync();
        let room = self.sq.capacity() - self.sq.len();
        let moving = room.min(self.backlog.len());
        // SAFETY: backlogged entries were queued by `push`, whose callers
        // keep their buffers valid until completion.
        if unsafe { self.sq.push_multiple(&self.backlog[..moving]) }.is_ok() {
            self.backlog.drain(..moving);
        }
    }

    /// The turn's single `io_uring_enter`: submits everything queued and
    /// waits up to `wait_ms` for a completion.
    fn submit_and_wait(&mut self, wait_ms: Millis) -> io::Result<()> {
        self.drain_backlog();
        self.sq.sync();
        let timeout = Timespec::new().sec(wait_ms / 1000).nsec((wait_ms % 1000) as u32 * 1_000_000);
        let args = SubmitArgs::new().timespec(&timeout);
        match self.submitter.submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            // ETIME: the tick is due. EINTR: a signal (the stop poll will
            // report it). EBUSY/EAGAIN: completions or memory must drain
            // first; the next turn submits again.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn arm_accept(&mut self, index: usize) {
        if self.stop_deadline.is_some() {
            return;
        }
        let multishot = self.features.multishot_accept;
        let Some(Some(listener)) = self.listeners.get_mut(index) else { return };
        if listener.armed {
            return;
        }
        listener.armed = true;
        listener.retry_at_tick = false;
        let fd = Fd(listener.fd());
        let entry = if multishot && self.features.direct_descriptors {
            // No SOCK_CLOEXEC: the kernel refuses it for direct descriptors,
            // which no exec can inherit anyway.
            opcode::AcceptMulti::new(fd).allocate_file_index(true).build()
        } else if multishot {
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut()).flags(libc::SOCK_CLOEXEC).build()
        };
        // SAFETY: accept writes no peer address (null pointers); no buffer.
        unsafe { self.push(entry.user_data(Op::Accept { listener: index }.encode())) };
    }

    fn retry_accepts(&mut self) {
        for index in 0..self.listeners.len() {
            if matches!(&self.listeners[index], Some(l) if l.retry_at_tick) {
                self.arm_accept(index);
            }
        }
    }

    fn arm_stop_poll(&mut self) {
        if self.stop_armed {
            return;
        }
        self.stop_armed = true;
        let entry = opcode::PollAdd::new(Fd(self.stop.as_raw_fd()), libc::POLLIN as u32).multi(true).build();
        // SAFETY: a poll references no memory.
        unsafe { self.push(entry.user_data(Op::StopPoll.encode())) };
    }

    fn cancel(&mut self, op: Op) {
        let entry = opcode::AsyncCancel::new(op.encode()).build().user_data(Op::Ignore.encode());
        // SAFETY: a cancellation references no memory.
        unsafe { self.push(entry) };
    }

    // ---- completions -----------------------------------------------------

    /// Handles every completion available, then gives recycled receive
    /// buffers back to the kernel in one store.
    fn reap(&mut self, now: Millis) {
        // New CQEs appear only inside an enter (DEFER_TASKRUN) or from task
        // work; a few rounds pick up stragglers without looping forever.
        for _ in 0..4 {
            self.cq.sync();
            if self.cq.is_empty() {
                break;
            }
            while let Some(cqe) = self.cq.next() {
                self.complete(cqe.user_data(), cqe.result(), cqe.flags(), now);
            }
        }
        self.cq.sync();
        if let Some(buffers) = &mut self.buffers {
            buffers.publish();
        }
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32, now: Millis) {
        match Op::decode(user_data) {
            Op::Ignore => {}
            Op::Accept { listener } => self.on_accept(listener, result, flags),
            Op::Recv { client, generation } => self.on_recv(client, generation, result, flags, now),
            Op::Send { flight, generation } => self.on_send(flight, generation, result, flags, now),
            Op::StopPoll => self.on_stop_poll(flags, now),
        }
    }

    fn on_accept(&mut self, index: usize, result: i32, flags: u32) {
        let Some(Some(listener)) = self.listeners.get_mut(index) else {
            // The listener was closed at stop; a connection it still took
            // is closed unread.
            if result >= 0 {
                let socket = self.accepted(result);
                self.close(socket);
            }
            return;
        };
        let ended = !cqueue::more(flags);
        if ended {
            listener.armed = false;
        }
        let tcp = listener.is_tcp();
        if result >= 0 {
            let socket = self.accepted(result);
            self.admit(socket, tcp);
        } else if result != -libc::ECANCELED {
            // EMFILE, ENFILE, ECONNABORTED…: the listener stays up.
            log::warn(format_args!("accept failed: {}", io::Error::from_raw_os_error(-result)));
            if ended {
                listener.retry_at_tick = true;
                return;
            }
        }
        if ended {
            self.arm_accept(index);
        }
    }

    /// The socket an accept completion (`result >= 0`) reports.
    fn accepted(&self, result: i32) -> ClientSocket {
        if self.features.direct_descriptors {
            ClientSocket::Direct(result as u32)
        } else {
            // SAFETY: the kernel just created this descriptor for us and
            // nothing else owns it.
            ClientSocket::Plain(unsafe { OwnedFd::from_raw_fd(result) })
        }
    }

    /// A new connection. Past `max_clients` it is closed at once, unread
    /// (§3.5).
    fn admit(&mut self, socket: ClientSocket, tcp: bool) {
        if self.stop_deadline.is_some() || !self.config.admits_another_client(&mut self.engine) {
            self.close(socket);
            return;
        }
        if let (ClientSocket::Plain(socket), true) = (&socket, tcp) {
            let _ = socket2::SockRef::from(socket).set_tcp_nodelay(true);
        }
        let mut conn = self.conn_pool.pop().unwrap_or_default();
        conn.reset();
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let target = socket.target();
        let key = self.clients.insert(Client {
            conn,
            socket: Some(socket),
            target,
            generation,
            tcp,
            recv: RecvState::Idle,
            recv_space_at: 0,
            sending: None,
            spare_output: Vec::new(),
            send_cancelled: false,
            stash: Vec::new(),
            stash_taken: 0,
            peer_closed: false,
            peer_close_told: false,
            zc_refused: false,
            end: None,
            dirty: false,
        });
        self.engine.stats.client_connected();
        if self.config.verbose {
            log::info(format_args!("client {key} connected"));
        }
        mark_dirty(&mut self.dirty, &mut self.clients[key], key);
    }

    fn on_recv(&mut self, key: usize, generation: u32, result: i32, flags: u32, now: Millis) {
        let buffer_id = cqueue::buffer_select(flags);
        let Some(client) = self.clients.get_mut(key).filter(|c| c.generation == generation) else {
            // Cannot happen (a slot outlives its receive); stay safe anyway.
            debug_assert!(false, "receive completion for a released client");
            if let (Some(buffers), Some(id)) = (&mut self.buffers, buffer_id) {
                buffers.recycle(id);
            }
            return;
        };
        if !cqueue::more(flags) {
            client.recv = RecvState::Idle;
        }
        let engine = &mut self.engine;
        match result {
            received if received > 0 => {
                let received = received as usize;
                match (buffer_id, &mut self.buffers) {
                    (Some(id), Some(buffers)) => {
                        match buffers.take(id, received) {
                            Some(bytes) => deliver(client, bytes, engine, now),
                            None => {
                                fail(client, key, io::Error::other("receive buffer out of range"), engine, &self.config)
                            }
                        }
                        buffers.recycle(id);
                    }
                    (None, None) => {
                        // Received straight into the core's input buffer.
                        let space = client.conn.recv_space();
                        if space.as_ptr() as usize != client.recv_space_at || received > space.len() {
                            let err = io::Error::other("input buffer moved under a receive");
                            debug_assert!(false, "{err}");
                            fail(client, key, err, engine, &self.config);
                        } else if client.end.is_none() {
                            client.conn.on_received(received, engine, now);
                        }
                    }
                    _ => fail(client, key, io::Error::other("receive without its buffer"), engine, &self.config),
                }
            }
            0 => {
                client.peer_closed = true;
                if let (Some(id), Some(buffers)) = (buffer_id, &mut self.buffers) {
                    buffers.recycle(id);
                }
            }
            error => {
                if let (Some(id), Some(buffers)) = (buffer_id, &mut self.buffers) {
                    buffers.recycle(id);
                }
                match -error {
                    libc::ENOBUFS => {
                        engine.stats.recv_buffers_exhausted += 1;
                        self.starved.push(key);
                    }
                    libc::ECANCELED => {}
                    errno => fail(client, key, io::Error::from_raw_os_error(errno), engine, &self.config),
                }
            }
        }
        let client = &mut self.clients[key];
        mark_dirty(&mut self.dirty, client, key);
    }

    fn on_send(&mut self, key: usize, generation: u32, result: i32, flags: u32, now: Millis) {
        let Some(flight) = self.flights.get_mut(key).filter(|f| f.generation == generation) else {
            debug_assert!(false, "send completion for a retired flight");
            return;
        };
        if cqueue::notif(flags) {
            flight.notifications_pending = flight.notifications_pending.saturating_sub(1);
            if result as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                self.engine.stats.zc_copied += 1;
                let owner = self.clients.get_mut(flight.client).filter(|c| c.generation == flight.client_generation);
                if let (Some(owner), true) = (owner, self.features.zc_fallback) {
                    owner.zc_refused = true;
                }
            }
            self.retire_if_idle(key);
            return;
        }
        flight.in_kernel = false;
        if cqueue::more(flags) {
            flight.notifications_pending += 1;
        }
        let client_key = flight.client;
        let Some(client) = self.clients.get_mut(client_key).filter(|c| c.generation == flight.client_generation) else {
            debug_assert!(false, "a client slot was released with its send in the kernel");
            flight.done = true;
            self.retire_if_idle(key);
            return;
        };
        debug_assert_eq!(client.sending, Some(key));
        let resend = if result >= 0 {
            let sent = (result as usize).min(flight.bytes.len() - flight.sent);
            flight.sent += sent;
            client.conn.on_handed_off_sent(sent, &mut self.engine, now);
            // MSG_WAITALL makes short sends rare; send the rest from the
            // same, still untouched, buffer.
            flight.sent < flight.bytes.len() && client.end.is_none()
        } else if -result == libc::EOPNOTSUPP && flight.zc && client.end.is_none() {
            // This socket cannot do zero-copy: plain sends from now on.
            client.zc_refused = true;
            flight.zc = false;
            true
        } else {
            if -result != libc::ECANCELED {
                fail(client, client_key, io::Error::from_raw_os_error(-result), &mut self.engine, &self.config);
            }
            false
        };
        if !resend {
            flight.done = true;
            client.sending = None;
        }
        mark_dirty(&mut self.dirty, client, client_key);
        if resend {
            self.push_send(key);
        } else {
            self.retire_if_idle(key);
        }
    }

    fn on_stop_poll(&mut self, flags: u32, now: Millis) {
        if !cqueue::more(flags) {
            self.stop_armed = false;
        }
        if self.stop_deadline.is_none() && self.stop.is_raised() {
            self.begin_stop(now);
        } else if self.stop_deadline.is_none() {
            self.arm_stop_poll();
        }
    }

    /// Stops accepting and asks every client to flush what it owes.
    fn begin_stop(&mut self, now: Millis) {
        self.stop_deadline = Some(now + self.config.stop_flush_ms);
        for index in 0..self.listeners.len() {
            if let Some(listener) = self.listeners[index].take() {
                if listener.armed {
                    self.cancel(Op::Accept { listener: index });
                }
                // Closing our descriptor is safe with an accept in flight:
                // the kernel holds its own reference until the cancel lands.
                drop(listener);
            }
        }
        for (key, client) in self.clients.iter_mut() {
            client.conn.drain();
            mark_dirty(&mut self.dirty, client, key);
        }
    }

    // ---- per-client service ----------------------------------------------

    fn service_dirty(&mut self, now: Millis) {
        let mut starved = std::mem::take(&mut self.starved);
        let mut dirty = std::mem::take(&mut self.dirty);
        for &key in starved.iter().chain(dirty.iter()) {
            self.service(key, now);
        }
        starved.clear();
        dirty.clear();
        self.starved = starved;
        self.dirty = dirty;
    }

    /// Moves one client's state forward: stashed input, the peer's FIN,
    /// replies to the kernel, the close decision, then the receive.
    fn service(&mut self, key: usize, now: Millis) {
        let Some(client) = self.clients.get_mut(key) else { return };
        if !client.dirty {
            return;
        }
        client.dirty = false;
        let engine = &mut self.engine;
        if client.end.is_none() {
            feed_stash(client, engine, now);
            if client.peer_closed && !client.peer_close_told && client.stash_is_empty() {
                client.peer_close_told = true;
                client.conn.on_peer_closed(engine, now);
            }
            if let Some(reason) = client.conn.close_reason() {
                end_client(client, key, ClientEnd::Closed(reason), engine, &self.config);
            } else if client.sending.is_none() && !client.conn.output().is_empty() {
                self.start_send(key);
            }
        }
        let client = &mut self.clients[key];
        let wants_recv = client.end.is_none()
            && !client.peer_closed
            && client.stash_is_empty()
            && client.conn.wants_input()
            && self.stop_deadline.is_none();
        match client.recv {
            RecvState::Idle if wants_recv => self.arm_recv(key),
            RecvState::Armed if !wants_recv => {
                client.recv = RecvState::Cancelling;
                let generation = client.generation;
                self.cancel(Op::Recv { client: key, generation });
            }
            _ => {}
        }
        let client = &mut self.clients[key];
        if client.end.is_some() {
            if let (Some(flight), false) = (client.sending, client.send_cancelled) {
                client.send_cancelled = true;
                let generation = self.flights[flight].generation;
                self.cancel(Op::Send { flight, generation });
            }
            let client = &self.clients[key];
            if client.recv == RecvState::Idle && client.sending.is_none() {
                self.release(key);
            }
        }
    }

    fn arm_recv(&mut self, key: usize) {
        let multishot = self.features.multishot_recv;
        let client = &mut self.clients[key];
        let user_data = Op::Recv { client: key, generation: client.generation }.encode();
        let entry = match &self.buffers {
            Some(buffers) if multishot => client.target.sqe(|fd| opcode::RecvMulti::new(fd, buffers.group()).build()),
            Some(buffers) => client.target.sqe(|fd| {
                opcode::Recv::new(fd, std::ptr::null_mut(), buffers.buffer_bytes())
                    .buf_group(buffers.group())
                    .build()
                    .flags(SqeFlags::BUFFER_SELECT)
            }),
            None => {
                let space = client.conn.recv_space();
                client.recv_space_at = space.as_ptr() as usize;
                client.target.sqe(|fd| opcode::Recv::new(fd, space.as_mut_ptr(), space.len() as u32).build())
            }
        };
        client.recv = RecvState::Armed;
        // SAFETY: a provided-buffer receive writes only buffers the ring
        // lends it (see `bufring`). A receive into `recv_space` writes the
        // core's input buffer past its filled part: that heap buffer lives as
        // long as the `Conn`, which stays in this slot until the receive's
        // last CQE (a slot is released only with `recv == Idle`), and the
        // core never writes past its filled part, nor moves it while the
        // part is non-empty; `on_recv` checks the address before use.
        unsafe { self.push(entry.user_data(user_data)) };
    }

    /// Hands the client's replies to the kernel in a new flight.
    fn start_send(&mut self, key: usize) {
        let client = &mut self.clients[key];
        let mut bytes = std::mem::take(&mut client.spare_output);
        if bytes.capacity() == 0 {
            bytes = self.spare_outputs.pop().unwrap_or_else(|| Vec::with_capacity(OUTPUT_BYTES_INITIAL));
        }
        client.conn.hand_off_output(&mut bytes);
        let threshold = self.features.zc_threshold_bytes;
        let zc = threshold > 0 && client.tcp && !client.zc_refused && bytes.len() >= threshold;
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let flight = self.flights.insert(Flight {
            bytes,
            sent: 0,
            target: client.target,
            client: key,
            client_generation: client.generation,
            generation,
            zc,
            in_kernel: false,
            notifications_pending: 0,
            done: false,
        });
        client.sending = Some(flight);
        self.push_send(flight);
    }

    /// Queues a send of the flight's unsent bytes.
    fn push_send(&mut self, key: usize) {
        let flight = &mut self.flights[key];
        flight.in_kernel = true;
        let unsent = &flight.bytes[flight.sent..];
        let (address, len) = (unsent.as_ptr(), unsent.len() as u32);
        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
        let entry = if flight.zc {
            self.engine.stats.zc_sends += 1;
            flight
                .target
                .sqe(|fd| opcode::SendZc::new(fd, address, len).flags(flags).zc_flags(SEND_ZC_REPORT_USAGE).build())
        } else {
            flight.target.sqe(|fd| opcode::Send::new(fd, address, len).flags(flags).build())
        };
        let user_data = Op::Send { flight: key, generation: flight.generation }.encode();
        // SAFETY: the bytes belong to the flight, which owns them in its own
        // heap allocation (a slab growing moves the `Vec`, not its bytes).
        // Nothing writes or frees them until `retire_if_idle` has seen this
        // send's completion and every zero-copy notification.
        unsafe { self.push(entry.user_data(user_data)) };
    }

    /// Frees a flight once the kernel can no longer read its bytes.
    fn retire_if_idle(&mut self, key: usize) {
        let flight = &self.flights[key];
        if !flight.done || flight.in_kernel || flight.notifications_pending > 0 {
            return;
        }
        let Flight { mut bytes, client, client_generation, .. } = self.flights.remove(key);
        bytes.clear();
        match self.clients.get_mut(client) {
            Some(owner) if owner.generation == client_generation && owner.spare_output.capacity() == 0 => {
                if owner.conn.output().is_empty() {
                    // No reply written since the hand-off: give the core back
                    // the buffer the kernel just read, still in cache, so the
                    // next replies are written where the last ones were, as on
                    // epoll. The core's empty buffer becomes the spare.
                    owner.conn.hand_off_output(&mut bytes);
                }
                owner.spare_output = bytes;
            }
            _ => self.keep_spare(bytes),
        }
    }

    /// Keeps a modest buffer for a future client.
    fn keep_spare(&mut self, mut bytes: Vec<u8>) {
        if self.spare_outputs.len() < SPARE_OUTPUTS_MAX && bytes.capacity() <= SPARE_OUTPUT_BYTES_MAX {
            bytes.clear();
            self.spare_outputs.push(bytes);
        }
    }

    /// Frees a slot whose operations have all completed, and closes its
    /// socket through the ring.
    fn release(&mut self, key: usize) {
        let mut client = self.clients.remove(key);
        debug_assert!(client.recv == RecvState::Idle && client.sending.is_none());
        if let Some(socket) = client.socket.take() {
            self.close(socket);
        }
        if self.conn_pool.len() < CONN_POOL_MAX {
            self.conn_pool.push(client.conn);
        }
        self.keep_spare(client.spare_output);
    }

    /// Queues the socket's `CLOSE`; no operation of ours may use it any more.
    fn close(&mut self, socket: ClientSocket) {
        let entry = match socket {
            ClientSocket::Plain(socket) => opcode::Close::new(Fd(socket.into_raw_fd())),
            ClientSocket::Direct(slot) => opcode::Close::new(Fixed(slot)),
        };
        // SAFETY: a close references no memory; the descriptor is ours.
        unsafe { self.push(entry.build().user_data(Op::Ignore.encode())) };
    }

    /// Cancels everything still in the kernel and waits, bounded, for the
    /// last completions, so no buffer is freed while the kernel may use it.
    fn quiesce(&mut self) {
        let now = self.clock.now_ms();
        if self.stop_deadline.is_none() {
            self.stop_deadline = Some(now);
        }
        let keys: Vec<usize> = self.clients.iter().map(|(key, _)| key).collect();
        for key in keys {
            let client = &mut self.clients[key];
            if client.end.is_none() {
                // Past the stop deadline: the rest is not flushed, as on epoll.
                client.end = Some(ClientEnd::Closed(CloseReason::Finished));
                self.engine.stats.client_disconnected();
            }
            mark_dirty(&mut self.dirty, client, key);
        }
        let entry = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(Op::Ignore.encode());
        // SAFETY: a cancellation references no memory.
        unsafe { self.push(entry) };
        self.service_dirty(now);
        let deadline = now + QUIESCE_MS;
        while !self.is_idle() && self.clock.now_ms() < deadline {
            let wait = deadline.saturating_sub(self.clock.now_ms());
            if self.submit_and_wait(wait).is_err() {
                break;
            }
            let now = self.clock.now_ms();
            self.reap(now);
            self.service_dirty(now);
        }
        if let (true, Some(buffers)) = (self.is_idle(), &self.buffers) {
            let _ = self.submitter.unregister_buf_ring(buffers.group());
        }
        self.drain_backlog();
        self.sq.sync();
        let _ = self.submitter.submit();
        if !self.is_idle() {
            log::warn(format_args!("io_uring: operations still in the kernel at exit; leaking their buffers"));
            self.leak_on_drop = true;
        }
        if self.config.verbose {
            let stats = &self.engine.stats;
            log::info(format_args!(
                "io_uring: {} zero-copy sends, {} copied by the kernel; {} receives ran out of buffers",
                stats.zc_sends, stats.zc_copied, stats.recv_buffers_exhausted
            ));
        }
    }

    /// No operation that references loop memory is in the kernel.
    fn is_idle(&self) -> bool {
        self.clients.is_empty() && self.flights.is_empty()
    }
}

impl Drop for Reactor<'_> {
    fn drop(&mut self) {
        if self.leak_on_drop {
            // The kernel may still write into these: never free them.
            std::mem::forget(self.buffers.take());
            std::mem::forget(std::mem::take(&mut self.flights));
            std::mem::forget(std::mem::take(&mut self.clients));
        }
    }
}

fn mark_dirty(dirty: &mut Vec<usize>, client: &mut Client, key: usize) {
    if !client.dirty {
        client.dirty = true;
        dirty.push(key);
    }
}

/// Offers received bytes to the core; what it does not take waits in the
/// stash, behind anything already there.
fn deliver(client: &mut Client, bytes: &[u8], engine: &mut Engine, now: Millis) {
    if client.end.is_some() {
        return;
    }
    let taken = if client.stash_is_empty() { client.conn.ingest(bytes, engine, now) } else { 0 };
    if taken < bytes.len() {
        if client.stash_is_empty() {
            client.stash.clear();
            client.stash_taken = 0;
        }
        client.stash.extend_from_slice(&bytes[taken..]);
    }
}

/// Feeds stashed bytes to the core while it wants them.
fn feed_stash(client: &mut Client, engine: &mut Engine, now: Millis) {
    while !client.stash_is_empty() && client.conn.wants_input() {
        let taken = client.conn.ingest(&client.stash[client.stash_taken..], engine, now);
        if taken == 0 {
            break;
        }
        client.stash_taken += taken;
    }
    if client.stash_is_empty() {
        client.stash.clear();
        client.stash_taken = 0;
    }
}

fn fail(client: &mut Client, key: usize, err: io::Error, engine: &mut Engine, config: &LoopConfig) {
    end_client(client, key, ClientEnd::Failed(err), engine, config);
}

/// Records why a client ends (once); the slot is released when its
/// operations have completed.
fn end_client(client: &mut Client, key: usize, end: ClientEnd, engine: &mut Engine, config: &LoopConfig) {
    if client.end.is_some() {
        return;
    }
    end.record(key, engine, config.verbose);
    client.end = Some(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for op in [
            Op::Ignore,
            Op::Accept { listener: 3 },
            Op::Recv { client: u32::MAX as usize, generation: GENERATION_MASK },
            Op::Send { flight: 7, generation: 12_345 },
            Op::StopPoll,
        ] {
            assert_eq!(Op::decode(op.encode()), op);
        }
    }

    #[test]
    fn features_can_be_turned_off_by_name() {
        let mut options = UringOptions::default();
        options.disable("multishot-recv, zc").unwrap();
        assert!(!options.multishot_recv && options.provided_buffers && options.defer_taskrun);
        assert_eq!(options.zc_threshold_bytes, 0);
        assert!(options.zc_fallback);
        options.disable("zc-fallback").unwrap();
        assert!(!options.zc_fallback);
        assert!(options.disable("sqpoll").is_err());
    }
}
