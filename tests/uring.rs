//! io_uring-specific behaviour over real sockets: a provided-buffer ring run
//! dry, connection churn, direct descriptors, clients that vanish with
//! (zero-copy) sends in the kernel, backpressure through the stash, and the
//! fallback receive modes.
//! The whole end-to-end suite also runs on io_uring (`common::BACKENDS`);
//! these tests push on what only this backend has.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;
use fkvs::protocol::reply::push_value;
use fkvs::protocol::{CommandId, Reply, Request};

fn uring() -> ServerBuilder {
    Server::builder().backend("io_uring")
}

/// The number before `needle` in a log line, e.g. `12 zero-copy sends`.
fn count_before(line: &str, needle: &str) -> u64 {
    let before = &line[..line.find(needle).unwrap_or_else(|| panic!("no {needle:?} in {line:?}"))];
    before.split_whitespace().last().unwrap().parse().unwrap()
}

/// SETs and PINGs of varied sizes (0 to ~1 KB), so that frames straddle
/// small provided buffers at every offset. Returns the requests and the
/// replies they must produce, in order.
fn mixed_pipeline(client: u32, count: u32) -> (Vec<u8>, Vec<u8>) {
    let (mut requests, mut replies) = (Vec::new(), Vec::new());
    for i in 0..count {
        let fill = b'a' + (i % 26) as u8;
        let body = vec![fill; (i as usize * 37 + client as usize * 11) % 1_100];
        if i % 3 == 2 {
            let ping = Request::Ping { payload: &body };
            ping.encode(&mut requests).unwrap();
            ping.encode(&mut replies).unwrap(); // a PING reply is the request
        } else {
            let key = [client.to_be_bytes(), i.to_be_bytes()].concat();
            Request::Set { key: &key, value: &body, expiry_seconds: None }.encode(&mut requests).unwrap();
            push_value(&mut replies, &body);
        }
    }
    (requests, replies)
}

/// Sends the pipeline in uneven writes, then reads every reply.
fn run_pipeline(stream: &mut TcpStream, requests: &[u8], replies: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let requests = requests.to_vec();
    let sender = std::thread::spawn(move || {
        for chunk in requests.chunks(1_499) {
            writer.write_all(chunk).unwrap();
        }
    });
    let got = read_exactly(stream, replies.len());
    sender.join().unwrap();
    assert!(got == replies, "replies differ from the expected {} bytes", replies.len());
}

#[test]
fn an_exhausted_buffer_ring_delays_receives_but_loses_nothing() {
    // Two 64-byte buffers for sixteen clients sending ~100 kB each at once:
    // receives keep ending with ENOBUFS and being re-armed.
    let mut server = uring()
        .arg("--uring-recv-buffers")
        .arg("2")
        .arg("--uring-recv-buffer-bytes")
        .arg("64")
        .arg("--verbose")
        .arg("true")
        .start();
    std::thread::scope(|scope| {
        for client in 0..16 {
            let mut stream = server.tcp();
            scope.spawn(move || {
                let (requests, replies) = mixed_pipeline(client, 300);
                run_pipeline(&mut stream, &requests, &replies);
            });
        }
    });
    let mut observer = server.client();
    assert_eq!(info_field(&info(&mut observer), "commands executed"), 16 * 300);
    drop(observer);
    assert!(server.signal_and_wait(libc::SIGTERM).success());
    let line = server.wait_for_log("receives ran out of buffers");
    assert!(count_before(&line, "receives ran out of buffers") > 0, "the ring never ran dry: {line}");
}

#[test]
fn thousands_of_short_lived_connections_leave_nothing_behind() {
    let server = uring().arg("--max-clients").arg("1000").start();
    const THREADS: usize = 4;
    const CONNECTIONS: usize = 750;
    let ping = {
        let mut frame = Vec::new();
        Request::Ping { payload: b"hi" }.encode(&mut frame).unwrap();
        frame
    };
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (port, ping) = (server.port, &ping);
            scope.spawn(move || {
                for i in 0..CONNECTIONS {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    stream.set_read_timeout(Some(PROMPT)).unwrap();
                    stream.write_all(ping).unwrap();
                    match (thread + i) % 4 {
                        // Reads the reply, then closes normally.
                        0 | 1 => assert_eq!(read_exactly(&mut stream, ping.len()), *ping),
                        // Half-closes first: the reply still arrives, then EOF.
                        2 => {
                            stream.shutdown(Shutdown::Write).unwrap();
                            assert_eq!(read_to_eof(&mut stream), *ping);
                        }
                        // Resets without reading (SO_LINGER 0).
                        _ => socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap(),
                    }
                }
            });
        }
    });
    let mut observer = server.client();
    wait_until("every short-lived connection is closed", || {
        let text = info(&mut observer);
        info_field(&text, "connected clients") == 1 && info_field(&text, "disconnected clients") == 3_000
    });
    assert_eq!(observer.call(&Request::Ping { payload: b"still" }).unwrap(), Reply::Typed(CommandId::Ping, b"still"));
}

#[test]
fn direct_descriptors_cost_no_process_descriptor_and_are_freed_by_closes_and_refusals() {
    // RLIMIT_NOFILE 64 sizes the ring's file table to 64 slots: five rounds
    // of 50 connections fit only if every close, refusals included, frees
    // its slot.
    let mut command = Command::new("sh");
    command.arg("-c").arg("ulimit -n 64 && exec \"$0\" \"$@\"").arg(server_binary()).args([
        "--io-backend",
        "io_uring",
        "--port",
        "0",
        "--max-clients",
        "41",
        "--verbose",
    ]);
    let mut server = Server::spawn(command);
    server.wait_for_log("accept multishot into direct descriptors");
    let descriptors = || std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap().count();
    let mut ping = Vec::new();
    Request::Ping { payload: b"hi" }.encode(&mut ping).unwrap();
    let mut observer = server.client();
    let before = descriptors();
    for round in 0..5 {
        let mut clients: Vec<TcpStream> = (0..50).map(|_| server.tcp()).collect();
        let mut answered = 0;
        for stream in &mut clients {
            // A refused connection is closed unread: the write may fail.
            let _ = stream.write_all(&ping);
            let mut reply = vec![0; ping.len()];
            if stream.read_exact(&mut reply).is_ok() {
                assert_eq!(reply, ping);
                answered += 1;
            }
        }
        assert_eq!(answered, 40, "round {round}: max-clients 41, the observer included");
        assert_eq!(descriptors(), before, "round {round}: a client holds a descriptor of the server's process");
        drop(clients);
        wait_until("every client is released", || info_field(&info(&mut observer), "connected clients") == 1);
    }
    let text = info(&mut observer);
    assert_eq!(info_field(&text, "disconnected clients"), 250);
}

#[test]
fn clients_vanishing_with_zero_copy_sends_in_flight_spare_the_others() {
    // Every flush goes out with SEND_ZC, even though loopback copies anyway.
    let mut server = uring()
        .arg("--zc-threshold")
        .arg("1")
        .arg("--uring-disable")
        .arg("zc-fallback")
        .arg("--verbose")
        .arg("true")
        .start();
    let value = vec![b'z'; 60_000];
    let mut observer = server.client();
    observer.call(&Request::Set { key: b"big", value: &value, expiry_seconds: None }).unwrap();
    let mut gets = Vec::new();
    for _ in 0..100 {
        Request::Get { key: b"big" }.encode(&mut gets).unwrap();
    }
    for round in 0..20 {
        // 6 MB of replies: far more than the socket buffers hold, so sends
        // are in the kernel when the client goes.
        let mut stream = server.tcp();
        stream.write_all(&gets).unwrap();
        let head = read_exactly(&mut stream, 5);
        assert_eq!(head, [0xea, 0x63, 0x01, 0xea, 0x60], "round {round}");
        if round % 2 == 0 {
            // Unread data pending: closing sends a reset.
            drop(stream);
        } else {
            stream.shutdown(Shutdown::Both).unwrap();
        }
        assert_eq!(observer.call(&Request::Ping { payload: b"ok" }).unwrap(), Reply::Typed(CommandId::Ping, b"ok"));
    }
    wait_until("the vanished clients are closed", || info_field(&info(&mut observer), "connected clients") == 1);
    // A well-behaved reader still gets every byte, zero-copy.
    let mut stream = server.tcp();
    stream.write_all(&gets[..gets.len() / 10]).unwrap();
    let mut reply = Vec::new();
    push_value(&mut reply, &value);
    assert!(read_exactly(&mut stream, reply.len() * 10) == reply.repeat(10));
    drop((stream, observer));

    assert!(server.signal_and_wait(libc::SIGTERM).success());
    let line = server.wait_for_log("zero-copy sends");
    assert!(count_before(&line, "zero-copy sends") > 0, "{line}");
    // Loopback always copies: the notification says so, and it is counted.
    assert!(count_before(&line, "copied by the kernel") > 0, "{line}");
}

#[test]
fn a_connection_stops_zero_copy_once_the_kernel_reports_copying() {
    let mut server = uring().arg("--zc-threshold").arg("1").arg("--verbose").arg("true").start();
    let mut client = server.client();
    for i in 0..200u32 {
        let payload = i.to_be_bytes();
        assert_eq!(client.call(&Request::Ping { payload: &payload }).unwrap(), Reply::Typed(CommandId::Ping, &payload));
    }
    // INFO shows the copied notifications (loopback always copies).
    let text = info(&mut client);
    assert!(info_field(&text, "zero-copy sends") >= 1, "{text}");
    assert!(info_field(&text, "zero-copy sends copied") >= 1, "{text}");
    drop(client);
    assert!(server.signal_and_wait(libc::SIGTERM).success());
    let line = server.wait_for_log("zero-copy sends");
    // The first reply goes out zero-copy; loopback copies; the connection
    // then sends plainly (a few more may leave before the notification).
    let zc_sends = count_before(&line, "zero-copy sends");
    assert!((1..20).contains(&zc_sends), "{line}");
    assert!(count_before(&line, "copied by the kernel") >= 1, "{line}");
}

#[test]
fn a_slow_reader_with_tiny_buffers_keeps_every_request_in_order() {
    // Under backpressure the receive is cancelled; what the kernel already
    // delivered waits in the stash. A multishot receive posts dozens of
    // 64-byte buffers per pass, so the stash holds many (≈1.5 kB measured).
    let server = uring().arg("--uring-recv-buffers").arg("64").arg("--uring-recv-buffer-bytes").arg("64").start();
    let value = vec![b's'; 30_000];
    let mut setter = server.client();
    setter.call(&Request::Set { key: b"v", value: &value, expiry_seconds: None }).unwrap();
    let mut pipeline = Vec::new();
    for i in 0..300u32 {
        if i % 2 == 0 {
            Request::Get { key: b"v" }.encode(&mut pipeline).unwrap();
        } else {
            Request::Ping { payload: &i.to_be_bytes() }.encode(&mut pipeline).unwrap();
        }
    }
    let mut slow = server.tcp();
    let mut writer = slow.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&pipeline));
    wait_until("the slow reader is throttled", || {
        let executed = info_field(&info(&mut setter), "commands executed");
        std::thread::sleep(Duration::from_millis(50));
        info_field(&info(&mut setter), "commands executed") == executed + 1
    });
    for i in 0..300u32 {
        let frame = read_frame(&mut slow);
        let mut expected = Vec::new();
        if i % 2 == 0 {
            push_value(&mut expected, &value);
        } else {
            Request::Ping { payload: &i.to_be_bytes() }.encode(&mut expected).unwrap();
        }
        assert!(frame == expected, "reply {i} differs");
    }
    sender.join().unwrap().unwrap();
}

#[test]
fn fallback_receive_modes_serve_the_same_bytes() {
    for disabled in
        ["provided-buffers", "multishot-recv", "defer-taskrun", "direct-descriptors", "multishot-recv,defer-taskrun,zc"]
    {
        let server = uring()
            .arg("--uring-disable")
            .arg(disabled)
            .arg("--uring-recv-buffer-bytes")
            .arg("512")
            .arg("--zc-threshold")
            .arg("4096")
            .start();
        std::thread::scope(|scope| {
            for client in 0..4 {
                let mut stream = server.tcp();
                scope.spawn(move || {
                    let (requests, replies) = mixed_pipeline(client, 200);
                    run_pipeline(&mut stream, &requests, &replies);
                });
            }
        });
        // Requests then FIN in one go: every reply arrives, then EOF.
        let (requests, replies) = mixed_pipeline(9, 50);
        let mut stream = server.tcp();
        stream.write_all(&requests).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        assert!(got == replies, "half-close with {disabled} off");
        // A maximal frame, written in pieces.
        let value = vec![b'm'; 65_000];
        let mut set = Vec::new();
        Request::Set { key: b"m", value: &value, expiry_seconds: None }.encode(&mut set).unwrap();
        let mut expected = Vec::new();
        push_value(&mut expected, &value);
        let mut stream = server.tcp();
        run_pipeline(&mut stream, &set, &expected);
    }
}

#[test]
fn the_upstream_key_and_auto_select_io_uring_here() {
    for (config, flag, kind) in [
        ("use-io-uring true\n", None, "io_uring"),
        ("use-io-uring false\n", None, "epoll"),
        ("", Some("auto"), "io_uring"),
    ] {
        let mut builder = Server::builder().config(config);
        if let Some(choice) = flag {
            builder = builder.backend(choice);
        }
        let mut server = builder.start();
        server.wait_for_log(&format!("event-loop-kind: {kind}"));
        let text = info(&mut server.client());
        assert!(text.contains(&format!("event_dispatcher_kind: {kind} \n")), "{text}");
    }
}
