//! Interim load driver for comparing I/O backends, until `fkvs-benchmark`
//! exists (PROTOCOL.md §6). Not a general benchmark: it measures exactly
//! what docs/performance.md (`## I/O backends`) reports.
//!
//! It starts one `fkvs-server` per variant (pinned to `--server-cpu`, all
//! alive for the whole run), pins itself to `--load-cpu`, and drives each
//! variant in turn, interleaved, with a closed loop over `--connections`
//! TCP connections from one epoll thread: every connection sends a batch of
//! `P` requests in one write and waits for all `P` replies before the next.
//! Server CPU is read from `/proc/PID/task/*/schedstat` (user + sys, all
//! threads) around each measured window; the driver's own CPU likewise, to
//! show when the load generator, not the server, is the bottleneck.
//!
//! ```text
//! cargo bench --bench backend_load -- \
//!     --variants 'epoll=--io-backend epoll;io_uring=--io-backend io_uring' \
//!     --workloads set,get --pipelines 1,16,128 --connections 50 \
//!     --seconds 2 --reps 3
//! ```
//!
//! Workloads are upstream's: `set` is SET `hello` `world`, `get` is GET
//! `hello` (set once before). Prints medians over the repetitions as a
//! Markdown table, with each variant's ratio to the first.

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fkvs::protocol::Request;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Options {
    variants: Vec<(String, Vec<String>)>,
    workloads: Vec<String>,
    pipelines: Vec<usize>,
    connections: usize,
    seconds: f64,
    warmup_seconds: f64,
    reps: usize,
    /// Value size for `set` and `get` (upstream's `world` by default).
    value_bytes: usize,
    server_cpu: usize,
    load_cpu: usize,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            variants: vec![
                ("epoll".into(), vec!["--io-backend".into(), "epoll".into()]),
                ("io_uring".into(), vec!["--io-backend".into(), "io_uring".into()]),
            ],
            workloads: vec!["set".into(), "get".into()],
            pipelines: vec![1, 16, 128],
            connections: 50,
            seconds: 2.0,
            warmup_seconds: 0.5,
            reps: 3,
            value_bytes: 5,
            server_cpu: 0,
            load_cpu: 1,
        };
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        while let Some(flag) = args.next() {
            let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
            match flag.as_str() {
                "--variants" => {
                    options.variants = value
                        .split(';')
                        .map(|v| {
                            let (label, args) = v.split_once('=').unwrap_or_else(|| usage("variant is LABEL=ARGS"));
                            (label.trim().to_string(), args.split_whitespace().map(String::from).collect())
                        })
                        .collect()
                }
                "--workloads" => options.workloads = value.split(',').map(String::from).collect(),
                "--pipelines" => options.pipelines = value.split(',').map(|p| number(p) as usize).collect(),
                "--connections" => options.connections = number(&value) as usize,
                "--seconds" => options.seconds = value.parse().unwrap_or_else(|_| usage("--seconds")),
                "--warmup" => options.warmup_seconds = value.parse().unwrap_or_else(|_| usage("--warmup")),
                "--reps" => options.reps = number(&value) as usize,
                "--value-bytes" => options.value_bytes = number(&value) as usize,
                "--server-cpu" => options.server_cpu = number(&value) as usize,
                "--load-cpu" => options.load_cpu = number(&value) as usize,
                _ => usage(&format!("unknown flag {flag}")),
            }
        }
        options
    }
}

fn number(text: &str) -> u64 {
    text.trim().parse().unwrap_or_else(|_| usage(&format!("'{text}' is not a number")))
}

fn usage(problem: &str) -> ! {
    eprintln!("backend_load: {problem}");
    eprintln!("flags: --variants 'LABEL=ARGS;…' --workloads set,get --pipelines 1,16,128 --connections N");
    eprintln!("       --seconds S --warmup S --reps N --value-bytes N --server-cpu C --load-cpu C");
    std::process::exit(2);
}

/// Pins the calling thread (or a child before exec) to one CPU.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data, zero is a valid (empty) set, and
    // sched_setaffinity only reads the set we pass; it is async-signal-safe.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// Starts a server with `args`; `NAME=value` words set its environment.
    fn start(args: &[String], cpu: usize) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fkvs-server"));
        for arg in args {
            match arg.split_once('=') {
                Some((name, value)) if !arg.starts_with('-') => command.env(name, value),
                _ => command.arg(arg),
            };
        }
        command.args(["--port", "0", "--max-clients", "10000"]).stdout(Stdio::piped());
        // SAFETY: the closure only calls sched_setaffinity, which is
        // async-signal-safe, between fork and exec.
        unsafe { command.pre_exec(move || pin_to(cpu)) };
        let mut child = command.spawn().expect("spawn fkvs-server");
        let mut lines = BufReader::new(child.stdout.take().expect("server stdout")).lines();
        let port = loop {
            let line = lines.next().expect("server exited before it was ready").expect("server stdout");
            if let Some((_, address)) = line.trim_end().split_once("Ready to accept connections via tcp on ") {
                break address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).expect("port");
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { child, port }
    }

    fn cpu_ns(&self) -> u64 {
        process_cpu_ns(self.child.id())
    }

    fn sleeps(&self) -> u64 {
        process_sleeps(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Nanoseconds on CPU of every thread of `pid` (first schedstat field).
fn process_cpu_ns(pid: u32) -> u64 {
    sum_over_tasks(pid, "schedstat", |text| text.split_whitespace().next()?.parse().ok())
}

/// Times every thread of `pid` gave up the CPU to wait: one per sleep, so
/// per request it shows how well a server batches its wake-ups.
fn process_sleeps(pid: u32) -> u64 {
    sum_over_tasks(pid, "status", |text| {
        let line = text.lines().find(|line| line.starts_with("voluntary_ctxt_switches:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    })
}

fn sum_over_tasks(pid: u32, file: &str, field: impl Fn(&str) -> Option<u64>) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks.filter_map(|task| fs::read_to_string(task.ok()?.path().join(file)).ok()).filter_map(|t| field(&t)).sum()
}

/// The value every request stores or reads: `world`, or `value_bytes` of
/// `w` when another size is asked for.
fn value(value_bytes: usize) -> Vec<u8> {
    if value_bytes == 5 {
        b"world".to_vec()
    } else {
        vec![b'w'; value_bytes]
    }
}

fn request_frame(workload: &str, value: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    match workload {
        "set" => Request::Set { key: b"hello", value, expiry_seconds: None },
        "get" => Request::Get { key: b"hello" },
        _ => usage(&format!("unknown workload {workload}")),
    }
    .encode(&mut frame)
    .expect("a value that fits a frame");
    frame
}

/// Both workloads answer VALUE(value): 2 + 1 + 2 bytes of header.
fn reply_bytes(value: &[u8]) -> usize {
    5 + value.len()
}

struct Connection {
    stream: TcpStream,
    received: usize,
    /// Bytes of the current batch not yet written (a short write waits for
    /// writability).
    unwritten: usize,
}

struct Sample {
    requests_per_s: f64,
    server_ns_per_request: f64,
    server_sleeps_per_request: f64,
    load_sleeps_per_request: f64,
    load_cpu_share: f64,
}

/// One measured run of `pipeline`-deep batches against `server`.
fn run(server: &ServerProcess, options: &Options, workload: &str, pipeline: usize) -> io::Result<Sample> {
    let value = value(options.value_bytes);
    let batch = request_frame(workload, &value).repeat(pipeline);
    let batch_reply_bytes = reply_bytes(&value) * pipeline;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut connections = Vec::with_capacity(options.connections);
    for index in 0..options.connections {
        let std_stream = std::net::TcpStream::connect(address)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)?;
        connections.push(Connection { stream, received: 0, unwritten: batch.len() });
    }
    let mut scratch = vec![0u8; 1 << 20];
    let mut completed: u64 = 0;
    let started = Instant::now();
    let warm_until = started + Duration::from_secs_f64(options.warmup_seconds);
    let end = warm_until + Duration::from_secs_f64(options.seconds);
    let mut window: Option<(Instant, u64, u64, u64, u64, u64)> = None;
    let self_pid = std::process::id();
    // Kick off: every connection writes its first batch.
    for connection in connections.iter_mut() {
        write_batch(connection, &batch)?;
    }
    loop {
        let now = Instant::now();
        if window.is_none() && now >= warm_until {
            let load = (process_cpu_ns(self_pid), process_sleeps(self_pid));
            window = Some((now, completed, server.cpu_ns(), server.sleeps(), load.0, load.1));
        }
        if now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let connection = &mut connections[event.token().0];
            if event.is_writable() && connection.unwritten > 0 {
                write_batch(connection, &batch)?;
            }
            if !event.is_readable() {
                continue;
            }
            loop {
                match connection.stream.read(&mut scratch) {
                    Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed a connection")),
                    Ok(read) => {
                        connection.received += read;
                        if read < scratch.len() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
            if connection.received >= batch_reply_bytes {
                assert_eq!(connection.received, batch_reply_bytes, "more replies than requests");
                connection.received = 0;
                completed += pipeline as u64;
                connection.unwritten = batch.len();
                write_batch(connection, &batch)?;
            }
        }
    }
    let (window_start, completed_before, server_before, sleeps_before, load_before, load_sleeps_before) =
        window.expect("measured window");
    let elapsed = window_start.elapsed().as_secs_f64();
    let requests = (completed - completed_before) as f64;
    let server_ns = (server.cpu_ns() - server_before) as f64;
    let load_ns = (process_cpu_ns(self_pid) - load_before) as f64;
    Ok(Sample {
        requests_per_s: requests / elapsed,
        server_ns_per_request: server_ns / requests,
        server_sleeps_per_request: (server.sleeps() - sleeps_before) as f64 / requests,
        load_sleeps_per_request: (process_sleeps(self_pid) - load_sleeps_before) as f64 / requests,
        load_cpu_share: load_ns / (elapsed * 1e9),
    })
}

/// Writes what is left of the current batch; a short write finishes when
/// the socket is writable again.
fn write_batch(connection: &mut Connection, batch: &[u8]) -> io::Result<()> {
    while connection.unwritten > 0 {
        let offset = batch.len() - connection.unwritten;
        match connection.stream.write(&batch[offset..]) {
            Ok(written) => connection.unwritten -= written,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = Options::parse();
    let servers: Vec<ServerProcess> =
        options.variants.iter().map(|(_, args)| ServerProcess::start(args, options.server_cpu)).collect();
    pin_to(options.load_cpu).expect("pin the load generator");
    let value = value(options.value_bytes);
    for server in &servers {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream.write_all(&request_frame("set", &value)).expect("prime the GET key");
        stream.read_exact(&mut vec![0u8; reply_bytes(&value)]).expect("SET reply");
    }
    // samples[workload][pipeline][variant]
    let mut samples: Vec<Vec<Vec<Vec<Sample>>>> = options
        .workloads
        .iter()
        .map(|_| options.pipelines.iter().map(|_| options.variants.iter().map(|_| Vec::new()).collect()).collect())
        .collect();
    for rep in 0..options.reps {
        for (w, workload) in options.workloads.iter().enumerate() {
            for (p, &pipeline) in options.pipelines.iter().enumerate() {
                for (v, server) in servers.iter().enumerate() {
                    let sample = run(server, &options, workload, pipeline).expect("load run");
                    eprintln!(
                        "rep {rep} {workload} P={pipeline} {}: {:.0} req/s, {:.0} srv ns/req, {:.3} srv sleeps/req, \
                         load CPU {:.0}%, {:.3} load sleeps/req",
                        options.variants[v].0,
                        sample.requests_per_s,
                        sample.server_ns_per_request,
                        sample.server_sleeps_per_request,
                        sample.load_cpu_share * 100.0,
                        sample.load_sleeps_per_request
                    );
                    samples[w][p][v].push(sample);
                }
            }
        }
    }
    println!(
        "\n{} connections, {} B values, {} s per run after {} s warm-up, median of {} interleaved runs; \
         server on CPU {}, load on CPU {}\n",
        options.connections,
        options.value_bytes,
        options.seconds,
        options.warmup_seconds,
        options.reps,
        options.server_cpu,
        options.load_cpu
    );
    println!(
        "| workload | P | variant | req/s | srv ns/req | srv sleeps/req | load CPU | load sleeps/req | req/s vs first | \
         srv ns/req vs first |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (w, workload) in options.workloads.iter().enumerate() {
        for (p, pipeline) in options.pipelines.iter().enumerate() {
            let medians: Vec<[f64; 5]> = samples[w][p]
                .iter()
                .map(|runs| {
                    let m = |f: fn(&Sample) -> f64| median(runs.iter().map(f).collect());
                    [
                        m(|s| s.requests_per_s),
                        m(|s| s.server_ns_per_request),
                        m(|s| s.server_sleeps_per_request),
                        m(|s| s.load_cpu_share),
                        m(|s| s.load_sleeps_per_request),
                    ]
                })
                .collect();
            let [base_rate, base_ns, ..] = medians[0];
            for (v, [rate, ns, sleeps, load, load_sleeps]) in medians.iter().enumerate() {
                println!(
                    "| {workload} | {pipeline} | {} | {:.0} | {:.0} | {:.3} | {:.0}% | {:.3} | {:.3}x | {:.3}x |",
                    options.variants[v].0,
                    rate,
                    ns,
                    sleeps,
                    load * 100.0,
                    load_sleeps,
                    rate / base_rate,
                    ns / base_ns
                );
            }
        }
    }
}
