//! `whatnext-relay` and the app's relay manager, with real processes on loopback.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A running relay and the addresses it printed.
pub struct Relay {
    pub child: Child,
    pub addrs: Vec<String>,
}

impl Relay {
    /// Starts a relay on `tcp_port` (0 = any) with its key in `key_file`.
    pub fn start(key_file: &Path, tcp_port: u16, extra: &[&str]) -> Relay {
        let listen = format!("/ip4/127.0.0.1/tcp/{tcp_port}");
        let mut args = vec!["--listen", &listen];
        args.extend_from_slice(extra);
        Self::spawn(
            Command::new(sibling_binary("whatnext-relay")),
            key_file,
            &args,
        )
    }

    /// Starts a relay inside a network namespace, with its own `--listen` flags in `args`.
    #[allow(dead_code)]
    pub fn start_in_netns(netns: &str, key_file: &Path, args: &[&str]) -> Relay {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns])
            .arg(sibling_binary("whatnext-relay"));
        Self::spawn(command, key_file, args)
    }

    fn spawn(mut command: Command, key_file: &Path, args: &[&str]) -> Relay {
        let mut child = command
            .arg("--key-file")
            .arg(key_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start whatnext-relay");
        let rx = read_lines(child.stdout.take().expect("stdout"), |line| line);
        let first = rx
            .recv_timeout(TIMEOUT)
            .expect("the relay prints its address");
        Relay {
            child,
            addrs: vec![first],
        }
    }

    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    pub fn peer_id(&self) -> &str {
        self.addr().rsplit('/').next().expect("peer id")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        wait_for_exit(&mut self.child, "the relay, after SIGTERM,")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Polls `relay.list` until the relay at `addr` has `status`, returning the entry.
pub fn wait_relay_status(app: &mut Headless, addr: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let list = app.ok("relay.list", json!(null));
        let entry = list
            .as_array()
            .and_then(|l| l.iter().find(|r| r["addr"] == json!(addr)).cloned())
            .expect("relay listed");
        if entry["status"] == json!(status) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "relay never became {status}; last: {entry}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_relay_prints_its_address_and_keeps_its_peer_id_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("relay.key");
    let relay = Relay::start(&key, 0, &[]);
    let first = relay.addr().to_owned();
    assert!(first.starts_with("/ip4/127.0.0.1/tcp/"), "{first}");
    assert!(
        !first.contains("/tcp/0/"),
        "the real port is printed: {first}"
    );
    assert!(first.contains("/p2p/12D3Koo"), "{first}");
    let id = relay.peer_id().to_owned();
    assert!(relay.terminate().success(), "a clean exit on SIGTERM");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = Relay::start(&key, 0, &[]);
    assert_eq!(again.peer_id(), id);
}

#[test]
fn a_corrupt_relay_key_file_is_an_error_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("relay.key");
    std::fs::write(&key, "nope").expect("write");
    let output = Command::new(sibling_binary("whatnext-relay"))
        .arg("--key-file")
        .arg(&key)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).expect("read"), "nope");
}

#[test]
fn the_app_reserves_a_slot_on_its_relay_and_the_relay_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_tcp_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &["--metrics", &metrics]);
    let mut app = Headless::start_with(&dir.path().join("app"), LOOPBACK);
    app.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut app, relay.addr(), "reserved", TIMEOUT);
    let names: Vec<&str> = app
        .events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(names.contains(&"relay.status"), "{names:?}");
    let mut body = String::new();
    let mut socket = std::net::TcpStream::connect(&metrics).expect("metrics");
    socket
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    socket.read_to_string(&mut body).expect("response");
    assert!(body.contains("whatnext_relay_reservations 1"), "{body}");
}

#[test]
fn a_relay_outage_is_reported_and_the_reservation_comes_back_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("relay.key");
    let port = free_tcp_port();
    let relay = Relay::start(&key, port, &[]);
    let addr = relay.addr().to_owned();
    let mut app = Headless::start_with(&dir.path().join("app"), LOOPBACK);
    app.ok("relay.add", json!({"addr": addr}));
    wait_relay_status(&mut app, &addr, "reserved", TIMEOUT);
    drop(relay); // SIGKILL: an outage, not a goodbye
    let failed = wait_relay_status(&mut app, &addr, "failed", TIMEOUT);
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    let _relay = Relay::start(&key, port, &[]);
    let started = Instant::now();
    // Backoff is capped at 30 s; allow for the slow debug build on a loaded machine.
    wait_relay_status(&mut app, &addr, "reserved", Duration::from_secs(60));
    eprintln!(
        "reservation back {:?} after the relay restarted",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_relay_fails_with_a_reason_and_stays_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_tcp_port(); // nothing listens here
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
    );
    {
        let mut app = Headless::start_with(&dir.path().join("app"), LOOPBACK);
        app.ok("relay.add", json!({"addr": addr}));
        let failed = wait_relay_status(&mut app, &addr, "failed", TIMEOUT);
        assert!(
            failed["error"]
                .as_str()
                .is_some_and(|e| e.contains("connect")),
            "{failed}"
        );
        app.ok("quit", json!(null));
        assert!(app.wait_exit().success());
    }
    let mut app = Headless::start_with(&dir.path().join("app"), &["--offline"]);
    let list = app.ok("relay.list", json!(null));
    assert_eq!(list[0]["addr"], json!(addr));
}

/// A relay that stops answering (SIGSTOP: the TCP connection stays open) is noticed by the
/// ping heartbeat, not left looking healthy.
#[test]
fn a_frozen_relay_is_noticed_by_the_heartbeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let addr = relay.addr().to_owned();
    let mut app = Headless::start_with(&dir.path().join("app"), LOOPBACK);
    app.ok("relay.add", json!({"addr": addr}));
    wait_relay_status(&mut app, &addr, "reserved", TIMEOUT);
    let pid = relay.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let started = Instant::now();
    // Heartbeat every 15 s, a ping times out after 20 s: noticed within about 35 s.
    let failed = wait_relay_status(&mut app, &addr, "failed", Duration::from_secs(90));
    eprintln!(
        "frozen relay noticed after {:?}: {failed}",
        started.elapsed()
    );
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
}
