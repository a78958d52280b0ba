//! What a stranger with many fresh peer ids can do to a host and its relay: one process makes
//! `STRANGERS` throwaway identities (1,000 by default; `WHATNEXT_STRANGERS` to change it), and
//! each knocks on a real host with its short code through a real relay on loopback. Prints
//! how many knocks the host let wait, how many were refused and why, how many could not even
//! reach it, the host's and the relay's memory before and after, and whether a real guest
//! with the link still gets in, and how fast.
//!
//! `cargo build --workspace --bins && cargo bench -p whatnext-e2e --bench strangers`

#[allow(unused)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(unused)]
#[path = "../tests/relay.rs"]
mod relay;
#[allow(unused)]
#[path = "../tests/rogue_client.rs"]
mod rogue_client;

use std::collections::BTreeMap;
use std::time::Instant;

use harness::*;
use relay::{Relay, wait_relay_status};
use rogue_client::Rogue;
use serde_json::json;
use whatnext_replication::protocol::{SessionRequest, SessionResponse};

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

fn main() {
    let strangers: usize = std::env::var("WHATNEXT_STRANGERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    println!("== the relay as deployed (its default limits) ==");
    crowd(strangers, &[]);
    // On loopback every stranger shares one IP with the real guest, so the relay's per-IP
    // limits stop them all; with those lifted, the figures are the host's own.
    println!("== the relay's per-IP limits lifted: the host alone ==");
    crowd(
        strangers,
        &[
            "--reservations-per-ip-per-minute",
            "100000",
            "--circuits-per-ip-per-minute",
            "100000",
            "--max-circuits",
            "100000",
            "--max-circuits-per-ip",
            "100000",
            "--max-connections-per-ip",
            "100000",
            "--max-pending-connections-per-ip",
            "100000",
        ],
    );
}

/// `strangers` fresh ids knock on a host through a relay started with `relay_flags`.
fn crowd(strangers: usize, relay_flags: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, relay_flags);
    let flags = &["--no-mdns", "--no-direct", "--no-hole-punch"];
    let mut host = Headless::start_with(&dir.path().join("host"), flags);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Crowded"}));
    let invite = host.relayed_invite(true);
    let url = invite["url"].as_str().expect("url").to_owned();
    let code = invite["short_code"].as_str().expect("code").to_owned();
    let host_before = rss_kib(host.child.id());
    let relay_before = rss_kib(relay.child.id());

    let started = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..strangers {
        let mut rogue = Rogue::aimed_at(&url);
        let hello = rogue.hello(None, Some(code.clone()), &format!("Stranger {i}"));
        let outcome = match rogue.try_send(&SessionRequest::Hello(hello)) {
            Ok(SessionResponse::Knocked) => "knock waiting".to_owned(),
            Ok(SessionResponse::Refused { reason }) => format!("refused: {reason}"),
            Ok(other) => format!("answered {other:?}"),
            Err(e) => format!("no answer: {e}"),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let took = started.elapsed();
    let waiting = host.ok("knock.list", json!(null));
    let waiting = waiting.as_array().map_or(0, Vec::len);
    println!(
        "{strangers} fresh peer ids knocked through the relay in {:.1} s ({:.0} a second):",
        took.as_secs_f64(),
        strangers as f64 / took.as_secs_f64()
    );
    for (outcome, n) in &outcomes {
        println!("  {n:>5} × {outcome}");
    }
    println!("  knocks waiting on the host afterwards: {waiting}");
    println!(
        "  host memory: {} → {} KiB; relay memory: {} → {} KiB",
        host_before,
        rss_kib(host.child.id()),
        relay_before,
        rss_kib(relay.child.id())
    );

    let mut guest = Headless::start_with(&dir.path().join("guest"), flags);
    let joined = Instant::now();
    // `call` gives up (panics) after 30 s: that is an answer too.
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        guest.call("session.join", json!({"invite": url}))
    }));
    let outcome = match reply {
        Ok(reply) if reply["ok"] == json!(true) => "joined".to_owned(),
        Ok(reply) => format!("not admitted ({})", reply["error"]),
        Err(_) => "no answer within 30 s".to_owned(),
    };
    println!(
        "  a real guest with the link afterwards, from the same IP: {outcome} after {:.0} ms",
        joined.elapsed().as_secs_f64() * 1e3
    );
}
