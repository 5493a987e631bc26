//! End-to-end tests of the real `fkvs-cli` binary against the real server
//! (and, where the server cannot misbehave on demand, against a scripted
//! fake): exact stdout bytes for every command, the REPL over piped stdin,
//! Unix sockets, client configs, and every error's message and status.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use common::{read_exactly, Server, TempDir, PROMPT};

fn cli_binary() -> &'static str {
    env!("CARGO_BIN_EXE_fkvs-cli")
}

/// One `fkvs-cli` run in a fresh directory that is both its working
/// directory and its HOME, so no stray `client.conf` or history leaks in.
struct Cli {
    command: Command,
    dir: TempDir,
    stdin: Vec<u8>,
}

impl Cli {
    fn new() -> Cli {
        let dir = TempDir::new();
        let mut command = Command::new(cli_binary());
        command.current_dir(dir.path()).env("HOME", dir.path());
        Cli { command, dir, stdin: Vec::new() }
    }

    /// Against `server` over TCP, via `-p`.
    fn tcp(server: &Server) -> Cli {
        let mut cli = Cli::new();
        cli.command.args(["-p", &server.port.to_string()]);
        cli
    }

    fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Cli {
        self.command.args(args);
        self
    }

    fn stdin(mut self, input: &[u8]) -> Cli {
        self.stdin = input.to_vec();
        self
    }

    /// Writes `text` to a config file in the run's directory; returns its path.
    fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Runs to completion with `stdin` piped in, within the harness deadline.
    fn run(mut self) -> Run {
        self.command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn fkvs-cli");
        let mut stdin = child.stdin.take().unwrap();
        let input = std::mem::take(&mut self.stdin);
        // The CLI may exit before reading everything (`exit`): ignore EPIPE.
        let writer = thread::spawn(move || drop(stdin.write_all(&input)));
        let output = wait_with_deadline(child);
        writer.join().unwrap();
        Run { output, dir: self.dir }
    }
}

struct Run {
    output: Output,
    dir: TempDir,
}

impl Run {
    fn stdout(&self) -> &[u8] {
        &self.output.stdout
    }

    fn stdout_text(&self) -> &str {
        std::str::from_utf8(&self.output.stdout).unwrap()
    }

    fn stderr(&self) -> &str {
        std::str::from_utf8(&self.output.stderr).unwrap()
    }

    fn code(&self) -> i32 {
        self.output.status.code().expect("fkvs-cli was killed by a signal")
    }

    /// Asserts exit status 0, nothing on stderr, and exactly `stdout`.
    #[track_caller]
    fn prints(&self, stdout: &[u8]) {
        assert_eq!(
            (self.code(), self.stderr(), String::from_utf8_lossy(self.stdout())),
            (0, "", String::from_utf8_lossy(stdout))
        );
        assert_eq!(self.stdout(), stdout);
    }

    /// Asserts a failure: the status, nothing on stdout and exactly `stderr`.
    #[track_caller]
    fn fails(&self, code: i32, stderr: &str) {
        assert_eq!((self.code(), self.stdout_text(), self.stderr()), (code, "", stderr));
    }
}

fn wait_with_deadline(child: Child) -> Output {
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || drop(sender.send(child.wait_with_output())));
    match receiver.recv_timeout(PROMPT) {
        Ok(output) => output.expect("wait for fkvs-cli"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("fkvs-cli did not exit within {PROMPT:?}");
        }
    }
}

/// One-shot `fkvs-cli -p PORT words…` against `server`.
fn once(server: &Server, words: &[&str]) -> Run {
    Cli::tcp(server).args(words).run()
}

/// A loopback port that refuses connections (bound, then released).
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start() -> Server {
    Server::start("epoll")
}

// ---------------------------------------------------------------- one shot

#[test]
fn every_command_one_shot_prints_upstreams_bytes() {
    let server = start();
    let cases: &[(&[&str], &[u8])] = &[
        (&["KEYS"], b"(empty list)\n"),
        (&["PING"], b"\"PONG\" \n"),
        (&["PING", "hello"], b"\"hello\" \n"),
        (&["PING", ""], b"PONG\n"),
        (&["SET", "foo", "bar"], b"\"bar\" \n"),
        (&["GET", "foo"], b"\"bar\" \n"),
        (&["GET", "nope"], b"(nil) \n"),
        (&["SET", "spaced", "a b  c"], b"\"a b  c\" \n"),
        (&["GET", "spaced"], b"\"a b  c\" \n"),
        (&["SET", "quoted", "say \"hi\" 'there'"], b"\"say \"hi\" 'there'\" \n"),
        (&["SET", "empty", ""], b"OK\n"),
        (&["GET", "empty"], b"OK\n"),
        (&["INCR", "n"], b"\"1\" \n"),
        (&["INCRBY", "n", "10"], b"\"11\" \n"),
        (&["DECR", "n"], b"\"10\" \n"),
        (&["DECRBY", "n", "3"], b"\"7\" \n"),
        (&["INCRBY", "n", "-2"], b"\"5\" \n"),
        (&["DECRBY", "n", "-5"], b"\"10\" \n"),
        (&["INCR", "foo"], b"(nil) \n"),
        (&["PERSIST", "n"], b"OK\n"),
        (&["TTL", "n"], b"\"-1\" \n"),
        (&["TTL", "nope"], b"\"-2\" \n"),
        (&["EXPIRE", "nope", "5"], b"(nil) \n"),
        (&["EXPIRE", "n", "100"], b"OK\n"),
        (&["PERSIST", "n"], b"OK\n"),
        (&["TTL", "n"], b"\"-1\" \n"),
        (&["DEL", "foo"], b"OK\n"),
        (&["DEL", "foo"], b"OK\n"),
        (&["GET", "foo"], b"(nil) \n"),
        (&["set", "lower", "case"], b"\"case\" \n"),
        (&["gEt", "lower"], b"\"case\" \n"),
        (&["ping"], b"\"PONG\" \n"),
    ];
    for (words, stdout) in cases {
        let run = once(&server, words);
        assert_eq!(
            (run.code(), run.stderr(), String::from_utf8_lossy(run.stdout())),
            (0, "", String::from_utf8_lossy(stdout)),
            "fkvs-cli {words:?}"
        );
    }
}

#[test]
fn expiry_commands_and_ttl_one_shot() {
    let server = start();
    once(&server, &["SET", "k", "v", "EX", "100"]).prints(b"\"v\" \n");
    let ttl = once(&server, &["TTL", "k"]);
    assert!([&b"\"99\" \n"[..], b"\"100\" \n", b"\"98\" \n"].contains(&ttl.stdout()), "{:?}", ttl.stdout_text());
    once(&server, &["set", "j", "w", "ex", "100"]).prints(b"\"w\" \n");
    once(&server, &["EXPIRE", "k", "0"]).prints(b"OK\n");
    once(&server, &["GET", "k"]).prints(b"(nil) \n");
    once(&server, &["SET", "k", "v", "EX", "soon"]).prints(b"(nil) \n");
}

#[test]
fn keys_and_info_one_shot() {
    let server = start();
    once(&server, &["SET", "a", "1"]).prints(b"\"1\" \n");
    once(&server, &["SET", "b", "2"]).prints(b"\"2\" \n");
    let keys = once(&server, &["KEYS"]);
    assert_eq!(keys.code(), 0);
    let mut names: Vec<&str> = keys.stdout_text().strip_suffix('\n').unwrap().split('\n').collect();
    names.sort_by_key(|line| line.rsplit(' ').next().unwrap().to_string());
    assert_eq!(names.len(), 2);
    assert!(names[0].ends_with(") a") && names[1].ends_with(") b"), "{names:?}");

    let info = once(&server, &["INFO"]);
    assert_eq!((info.code(), info.stderr()), (0, ""));
    assert!(info.stdout_text().starts_with("# Server"), "{}", info.stdout_text());
    assert!(info.stdout_text().ends_with("\n\n"), "INFO text plus one newline: {:?}", info.stdout_text());
    let with_extra = once(&server, &["info", "server"]);
    assert!(with_extra.stdout_text().starts_with("# Server"), "INFO ignores extra tokens");
}

#[test]
fn binary_values_pass_through_untouched() {
    let server = start();
    let value = OsStr::from_bytes(b"\xff\xfe\x01 \"\x7f");
    let run = Cli::tcp(&server).args([OsStr::new("SET"), OsStr::new("bin"), value]).run();
    run.prints(b"\"\xff\xfe\x01 \"\x7f\" \n");
    once(&server, &["GET", "bin"]).prints(b"\"\xff\xfe\x01 \"\x7f\" \n");
}

#[test]
fn large_values_from_the_command_line_are_not_cut() {
    let server = start();
    let value = "v".repeat(60_000);
    let run = once(&server, &["SET", "big", &value]);
    run.prints(format!("\"{value}\" \n").as_bytes());
    let too_big = "v".repeat(70_000);
    let run = once(&server, &["SET", "big", &too_big]);
    assert_eq!(run.code(), 2);
    assert!(run.stdout_text().starts_with("(error) request too large"), "{}", run.stdout_text());
}

#[test]
fn dash_c_runs_one_tokenized_line() {
    let server = start();
    once(&server, &["-c", "SET q 'a b'"]).prints(b"\"a b\" \n");
    once(&server, &["-c", "  get   \"q\" "]).prints(b"\"a b\" \n");
    once(&server, &["-c", "ping"]).prints(b"\"PONG\" \n");
    once(&server, &["-c", " "]).fails(2, "fkvs-cli: the command is empty\n");
}

#[test]
fn non_interactive_pings_like_the_upstream_healthcheck() {
    let server = start();
    once(&server, &["--non-interactive"]).prints(b"\"PONG\" \n");
    once(&server, &["-n"]).prints(b"\"PONG\" \n");
    once(&server, &["SET", "k", "v"]).prints(b"\"v\" \n");
    once(&server, &["-n", "GET", "k"]).prints(b"\"v\" \n");
}

// ---------------------------------------------------------- usage errors

/// Usage errors are found before connecting: these run against a port
/// nobody listens on, so a connection attempt would show up as status 1.
#[test]
fn usage_errors_print_upstreams_lines_send_nothing_and_exit_2() {
    let port = refused_port().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["FOO", "x"], "Unknown command \n"),
        (&["PINGX"], "Unknown command \n"),
        (&["SET", "k"], "(error) ERR syntax error in 'set' command\n(info) Usage: SET <key> <value> [EX seconds]\n"),
        (
            &["SET", "k", "v", "PX", "5"],
            "(error) ERR syntax error in 'set' command\n(info) Usage: SET <key> <value> [EX seconds]\n",
        ),
        (&["GET"], "(error) ERR wrong number of arguments for 'get' command\n(info) Usage: GET <key>\n"),
        (&["incr", "a", "b"], "(error) ERR wrong number of arguments for 'incr' command\n(info) Usage: INCR <key>\n"),
        (
            &["DECRBY", "k"],
            "(error) ERR wrong number of arguments for 'decrby' command\n(info) Usage: DECRBY <key> <value>\n",
        ),
        (
            &["EXPIRE", "k"],
            "(error) ERR wrong number of arguments for 'expire' command\n(info) Usage: EXPIRE <key> <seconds>\n",
        ),
        (
            &["PING", "a", "b"],
            "(error) ERR wrong number of arguments for 'ping' command\n(info) Usage: PING or PING <value>\n",
        ),
        (&["KEYS", "*"], "(error) ERR wrong number of arguments for 'keys' command\n(info) Usage: KEYS\n"),
        (&["-c", "GET a b"], "(error) ERR wrong number of arguments for 'get' command\n(info) Usage: GET <key>\n"),
    ];
    for (words, stdout) in cases {
        let run = Cli::new().args(["-p", &port]).args(*words).run();
        assert_eq!((run.code(), run.stdout_text(), run.stderr()), (2, *stdout, ""), "fkvs-cli {words:?}");
    }
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (&["-p", "0"][..], "fkvs-cli: -p: value '0' is not an integer in 1..65535\n"),
        (&["-p", "65536"], "fkvs-cli: -p: value '65536' is not an integer in 1..65535\n"),
        (&["-p", "-1"], "fkvs-cli: -p: value '-1' is not an integer in 1..65535\n"),
        (&["-p", "http"], "fkvs-cli: -p: value 'http' is not an integer in 1..65535\n"),
        (&["-h", ""], "fkvs-cli: -h: value '' is not a host name or IP address\n"),
    ] {
        Cli::new().args(args).run().fails(2, needle);
    }
    for args in [&["--bogus"][..], &["-p"], &["-c", "GET k", "GET", "k"], &["-u", "-p", "1"]] {
        let run = Cli::new().args(args).run();
        assert_eq!((run.code(), run.stdout_text()), (2, ""), "{args:?}");
        assert!(run.stderr().contains("error:"), "{args:?}: {}", run.stderr());
    }
}

#[test]
fn help_in_any_case_upstream_accepts() {
    for flag in ["--help", "--HELP", "--Help", "--h", "--H"] {
        let run = Cli::new().args([flag]).run();
        assert_eq!((run.code(), run.stderr()), (0, ""), "{flag}");
        assert!(run.stdout_text().contains("Usage: fkvs-cli"), "{flag}: {}", run.stdout_text());
        assert!(run.stdout_text().contains("--non-interactive"));
    }
}

// ---------------------------------------------------------- connections

#[test]
fn unreachable_server_is_one_friendly_line_and_exit_1() {
    let port = refused_port();
    let message =
        format!("Could not connect to fkvs at 127.0.0.1:{port}: Connection refused (is fkvs-server running?)\n");
    Cli::new().args(["-p", &port.to_string(), "PING"]).run().fails(1, &message);
    Cli::new().args(["-p", &port.to_string(), "--non-interactive"]).run().fails(1, &message);
    Cli::new().args(["-p", &port.to_string()]).stdin(b"PING\n").run().fails(1, &message);
    Cli::new().args(["-u", "/nonexistent/fkvs.sock", "PING"]).run().fails(
        1,
        "Could not connect to fkvs at /nonexistent/fkvs.sock: No such file or directory (is fkvs-server running?)\n",
    );
}

#[test]
fn ipv6_and_host_names_are_accepted() {
    let port = refused_port().to_string();
    let run = Cli::new().args(["-h", "::1", "-p", &port, "PING"]).run();
    assert_eq!(run.code(), 1);
    assert!(run.stderr().starts_with(&format!("Could not connect to fkvs at [::1]:{port}: ")), "{}", run.stderr());
    let run = Cli::new().args(["-h", "localhost", "-p", &port, "PING"]).run();
    assert_eq!(run.code(), 1);
    assert!(run.stderr().starts_with(&format!("Could not connect to fkvs at localhost:{port}: ")), "{}", run.stderr());
}

#[test]
fn host_names_resolve() {
    let server = start();
    Cli::tcp(&server).args(["-h", "localhost", "PING"]).run().prints(b"\"PONG\" \n");
}

/// A fake server on loopback that records one request frame and answers
/// with `reply` (or closes when `reply` is `None`).
fn fake_server(reply: Option<&'static [u8]>) -> (u16, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        let request = read_frame(&mut stream);
        sender.send(request).unwrap();
        if let Some(reply) = reply {
            stream.write_all(reply).unwrap();
        }
    });
    (port, receiver)
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut frame = read_exactly(stream, 2);
    let core_bytes = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
    frame.extend(read_exactly(stream, core_bytes));
    frame
}

#[test]
fn requests_on_the_wire_are_upstreams() {
    for (words, request) in [
        (&["PING"][..], &b"\x00\x07\x05\x00\x04PONG"[..]),
        (&["PING", "hi"], b"\x00\x05\x05\x00\x02hi"),
        (&["SET", "k", "v", "ex", "10"], b"\x00\x0b\x01\x00\x01k\x00\x01v\x00\x0210"),
        (&["SET", "foo", "bar"], b"\x00\x0b\x01\x00\x03foo\x00\x03bar"),
        (&["DECRBY", "n", "3"], b"\x00\x07\x08\x00\x01n\x00\x013"),
        (&["INFO"], b"\x00\x01\x07"),
        (&["KEYS"], b"\x00\x01\x0d"),
    ] {
        let (port, received) = fake_server(Some(b"\x00\x01\x01"));
        Cli::new().args(["-p", &port.to_string()]).args(words).run().prints(b"OK\n");
        assert_eq!(received.recv_timeout(PROMPT).unwrap(), request, "{words:?}");
    }
}

#[test]
fn server_closing_mid_command_is_an_error() {
    let (port, _received) = fake_server(None);
    Cli::new()
        .args(["-p", &port.to_string(), "GET", "k"])
        .run()
        .fails(1, "fkvs-cli: the server closed the connection\n");
}

#[test]
fn malformed_reply_is_an_error() {
    let (port, _received) = fake_server(Some(b"\x00\x01\x07"));
    Cli::new()
        .args(["-p", &port.to_string(), "GET", "k"])
        .run()
        .fails(1, "fkvs-cli: malformed reply: reply status byte 0x07 is unknown\n");
}

// ---------------------------------------------------------- unix sockets

fn unix_server() -> (Server, String) {
    let server = Server::builder().unix().start();
    let path = match &server.endpoint {
        fkvs::client::Endpoint::Unix(path) => path.to_str().unwrap().to_string(),
        other => panic!("not a unix endpoint: {other}"),
    };
    (server, path)
}

#[test]
fn dash_u_with_a_path_talks_over_the_unix_socket() {
    let (_server, path) = unix_server();
    Cli::new().args(["-u", &path, "SET", "k", "v"]).run().prints(b"\"v\" \n");
    Cli::new().args([format!("-u={path}").as_str(), "GET", "k"]).run().prints(b"\"v\" \n");
    Cli::new().args(["-u", &path, "--non-interactive"]).run().prints(b"\"PONG\" \n");
}

#[test]
fn config_unixsocket_selects_the_unix_socket() {
    let (_server, path) = unix_server();
    let cli = Cli::new();
    let config = cli.write_file("unix.conf", &format!("port 1\nunixsocket {path}\n"));
    cli.args(["-d", &config, "PING"]).run().prints(b"\"PONG\" \n");
    let cli = Cli::new();
    let config = cli.write_file("unix.conf", &format!("unixsocket {path}\n"));
    cli.args(["-d", &config, "-u", "GET", "k"]).run().prints(b"(nil) \n");
}

#[test]
fn repl_over_a_unix_socket_with_verbose() {
    let (_server, path) = unix_server();
    let cli = Cli::new();
    let config = cli.write_file("unix.conf", &format!("verbose true\nunixsocket {path}\n"));
    cli.args(["-d", &config])
        .stdin(b"PING\nexit\n")
        .run()
        .prints(b"Connected to server via unix domain socket \nType 'exit' to quit.\n\"PONG\" \n");
}

#[test]
fn dash_u_without_any_path_uses_the_default_socket_and_never_crashes() {
    let run = Cli::new().args(["-u", "PING"]).run();
    match run.code() {
        0 => assert_eq!(run.stdout(), b"\"PONG\" \n", "a server happens to listen there"),
        code => {
            assert_eq!(code, 1);
            assert!(run.stderr().starts_with("Could not connect to fkvs at /tmp/fkvs/fkvs.sock: "), "{}", run.stderr());
        }
    }
}

// ---------------------------------------------------------- client config

#[test]
fn dash_d_config_over_tcp() {
    let server = start();
    let cli = Cli::new();
    let config = cli.write_file("my.conf", &format!("# mine\nverbose false\nport {}\nbind 127.0.0.1\n", server.port));
    cli.args(["-d", &config, "PING"]).run().prints(b"\"PONG\" \n");

    // Flags override the file.
    let cli = Cli::new();
    let config = cli.write_file("my.conf", &format!("port {}\n", refused_port()));
    cli.args(["-d", &config, "-p", &server.port.to_string(), "PING"]).run().prints(b"\"PONG\" \n");
}

#[test]
fn client_conf_in_the_working_directory_is_read_by_default() {
    let server = start();
    let cli = Cli::new();
    cli.write_file("client.conf", &format!("port {}\n", server.port));
    cli.args(["PING"]).run().prints(b"\"PONG\" \n");
}

#[test]
fn repl_verbose_banner_over_tcp() {
    let server = start();
    let cli = Cli::new();
    let config = cli.write_file("v.conf", &format!("verbose true\nport {}\n", server.port));
    let expected = format!("Connected to server 127.0.0.1 on port {}\nType 'exit' to quit.\nPONG\n", server.port);
    cli.args(["-d", &config]).stdin(b"PING ''\n").run().prints(expected.as_bytes());
}

#[test]
fn config_errors_name_the_file_line_and_key() {
    let cli = Cli::new();
    let config = cli.write_file("bad.conf", "port 5995\nverbose yes\n");
    let message =
        format!("fkvs-cli: config error at {config}:2: 'verbose' value 'yes' is not a boolean (true or false)\n");
    cli.args(["-d", &config, "PING"]).run().fails(2, &message);

    let cli = Cli::new();
    let config = cli.write_file("bad.conf", "port 0\n");
    let message = format!("fkvs-cli: config error at {config}:1: 'port' value '0' is not an integer in 1..65535\n");
    cli.args(["-d", &config]).run().fails(2, &message);

    let cli = Cli::new();
    cli.write_file("client.conf", "verbose on\n");
    cli.args(["PING"])
        .run()
        .fails(2, "fkvs-cli: config error at client.conf:1: 'verbose' value 'on' is not a boolean (true or false)\n");

    Cli::new().args(["-d", "/nonexistent/client.conf", "PING"]).run().fails(
        2,
        "fkvs-cli: config error at /nonexistent/client.conf: cannot read the config file: \
         No such file or directory (os error 2)\n",
    );
}

// ---------------------------------------------------------------- REPL

#[test]
fn repl_runs_piped_lines_until_exit() {
    let server = start();
    let input =
        b"SET a 1\nGET a\n\n   \nincr a\nSET s 'x y'\nGET s\nFOO\nGET\nINFOrmation\nPING\n  EXIT  \nSET after 1\n";
    let expected = "Type 'exit' to quit.\n\"1\" \n\"1\" \n\"2\" \n\"x y\" \n\"x y\" \nUnknown command \n\
                    (error) ERR wrong number of arguments for 'get' command\n(info) Usage: GET <key>\n\
                    Unknown command \n\"PONG\" \n";
    Cli::tcp(&server).stdin(input).run().prints(expected.as_bytes());
    once(&server, &["GET", "after"]).prints(b"(nil) \n");
}

#[test]
fn repl_ends_cleanly_at_end_of_input() {
    let server = start();
    Cli::tcp(&server).stdin(b"PING\nSET k v").run().prints(b"Type 'exit' to quit.\n\"PONG\" \n\"v\" \n");
    Cli::tcp(&server).run().prints(b"Type 'exit' to quit.\n");
}

#[test]
fn repl_skips_lines_that_are_not_utf8() {
    let server = start();
    let run = Cli::tcp(&server).stdin(b"GET \xff\nPING\n").run();
    assert_eq!(run.code(), 0);
    assert_eq!(run.stdout(), b"Type 'exit' to quit.\n\"PONG\" \n");
    assert_eq!(run.stderr(), "fkvs-cli: skipped a line that is not valid UTF-8\n");
}

#[test]
fn repl_history_is_saved_after_each_line_and_capped_at_50() {
    let server = start();
    let run = Cli::tcp(&server).stdin(b"SET a 1\n\nGET a\nFOO\nexit\n").run();
    assert_eq!(run.code(), 0);
    let history_path = run.dir.path().join(".fkvs_cli_history");
    assert_eq!(std::fs::read_to_string(&history_path).unwrap(), "SET a 1\nGET a\nFOO\n");
    assert_eq!(std::fs::metadata(&history_path).unwrap().permissions().mode() & 0o777, 0o600);

    let mut input = String::new();
    for i in 0..60 {
        input.push_str(&format!("PING {i}\n"));
    }
    let cli = Cli::tcp(&server).stdin(input.as_bytes());
    cli.write_file(".fkvs_cli_history", "OLD 1\nOLD 2\n");
    let run = cli.run();
    assert_eq!(run.code(), 0);
    let history = std::fs::read_to_string(run.dir.path().join(".fkvs_cli_history")).unwrap();
    let expected: String = (10..60).map(|i| format!("PING {i}\n")).collect();
    assert_eq!(history, expected);
}

#[test]
fn repl_history_goes_to_the_working_directory_without_home() {
    let server = start();
    let mut cli = Cli::tcp(&server).stdin(b"PING\n");
    cli.command.env_remove("HOME");
    let run = cli.run();
    assert_eq!(run.code(), 0);
    assert_eq!(std::fs::read_to_string(run.dir.path().join(".fkvs_cli_history")).unwrap(), "PING\n");
}

/// A REPL whose stdin the test feeds line by line, reading stdout as it goes.
struct LiveRepl {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    _dir: TempDir,
}

impl LiveRepl {
    fn start(server: &Server) -> LiveRepl {
        let dir = TempDir::new();
        let mut child = Command::new(cli_binary())
            .args(["-p", &server.port.to_string()])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        LiveRepl { child: Some(child), stdin, lines, _dir: dir }
    }

    fn send(&mut self, line: &str) {
        // The CLI may already be gone; its exit status tells the story.
        let _ = self.stdin.as_mut().unwrap().write_all(line.as_bytes());
    }

    fn expect_line(&self, expected: &str) {
        assert_eq!(self.lines.recv_timeout(PROMPT).expect("a line from fkvs-cli"), expected);
    }

    fn finish(mut self) -> Output {
        drop(self.stdin.take());
        wait_with_deadline(self.child.take().unwrap())
    }
}

impl Drop for LiveRepl {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn repl_reports_a_server_that_goes_away_and_exits_1() {
    let server = start();
    let mut repl = LiveRepl::start(&server);
    repl.expect_line("Type 'exit' to quit.");
    repl.send("SET k v\n");
    repl.expect_line("\"v\" ");
    drop(server);
    repl.send("GET k\n");
    let output = repl.finish();
    let mut stderr = String::new();
    output.stderr.as_slice().read_to_string(&mut stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr == "fkvs-cli: the server closed the connection\n" || stderr.starts_with("fkvs-cli: connection error: "),
        "{stderr}"
    );
}

#[test]
fn repl_keeps_going_after_usage_errors_and_misses() {
    let server = start();
    let mut repl = LiveRepl::start(&server);
    repl.expect_line("Type 'exit' to quit.");
    repl.send("GET nope\n");
    repl.expect_line("(nil) ");
    repl.send("SET k\n");
    repl.expect_line("(error) ERR syntax error in 'set' command");
    repl.expect_line("(info) Usage: SET <key> <value> [EX seconds]");
    repl.send("SET k v\n");
    repl.expect_line("\"v\" ");
    repl.send("exit\n");
    let output = repl.finish();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
}
