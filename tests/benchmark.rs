//! End-to-end tests of `fkvs-benchmark` against a live `fkvs-server`: short
//! runs of every workload, the request accounting, upstream's output lines,
//! `-q`, `--json`, the open loop, exit codes, and the perf-counter fallback.

mod common;

use std::process::{Command, Output};

use common::{Server, BACKENDS};
use fkvs::client::Endpoint;
use fkvs::protocol::{Reply, Request};
use regex_lite::Regex;
use serde_json::Value;

fn benchmark_binary() -> &'static str {
    env!("CARGO_BIN_EXE_fkvs-benchmark")
}

fn run_benchmark(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(benchmark_binary());
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("spawn fkvs-benchmark")
}

/// Where the benchmark should connect, as flags.
fn target(server: &Server) -> Vec<String> {
    match &server.endpoint {
        Endpoint::Tcp { port, .. } => vec!["-p".into(), port.to_string()],
        Endpoint::Unix(path) => vec!["--socket".into(), path.display().to_string()],
    }
}

/// Runs against `server` with two worker threads, plus `args`.
fn bench(server: &Server, args: &[&str]) -> Output {
    bench_with_env(server, args, &[])
}

fn bench_with_env(server: &Server, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut all = target(server);
    all.extend(["--threads", "2"].map(String::from));
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_benchmark(&all, envs)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs with `--json`, asserts exit 0, returns the report.
fn bench_json(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = bench(server, &all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "args {args:?}\nstdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {}", stdout(&output)))
}

fn u64_at(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("no integer at {pointer} in {report:#}"))
}

fn server_keys(server: &Server) -> u64 {
    let mut client = server.client();
    let Reply::Typed(_, text) = client.call(&Request::Info).unwrap() else { panic!("INFO failed") };
    let text = String::from_utf8_lossy(text).into_owned();
    text.lines().find_map(|line| line.strip_prefix("keys:")).unwrap().trim().parse().unwrap()
}

#[test]
fn every_workload_completes_every_request_and_reads_hit_after_preload() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let workloads: [&[&str]; 8] = [
            &["-t", "ping"],
            &["-t", "ping", "-d", "100"],
            &["-t", "set", "-d", "64"],
            &["-t", "get"],
            &["-t", "incr"],
            &["-t", "mixed", "--ratio", "3:1"],
            &["-t", "get", "--keyspace", "300", "--distribution", "zipf:0.9"],
            &["-t", "incr", "--keyspace", "40", "--distribution", "uniform"],
        ];
        for (index, workload) in workloads.into_iter().enumerate() {
            // Every workload pipelined; the first three also one at a time.
            let depths: &[u64] = if index < 3 { &[1, 7] } else { &[7] };
            for depth in depths {
                let depth_text = depth.to_string();
                let mut args = vec!["-n", "700", "-c", "5", "-P", &depth_text];
                args.extend_from_slice(workload);
                let report = bench_json(&server, &args);
                let completed = u64_at(&report, "/requests/completed");
                let failed = u64_at(&report, "/requests/failed");
                assert_eq!(u64_at(&report, "/requests/requested"), 700, "{args:?}");
                assert_eq!((completed, failed), (700, 0), "{args:?}");
                assert_eq!(u64_at(&report, "/requests/fail_replies"), 0, "{args:?}: reads must hit the preload");
                assert_eq!(u64_at(&report, "/latency/samples"), 5 * 140u64.div_ceil(*depth), "one sample per batch");
            }
        }
    }
}

#[test]
fn unique_keys_add_exactly_one_key_per_request() {
    for (workload, requests) in [("set", 3000), ("incr", 700)] {
        let server = Server::start(BACKENDS[0]);
        let report = bench_json(&server, &["-t", workload, "-r", "-n", &requests.to_string(), "-c", "7", "-P", "16"]);
        assert_eq!(u64_at(&report, "/requests/completed"), requests);
        assert_eq!(server_keys(&server), requests, "{workload} -r");
        assert_eq!(u64_at(&report, "/server/keys_after"), requests);
        assert_eq!(u64_at(&report, "/server/keys_before"), 0);
    }
}

#[test]
fn json_report_has_the_documented_schema() {
    let server = Server::start(BACKENDS[0]);
    let report = bench_json(&server, &["-t", "set", "-n", "500", "-c", "3", "-P", "4", "--seed", "7"]);
    assert_eq!(report["schema"], "fkvs-benchmark/1");
    let config = &report["config"];
    assert_eq!(config["workload"], "set");
    assert_eq!(config["clients"], 3);
    assert_eq!(config["threads"], 2);
    assert_eq!(config["pipeline"], 4);
    assert_eq!(config["value_bytes"], 5);
    assert_eq!(config["seed"], 7);
    assert!(config["rate_rps"].is_null());
    assert!(report["elapsed_s"].as_f64().unwrap() > 0.0);
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0);
    let latency = &report["latency"];
    assert_eq!(latency["measures"], "batch_round_trip");
    assert_eq!(latency["percentiles"], "lowest_equivalent");
    for key in ["min_us", "p50_us", "p90_us", "p99_us", "p99.9_us", "p99.99_us", "max_us", "mean_us"] {
        assert!(latency[key].as_f64().is_some(), "latency.{key}");
    }
    let p = |key: &str| latency[key].as_f64().unwrap();
    assert!(p("min_us") <= p("p50_us") && p("p50_us") <= p("p99_us") && p("p99_us") <= p("max_us"));
    assert!(report["client"]["cpu_ns_per_request"].as_f64().unwrap() > 0.0);
    assert!(report["client"]["counters"].is_object());
    assert!(report["server"]["counters"].is_object());
    assert!(report["hardware_counters"]["available"].is_boolean());
    assert!(report["notices"].is_array());
    assert!(report["first_error"].is_null());
    assert!(report["preload"].is_null(), "set reads nothing, so nothing is preloaded");
}

#[test]
fn server_cpu_is_measured_through_the_pid_from_info() {
    let server = Server::start(BACKENDS[0]);
    let report = bench_json(&server, &["-n", "2000", "-c", "4"]);
    assert_eq!(u64_at(&report, "/server/pid"), u64::from(server.pid()));
    assert_eq!(report["server"]["pid_source"], "info");
    assert!(report["server"]["cpu_ns_per_request"].as_f64().unwrap() > 0.0);
}

#[test]
fn upstream_output_lines_keep_their_format() {
    let server = Server::start(BACKENDS[0]);
    let output = bench(&server, &["-t", "set", "-n", "1000", "-c", "4", "-P", "8"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Clients: 4  Total requests: 1000  Pipeline: 8");
    assert_eq!(lines[1], "Completed: 1000  Failed: 0");
    assert!(
        Regex::new(r"^Elapsed: \d+\.\d{6} s  Throughput: \d+\.\d{2} req/s$").unwrap().is_match(lines[2]),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "");
    assert_eq!(lines[4], "Closed-loop latency (round trip of each pipelined batch):");
    assert_eq!(lines[5], "  Samples     : 128", "4 clients × ceil(250 / 8) batches");
    let value_line = Regex::new(r"^  (min|p50|p90|p99|p99\.9|p99\.99|max|mean) +: +\d+\.\d us$").unwrap();
    let labels: Vec<&str> = lines[6..14]
        .iter()
        .map(|line| {
            assert!(value_line.is_match(line), "{line:?}");
            assert_eq!(line.find(':'), Some(14), "label in a 12-character field: {line:?}");
            assert_eq!(line.len() - line.find(':').unwrap(), 14, "value right-aligned in 9: {line:?}");
            line.split_whitespace().next().unwrap()
        })
        .collect();
    assert_eq!(labels, ["min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"]);
    // Upstream's scrapers look for these first words; each appears once.
    for word in ["p50", "p99", "p99.9"] {
        assert_eq!(text.lines().filter(|l| l.split_whitespace().next() == Some(word)).count(), 1, "{word}");
    }
    assert!(text.contains("Client CPU  : "), "{text}");
}

#[test]
fn quiet_prints_only_the_summary_line() {
    let server = Server::start(BACKENDS[0]);
    let output = bench(&server, &["-q", "-t", "get", "-n", "800", "-c", "4"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let summary = Regex::new(
        r"^get  Throughput: \d+\.\d{2} req/s  Completed: 800  Failed: 0  p50: \d+\.\d us  p99: \d+\.\d us\n$",
    )
    .unwrap();
    assert!(summary.is_match(&text), "{text:?}");
}

#[test]
fn open_loop_reports_the_coordinated_omission_corrected_block() {
    let server = Server::start(BACKENDS[0]);
    let output = bench(&server, &["-t", "set", "-R", "4000", "-n", "600", "-c", "4", "-P", "16"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Clients: 4  Total requests: 600  Pipeline: 1", "-R forces depth 1");
    assert_eq!(lines[4], "Open-model latency (coordinated-omission corrected):");
    let rate_line = Regex::new(r"^  Target rate : 4000 req/s   Achieved: (\d+) req/s$").unwrap();
    let achieved: f64 = rate_line.captures(lines[5]).unwrap_or_else(|| panic!("{:?}", lines[5]))[1].parse().unwrap();
    // 600 requests at 4000/s take at least 150 ms, so it cannot beat the target.
    assert!(achieved > 0.0 && achieved <= 4000.0 * 1.02, "achieved {achieved}");
    assert_eq!(lines[6], "  Samples     : 600");
    // What upstream's bench-sweep.sh scrapes: `$1=="p99"{print $3}`.
    let p99: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&"p99")).then(|| fields[2].parse().unwrap())
        })
        .collect();
    assert_eq!(p99.len(), 1);
    assert!(p99[0] > 0.0);
    assert!(text.contains("Send lag    : "), "{text}");

    let report = bench_json(&server, &["-t", "get", "-R", "5000", "-n", "500", "-c", "5"]);
    assert_eq!(report["latency"]["measures"], "intended_send_to_reply");
    assert_eq!(u64_at(&report, "/latency/samples"), 500);
    assert_eq!(report["latency"]["target_rps"], 5000.0);
    assert!(report["latency"]["send_lag"]["p99_us"].as_f64().is_some());
    assert_eq!(u64_at(&report, "/requests/fail_replies"), 0);
}

#[test]
fn unix_socket_runs_through_the_socket_flag() {
    let server = Server::builder().unix().start();
    let report = bench_json(&server, &["-t", "set", "-n", "600", "-c", "3", "-P", "5"]);
    assert_eq!(u64_at(&report, "/requests/completed"), 600);
    assert!(report["config"]["endpoint"].as_str().unwrap().ends_with("fkvs.sock"));
}

#[test]
fn unreachable_server_exits_non_zero_with_a_clear_message() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = run_benchmark(&["-p", &port.to_string(), "-n", "10"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with(&format!("fkvs-benchmark: cannot connect to 127.0.0.1:{port}: ")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(output.stdout.is_empty());

    let output = run_benchmark(&["--socket", "/nonexistent/fkvs.sock", "-n", "10"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot connect to /nonexistent/fkvs.sock"), "{}", stderr(&output));
}

#[test]
fn broken_connections_are_failed_apart_from_completed_and_exit_non_zero() {
    // The control connection takes one slot and one worker connection the
    // other; the server accepts and closes the remaining five at once.
    let server = Server::builder().arg("--max-clients").arg("2").start();
    let output = bench(&server, &["-n", "600", "-c", "6", "-P", "4", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let completed = u64_at(&report, "/requests/completed");
    let failed = u64_at(&report, "/requests/failed");
    assert_eq!(completed + failed, 600);
    assert_eq!(completed, 100, "exactly one connection was served");
    assert!(report["first_error"].as_str().unwrap().starts_with("connection "));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("fkvs-benchmark: {failed} of 600 requests failed (first error: connection ")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hardware_counter_fallback_is_one_notice_and_the_run_goes_on() {
    let server = Server::start(BACKENDS[0]);
    let args = ["-n", "500", "-c", "2", "--json"];
    // Forced: the same path a machine without a PMU takes.
    let output = bench_with_env(&server, &args, &[("FKVS_BENCH_FAKE_HW_ENOENT", "1")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let notices: Vec<String> = stderr(&output)
        .lines()
        .filter(|l| l.contains("hardware perf counters unavailable"))
        .map(String::from)
        .collect();
    assert_eq!(notices.len(), 1, "{}", stderr(&output));
    assert!(notices[0].starts_with("fkvs-benchmark: hardware perf counters unavailable (instructions: "));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["hardware_counters"]["available"], false);
    assert!(report["hardware_counters"]["reason"].as_str().unwrap().contains("No such file or directory"));
    assert!(report["client"]["counters"].get("instructions").is_none());
    assert_eq!(u64_at(&report, "/requests/completed"), 500);

    // Unforced: counted where the machine has them, one notice where not.
    let output = bench(&server, &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let notice_lines = stderr(&output).lines().filter(|l| l.contains("hardware perf counters unavailable")).count();
    if report["hardware_counters"]["available"] == true {
        assert_eq!(notice_lines, 0);
        assert!(report["client"]["counters"]["instructions"]["per_request"].as_f64().unwrap() > 0.0);
    } else {
        assert_eq!(notice_lines, 1);
    }
    // Software counters, where perf is permitted at all, are per request.
    if let Some(task_clock) = report["client"]["counters"].get("task_clock_ns") {
        assert!(task_clock["per_request"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn usage_errors_exit_2_and_help_is_long_only() {
    for args in [&["-t", "nope"][..], &["-t", "get", "-r"], &["-n", "many"], &["--distribution", "zipf"]] {
        let output = run_benchmark(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&output).is_empty() && !stderr(&output).contains("panicked"), "{args:?}");
    }
    let help = run_benchmark(&["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("-h <HOST>"), "{}", stdout(&help));
}
