//! Connection behaviour over real sockets: concurrency, max-clients,
//! half-close, slow readers, graceful shutdown, Unix sockets, IPv6, INFO.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::*;
use fkvs::client::{Client, Endpoint};
use fkvs::protocol::{CommandId, Reply, Request};

#[test]
fn concurrent_clients_see_one_consistent_store() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let mut client = server.client();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        client.queue(&Request::Incr { key: b"shared" }).unwrap();
                    }
                    client.flush().unwrap();
                    for _ in 0..500 {
                        assert!(matches!(client.recv().unwrap(), Reply::Value(_)));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(server.client().call(&Request::Get { key: b"shared" }).unwrap(), Reply::Value(b"4000"));
    }
}

#[test]
fn max_clients_refuses_extra_connections_and_spares_the_others() {
    for backend in BACKENDS {
        let server = Server::builder().backend(backend).arg("--max-clients").arg("3").start();
        let mut clients: Vec<Client> = (0..3).map(|_| server.client()).collect();
        for client in &mut clients {
            assert_eq!(client.call(&Request::Ping { payload: b"" }).unwrap(), Reply::Typed(CommandId::Ping, b""));
        }
        // The fourth is accepted and closed at once, unread.
        let mut fourth = server.tcp();
        let _ = fourth.write_all(&hex("00 03 05 00 00"));
        let mut buf = Vec::new();
        let _ = fourth.read_to_end(&mut buf); // EOF or reset, never a reply
        assert_eq!(buf, b"");
        let text = info(&mut clients[0]);
        assert_eq!(info_field(&text, "connected clients"), 3);
        assert_eq!(info_field(&text, "disconnected clients"), 1);
        // Closing one makes room again.
        drop(clients.pop());
        wait_until("a slot frees up", || {
            let mut stream = server.tcp();
            stream.write_all(&hex("00 03 05 00 00")).unwrap();
            let mut reply = [0u8; 5];
            stream.read_exact(&mut reply).is_ok()
        });
    }
}

#[test]
fn half_close_answers_everything_received_then_closes() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut stream = server.tcp();
        let mut requests = Vec::new();
        for i in 0..500u32 {
            Request::Set { key: &i.to_be_bytes(), value: b"v", expiry_seconds: None }.encode(&mut requests).unwrap();
        }
        stream.write_all(&requests).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let replies = read_to_eof(&mut stream);
        assert_eq!(replies, hex("00 04 01 00 01 76").repeat(500));
        let mut client = server.client();
        assert_eq!(client.call(&Request::Get { key: &499u32.to_be_bytes() }).unwrap(), Reply::Value(b"v"));
    }
}

#[test]
fn slow_reader_is_throttled_not_dropped_and_others_are_served() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let value = vec![b'x'; 60_000];
        let mut setter = server.client();
        setter.call(&Request::Set { key: b"big", value: &value, expiry_seconds: None }).unwrap();

        // 200 GETs of 60 kB = 12 MB of replies, never read while sending.
        const GETS: usize = 200;
        let mut slow = server.tcp();
        let mut pipeline = Vec::new();
        for _ in 0..GETS {
            Request::Get { key: b"big" }.encode(&mut pipeline).unwrap();
        }
        let mut writer = slow.try_clone().unwrap();
        let sender = std::thread::spawn(move || writer.write_all(&pipeline));

        // The server stops executing for the slow reader once its output
        // bound is reached: the command count stops short of all GETs.
        let mut observer = server.client();
        wait_until("the slow reader is throttled", || {
            let executed = info_field(&info(&mut observer), "commands executed");
            std::thread::sleep(std::time::Duration::from_millis(50));
            info_field(&info(&mut observer), "commands executed") == executed + 1
        });
        let executed = info_field(&info(&mut observer), "commands executed");
        assert!(executed < GETS as u64, "{executed} commands ran: the slow reader was not throttled");
        assert_eq!(info_field(&info(&mut observer), "connected clients"), 3);

        // Once it reads, every reply arrives, in full and in order.
        let frame_bytes = 5 + value.len();
        for i in 0..GETS {
            let frame = read_exactly(&mut slow, frame_bytes);
            assert_eq!(&frame[..5], &[0xea, 0x63, 0x01, 0xea, 0x60], "reply {i}");
        }
        sender.join().unwrap().unwrap();
    }
}

#[test]
fn sigterm_flushes_pending_replies_then_exits_zero() {
    for backend in BACKENDS {
        let mut server = Server::start(backend);
        let mut observer = server.client();
        let mut stream = server.tcp();
        let mut pipeline = Vec::new();
        for i in 0..300u32 {
            Request::Set { key: &i.to_be_bytes(), value: &[b'v'; 1000], expiry_seconds: None }
                .encode(&mut pipeline)
                .unwrap();
        }
        stream.write_all(&pipeline).unwrap();
        wait_until("all 300 requests ran", || info_field(&info(&mut observer), "commands executed") >= 300);
        drop(observer);
        let status = server.signal_and_wait(libc::SIGTERM);
        assert!(status.success(), "exit status {status:?}");
        let replies = read_to_eof(&mut stream);
        assert_eq!(replies.len(), 300 * (5 + 1000), "every reply was flushed before exit");
    }
}

#[test]
fn sigint_also_stops_the_server_cleanly() {
    let mut server = Server::start(BACKENDS[0]);
    assert!(server.signal_and_wait(libc::SIGINT).success());
}

#[test]
fn unix_socket_mode_live_socket_protection_and_cleanup() {
    for backend in BACKENDS {
        let mut server = Server::builder().backend(backend).unix().start();
        let Endpoint::Unix(path) = server.endpoint.clone() else { unreachable!() };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o770);

        // A second server refuses to steal the live socket.
        let second = Command::new(server_binary()).arg("--unixsocket").arg(&path).output().unwrap();
        assert!(!second.status.success());
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(stderr.contains("already listening"), "{stderr}");
        let mut client = server.client();
        assert_eq!(client.call(&Request::Ping { payload: b"" }).unwrap(), Reply::Typed(CommandId::Ping, b""));
        drop(client);

        assert!(server.signal_and_wait(libc::SIGTERM).success());
        assert!(!path.exists(), "socket file removed on shutdown");
    }
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let dir = TempDir::new();
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // file stays, nobody listens
    assert!(path.exists());
    let server = Server::builder().arg("--unixsocket").arg(path.to_str().unwrap()).start();
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.write_all(&hex("00 03 05 00 00")).unwrap();
    assert_eq!(read_exactly(&mut stream, 5), hex("00 03 05 00 00"));
    drop(server);
}

#[test]
fn ipv6_bind_address() {
    if TcpStream::connect("[::1]:9").is_err_and(|e| e.kind() == std::io::ErrorKind::AddrNotAvailable) {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let server = Server::builder().arg("--bind").arg("::1").start();
    assert!(matches!(&server.endpoint, Endpoint::Tcp { host, .. } if host == "::1"));
    let mut client = server.client();
    assert_eq!(client.call(&Request::Ping { payload: b"6" }).unwrap(), Reply::Typed(CommandId::Ping, b"6"));
}

#[test]
fn info_reports_true_values() {
    for backend in BACKENDS {
        let server = Server::start(backend);
        let mut client = server.client();
        let _other = server.client();
        let before = info(&mut client);
        assert_eq!(info_field(&before, "pid"), u64::from(server.pid()));
        assert_eq!(info_field(&before, "port"), u64::from(server.port));
        assert!(before.contains(&format!("event_dispatcher_kind: {backend} \n")), "{before}");
        wait_until("both clients are counted", || info_field(&info(&mut client), "connected clients") == 2);
        let executed = info_field(&info(&mut client), "commands executed");
        client.call(&Request::Set { key: b"a", value: b"1", expiry_seconds: None }).unwrap();
        client.call(&Request::Get { key: b"zz" }).unwrap();
        let after = info(&mut client);
        // The INFO just before counts too, this one does not (§2.10).
        assert_eq!(info_field(&after, "commands executed"), executed + 3);
        assert_eq!(info_field(&after, "keys"), 1);
        assert!(info_field(&after, "Memory Usage") > 0);
        assert!(after.starts_with("# Server \npid: "));
        assert!(after.contains("\n#Stats \ncommands executed: "));
    }
}
