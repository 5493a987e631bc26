//! CPU accounting for the benchmark itself and for the server process.
//!
//! Three sources, from most to least detailed:
//!
//! * **perf events** (`perf-event2`): software counters (task-clock,
//!   context switches, CPU migrations, page faults) always, hardware counters
//!   (instructions, cycles, cache and branch misses) where the machine
//!   exposes them. The client's counters are opened on the main thread with
//!   `inherit` *before* the worker threads exist, so they count every thread.
//!   Counting a pid counts one thread only, so the server gets one counter
//!   per `/proc/PID/task/*` entry (also with `inherit`, for threads it starts
//!   later), summed. Kernel time is included when permitted; otherwise the
//!   counters fall back to user space only and say so. A hardware counter
//!   that cannot be opened (ENOENT on most VMs, EOPNOTSUPP, EACCES) produces
//!   one notice line and the run carries on with software counters.
//! * **`/proc/PID/task/*/schedstat`** (first field: ns on CPU), summed over
//!   the server's threads: cheap, needs no permission, the cross-check.
//! * **the process CPU clock** and **`getrusage(RUSAGE_SELF)`**: the
//!   benchmark's own CPU time (exact total) and its user/system split, all
//!   threads.
//!
//! Counters are enabled just before the start gate opens and disabled once
//! the last worker is done, so set-up and preload are not counted.

use std::fs;
use std::io;

use perf_event::events::{Hardware, Software};
use perf_event::{Builder, Counter};
use serde::Serialize;

/// Test hook: when set to `1`, opening a hardware counter fails with ENOENT
/// without calling `perf_event_open`, exercising the fallback on any machine.
pub const FAKE_HW_ENOENT_ENV: &str = "FKVS_BENCH_FAKE_HW_ENOENT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    TaskClock,
    ContextSwitches,
    CpuMigrations,
    PageFaults,
    Instructions,
    Cycles,
    CacheMisses,
    BranchMisses,
}

impl Metric {
    pub const SOFTWARE: [Metric; 4] =
        [Metric::TaskClock, Metric::ContextSwitches, Metric::CpuMigrations, Metric::PageFaults];
    pub const HARDWARE: [Metric; 4] = [Metric::Instructions, Metric::Cycles, Metric::CacheMisses, Metric::BranchMisses];

    /// The name `perf stat` uses.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TaskClock => "task-clock",
            Metric::ContextSwitches => "context-switches",
            Metric::CpuMigrations => "cpu-migrations",
            Metric::PageFaults => "page-faults",
            Metric::Instructions => "instructions",
            Metric::Cycles => "cycles",
            Metric::CacheMisses => "cache-misses",
            Metric::BranchMisses => "branch-misses",
        }
    }

    /// The JSON key (the unit is part of the name where there is one).
    pub fn key(self) -> &'static str {
        match self {
            Metric::TaskClock => "task_clock_ns",
            Metric::ContextSwitches => "context_switches",
            Metric::CpuMigrations => "cpu_migrations",
            Metric::PageFaults => "page_faults",
            Metric::Instructions => "instructions",
            Metric::Cycles => "cycles",
            Metric::CacheMisses => "cache_misses",
            Metric::BranchMisses => "branch_misses",
        }
    }

    fn builder(self) -> Builder<'static> {
        match self {
            Metric::TaskClock => Builder::new(Software::TASK_CLOCK),
            Metric::ContextSwitches => Builder::new(Software::CONTEXT_SWITCHES),
            Metric::CpuMigrations => Builder::new(Software::CPU_MIGRATIONS),
            Metric::PageFaults => Builder::new(Software::PAGE_FAULTS),
            Metric::Instructions => Builder::new(Hardware::INSTRUCTIONS),
            Metric::Cycles => Builder::new(Hardware::CPU_CYCLES),
            Metric::CacheMisses => Builder::new(Hardware::CACHE_MISSES),
            Metric::BranchMisses => Builder::new(Hardware::BRANCH_MISSES),
        }
    }

    fn is_hardware(self) -> bool {
        Metric::HARDWARE.contains(&self)
    }
}

/// Whose counters these are.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// This process, all threads created after opening (inherit).
    SelfInherit,
    /// Every thread of another process.
    Process(u32),
}

/// The counters of one process.
struct Scope {
    metrics: Vec<(Metric, Vec<Counter>)>,
    kernel_included: bool,
}

/// Counters of the client and (optionally) the server, and what could not
/// be opened.
pub struct Counters {
    client: Option<Scope>,
    server: Option<Scope>,
    /// Why hardware counters are missing, if they are.
    pub hardware_unavailable: Option<String>,
    /// One line per thing that could not be measured.
    pub notices: Vec<String>,
}

/// Totals over the timed section; `None` where a counter never ran.
pub type Readings = Vec<(Metric, Option<f64>)>;

impl Counters {
    /// Opens the client's counters and, with `server_pid`, the server's.
    /// Must run before the worker threads start.
    pub fn open(server_pid: Option<u32>) -> Counters {
        let fake_enoent = std::env::var_os(FAKE_HW_ENOENT_ENV).is_some_and(|v| v == "1");
        let mut counters = Counters { client: None, server: None, hardware_unavailable: None, notices: Vec::new() };
        let (client, hw_error) = open_scope(Target::SelfInherit, fake_enoent);
        counters.note_scope("client", &client, hw_error);
        counters.client = client.ok();
        if let Some(pid) = server_pid {
            let (server, hw_error) = open_scope(Target::Process(pid), fake_enoent);
            counters.note_scope("server", &server, hw_error);
            counters.server = server.ok();
        }
        counters
    }

    /// No perf counters at all (`--no-counters`).
    pub fn none() -> Counters {
        Counters { client: None, server: None, hardware_unavailable: None, notices: Vec::new() }
    }

    fn note_scope(&mut self, who: &str, scope: &Result<Scope, io::Error>, hw_error: Option<(Metric, io::Error)>) {
        match scope {
            Err(err) => {
                self.notices.push(format!(
                    "perf counters for the {who} unavailable ({}); using {} instead",
                    explain(err),
                    if who == "server" { "/proc schedstat" } else { "the process CPU clock" }
                ));
                // No scope, so no hardware counters either (no second notice).
                self.hardware_unavailable
                    .get_or_insert_with(|| format!("no perf counters for the {who}: {}", explain(err)));
            }
            Ok(scope) if !scope.kernel_included => {
                self.notices.push(format!("perf counters for the {who} count user space only (kernel not permitted)"))
            }
            Ok(_) => {}
        }
        if let Some((metric, err)) = hw_error {
            if self.hardware_unavailable.is_none() {
                let reason = format!("{}: {}", metric.name(), explain(&err));
                self.notices.push(format!("hardware perf counters unavailable ({reason}); software counters only"));
                self.hardware_unavailable = Some(reason);
            }
        }
    }

    pub fn enable(&mut self) {
        for scope in [&mut self.client, &mut self.server].into_iter().flatten() {
            for counter in scope.metrics.iter_mut().flat_map(|(_, counters)| counters.iter_mut()) {
                let _ = counter.reset();
                let _ = counter.enable();
            }
        }
    }

    pub fn disable(&mut self) {
        for scope in [&mut self.client, &mut self.server].into_iter().flatten() {
            for counter in scope.metrics.iter_mut().flat_map(|(_, counters)| counters.iter_mut()) {
                let _ = counter.disable();
            }
        }
    }

    pub fn read_client(&mut self) -> Option<Readings> {
        self.client.as_mut().map(read_scope)
    }

    pub fn read_server(&mut self) -> Option<Readings> {
        self.server.as_mut().map(read_scope)
    }
}

/// Opens every metric for `target`. The error is the software failure
/// (nothing usable); the second value is the first hardware failure.
fn open_scope(target: Target, fake_enoent: bool) -> (Result<Scope, io::Error>, Option<(Metric, io::Error)>) {
    let threads = match target {
        Target::SelfInherit => vec![0],
        Target::Process(pid) => match process_threads(pid) {
            Ok(threads) => threads,
            Err(err) => return (Err(err), None),
        },
    };
    let mut kernel_included = true;
    let mut metrics = Vec::new();
    let mut hw_error = None;
    for metric in Metric::SOFTWARE.into_iter().chain(Metric::HARDWARE) {
        if metric.is_hardware() && hw_error.is_some() {
            continue;
        }
        let opened = if metric.is_hardware() && fake_enoent {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        } else {
            open_metric(metric, target, &threads, &mut kernel_included)
        };
        match opened {
            Ok(counters) => metrics.push((metric, counters)),
            Err(err) if metric.is_hardware() => hw_error = Some((metric, err)),
            Err(err) if metric == Metric::TaskClock => return (Err(err), None),
            // A secondary software event missing: skip just that one.
            Err(_) => {}
        }
    }
    (Ok(Scope { metrics, kernel_included }), hw_error)
}

/// One counter per thread; retries without kernel counting when that is
/// what is refused.
fn open_metric(
    metric: Metric,
    target: Target,
    threads: &[i32],
    kernel_included: &mut bool,
) -> io::Result<Vec<Counter>> {
    let mut counters = Vec::with_capacity(threads.len());
    for &tid in threads {
        let mut builder = metric.builder();
        builder.inherit(true).any_cpu().exclude_hv(true);
        match target {
            Target::SelfInherit => builder.observe_self(),
            Target::Process(_) => builder.observe_pid(tid),
        };
        if *kernel_included {
            builder.include_kernel();
        }
        let counter = match builder.build() {
            Err(err) if *kernel_included && is_permission(&err) => {
                *kernel_included = false;
                builder.exclude_kernel(true).build()
            }
            other => other,
        };
        match counter {
            Ok(counter) => counters.push(counter),
            // A thread that exited between listing and opening.
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) && counters.len() + 1 < threads.len() => {}
            Err(err) => return Err(err),
        }
    }
    Ok(counters)
}

fn read_scope(scope: &mut Scope) -> Readings {
    scope
        .metrics
        .iter_mut()
        .map(|(metric, counters)| {
            let mut total = 0.0;
            let mut ran = false;
            for counter in counters.iter_mut() {
                let Ok(reading) = counter.read_count_and_time() else { continue };
                if reading.time_running == 0 {
                    continue;
                }
                ran = true;
                // Scale for multiplexing (hardware counters only share PMU
                // slots; software counters always run).
                total += reading.count as f64 * reading.time_enabled as f64 / reading.time_running as f64;
            }
            (*metric, ran.then_some(total))
        })
        .collect()
}

fn is_permission(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// The reason in words, with the errno.
fn explain(err: &io::Error) -> String {
    let why = match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => "not exposed by this machine",
        Some(libc::EACCES) | Some(libc::EPERM) => "not permitted, see /proc/sys/kernel/perf_event_paranoid",
        Some(libc::ESRCH) => "no such process",
        Some(libc::ENOSYS) => "perf_event_open is not available",
        _ => "",
    };
    if why.is_empty() {
        err.to_string()
    } else {
        format!("{why}: {err}")
    }
}

/// The thread ids of `pid`.
fn process_threads(pid: u32) -> io::Result<Vec<i32>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|name| name.parse().ok()) {
            threads.push(tid);
        }
    }
    if threads.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(threads)
}

/// Nanoseconds on CPU of every thread of `pid`, from
/// `/proc/PID/task/*/schedstat` (first field). A thread that exits between
/// two readings drops out of the second, so this suits long-lived threads
/// such as a server's event loops.
pub fn schedstat_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    let mut any = false;
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else { continue };
        if let Some(ns) = text.split_whitespace().next().and_then(|field| field.parse::<u64>().ok()) {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

/// CPU time of this process, all threads: the total from the process CPU
/// clock (`CLOCK_PROCESS_CPUTIME_ID`, the scheduler's runtime), and the
/// user/system split from `getrusage` (tick-sampled, scaled to that total).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuTimes {
    pub user_ns: u64,
    pub system_ns: u64,
    pub process_ns: u64,
}

impl CpuTimes {
    pub fn now() -> CpuTimes {
        let mut times = CpuTimes::default();
        // SAFETY: `getrusage` fills the zeroed struct we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; RUSAGE_SELF is always valid.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
            times.user_ns = ns(usage.ru_utime);
            times.system_ns = ns(usage.ru_stime);
        }
        let mut clock = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `clock_gettime` writes the timespec we own.
        times.process_ns = if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut clock) } == 0 {
            clock.tv_sec as u64 * 1_000_000_000 + clock.tv_nsec as u64
        } else {
            times.user_ns + times.system_ns
        };
        times
    }

    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            system_ns: self.system_ns.saturating_sub(earlier.system_ns),
            process_ns: self.process_ns.saturating_sub(earlier.process_ns),
        }
    }

    /// The exact total.
    pub fn total_ns(self) -> u64 {
        self.process_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_reads_this_process() {
        // Other test threads come and go, so only presence is stable here.
        if std::path::Path::new("/proc/self/task").exists() {
            assert!(schedstat_cpu_ns(std::process::id()).is_some_and(|ns| ns > 0));
        }
        assert_eq!(schedstat_cpu_ns(u32::MAX), None);
    }

    #[test]
    fn errors_are_explained() {
        assert!(explain(&io::Error::from_raw_os_error(libc::ENOENT)).starts_with("not exposed by this machine"));
        assert!(explain(&io::Error::from_raw_os_error(libc::EACCES)).contains("perf_event_paranoid"));
    }
}
