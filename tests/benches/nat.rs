//! Hole-punching figures in the two-NAT lab (`tests/nat/natlab.sh`, `cone` variant): N fresh
//! runs (new namespaces, new identities), each a host behind NAT A and a guest behind NAT B
//! given only the relay's address. Prints the direct-upgrade success rate, the time to the
//! first (relayed) session, and the time to the direct upgrade.
//!
//! Needs root, iproute2 and nftables, and the debug binaries (`cargo build --workspace --bins`):
//! `cargo bench -p whatnext-e2e --bench nat` (`NAT_RUNS=50` for more runs, default 20;
//! `NAT_VARIANT=symmetric` for the variant where hole punching cannot work).

#[allow(unused)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(unused)]
#[path = "../tests/natlab.rs"]
mod natlab;
#[allow(unused)]
#[path = "../tests/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use harness::*;
use natlab::{Lab, RELAY_IP};
use relay::{Relay, wait_relay_status};
use serde_json::{Value, json};

const FLAGS: &[&str] = &["--no-mdns"];

struct Run {
    relayed: Duration,
    direct: Option<Duration>,
}

fn link_to(state: &Value, peer: &str) -> Option<String> {
    state["participants"]
        .as_array()?
        .iter()
        .find(|p| p["peer_id"] == json!(peer) && p["online"] == json!(true))
        .and_then(|p| p["connection"].as_str().map(str::to_owned))
}

fn one_run(variant: &str, i: usize) -> Run {
    let lab = Lab::up(variant, &format!("m{i}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("/ip4/{RELAY_IP}/tcp/4001");
    let relay = Relay::start_in_netns(
        &lab.ns("relay"),
        &dir.path().join("relay.key"),
        &["--listen", &listen],
    );
    let mut host = Headless::start_in_netns(&lab.ns("a"), &dir.path().join("host"), FLAGS);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Measure"}));
    let host_id = host.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_in_netns(&lab.ns("b"), &dir.path().join("guest"), FLAGS);
    let started = Instant::now();
    guest.ok("session.join", json!({"invite": url}));
    let relayed = started.elapsed();
    let deadline = started + Duration::from_secs(15);
    let direct = loop {
        let state = guest.ok("session.state", json!(null));
        if link_to(&state, &host_id).as_deref() == Some("direct") {
            break Some(started.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = host.call("quit", json!(null));
    let _ = guest.call("quit", json!(null));
    drop(relay);
    Run { relayed, direct }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let runs: usize = std::env::var("NAT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let variant = std::env::var("NAT_VARIANT").unwrap_or_else(|_| "cone".into());
    let results: Vec<Run> = (0..runs).map(|i| one_run(&variant, i)).collect();
    let mut relayed: Vec<Duration> = results.iter().map(|r| r.relayed).collect();
    let mut direct: Vec<Duration> = results.iter().filter_map(|r| r.direct).collect();
    relayed.sort();
    direct.sort();
    println!(
        "direct upgrade ({variant} NATs): {} of {runs} runs ({:.0}%)",
        direct.len(),
        100.0 * direct.len() as f64 / runs as f64
    );
    println!(
        "time to the first session, through the relay (join sent -> joined): p50 {:?}, p90 {:?}, max {:?}",
        percentile(&relayed, 0.5),
        percentile(&relayed, 0.9),
        relayed[relayed.len() - 1]
    );
    if !direct.is_empty() {
        println!(
            "time to the direct upgrade (join sent -> state shows direct): p50 {:?}, p90 {:?}, max {:?}",
            percentile(&direct, 0.5),
            percentile(&direct, 0.9),
            direct[direct.len() - 1]
        );
    }
}
