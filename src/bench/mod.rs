//! `fkvs-benchmark`: a load generator that is compatible with upstream's
//! flags and output (PROTOCOL.md §6, §7.2) and built not to be the
//! bottleneck.
//!
//! # Shape of a run
//!
//! 1. [`args`]: flags → a validated [`args::Config`].
//! 2. [`control`]: one blocking [`crate::client::Client`] checks the server
//!    is reachable, reads its pid and key count from INFO, and preloads the
//!    keys `get`/`mixed` will read (pipelined, not timed).
//! 3. All `-c` connections are opened (non-blocking,
//!    [`crate::client::nonblocking`]) and dealt round-robin to `--threads`
//!    workers (default: one per CPU in the affinity mask, each pinned to one
//!    of them).
//! 4. [`counters`] opens perf-event counters for this process (inherited by
//!    the workers) and for every thread of the server; then the start gate
//!    opens and CPU baselines are taken.
//! 5. Each [`worker`] drives its connections from one epoll loop
//!    ([`poll`]), closed loop with `-P` pipelining or open loop at `-R`.
//! 6. Results are merged and rendered by [`report`]: upstream's lines, the
//!    extended table, `-q`, or `--json`.
//!
//! # Files
//!
//! | file | owns |
//! |---|---|
//! | `args.rs` | flags, upstream adjustments, validation |
//! | `affinity.rs` | the allowed CPU set, pinning |
//! | `workload.rs` | workloads, key schemes, frame templates, [`workload::RequestGen`] |
//! | `random.rs` | SplitMix64, uniform and Zipfian key choice |
//! | `control.rs` | INFO facts and the preload |
//! | `conn.rs` | one connection: buffers, counts, reply parsing |
//! | `worker.rs` | the per-thread event loop, both load models |
//! | `poll.rs` | edge-triggered epoll with nanosecond timeouts |
//! | `clock.rs` | the shared nanosecond time base |
//! | `latency.rs` | HdrHistogram recording and upstream-style percentiles |
//! | `counters.rs` | perf events, `/proc` schedstat, the process CPU clock |
//! | `progress.rs` | the terminal progress bar |
//! | `report.rs` | the results and their text and JSON forms |
//!
//! # What a request costs the client (back of the envelope)
//!
//! Per pipelined batch of `P` requests on one connection (closed loop): one
//! `write` (≈1.5 µs on loopback TCP, most of it the kernel delivering to the
//! server's socket), one share of an `epoll_pwait2` (≈0.5 µs, amortised over
//! every connection ready at once), one `read` (≈1 µs), two clock reads
//! (≈40 ns) and one histogram record (≈3 ns). Per request, measured by
//! `benches/protocol.rs`: writing the frame costs 0.16 ns for a constant
//! workload (one `memcpy` per batch), 4.7 ns with a unique 32-hex key, 10 ns
//! with a uniform key-space key (17 ns in the same run when the 12 digits
//! were written one division at a time) and 37 ns with a Zipfian one (a
//! `powf`; measured with one-digit decimals);
//! splitting and decoding its reply ≈2 ns. So ≈3 µs/P plus a few ns per
//! request: ≈3 µs at P=1 (about what the server spends, so one client core
//! can only just keep one server core busy at P=1) and ≈25 ns at P=128.
//!
//! On loopback TCP the kernel dominates both sides: the sender's `write`
//! also pays for delivering into the receiver's socket, so the client's
//! system time includes work done on the server's behalf and vice versa
//! (measured: ≈60 ns/req on each side for SET at P=128, 90% of it `sys`).
//! `strace -c` of that run shows exactly one `sendto` and one `recvfrom` per
//! batch and one `epoll_pwait2` per ≈30 batches. No allocation happens in
//! the timed section except when an open-loop backlog outgrows a
//! connection's initial buffers. The report prints the measured figures
//! (process CPU clock, and perf task-clock) as "Client CPU … ns/req", so the
//! headroom is visible, not assumed.

pub mod affinity;
pub mod args;
pub mod clock;
pub mod conn;
pub mod control;
pub mod counters;
pub mod latency;
pub mod poll;
pub mod progress;
pub mod random;
pub mod report;
pub mod worker;
pub mod workload;

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use clap::Parser;

use args::{Args, Config};
use clock::Clock;
use conn::Conn;
use control::{Control, ControlError};
use counters::{schedstat_cpu_ns, Counters, CpuTimes};
use latency::LatencyRecorder;
use progress::{Progress, WorkerProgress};
use report::{
    counter_values, per_request, ClientReport, ConfigReport, HardwareReport, LatencyReport, PreloadReport, Report,
    RequestCounts, SendLag, ServerReport, SCHEMA,
};
use worker::{Mode, Outcome, Settings, Worker};
use workload::{Workload, WorkloadError};

use crate::client::nonblocking::NonBlockingStream;
use crate::client::{ClientError, Endpoint};

/// Every request completed.
pub const EXIT_OK: u8 = 0;
/// Some request failed, or the server could not be reached.
pub const EXIT_FAILED: u8 = 1;
/// Bad flags.
pub const EXIT_USAGE: u8 = 2;

/// The open loop's schedule starts this long after the gate opens (§6.3).
const OPEN_LOOP_START_DELAY_NS: u64 = 2_000_000;
/// Initial send-buffer room of an open-loop connection, in frames.
const OPEN_LOOP_SEND_FRAMES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("{0} (is an fkvs server running there?)")]
    Unreachable(ClientError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("setting up a connection: {0}")]
    Connection(ClientError),
    #[error("cannot allocate a latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
}

impl From<ClientError> for BenchError {
    fn from(err: ClientError) -> BenchError {
        match err {
            ClientError::Connect { .. } => BenchError::Unreachable(err),
            other => BenchError::Connection(other),
        }
    }
}

/// The whole `fkvs-benchmark` program.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("fkvs-benchmark: {problem}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&config) {
        Ok(report) => {
            let text = if config.json {
                report.render_json()
            } else if config.quiet {
                report.render_quiet()
            } else {
                report.render_text()
            };
            print!("{text}");
            let requests = &report.requests;
            if requests.failed > 0 {
                eprintln!(
                    "fkvs-benchmark: {} of {} requests failed (first error: {})",
                    requests.failed,
                    requests.requested,
                    report.first_error.as_deref().unwrap_or("unknown")
                );
                return ExitCode::from(EXIT_FAILED);
            }
            ExitCode::from(EXIT_OK)
        }
        Err(err @ BenchError::Workload(_)) => {
            eprintln!("fkvs-benchmark: {err}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(err) => {
            eprintln!("fkvs-benchmark: {err}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Everything measured around the timed section.
struct Measured {
    outcomes: Vec<Outcome>,
    elapsed_ns: u64,
    client_cpu: CpuTimes,
    server_cpu_ns: Option<u64>,
}

/// Runs one benchmark; notices go to stderr as they arise.
pub fn run(config: &Config) -> Result<Report, BenchError> {
    let workload = Workload::new(config.workload.clone())?;
    let mut control = Control::connect(&config.endpoint, config.timeout)?;
    let facts = control.server_facts()?;
    let preloaded = if config.preload { control.preload(&workload)? } else { None };
    let mut notices = Vec::new();
    let (server_pid, pid_source) = server_pid(config, facts.pid, &mut notices);

    let conns = connect_all(config, &workload)?;
    let mut counters = if config.counters { Counters::open(server_pid) } else { Counters::none() };
    notices.append(&mut counters.notices);
    for notice in &notices {
        eprintln!("fkvs-benchmark: {notice}");
    }

    let measured = measure(config, conns, &mut counters, server_pid)?;
    let keys_after = control.server_facts().ok().and_then(|facts| facts.keys);

    let mut latency = LatencyRecorder::new()?;
    let mut send_lag = if config.rate.is_some() { Some(LatencyRecorder::new()?) } else { None };
    let (mut completed, mut failed, mut fail_replies) = (0, 0, 0);
    let mut first_error = None;
    for outcome in &measured.outcomes {
        if let Some(recorded) = &outcome.latency {
            latency.merge(recorded);
        }
        if let (Some(total), Some(recorded)) = (&mut send_lag, &outcome.send_lag) {
            total.merge(recorded);
        }
        completed += outcome.completed;
        failed += outcome.failed;
        fail_replies += outcome.fail_replies;
        if first_error.is_none() {
            first_error.clone_from(&outcome.first_error);
        }
    }
    let elapsed_s = measured.elapsed_ns as f64 / 1e9;
    let throughput_rps = if elapsed_s > 0.0 { completed as f64 / elapsed_s } else { 0.0 };
    let client_cpu = measured.client_cpu;
    Ok(Report {
        schema: SCHEMA,
        config: ConfigReport {
            endpoint: config.endpoint.to_string(),
            workload: workload.spec().kind.to_string(),
            keys: workload.describe_keys(),
            value_bytes: workload.value().len(),
            clients: config.clients,
            threads: config.threads,
            pipeline: config.pipeline,
            rate_rps: config.rate,
            seed: config.workload.seed,
        },
        requests: RequestCounts { requested: config.requests, completed, failed, fail_replies },
        elapsed_s,
        throughput_rps,
        latency: LatencyReport {
            measures: if config.rate.is_some() { "intended_send_to_reply" } else { "batch_round_trip" },
            percentiles: "lowest_equivalent",
            summary: latency.summary(),
            target_rps: config.rate,
            achieved_rps: config.rate.map(|_| throughput_rps),
            send_lag: send_lag.map(|recorder| SendLag::from(recorder.summary())),
        },
        preload: preloaded.map(|p| PreloadReport { keys: p.keys, seconds: p.elapsed.as_secs_f64() }),
        client: ClientReport {
            cpu_s: client_cpu.total_ns() as f64 / 1e9,
            cpu_user_s: client_cpu.user_ns as f64 / 1e9,
            cpu_system_s: client_cpu.system_ns as f64 / 1e9,
            cpu_ns_per_request: per_request(client_cpu.total_ns() as f64, completed),
            counters: counter_values(counters.read_client(), completed),
        },
        server: ServerReport {
            pid: server_pid,
            pid_source,
            cpu_s: measured.server_cpu_ns.map(|ns| ns as f64 / 1e9),
            cpu_ns_per_request: measured.server_cpu_ns.and_then(|ns| per_request(ns as f64, completed)),
            counters: counter_values(counters.read_server(), completed),
            keys_before: facts.keys,
            keys_after,
        },
        hardware_counters: HardwareReport {
            available: config.counters && counters.hardware_unavailable.is_none(),
            reason: match (&counters.hardware_unavailable, config.counters) {
                (_, false) => Some("perf counters disabled (--no-counters)".into()),
                (reason, true) => reason.clone(),
            },
        },
        notices,
        first_error,
    })
}

/// The server pid to measure: `--server-pid`, else INFO's for a server on
/// this machine whose process is visible here.
fn server_pid(
    config: &Config,
    info_pid: Option<u32>,
    notices: &mut Vec<String>,
) -> (Option<u32>, Option<&'static str>) {
    if let Some(pid) = config.server_pid {
        return (Some(pid), Some("flag"));
    }
    let Some(pid) = info_pid else {
        notices.push("INFO carries no pid; server CPU not measured (see --server-pid)".into());
        return (None, None);
    };
    if !is_local(&config.endpoint) {
        return (None, None);
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        notices.push(format!("server pid {pid} (from INFO) is not visible here; server CPU not measured"));
        return (None, None);
    }
    (Some(pid), Some("info"))
}

fn is_local(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(_) => true,
        Endpoint::Tcp { host, .. } => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        }
    }
}

/// One worker's share of the connections, with their global indices.
#[derive(Default)]
struct Share<'w> {
    conns: Vec<Conn<'w>>,
    ids: Vec<u64>,
}

/// Opens every connection and deals them round-robin to the workers.
fn connect_all<'w>(config: &Config, workload: &'w Workload) -> Result<Vec<Share<'w>>, BenchError> {
    let frames = if config.rate.is_some() { OPEN_LOOP_SEND_FRAMES } else { config.pipeline as usize };
    let send_capacity = frames * workload.frame_bytes_max();
    let mut per_thread: Vec<Share<'w>> = (0..config.threads).map(|_| Share::default()).collect();
    let mut unique_offset = 0u64;
    for client in 0..config.clients {
        let stream = NonBlockingStream::connect(&config.endpoint)?;
        let quota = config.quota(client);
        let conn = Conn::new(stream, workload.generator(client, unique_offset), quota, send_capacity);
        unique_offset = unique_offset.wrapping_add(quota);
        let share = &mut per_thread[(client % config.threads as u64) as usize];
        share.conns.push(conn);
        share.ids.push(client);
    }
    Ok(per_thread)
}

/// Spawns the workers, opens the gate, waits for them, and brackets the
/// timed section with CPU readings.
fn measure(
    config: &Config,
    per_thread: Vec<Share<'_>>,
    counters: &mut Counters,
    server_pid: Option<u32>,
) -> Result<Measured, BenchError> {
    let clock = Clock::start();
    let gate = Gate::default();
    let gate_ns = AtomicU64::new(0);
    let published: Vec<WorkerProgress> = (0..per_thread.len()).map(|_| WorkerProgress::default()).collect();
    let settings = Settings {
        mode: match config.rate {
            Some(rate) => Mode::Open { period_ns: 1e9 / rate, clients: config.clients },
            None => Mode::Closed { pipeline: config.pipeline },
        },
        timeout: config.timeout,
    };
    let pin = config.cpus.len() > 1;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Outcome>();
        let mut spawned = 0;
        for (index, Share { conns, ids }) in per_thread.into_iter().enumerate() {
            let open_loop = config.rate.is_some();
            let recorders = LatencyRecorder::new().and_then(|latency| {
                let send_lag = if open_loop { Some(LatencyRecorder::new()?) } else { None };
                Ok((latency, send_lag))
            });
            let (latency, send_lag) = match recorders {
                Ok(recorders) => recorders,
                Err(err) => {
                    gate.open(Phase::Abort);
                    return Err(err.into());
                }
            };
            let cpu = config.cpus.get(index % config.cpus.len().max(1)).copied();
            let (sender, gate, gate_ns, published) = (sender.clone(), &gate, &gate_ns, &published[index]);
            let body = move || {
                if let (true, Some(cpu)) = (pin, cpu) {
                    affinity::pin_current_thread(cpu);
                }
                if matches!(settings.mode, Mode::Open { .. }) {
                    worker::tighten_timer_slack();
                }
                let quota: u64 = conns.iter().map(|c| c.quota).sum();
                let worker = Worker::new(conns, ids, clock, settings, latency, send_lag, &published.0);
                if !gate.arrive() {
                    return;
                }
                let start_ns = gate_ns.load(Ordering::Acquire) + OPEN_LOOP_START_DELAY_NS;
                let outcome = match worker {
                    Ok(worker) => worker.run(start_ns),
                    Err(err) => Outcome::setup_failed(quota, clock.now_ns(), format!("worker {index}: epoll: {err}")),
                };
                let _ = sender.send(outcome);
            };
            let spawn = std::thread::Builder::new().name(format!("fkvs-bench-{index}")).spawn_scoped(scope, body);
            if let Err(err) = spawn {
                gate.open(Phase::Abort);
                return Err(BenchError::Thread(err));
            }
            spawned += 1;
        }
        drop(sender);
        gate.wait_for(spawned);
        let cpu_before = CpuTimes::now();
        let server_before = server_pid.and_then(schedstat_cpu_ns);
        counters.enable();
        let opened_ns = clock.now_ns();
        gate_ns.store(opened_ns, Ordering::Release);
        gate.open(Phase::Go);

        let mut progress = Progress::new(!config.quiet && !config.json, config.requests);
        let mut outcomes = Vec::with_capacity(spawned);
        while outcomes.len() < spawned {
            match receiver.recv_timeout(progress::REFRESH) {
                Ok(outcome) => outcomes.push(outcome),
                Err(RecvTimeoutError::Timeout) => progress.update(&published),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        counters.disable();
        let client_cpu = CpuTimes::now().since(cpu_before);
        let server_cpu_ns = match (server_before, server_pid.and_then(schedstat_cpu_ns)) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        progress.finish();
        let finished_ns = outcomes.iter().map(|o| o.finished_ns).max().unwrap_or(opened_ns);
        Ok(Measured { outcomes, elapsed_ns: finished_ns.saturating_sub(opened_ns), client_cpu, server_cpu_ns })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Go,
    Abort,
}

/// The start gate: workers arrive once their set-up is done and wait for
/// the main thread to take its baselines and say go (or abort).
struct Gate {
    state: Mutex<(usize, Phase)>,
    changed: Condvar,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate { state: Mutex::new((0, Phase::Waiting)), changed: Condvar::new() }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, (usize, Phase)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns true to run, false to abort.
    fn arrive(&self) -> bool {
        let mut state = self.lock();
        state.0 += 1;
        self.changed.notify_all();
        while state.1 == Phase::Waiting {
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.1 == Phase::Go
    }

    fn wait_for(&self, workers: usize) {
        let mut state = self.lock();
        while state.0 < workers {
            state = self.changed.wait_timeout(state, Duration::from_secs(1)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn open(&self, phase: Phase) {
        self.lock().1 = phase;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoints() {
        let tcp = |host: &str| Endpoint::Tcp { host: host.into(), port: 1 };
        assert!(is_local(&tcp("127.0.0.1")));
        assert!(is_local(&tcp("localhost")));
        assert!(is_local(&tcp("::1")));
        assert!(is_local(&Endpoint::Unix("/tmp/x".into())));
        assert!(!is_local(&tcp("10.1.2.3")));
    }
}
