//! Prints connection and round-trip figures on loopback, through a real `whatnext-relay`
//! process and directly, using whatnext's own swarm and session protocol:
//! - time to connect and get the first answer from a host (relayed, direct);
//! - request round-trip time, p50 and p99 over 1,000 requests (relayed, direct);
//! - the relay's resident memory with 500 reservations.
//!
//! Run: cargo build --release -p whatnext-relay && cargo bench -p whatnext-network --bench links

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{Event as RrEvent, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity, relay};
use whatnext_network::NetConfig;
use whatnext_network::swarm::{Behaviour, BehaviourEvent, build_swarm};
use whatnext_network::transport::{Request, Response};

const ROUND_TRIPS: usize = 1_000;
const CONNECT_SAMPLES: usize = 20;
const RESERVATIONS: usize = 500;

fn relay_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let target = exe.ancestors().nth(3).expect("target dir").to_owned();
    for profile in ["release", "debug"] {
        let bin = target.join(profile).join("whatnext-relay");
        if bin.exists() {
            return bin;
        }
    }
    panic!("build the relay first: cargo build --release -p whatnext-relay");
}

fn swarm(listen: bool) -> Swarm<Behaviour> {
    let mut config = NetConfig::new(identity::Keypair::generate_ed25519());
    config.mdns = false;
    config.hole_punch = false;
    let mut swarm = build_swarm(&config).expect("swarm");
    if listen {
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
            .expect("listen");
    }
    swarm
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

/// Sends one ping to `to` (dialling `addrs` if needed) and waits for the pong.
async fn ping(swarm: &mut Swarm<Behaviour>, to: PeerId, addrs: Vec<Multiaddr>, n: u64) -> Duration {
    let started = Instant::now();
    swarm
        .behaviour_mut()
        .session
        .send_request_with_addresses(&to, Request::Ping(n), addrs);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(BehaviourEvent::Session(RrEvent::Message {
                message:
                    Message::Response {
                        response: Response::Pong(m),
                        ..
                    },
                ..
            })) if m == n => return started.elapsed(),
            SwarmEvent::Behaviour(BehaviourEvent::Session(RrEvent::OutboundFailure {
                error,
                ..
            })) => {
                panic!("ping failed: {error}")
            }
            _ => {}
        }
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("whatnext-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut relay = Command::new(relay_binary())
        .arg("--key-file")
        .arg(dir.join("relay.key"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args([
            "--reservations-per-ip-per-minute",
            "100000",
            "--circuits-per-ip-per-minute",
            "100000",
        ])
        .args(["--max-reservations", "2000", "--max-circuits", "2000"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start relay");
    let mut line = String::new();
    BufReader::new(relay.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("relay address");
    let relay_addr: Multiaddr = line.trim().parse().expect("multiaddr");
    let relay_pid = relay.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    runtime.block_on(async move {
        // The host: listens directly and holds a reservation; answers pings forever.
        let mut host = swarm(true);
        host.listen_on(relay_addr.clone().with(Protocol::P2pCircuit)).expect("circuit");
        let host_id = *host.local_peer_id();
        let mut direct_addr = None;
        let mut reserved = false;
        while direct_addr.is_none() || !reserved {
            match host.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } if !address.iter().any(|p| p == Protocol::P2pCircuit) => {
                    direct_addr = Some(address)
                }
                SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted { .. })) => {
                    reserved = true
                }
                _ => {}
            }
        }
        let direct_addr = direct_addr.expect("direct");
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::Behaviour(BehaviourEvent::Session(RrEvent::Message {
                    message: Message::Request { request: Request::Ping(n), channel, .. },
                    ..
                })) = host.select_next_some().await
                {
                    let _ = host.behaviour_mut().session.send_response(channel, Response::Pong(n));
                }
            }
        });
        let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
        for (label, addr) in [("relayed", circuit.clone()), ("direct", direct_addr.clone())] {
            let mut connects = Vec::new();
            for i in 0..CONNECT_SAMPLES {
                let mut guest = swarm(false);
                connects.push(ping(&mut guest, host_id, vec![addr.clone()], i as u64).await);
            }
            let mut guest = swarm(false);
            ping(&mut guest, host_id, vec![addr.clone()], 0).await;
            let mut rtts = Vec::with_capacity(ROUND_TRIPS);
            for n in 1..=ROUND_TRIPS as u64 {
                rtts.push(ping(&mut guest, host_id, Vec::new(), n).await);
            }
            println!(
                "{label}: connect + first answer p50 {:.2} ms, p99 {:.2} ms ({CONNECT_SAMPLES} fresh peers); \
                 request round trip p50 {:.3} ms, p99 {:.3} ms ({ROUND_TRIPS} requests)",
                percentile(&mut connects, 50).as_secs_f64() * 1e3,
                percentile(&mut connects, 99).as_secs_f64() * 1e3,
                percentile(&mut rtts, 50).as_secs_f64() * 1e3,
                percentile(&mut rtts, 99).as_secs_f64() * 1e3,
            );
            println!(
                "figure: links, {label}, request round trip p50 | {:.3} ms | —",
                percentile(&mut rtts, 50).as_secs_f64() * 1e3
            );
        }

        let before = rss_kib(relay_pid);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        for _ in 0..RESERVATIONS {
            let tx = tx.clone();
            let circuit = circuit.clone();
            tokio::spawn(async move {
                let mut peer = swarm(false);
                if peer.listen_on(circuit).is_err() {
                    return;
                }
                let mut told = false;
                loop {
                    if let SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                        relay::client::Event::ReservationReqAccepted { .. },
                    )) = peer.select_next_some().await
                        && !told
                    {
                        told = true;
                        let _ = tx.send(());
                    }
                }
            });
        }
        let mut accepted = 0;
        while accepted < RESERVATIONS {
            match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
                Ok(Some(())) => accepted += 1,
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(relay_pid);
        println!(
            "relay resident memory: {:.1} MiB idle, {:.1} MiB with {accepted} reservations ({:.1} KiB each); reserved in {:.1} s",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            (after.saturating_sub(before)) as f64 / accepted.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
        println!(
            "figure: relay memory per reservation | {:.1} KiB | —",
            (after.saturating_sub(before)) as f64 / accepted.max(1) as f64
        );
    });
    let _ = relay.kill();
    let _ = relay.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
