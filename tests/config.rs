//! Start-up: embedded defaults, upstream config files, flag overrides,
//! config errors (one line naming key and line, exit 2), daemon mode.

mod common;

use std::process::Command;

use common::*;
use fkvs::client::{Client, Endpoint};
use fkvs::protocol::{CommandId, Reply, Request};

fn ping(client: &mut Client) {
    assert_eq!(client.call(&Request::Ping { payload: b"p" }).unwrap(), Reply::Typed(CommandId::Ping, b"p"));
}

#[test]
fn no_arguments_start_on_the_embedded_defaults() {
    let mut server = Server::spawn(Command::new(server_binary()));
    let ready = server.wait_for_log("Ready to accept connections");
    assert!(ready.ends_with("via tcp on 127.0.0.1:5995 "), "{ready}");
    server.wait_for_log("event-loop-kind: epoll");
    ping(&mut server.client());
}

#[test]
fn upstream_config_file_is_read_and_flags_override_it() {
    let config = "# shipped server.conf\nport 1\nbind 127.0.0.1\nmax-clients 2\nlogs-enabled false\n\
                  verbose false\ndaemonize false\nshow-logo false\nevent-loop-max-events 77\n\
                  #unixsocket /tmp/fkvs/fkvs.sock\nuse-io-uring false\n";
    let server = Server::builder().config(config).arg("--port").arg("0").start();
    let mut client = server.client();
    let Reply::Typed(_, text) = client.call(&Request::Info).unwrap() else { panic!() };
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.contains("event_loop_max_events: 77 \n"), "{text}");
    assert!(text.contains("config file: ") && text.contains("server.conf \n"), "{text}");
    assert!(text.contains(&format!("port: {} \n", server.port)), "{text}");
    // max-clients 2 from the file holds: a third connection is closed.
    let _second = server.client();
    let mut third = server.tcp();
    assert_eq!(read_to_eof(&mut third), b"");
}

#[test]
fn unixsocket_in_the_config_file_selects_unix_mode() {
    let dir = TempDir::new();
    let path = dir.path().join("via-config.sock");
    let server = Server::builder().config(&format!("unixsocket {}\n", path.display())).start();
    assert_eq!(server.endpoint, Endpoint::Unix(path));
    ping(&mut server.client());
}

fn start_failure(args: &[&str], config: Option<&str>) -> (i32, String) {
    let dir = TempDir::new();
    let mut command = Command::new(server_binary());
    if let Some(text) = config {
        let path = dir.path().join("bad.conf");
        std::fs::write(&path, text).unwrap();
        command.arg("-c").arg(path);
    }
    let output = command.args(args).output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn bad_config_is_one_clear_line_and_exit_code_2() {
    let (code, stderr) = start_failure(&[], Some("port 5995\nverbose maybe\n"));
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.conf:2") && stderr.contains("'verbose'"), "{stderr}");

    for (text, key) in [
        ("port 70000\n", "'port'"),
        ("max-clients 0\n", "'max-clients'"),
        ("bind localhost\n", "'bind'"),
        ("event-loop-max-events -1\n", "'event-loop-max-events'"),
    ] {
        let (code, stderr) = start_failure(&[], Some(text));
        assert_eq!(code, 2, "{text}");
        assert!(stderr.contains(key) && stderr.contains("bad.conf:1"), "{stderr}");
    }
    let (code, stderr) = start_failure(&["-c", "/nonexistent/server.conf"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/server.conf"), "{stderr}");
    let (code, _) = start_failure(&["--port", "70000"], None);
    assert_eq!(code, 2);
    let (code, stderr) = start_failure(&["--max-clients", "zero"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("--max-clients"), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_clear_start_up_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (code, stderr) = start_failure(&["--port", &port], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
}

#[test]
fn daemonize_after_bind_with_pidfile() {
    let dir = TempDir::new();
    let pidfile = dir.path().join("fkvs.pid");
    let socket = dir.path().join("d.sock");
    let status = Command::new(server_binary())
        .args(["--daemonize", "--pidfile"])
        .arg(&pidfile)
        .arg("--unixsocket")
        .arg(&socket)
        .status()
        .unwrap();
    assert!(status.success(), "the parent exits 0 once the listener is bound");
    // The listener was bound before the fork, so it answers at once.
    let mut client = Client::connect(&Endpoint::Unix(socket.clone())).unwrap();
    ping(&mut client);
    wait_until("the pidfile is written", || std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n')));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let Reply::Typed(_, text) = client.call(&Request::Info).unwrap() else { panic!() };
    assert!(String::from_utf8_lossy(text).contains(&format!("pid: {pid} \n")), "INFO shows the daemon's pid (Q14)");
    drop(client);
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("the daemon removes its files", || !pidfile.exists() && !socket.exists());
}

#[test]
fn daemonize_reports_bind_errors_to_the_caller() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (code, stderr) = start_failure(&["--daemonize", "--port", &port], None);
    assert_eq!(code, 1, "Q33: a bind failure is visible, not hidden behind the fork");
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

/// The store reserves 32 GiB of address space for its arena (memory is
/// committed only where written). Under an address-space limit it must take
/// a smaller reservation and keep working, not fail to start.
#[test]
fn an_address_space_limit_shrinks_the_store_reservation() {
    let limit_kib = 1024 * 1024;
    let mut command = Command::new("bash");
    command.arg("-c").arg(format!("ulimit -v {limit_kib} && exec {} --port 0", server_binary()));
    let server = Server::spawn(command);
    let mut client = server.client();
    let value = vec![b'v'; 16 * 1024];
    let keys: Vec<String> = (0..4_000).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        let request = Request::Set { key: key.as_bytes(), value: &value, expiry_seconds: None };
        assert_eq!(client.call(&request).unwrap(), Reply::Value(&value));
    }
    for key in &keys {
        assert_eq!(client.call(&Request::Get { key: key.as_bytes() }).unwrap(), Reply::Value(&value), "{key}");
    }
}
