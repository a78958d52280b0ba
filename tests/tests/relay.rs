//! `whatnext-relay` and the app's relay manager, with real processes on loopback.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

#[path = "relay_client.rs"]
mod client;

use client::CodePeer;
use whatnext_code_protocol::{CodeRequest, CodeResponse, Refusal};

/// Only the relay may connect these peers: no LAN discovery, no direct listening, and no
/// hole punching (on loopback it would always succeed and upgrade at once).
pub const RELAY_ONLY: &[&str] = &["--no-mdns", "--no-direct", "--no-hole-punch"];

/// A relay-only peer called `name`, with `relay` reserved.
#[allow(dead_code)]
pub fn peer_on(relay: &Relay, dir: &Path, name: &str) -> Headless {
    let mut app = Headless::start_with(dir, RELAY_ONLY);
    app.ok("identity.set_name", json!({"name": name}));
    app.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut app, relay.addr(), "reserved", TIMEOUT);
    app
}

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// A host app with a session whose short code is registered on `relay`; its peer id and code.
fn host_with_code(relay: &Relay, dir: &Path) -> (Headless, String, String) {
    let mut host = Headless::start_with(dir, LOOPBACK);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Coded"}));
    let code = host.relayed_invite(true)["short_code"]
        .as_str()
        .expect("code")
        .to_owned();
    let id = host.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned();
    (host, id, code)
}

/// The old relay ran stock rendezvous: one DISCOVER without a namespace listed every code
/// with its host's peer id.
#[test]
fn a_stranger_cannot_list_the_relays_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let (_host, host_id, _code) = host_with_code(&relay, &dir.path().join("host"));
    let listed = runtime().block_on(async {
        let mut stranger = CodePeer::connect(relay.addr()).await?;
        stranger.discover_everything().await
    });
    if let Ok(list) = listed {
        assert!(
            list.iter().all(|(_, peer)| peer.to_string() != host_id),
            "a stranger listed the host's code: {list:?}"
        );
    }
}

#[test]
fn a_second_peer_cannot_take_a_live_code_and_a_joiner_finds_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let (_host, host_id, code) = host_with_code(&relay, &dir.path().join("host"));
    let (taken, dropped, found) = runtime().block_on(async {
        let mut thief = CodePeer::connect(relay.addr()).await.expect("connect");
        let taken = thief
            .ask(CodeRequest::Register {
                code: code.clone(),
                addrs: Vec::new(),
            })
            .await;
        let dropped = thief
            .ask(CodeRequest::Unregister { code: code.clone() })
            .await;
        let mut joiner = CodePeer::connect(relay.addr()).await.expect("connect");
        let found = joiner
            .ask(CodeRequest::Lookup {
                code: code.to_lowercase(),
            })
            .await;
        (taken, dropped, found)
    });
    assert_eq!(
        taken,
        Ok(CodeResponse::Refused {
            reason: Refusal::Taken
        })
    );
    assert_eq!(dropped, Ok(CodeResponse::Unregistered));
    match found {
        Ok(CodeResponse::Found { peer, .. }) => {
            let peer = libp2p::PeerId::from_bytes(&peer).expect("peer id");
            assert_eq!(
                peer.to_string(),
                host_id,
                "the code still leads to its host"
            );
        }
        other => panic!("the joiner did not find the host: {other:?}"),
    }
}

/// With the default allowance (60 a minute per IP, also the burst), a storm of lookups from
/// several fresh peer ids on one IP is answered 60 times, then refused.
#[test]
fn a_lookup_storm_from_one_ip_is_refused_after_its_allowance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let started = Instant::now();
    let (served, limited, other) = runtime().block_on(async {
        let mut peers = Vec::new();
        for _ in 0..5 {
            peers.push(CodePeer::connect(relay.addr()).await.expect("connect"));
        }
        let (mut served, mut limited, mut other) = (0, 0, Vec::new());
        for i in 0..150 {
            let code = format!("GUESS{i}");
            match peers[i % 5].ask(CodeRequest::Lookup { code }).await {
                Ok(CodeResponse::NotFound) => served += 1,
                Ok(CodeResponse::Refused {
                    reason: Refusal::RateLimited,
                }) => limited += 1,
                answer => other.push(answer),
            }
        }
        (served, limited, other)
    });
    let elapsed = started.elapsed();
    eprintln!("lookups from one IP: {served} answered, {limited} refused in {elapsed:?}");
    assert!(other.is_empty(), "{other:?}");
    // One token comes back a second while the storm lasts.
    let refill = elapsed.as_secs() as usize + 1;
    assert!((60..=60 + refill).contains(&served), "{served} answered");
    assert_eq!(served + limited, 150);
}

/// 1,000 fresh peer ids from one IP, each connecting and registering a code, with the
/// default limits: the network's connection and code caps hold.
#[test]
fn a_thousand_fresh_peer_ids_from_one_ip_hold_only_a_few_codes() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let addr = relay.addr().to_owned();
    let started = Instant::now();
    let outcomes: Vec<(Result<CodeResponse, String>, Option<CodePeer>)> =
        runtime().block_on(async {
            futures::stream::iter(0..1000)
                .map(|i| {
                    let addr = addr.clone();
                    async move {
                        match CodePeer::connect(&addr).await {
                            Ok(mut peer) => {
                                let code = format!("FLOOD{i}");
                                let answer = peer
                                    .ask(CodeRequest::Register {
                                        code,
                                        addrs: Vec::new(),
                                    })
                                    .await;
                                (answer, Some(peer))
                            }
                            Err(e) => (Err(e), None),
                        }
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await
        });
    let count = |f: &dyn Fn(&Result<CodeResponse, String>) -> bool| {
        outcomes.iter().filter(|(o, _)| f(o)).count()
    };
    let connected = outcomes.iter().filter(|(_, p)| p.is_some()).count();
    let registered = count(&|o| matches!(o, Ok(CodeResponse::Registered { .. })));
    let too_many = count(&|o| {
        matches!(
            o,
            Ok(CodeResponse::Refused {
                reason: Refusal::TooManyCodes
            })
        )
    });
    let limited = count(&|o| {
        matches!(
            o,
            Ok(CodeResponse::Refused {
                reason: Refusal::RateLimited
            })
        )
    });
    eprintln!(
        "1000 fresh peer ids from one IP in {:?}: {connected} connections accepted (at most 64 \
         open at once), {registered} codes registered, {too_many} refused as too many, \
         {limited} rate-limited, {} connections refused",
        started.elapsed(),
        1000 - connected
    );
    assert_eq!(registered, 8, "the default cap of codes per IP");
    // Every accepted peer is still connected here, so this is the open count.
    assert!(connected <= 64, "{connected} open connections from one IP");
}

/// Reservations are counted per network, not per peer id: fresh peer ids from one IP get
/// no more than `--max-reservations-per-ip` between them.
#[test]
fn fresh_peer_ids_from_one_ip_hold_at_most_their_networks_reservations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(
        &dir.path().join("relay.key"),
        0,
        &["--max-reservations-per-ip", "3"],
    );
    let (accepted, refused, _peers) = runtime().block_on(async {
        let (mut accepted, mut refused, mut peers) = (0, Vec::new(), Vec::new());
        for _ in 0..6 {
            let mut peer = CodePeer::connect(relay.addr()).await.expect("connect");
            match peer.reserve(relay.addr()).await {
                Ok(()) => accepted += 1,
                Err(e) => refused.push(e),
            }
            peers.push(peer); // held open, so the reservations stay
        }
        (accepted, refused, peers)
    });
    assert_eq!(accepted, 3, "refusals: {refused:?}");
    assert_eq!(refused.len(), 3);
}

/// A metrics client that connects and sends nothing is closed after the header timeout, and
/// does not hold up another scrape meanwhile.
#[test]
fn a_silent_metrics_client_neither_blocks_a_scrape_nor_stays_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let _relay = Relay::start(&dir.path().join("relay.key"), 0, &["--metrics", &metrics]);
    let mut silent = std::net::TcpStream::connect(&metrics).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut scrape = std::net::TcpStream::connect(&metrics).expect("connect");
    scrape
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: relay\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    scrape
        .read_to_string(&mut body)
        .expect("an answer within 5 s");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("whatnext_relay_connections"), "{body}");
    let started = Instant::now();
    let mut rest = Vec::new();
    silent
        .read_to_end(&mut rest)
        .expect("the silent client is closed, not left hanging");
    eprintln!("silent metrics client closed after {:?}", started.elapsed());
}
