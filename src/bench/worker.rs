//! One worker thread: an epoll loop driving many connections, closed or
//! open loop.
//!
//! **Closed loop** (default, upstream's model): each connection writes a
//! batch of `min(P, unsent)` requests with one `write`, waits until all of
//! its replies are in, records the batch's round trip (from just before the
//! `write` to the read that completed the batch) and writes the next batch.
//! Connections are independent, so while one waits the others keep the
//! server busy.
//!
//! **Open loop** (`-R RATE`): every request has an intended send time fixed
//! before the run, upstream's schedule `start + (i·C + t)/RATE` for request
//! `i` of connection `t` of `C` (§6.3). A per-thread cursor walks this
//! thread's connections in intended-time order; each turn it queues every
//! request that is due (late ones included) into its connection's buffer,
//! flushes each touched connection with one `write`, then waits on epoll
//! until the next intended time (`epoll_pwait2`, with timer slack set to
//! 1 ns, wakes [`OPEN_LOOP_SPIN_NS`] early and spins on zero-timeout waits
//! for the rest, so replies are read while spinning). Sends are never held
//! back by outstanding replies, so the request stream does not slow down
//! when the server does: each reply is charged from its request's *intended*
//! time, which is what removes coordinated omission. A connection holds at
//! most [`OPEN_LOOP_IN_FLIGHT_MAX`] unanswered requests; past that the cursor
//! waits, and the waiting still counts against the late requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::clock::Clock;
use super::conn::{Conn, ConnError};
use super::latency::LatencyRecorder;
use super::poll::{Poller, BROKEN, READABLE, WRITABLE};

/// The longest single wait: timeouts are checked and progress is published
/// at least this often.
const TICK: Duration = Duration::from_millis(50);
/// The open loop wakes this long before an intended send time and spins.
pub const OPEN_LOOP_SPIN_NS: u64 = 50_000;
/// Unanswered requests one open-loop connection may hold.
pub const OPEN_LOOP_IN_FLIGHT_MAX: u64 = 4096;
/// Requests queued per open-loop turn before replies are read again.
const OPEN_LOOP_SENDS_PER_TURN: usize = 1024;

/// How a worker drives its connections.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed { pipeline: u64 },
    Open { period_ns: f64, clients: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub mode: Mode,
    pub timeout: Duration,
}

/// What a worker hands back.
pub struct Outcome {
    pub completed: u64,
    pub failed: u64,
    pub fail_replies: u64,
    /// `None` when the worker never ran.
    pub latency: Option<LatencyRecorder>,
    /// Open loop: how late each request was queued after its intended
    /// time, i.e. the client's own scheduling lag.
    pub send_lag: Option<LatencyRecorder>,
    /// When the last connection finished, on the shared clock.
    pub finished_ns: u64,
    pub broken_connections: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    /// A worker that could not start: all of its requests failed.
    pub fn setup_failed(quota: u64, now_ns: u64, error: String) -> Outcome {
        Outcome {
            completed: 0,
            failed: quota,
            fail_replies: 0,
            latency: None,
            send_lag: None,
            finished_ns: now_ns,
            broken_connections: 0,
            first_error: Some(error),
        }
    }
}

/// Open-loop wake-ups should be punctual: the default timer slack (50 µs)
/// would blur every intended send time. Best effort.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

pub struct Worker<'w, 'p> {
    conns: Vec<Conn<'w>>,
    /// Each connection's index among all connections (its `t`).
    conn_ids: Vec<u64>,
    poller: Poller,
    clock: Clock,
    settings: Settings,
    latency: LatencyRecorder,
    send_lag: Option<LatencyRecorder>,
    progress: &'p AtomicU64,
    live: usize,
    /// Replies received plus requests failed, published as progress.
    done: u64,
    failed: u64,
    broken: u64,
    first_error: Option<String>,
    last_tick_ns: u64,
}

impl<'w, 'p> Worker<'w, 'p> {
    /// Registers the connections. `conn_ids[i]` is the global index of
    /// `conns[i]`, ascending.
    pub fn new(
        conns: Vec<Conn<'w>>,
        conn_ids: Vec<u64>,
        clock: Clock,
        settings: Settings,
        latency: LatencyRecorder,
        send_lag: Option<LatencyRecorder>,
        progress: &'p AtomicU64,
    ) -> std::io::Result<Worker<'w, 'p>> {
        let poller = Poller::new(conns.len())?;
        for (token, conn) in conns.iter().enumerate() {
            poller.add(conn.fd(), token, READABLE)?;
        }
        let live = conns.len();
        Ok(Worker {
            conns,
            conn_ids,
            poller,
            clock,
            settings,
            latency,
            send_lag,
            progress,
            live,
            done: 0,
            failed: 0,
            broken: 0,
            first_error: None,
            last_tick_ns: 0,
        })
    }

    /// Runs to completion. `start_ns` is when the open loop's schedule
    /// begins.
    pub fn run(mut self, start_ns: u64) -> Outcome {
        for token in 0..self.conns.len() {
            if self.conns[token].quota == 0 {
                self.retire(token);
            }
        }
        let result = match self.settings.mode {
            Mode::Closed { pipeline } => self.run_closed(pipeline),
            Mode::Open { period_ns, clients } => self.run_open(start_ns, period_ns, clients),
        };
        if let Err(err) = result {
            // The poller itself failed: nothing more can be driven.
            for token in 0..self.conns.len() {
                if !self.conns[token].finished() {
                    self.fail(token, ConnError::Io(std::io::Error::new(err.kind(), format!("epoll: {err}"))));
                }
            }
        }
        self.outcome()
    }

    fn outcome(self) -> Outcome {
        let completed = self.conns.iter().map(|c| c.answered).sum();
        let fail_replies = self.conns.iter().map(|c| c.fail_replies).sum();
        self.progress.store(self.done, Ordering::Relaxed);
        Outcome {
            completed,
            failed: self.failed,
            fail_replies,
            latency: Some(self.latency),
            send_lag: self.send_lag,
            finished_ns: self.clock.now_ns(),
            broken_connections: self.broken,
            first_error: self.first_error,
        }
    }

    fn run_closed(&mut self, pipeline: u64) -> std::io::Result<()> {
        for token in 0..self.conns.len() {
            if !self.conns[token].finished() {
                self.start_batch(token, pipeline);
            }
        }
        while self.live > 0 {
            let ready = self.poller.wait(TICK)?;
            for index in 0..ready {
                let event = self.poller.ready(index);
                self.service(event.token, event.flags);
                let conn = &self.conns[event.token];
                if !conn.closed && conn.sent > 0 && conn.in_flight() == 0 && !conn.has_pending_bytes() {
                    self.latency.record(conn.last_progress_ns.saturating_sub(conn.batch_sent_ns));
                    if conn.unsent() > 0 {
                        self.start_batch(event.token, pipeline);
                    } else if conn.finished() {
                        self.retire(event.token);
                    }
                }
            }
            self.tick();
        }
        Ok(())
    }

    /// Queues and writes the next closed-loop batch.
    fn start_batch(&mut self, token: usize, pipeline: u64) {
        let now_ns = self.clock.now_ns();
        let conn = &mut self.conns[token];
        let count = pipeline.min(conn.unsent());
        conn.queue_batch(count);
        conn.batch_sent_ns = now_ns;
        conn.last_progress_ns = now_ns;
        self.write(token);
    }

    fn run_open(&mut self, start_ns: u64, period_ns: f64, clients: u64) -> std::io::Result<()> {
        let rounds = self.conns.iter().map(|c| c.quota).max().unwrap_or(0);
        let mut cursor = Cursor { round: 0, slot: 0 };
        let mut dirty: Vec<usize> = Vec::with_capacity(self.conns.len());
        let mut is_dirty = vec![false; self.conns.len()];
        while self.live > 0 {
            let now_ns = self.clock.now_ns();
            let mut next_due = None;
            let mut stalled = false;
            let mut queued = 0;
            while let Some(token) = cursor.peek(&self.conns, rounds) {
                let due_ns = start_ns + ((cursor.round * clients + self.conn_ids[token]) as f64 * period_ns) as u64;
                if due_ns > now_ns || queued == OPEN_LOOP_SENDS_PER_TURN {
                    next_due = Some(due_ns);
                    break;
                }
                let conn = &mut self.conns[token];
                if conn.in_flight() >= OPEN_LOOP_IN_FLIGHT_MAX || conn.wants_write {
                    stalled = true;
                    break;
                }
                if conn.in_flight() == 0 {
                    conn.last_progress_ns = now_ns;
                }
                conn.queue_scheduled(due_ns);
                if let Some(send_lag) = &mut self.send_lag {
                    send_lag.record(now_ns - due_ns);
                }
                if !is_dirty[token] {
                    is_dirty[token] = true;
                    dirty.push(token);
                }
                queued += 1;
                cursor.advance(self.conns.len());
            }
            for token in dirty.drain(..) {
                is_dirty[token] = false;
                self.write(token);
            }
            let timeout = match next_due {
                Some(_) if queued == OPEN_LOOP_SENDS_PER_TURN => Duration::ZERO,
                Some(due_ns) if !stalled => {
                    let gap_ns = due_ns.saturating_sub(self.clock.now_ns());
                    Duration::from_nanos(gap_ns.saturating_sub(OPEN_LOOP_SPIN_NS)).min(TICK)
                }
                _ => TICK,
            };
            let ready = self.poller.wait(timeout)?;
            for index in 0..ready {
                let event = self.poller.ready(index);
                self.service(event.token, event.flags);
                let conn = &self.conns[event.token];
                if !conn.closed && conn.answered == conn.quota {
                    self.retire(event.token);
                }
            }
            self.tick();
        }
        Ok(())
    }

    /// Handles one readiness report: finish a partial write, read replies.
    fn service(&mut self, token: usize, flags: u32) {
        if self.conns[token].closed {
            return;
        }
        if flags & WRITABLE != 0 {
            self.write(token);
        }
        if flags & (READABLE | BROKEN) != 0 && !self.conns[token].closed {
            match self.conns[token].receive(&self.clock, &mut self.latency) {
                Ok(replies) => self.done += replies,
                Err(err) => self.fail(token, err),
            }
        }
    }

    /// Writes what the connection has queued; asks for write readiness if
    /// the socket did not take it all.
    fn write(&mut self, token: usize) {
        let conn = &mut self.conns[token];
        match conn.flush() {
            // Interest changes only when the state flips: a partial write
            // with no write interest yet, or a finished one that had it.
            Ok(all_written) if all_written == conn.wants_write => {
                conn.wants_write = !all_written;
                let interest = if all_written { READABLE } else { READABLE | WRITABLE };
                if let Err(err) = self.poller.modify(conn.fd(), token, interest) {
                    self.fail(token, ConnError::Io(err));
                }
            }
            Ok(_) => {}
            Err(err) => self.fail(token, err),
        }
    }

    /// Gives up on a connection: what it has not had answered fails.
    fn fail(&mut self, token: usize, err: ConnError) {
        let conn = &mut self.conns[token];
        if conn.closed {
            return;
        }
        let failed = conn.close();
        let _ = self.poller.remove(conn.fd());
        self.failed += failed;
        self.done += failed;
        self.broken += 1;
        self.live -= 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("connection {}: {err}", self.conn_ids[token]));
        }
    }

    /// A connection that has all its replies leaves the loop.
    fn retire(&mut self, token: usize) {
        let conn = &mut self.conns[token];
        conn.closed = true;
        let _ = self.poller.remove(conn.fd());
        self.live -= 1;
    }

    /// Publishes progress and checks reply timeouts, once per [`TICK`].
    fn tick(&mut self) {
        let now_ns = self.clock.now_ns();
        if now_ns.saturating_sub(self.last_tick_ns) < TICK.as_nanos() as u64 {
            return;
        }
        self.last_tick_ns = now_ns;
        self.progress.store(self.done, Ordering::Relaxed);
        let timeout_ns = super::clock::duration_ns(self.settings.timeout);
        for token in 0..self.conns.len() {
            let conn = &self.conns[token];
            if !conn.closed && conn.in_flight() > 0 && now_ns.saturating_sub(conn.last_progress_ns) > timeout_ns {
                self.fail(token, ConnError::TimedOut { seconds: self.settings.timeout.as_secs_f64() });
            }
        }
    }
}

/// The open loop's position in this thread's schedule: request `round` of
/// connection `slot`. Intended times grow with `(round, slot)` because the
/// connections are in ascending global order.
struct Cursor {
    round: u64,
    slot: usize,
}

impl Cursor {
    /// The next connection with a request still to send at this position,
    /// skipping connections that are done or broken.
    fn peek(&mut self, conns: &[Conn<'_>], rounds: u64) -> Option<usize> {
        while self.round < rounds {
            let conn = &conns[self.slot];
            if !conn.closed && self.round < conn.quota {
                return Some(self.slot);
            }
            self.advance(conns.len());
        }
        None
    }

    fn advance(&mut self, slots: usize) {
        self.slot += 1;
        if self.slot == slots {
            self.slot = 0;
            self.round += 1;
        }
    }
}
