//! Command-line flags: upstream's (§6.1) with their meanings and defaults,
//! plus the extensions, turned into a validated [`Config`].
//!
//! Upstream compatibility: `-h` is the host, so help is `--help` only;
//! `-c 0` and `-P 0` become 1, `-n` below `-c` is raised to `-c`, a
//! non-positive `-R` means closed loop, and `-R` forces depth 1; `-k` is
//! accepted and does nothing (connections are always persistent). Unlike
//! upstream, an unknown `-t` or flag is an error rather than silently
//! running PING, and `-u` can be pointed elsewhere with `--socket PATH`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::workload::{Command, Distribution, Keys, Kind, WorkloadSpec, KEYSPACE_KEYS_MAX};
use crate::client::{Endpoint, DEFAULT_PORT};

/// Upstream's fixed Unix socket path (§6.1).
pub const DEFAULT_UNIX_SOCKET: &str = "/tmp/fkvs/fkvs.sock";
/// The deepest pipeline accepted (a batch is built in one buffer).
pub const PIPELINE_MAX: u64 = 65_536;
/// YCSB's Zipfian constant, the default for `--distribution zipf`.
pub const ZIPF_THETA_DEFAULT: f64 = 0.99;

#[derive(Debug, Parser)]
#[command(
    name = "fkvs-benchmark",
    version,
    about = "Load generator for fkvs servers (upstream fkvs-benchmark flags, plus more)",
    disable_help_flag = true,
    after_help = "Exit status: 0 when every request completed, 1 when any failed or the server could not be \
                  reached, 2 on a usage error."
)]
pub struct Args {
    /// Total requests across all clients
    #[arg(short = 'n', value_name = "N", default_value_t = 100_000)]
    pub requests: u64,
    /// Concurrent clients (connections); 0 means 1
    #[arg(short = 'c', value_name = "C", default_value_t = 32)]
    pub clients: u64,
    /// Server host (not help: use --help)
    #[arg(short = 'h', value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Server port
    #[arg(short = 'p', value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Connect over the Unix socket /tmp/fkvs/fkvs.sock (or --socket)
    #[arg(short = 'u')]
    pub unix: bool,
    /// Unix socket path (implies -u)
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Workload: ping, set, get, incr or mixed
    #[arg(short = 't', value_name = "TYPE", default_value = "ping")]
    pub workload: String,
    /// A unique 32-hex-character key per request (set, incr)
    #[arg(short = 'r')]
    pub random_keys: bool,
    /// Requests per pipelined batch; 0 means 1
    #[arg(short = 'P', value_name = "DEPTH", default_value_t = 1)]
    pub pipeline: u64,
    /// Open loop at RATE requests/s over all clients (latency from intended send times)
    #[arg(short = 'R', value_name = "RATE", allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Keep-alive (always on; accepted for compatibility)
    #[arg(short = 'k')]
    pub keep_alive: bool,
    /// Print only the one-line summary
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Value bytes for SET (default 5, "world"); payload bytes for PING (default 0)
    #[arg(short = 'd', value_name = "BYTES")]
    pub data_bytes: Option<usize>,
    /// Draw keys from N keys (key:000000000000 …), preloaded for get and mixed
    #[arg(long, value_name = "N")]
    pub keyspace: Option<u64>,
    /// Key choice within --keyspace: uniform or zipf[:THETA] (THETA in (0,1), default 0.99)
    #[arg(long, value_name = "DIST")]
    pub distribution: Option<String>,
    /// GET:SET weights of the mixed workload
    #[arg(long, value_name = "GETS:SETS")]
    pub ratio: Option<String>,
    /// Worker threads (default: one per CPU this process may run on)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the report as JSON (schema in docs/performance.md)
    #[arg(long)]
    pub json: bool,
    /// Measure this server process (default: the pid INFO reports, for a local server)
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Do not open perf-event counters
    #[arg(long)]
    pub no_counters: bool,
    /// Do not preload the keys that get and mixed read
    #[arg(long)]
    pub no_preload: bool,
    /// Seconds without a reply before a connection's requests count as failed
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub timeout: f64,
    /// Seed for key choice and the unique-key prefix (default: random)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// A validated run description.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: Endpoint,
    /// Total requests, after upstream's adjustment (at least one per client).
    pub requests: u64,
    pub clients: u64,
    /// 1 in open-loop mode.
    pub pipeline: u64,
    /// `Some` in open-loop mode.
    pub rate: Option<f64>,
    pub workload: WorkloadSpec,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub quiet: bool,
    pub json: bool,
    pub server_pid: Option<u32>,
    pub counters: bool,
    pub preload: bool,
    pub timeout: Duration,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config, String> {
        let clients = args.clients.max(1);
        let requests = args.requests.max(clients);
        let rate = args.rate.filter(|rate| *rate > 0.0);
        if let Some(rate) = rate {
            if !rate.is_finite() {
                return Err(format!("-R {rate}: the rate must be a finite number"));
            }
        }
        let pipeline = if rate.is_some() { 1 } else { args.pipeline.max(1) };
        if pipeline > PIPELINE_MAX {
            return Err(format!("-P {pipeline}: the pipeline depth is at most {PIPELINE_MAX}"));
        }
        let endpoint = match (args.socket, args.unix) {
            (Some(path), _) => Endpoint::Unix(path),
            (None, true) => Endpoint::Unix(PathBuf::from(DEFAULT_UNIX_SOCKET)),
            (None, false) => Endpoint::Tcp { host: args.host, port: args.port },
        };
        let kind = parse_kind(&args.workload, args.ratio.as_deref())?;
        let keys = parse_keys(kind, args.random_keys, args.keyspace, args.distribution.as_deref())?;
        if !(args.timeout.is_finite() && args.timeout > 0.0) {
            return Err(format!("--timeout {}: must be a positive number of seconds", args.timeout));
        }
        let cpus = super::affinity::allowed_cpus();
        let threads = match args.threads {
            Some(0) => return Err("--threads 0: at least one thread is needed".into()),
            Some(threads) => threads,
            None => cpus.len().max(1),
        };
        let threads = threads.min(usize::try_from(clients).unwrap_or(usize::MAX));
        Ok(Config {
            endpoint,
            requests,
            clients,
            pipeline,
            rate,
            workload: WorkloadSpec {
                kind,
                keys,
                data_bytes: args.data_bytes,
                seed: args.seed.unwrap_or_else(super::random::fresh_seed),
            },
            threads,
            cpus,
            quiet: args.quiet,
            json: args.json,
            server_pid: args.server_pid,
            counters: !args.no_counters,
            preload: !args.no_preload,
            timeout: Duration::from_secs_f64(args.timeout),
        })
    }

    /// Requests of client `t`: `N / C`, and one more for the first `N mod C`
    /// (§6.3).
    pub fn quota(&self, client: u64) -> u64 {
        self.requests / self.clients + u64::from(client < self.requests % self.clients)
    }
}

fn parse_kind(workload: &str, ratio: Option<&str>) -> Result<Kind, String> {
    let kind = match workload.to_ascii_lowercase().as_str() {
        "ping" => Kind::Single(Command::Ping),
        "set" => Kind::Single(Command::Set),
        "get" => Kind::Single(Command::Get),
        "incr" => Kind::Single(Command::Incr),
        "mixed" => {
            let (gets, sets) = parse_ratio(ratio.unwrap_or("9:1"))?;
            return Ok(Kind::Mixed { gets, sets });
        }
        other => return Err(format!("-t {other}: unknown workload (ping, set, get, incr, mixed)")),
    };
    if ratio.is_some() {
        return Err("--ratio applies to -t mixed only".into());
    }
    Ok(kind)
}

fn parse_ratio(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--ratio {text}: expected GETS:SETS, e.g. 9:1");
    let (gets, sets) = text.split_once(':').ok_or_else(bad)?;
    let gets: u32 = gets.trim().parse().map_err(|_| bad())?;
    let sets: u32 = sets.trim().parse().map_err(|_| bad())?;
    if gets == 0 && sets == 0 {
        return Err(bad());
    }
    Ok((gets, sets))
}

fn parse_keys(kind: Kind, unique: bool, keyspace: Option<u64>, distribution: Option<&str>) -> Result<Keys, String> {
    if distribution.is_some() && keyspace.is_none() {
        return Err("--distribution needs --keyspace N".into());
    }
    if unique {
        if keyspace.is_some() {
            return Err("-r (unique keys) and --keyspace exclude each other".into());
        }
        return match kind {
            Kind::Single(Command::Set | Command::Incr) => Ok(Keys::Unique),
            // Upstream ignores -r for ping.
            Kind::Single(Command::Ping) => Ok(Keys::Fixed),
            _ => Err(format!("-r needs a write workload (set, incr), not {kind}")),
        };
    }
    let Some(keys) = keyspace else { return Ok(Keys::Fixed) };
    if !(1..=KEYSPACE_KEYS_MAX).contains(&keys) {
        return Err(format!("--keyspace {keys}: must be 1..={KEYSPACE_KEYS_MAX}"));
    }
    let distribution = match distribution.map(str::to_ascii_lowercase).as_deref() {
        None | Some("uniform") => Distribution::Uniform,
        Some("zipf") => Distribution::Zipf { theta: ZIPF_THETA_DEFAULT },
        Some(other) => match other.strip_prefix("zipf:").map(str::parse::<f64>) {
            Some(Ok(theta)) if theta > 0.0 && theta < 1.0 => Distribution::Zipf { theta },
            _ => {
                return Err(format!("--distribution {other}: expected uniform, zipf or zipf:THETA with 0 < THETA < 1"))
            }
        },
    };
    if kind == Kind::Single(Command::Ping) {
        return Err("--keyspace does not apply to ping".into());
    }
    Ok(Keys::Space { keys, distribution })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(line: &str) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("fkvs-benchmark").chain(line.split_whitespace()))
            .map_err(|err| err.to_string())?;
        Config::from_args(args)
    }

    #[test]
    fn upstream_defaults_and_adjustments() {
        let c = config("").unwrap();
        assert_eq!((c.requests, c.clients, c.pipeline, c.rate), (100_000, 32, 1, None));
        assert_eq!(c.endpoint, Endpoint::Tcp { host: "127.0.0.1".into(), port: 5995 });
        assert_eq!(c.workload.kind, Kind::Single(Command::Ping));
        let c = config("-c 0 -n 0 -P 0 -k").unwrap();
        assert_eq!((c.clients, c.requests, c.pipeline), (1, 1, 1));
        let c = config("-n 5 -c 10").unwrap();
        assert_eq!(c.requests, 10, "N is raised to the client count");
        let c = config("-R 1000 -P 16").unwrap();
        assert_eq!((c.rate, c.pipeline), (Some(1000.0), 1), "-R forces depth 1");
        assert_eq!(config("-R -5 -P 4").unwrap().rate, None, "a negative rate means closed loop");
    }

    #[test]
    fn host_is_dash_h_and_unix_socket_paths() {
        let c = config("-h 10.0.0.7 -p 7000").unwrap();
        assert_eq!(c.endpoint, Endpoint::Tcp { host: "10.0.0.7".into(), port: 7000 });
        assert_eq!(config("-u").unwrap().endpoint, Endpoint::Unix(DEFAULT_UNIX_SOCKET.into()));
        assert_eq!(config("--socket /x/y.sock").unwrap().endpoint, Endpoint::Unix("/x/y.sock".into()));
    }

    #[test]
    fn quotas_split_like_upstream() {
        let c = config("-n 10 -c 4").unwrap();
        assert_eq!((0..4).map(|t| c.quota(t)).collect::<Vec<_>>(), [3, 3, 2, 2]);
    }

    #[test]
    fn workloads_and_keys() {
        assert_eq!(config("-t SET -r").unwrap().workload.keys, Keys::Unique);
        assert_eq!(config("-t mixed").unwrap().workload.kind, Kind::Mixed { gets: 9, sets: 1 });
        assert_eq!(config("-t mixed --ratio 1:3").unwrap().workload.kind, Kind::Mixed { gets: 1, sets: 3 });
        let c = config("-t get --keyspace 100 --distribution zipf").unwrap();
        assert_eq!(c.workload.keys, Keys::Space { keys: 100, distribution: Distribution::Zipf { theta: 0.99 } });
        let c = config("-t get --keyspace 100 --distribution zipf:0.5").unwrap();
        assert_eq!(c.workload.keys, Keys::Space { keys: 100, distribution: Distribution::Zipf { theta: 0.5 } });
        for bad in [
            "-t nope",
            "-t get -r",
            "-t set -r --keyspace 5",
            "-t set --distribution zipf",
            "-t get --keyspace 5 --distribution zipf:1.5",
            "-t set --ratio 1:1",
            "-t mixed --ratio 0:0",
            "--threads 0",
            "-P 100000",
            "--timeout 0",
        ] {
            assert!(config(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn threads_never_exceed_clients() {
        assert_eq!(config("-c 3 --threads 8").unwrap().threads, 3);
        assert!(config("").unwrap().threads >= 1);
    }
}
