//! Shared harness for the end-to-end tests: start the real `fkvs-server`
//! binary on an ephemeral loopback port (or a Unix socket), talk to it over
//! real sockets, and wait on conditions with deadlines, never with sleeps.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use fkvs::client::{Client, Endpoint};

/// Every I/O backend the end-to-end suite runs against.
pub const BACKENDS: &[&str] = &["epoll", "io_uring"];

/// Generous bound for anything that should happen "at once".
pub const PROMPT: Duration = Duration::from_secs(10);

pub fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_fkvs-server")
}

/// A running server process, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub endpoint: Endpoint,
    pub port: u16,
    stdout_lines: Receiver<String>,
    /// Log lines read so far.
    pub log: Vec<String>,
    _dir: Option<TempDir>,
}

pub struct ServerBuilder {
    args: Vec<String>,
    config: Option<String>,
    unix: bool,
}

impl ServerBuilder {
    pub fn backend(mut self, backend: &str) -> Self {
        self.args.extend(["--io-backend".into(), backend.into()]);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes `text` to a config file and passes it with `-c`.
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Listen on a Unix socket in a fresh temporary directory.
    pub fn unix(mut self) -> Self {
        self.unix = true;
        self
    }

    pub fn start(self) -> Server {
        let dir = TempDir::new();
        let mut command = Command::new(server_binary());
        command.args(&self.args);
        if let Some(text) = &self.config {
            let path = dir.path().join("server.conf");
            std::fs::write(&path, text).unwrap();
            command.arg("-c").arg(&path);
        }
        let socket_path = dir.path().join("fkvs.sock");
        if self.unix {
            command.arg("--unixsocket").arg(&socket_path);
        } else if !self.args.iter().any(|a| a == "--port") {
            command.args(["--port", "0"]);
        }
        let mut server = Server::spawn(command);
        server._dir = Some(dir);
        server
    }
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder { args: Vec::new(), config: None, unix: false }
    }

    /// A TCP server on an ephemeral port with the given backend.
    pub fn start(backend: &str) -> Server {
        Server::builder().backend(backend).start()
    }

    /// Spawns `command` (a server invocation) and waits for its Ready line.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn fkvs-server");
        let stdout = child.stdout.take().unwrap();
        let (sender, stdout_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            endpoint: Endpoint::Tcp { host: "127.0.0.1".into(), port: 0 },
            port: 0,
            stdout_lines,
            log: Vec::new(),
            _dir: None,
        };
        let ready = server.wait_for_log("Ready to accept connections via");
        let ready = ready.trim_end();
        if let Some((_, path)) = ready.split_once("via unix domain socket ") {
            server.endpoint = Endpoint::Unix(PathBuf::from(path));
        } else {
            let (_, address) = ready.rsplit_once(' ').unwrap();
            let (host, port) = address.rsplit_once(':').unwrap();
            server.port = port.parse().unwrap();
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            server.endpoint = Endpoint::Tcp { host, port: server.port };
        }
        server
    }

    /// Waits until a stdout line containing `needle` appears; returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PROMPT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line containing {needle:?} within {PROMPT:?}; log so far: {:#?}", self.log),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn client(&self) -> Client {
        let mut client = Client::connect(&self.endpoint).expect("connect");
        client.set_timeout(Some(PROMPT)).unwrap();
        client
    }

    /// A raw TCP connection with read/write timeouts.
    pub fn tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        stream.set_write_timeout(Some(PROMPT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Sends a signal and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + PROMPT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit within {PROMPT:?} of signal {signal}");
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The INFO text.
pub fn info(client: &mut Client) -> String {
    match client.call(&fkvs::protocol::Request::Info).unwrap() {
        fkvs::protocol::Reply::Typed(fkvs::protocol::CommandId::Info, text) => {
            String::from_utf8(text.to_vec()).unwrap()
        }
        other => panic!("INFO reply {other:?}"),
    }
}

/// The number after `label: ` in an INFO text.
pub fn info_field(text: &str, label: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
    line[label.len() + 2..].split_whitespace().next().unwrap().parse().unwrap()
}

/// Polls `condition` until it holds or the deadline passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROMPT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `request` and reads exactly `reply_bytes` bytes back.
pub fn round_trip(stream: &mut TcpStream, request: &[u8], reply_bytes: usize) -> Vec<u8> {
    stream.write_all(request).unwrap();
    read_exactly(stream, reply_bytes)
}

pub fn read_exactly(stream: &mut impl Read, bytes: usize) -> Vec<u8> {
    let mut reply = vec![0; bytes];
    stream.read_exact(&mut reply).unwrap();
    reply
}

/// Reads one whole frame (header and core).
pub fn read_frame(stream: &mut impl Read) -> Vec<u8> {
    let mut frame = read_exactly(stream, 2);
    let core_bytes = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
    frame.extend(read_exactly(stream, core_bytes));
    frame
}

/// Reads until EOF; panics on timeout. Returns everything read.
pub fn read_to_eof(stream: &mut impl Read) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to EOF");
    all
}

/// Hex bytes like `"00 01 0d"` as a byte vector.
pub fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "fkvs-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
