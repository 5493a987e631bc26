//! The results of a run and their three renderings: upstream's text lines
//! (byte-compatible, so existing scripts still parse them), the extended
//! human table, the `-q` summary line, and `--json`.
//!
//! Text output, in order:
//!
//! ```text
//! Clients: 32  Total requests: 100000  Pipeline: 1
//! Completed: 100000  Failed: 0
//! Elapsed: 0.089054 s  Throughput: 112290.95 req/s
//!
//! Open-model latency (coordinated-omission corrected):       (-R only)
//!   Target rate : 50000 req/s   Achieved: 49975 req/s        (-R only)
//!   Samples     : 200000
//!   min         :      33.0 us
//!   p50 … p99.99, max, mean
//! ```
//!
//! The first three lines and the open-model block are upstream's (§6.4):
//! two spaces between fields, labels left-aligned in 12 characters, values
//! `%9.1f us`. In closed loop the block is headed `Closed-loop latency (round
//! trip of each pipelined batch):` and has no rate line. Then follows the
//! extended table (workload, replies, client and server CPU per request,
//! perf counters); none of its lines starts with `p50`, `p99` or
//! `Achieved:`, which upstream's `bench-sweep.sh` scrapes.
//!
//! `-q` prints exactly one line:
//! `<workload>  Throughput: <req/s> req/s  Completed: <n>  Failed: <n>  p50: <us> us  p99: <us> us`.
//!
//! The JSON schema is documented in `docs/performance.md` (`schema` is
//! `"fkvs-benchmark/1"`); every field is always present, `null` when it
//! could not be measured.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::counters::Metric;
use super::latency::LatencySummary;

pub const SCHEMA: &str = "fkvs-benchmark/1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub config: ConfigReport,
    pub requests: RequestCounts,
    pub elapsed_s: f64,
    pub throughput_rps: f64,
    pub latency: LatencyReport,
    pub preload: Option<PreloadReport>,
    pub client: ClientReport,
    pub server: ServerReport,
    pub hardware_counters: HardwareReport,
    pub notices: Vec<String>,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub endpoint: String,
    pub workload: String,
    pub keys: String,
    pub value_bytes: usize,
    pub clients: u64,
    pub threads: usize,
    pub pipeline: u64,
    /// Open-loop target in requests/s; `null` in closed loop.
    pub rate_rps: Option<f64>,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RequestCounts {
    pub requested: u64,
    /// Replies received, whatever they were (upstream's definition).
    pub completed: u64,
    /// Requests that got no reply (the connection broke or timed out).
    pub failed: u64,
    /// Completed requests whose reply was FAIL (e.g. a GET miss).
    pub fail_replies: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// `"batch_round_trip"` (closed loop: from the write of a pipelined
    /// batch to its last reply) or `"intended_send_to_reply"` (open loop).
    pub measures: &'static str,
    /// How percentiles are picked from the histogram.
    pub percentiles: &'static str,
    #[serde(flatten)]
    pub summary: LatencySummary,
    /// Open loop: the target and achieved rates.
    pub target_rps: Option<f64>,
    pub achieved_rps: Option<f64>,
    /// Open loop: how late requests left the client after their intended
    /// time (the client's own scheduling lag, included in the latency).
    pub send_lag: Option<SendLag>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct SendLag {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl From<LatencySummary> for SendLag {
    fn from(summary: LatencySummary) -> SendLag {
        SendLag { p50_us: summary.p50_us, p99_us: summary.p99_us, max_us: summary.max_us }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PreloadReport {
    pub keys: u64,
    pub seconds: f64,
}

/// One counter: the total over the timed section and per completed request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CounterValue {
    pub total: f64,
    pub per_request: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// The process CPU clock over the timed section, all threads.
    pub cpu_s: f64,
    /// getrusage's user/system split (tick-sampled).
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    /// `cpu_s` over completed requests.
    pub cpu_ns_per_request: Option<f64>,
    /// perf-event counters by key (see [`Metric::key`]); empty without perf.
    pub counters: BTreeMap<&'static str, CounterValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: Option<u32>,
    /// `"flag"`, `"info"`, or `null` when the server was not measured.
    pub pid_source: Option<&'static str>,
    /// `/proc/PID/task/*/schedstat` CPU time over the timed section.
    pub cpu_s: Option<f64>,
    pub cpu_ns_per_request: Option<f64>,
    pub counters: BTreeMap<&'static str, CounterValue>,
    pub keys_before: Option<u64>,
    pub keys_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HardwareReport {
    pub available: bool,
    pub reason: Option<String>,
}

/// Per-request figures from counter readings.
pub fn counter_values(
    readings: Option<Vec<(Metric, Option<f64>)>>,
    completed: u64,
) -> BTreeMap<&'static str, CounterValue> {
    readings
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(metric, total)| {
            let total = total?;
            Some((metric.key(), CounterValue { total, per_request: per_request(total, completed) }))
        })
        .collect()
}

pub fn per_request(total: f64, completed: u64) -> Option<f64> {
    (completed > 0).then(|| total / completed as f64)
}

impl Report {
    /// Upstream's three lines, its latency block, then the extended table.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        self.render_upstream(&mut out);
        self.render_extended(&mut out);
        out
    }

    /// The `-q` line.
    pub fn render_quiet(&self) -> String {
        format!(
            "{}  Throughput: {:.2} req/s  Completed: {}  Failed: {}  p50: {:.1} us  p99: {:.1} us\n",
            self.config.workload,
            self.throughput_rps,
            self.requests.completed,
            self.requests.failed,
            self.latency.summary.p50_us,
            self.latency.summary.p99_us
        )
    }

    pub fn render_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
        text.push('\n');
        text
    }

    fn render_upstream(&self, out: &mut String) {
        let c = &self.config;
        let r = &self.requests;
        let _ = writeln!(out, "Clients: {}  Total requests: {}  Pipeline: {}", c.clients, r.requested, c.pipeline);
        let _ = writeln!(out, "Completed: {}  Failed: {}", r.completed, r.failed);
        let _ = writeln!(out, "Elapsed: {:.6} s  Throughput: {:.2} req/s", self.elapsed_s, self.throughput_rps);
        let latency = &self.latency;
        out.push('\n');
        match latency.target_rps {
            Some(target) => {
                out.push_str("Open-model latency (coordinated-omission corrected):\n");
                let _ = writeln!(
                    out,
                    "  {:<12}: {:.0} req/s   Achieved: {:.0} req/s",
                    "Target rate",
                    target,
                    latency.achieved_rps.unwrap_or(self.throughput_rps)
                );
            }
            None => out.push_str("Closed-loop latency (round trip of each pipelined batch):\n"),
        }
        let _ = writeln!(out, "  {:<12}: {}", "Samples", latency.summary.samples);
        for (label, value_us) in latency.summary.rows() {
            let _ = writeln!(out, "  {label:<12}: {value_us:9.1} us");
        }
    }

    fn render_extended(&self, out: &mut String) {
        let c = &self.config;
        let r = &self.requests;
        out.push('\n');
        let value = if c.workload == "ping" { "payload" } else { "value" };
        let _ = writeln!(out, "  {:<12}: {}, {}, {} {} B", "Workload", c.workload, c.keys, value, c.value_bytes);
        let threads = if c.threads == 1 { "1 thread".to_string() } else { format!("{} threads", c.threads) };
        let _ = writeln!(out, "  {:<12}: {} connections on {} ({threads})", "Target", c.clients, c.endpoint);
        let _ = writeln!(
            out,
            "  {:<12}: {} completed ({} were FAIL replies), {} failed",
            "Replies", r.completed, r.fail_replies, r.failed
        );
        if let Some(lag) = &self.latency.send_lag {
            let _ = writeln!(
                out,
                "  {:<12}: median {:.1} us, 99th {:.1} us, worst {:.1} us (client lateness, part of the latency)",
                "Send lag", lag.p50_us, lag.p99_us, lag.max_us
            );
        }
        if let Some(preload) = &self.preload {
            let _ = writeln!(out, "  {:<12}: {} keys in {:.3} s (not timed)", "Preload", preload.keys, preload.seconds);
        }
        let client = &self.client;
        let _ = writeln!(
            out,
            "  {:<12}: {} (all threads; getrusage: user {:.3} s, sys {:.3} s)",
            "Client CPU",
            cpu_text(client.cpu_s, client.cpu_ns_per_request),
            client.cpu_user_s,
            client.cpu_system_s
        );
        let server = &self.server;
        match (server.pid, server.cpu_s) {
            (Some(pid), Some(cpu_s)) => {
                let _ = writeln!(
                    out,
                    "  {:<12}: {} (pid {pid} from {}, all threads, /proc schedstat)",
                    "Server CPU",
                    cpu_text(cpu_s, server.cpu_ns_per_request),
                    server.pid_source.unwrap_or("?")
                );
            }
            (Some(pid), None) => {
                let _ = writeln!(out, "  {:<12}: not readable for pid {pid}", "Server CPU");
            }
            (None, _) => {
                let _ = writeln!(out, "  {:<12}: not measured (remote or unknown pid; see --server-pid)", "Server CPU");
            }
        }
        self.render_counters(out);
    }

    fn render_counters(&self, out: &mut String) {
        let metrics: Vec<Metric> = Metric::SOFTWARE
            .into_iter()
            .chain(Metric::HARDWARE)
            .filter(|m| self.client.counters.contains_key(m.key()) || self.server.counters.contains_key(m.key()))
            .collect();
        if metrics.is_empty() {
            return;
        }
        out.push('\n');
        let _ = writeln!(out, "  {:<22}{:>14}{:>14}", "perf per request", "server", "client");
        for metric in metrics {
            let cell = |counters: &BTreeMap<&'static str, CounterValue>| match counters.get(metric.key()) {
                Some(CounterValue { per_request: Some(value), .. }) => format!("{value:.2}"),
                _ => "-".to_string(),
            };
            let unit = if metric == Metric::TaskClock { " (ns)" } else { "" };
            let label = format!("{}{unit}", metric.name());
            let _ =
                writeln!(out, "  {label:<22}{:>14}{:>14}", cell(&self.server.counters), cell(&self.client.counters));
        }
    }
}

fn cpu_text(seconds: f64, per_request_ns: Option<f64>) -> String {
    match per_request_ns {
        Some(ns) => format!("{seconds:.3} s = {ns:.1} ns/req"),
        None => format!("{seconds:.3} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::latency::LatencyRecorder;

    fn report(rate: Option<f64>) -> Report {
        let mut recorder = LatencyRecorder::new().unwrap();
        recorder.record(33_000);
        Report {
            schema: SCHEMA,
            config: ConfigReport {
                endpoint: "127.0.0.1:5995".into(),
                workload: "set".into(),
                keys: "fixed key \"hello\"".into(),
                value_bytes: 5,
                clients: 16,
                threads: 1,
                pipeline: 1,
                rate_rps: rate,
                seed: 1,
            },
            requests: RequestCounts { requested: 200_000, completed: 200_000, failed: 0, fail_replies: 0 },
            elapsed_s: 4.000_5,
            throughput_rps: 49_987.5,
            latency: LatencyReport {
                measures: "intended_send_to_reply",
                percentiles: "lowest_equivalent",
                summary: recorder.summary(),
                target_rps: rate,
                achieved_rps: rate.map(|_| 49_987.5),
                send_lag: None,
            },
            preload: None,
            client: ClientReport {
                cpu_s: 0.3,
                cpu_user_s: 0.1,
                cpu_system_s: 0.2,
                cpu_ns_per_request: Some(1500.0),
                counters: BTreeMap::new(),
            },
            server: ServerReport {
                pid: None,
                pid_source: None,
                cpu_s: None,
                cpu_ns_per_request: None,
                counters: BTreeMap::new(),
                keys_before: None,
                keys_after: None,
            },
            hardware_counters: HardwareReport { available: false, reason: Some("x".into()) },
            notices: Vec::new(),
            first_error: None,
        }
    }

    #[test]
    fn open_model_block_matches_upstream_byte_for_byte() {
        let text = report(Some(50_000.0)).render_text();
        let expected = "Clients: 16  Total requests: 200000  Pipeline: 1\n\
                        Completed: 200000  Failed: 0\n\
                        Elapsed: 4.000500 s  Throughput: 49987.50 req/s\n\
                        \n\
                        Open-model latency (coordinated-omission corrected):\n  \
                        Target rate : 50000 req/s   Achieved: 49988 req/s\n  \
                        Samples     : 1\n  \
                        min         :      33.0 us\n  \
                        p50         :      33.0 us\n";
        assert!(text.starts_with(expected), "{text}");
        assert!(text
            .contains("\n  p99.99      :      33.0 us\n  max         :      33.0 us\n  mean        :      33.0 us\n"));
    }

    #[test]
    fn extended_lines_never_look_like_scraped_ones() {
        let text = report(None).render_text();
        assert!(text.contains("Closed-loop latency"));
        let p50_lines = text.lines().filter(|l| l.split_whitespace().next() == Some("p50")).count();
        assert_eq!(p50_lines, 1);
        assert_eq!(text.matches("Achieved:").count(), 0);
    }

    #[test]
    fn quiet_is_one_line() {
        let line = report(None).render_quiet();
        assert_eq!(line, "set  Throughput: 49987.50 req/s  Completed: 200000  Failed: 0  p50: 33.0 us  p99: 33.0 us\n");
    }
}
