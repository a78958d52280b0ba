//! Prints session figures with real processes on loopback (relay, host, two guests):
//! intent-to-visible latency on the other guest, relayed and direct (p50/p99 over 1,000
//! intents), and the join time of a session with 10,000 tracks.
//!
//! It drives the binaries of its own profile when they are built (`scripts/bench` builds
//! release), else the debug ones the tests use: `cargo bench --workspace --bench session`.

#[allow(unused)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(unused)]
#[path = "../tests/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use harness::*;
use relay::{Relay, wait_relay_status};
use serde_json::{Value, json};

const INTENTS: usize = 1_000;

/// Waits for the `track.added` event of `track_id` on `app`.
fn wait_added(app: &mut Headless, track_id: &Value) {
    loop {
        if let Some(i) = app
            .events
            .iter()
            .position(|e| e["event"] == json!("track.added") && e["data"]["track_id"] == *track_id)
        {
            app.events.drain(..=i);
            return;
        }
        app.pump(Duration::from_secs(30));
    }
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

fn latency(label: &str, flags: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&dir.path().join("host"), flags);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Bench"}));
    let url = host.relayed_invite_url();
    let mut a = Headless::start_with(&dir.path().join("a"), flags);
    let mut b = Headless::start_with(&dir.path().join("b"), flags);
    a.ok("session.join", json!({"invite": url}));
    b.ok("session.join", json!({"invite": url}));
    std::thread::sleep(Duration::from_secs(2)); // let hole punching settle when it is on
    let mut samples = Vec::with_capacity(INTENTS);
    for i in 0..INTENTS {
        // Paced under the host's per-member rate limit (50 a second).
        std::thread::sleep(Duration::from_millis(25));
        let started = Instant::now();
        let added = a.ok(
            "track.add",
            json!({"title": format!("T{i}"), "artist": "A", "duration_ms": 1000}),
        );
        wait_added(&mut b, &added["track_id"]);
        samples.push(started.elapsed());
    }
    let state = b.ok("session.state", json!(null));
    let connection = state["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["role"] == json!("host")))
        .map(|p| p["connection"].clone());
    let p50 = percentile(&mut samples, 50).as_secs_f64() * 1e3;
    let p99 = percentile(&mut samples, 99).as_secs_f64() * 1e3;
    println!(
        "intent on guest A visible on guest B, {label} (B sees the host as {}): p50 {p50:.2} ms, p99 {p99:.2} ms over {INTENTS}",
        connection.unwrap_or(Value::Null),
    );
    let (p50_target, p99_target) = if label == "relayed" {
        ("≤ 3 ms", "≤ 6 ms")
    } else {
        ("—", "—")
    };
    println!(
        "figure: intent to visible on another guest, {label}, p50 | {p50:.2} ms | {p50_target}"
    );
    println!(
        "figure: intent to visible on another guest, {label}, p99 | {p99:.2} ms | {p99_target}"
    );
}

/// A guest joins a 10,000-track session through the relay. `text` pads each track's title
/// and artist to that many characters: 200 is the cap, which makes the largest session the
/// caps allow (10,000 tracks, under the 6 MiB of track text a session may hold).
fn join_big_session(text: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let flags = &["--no-mdns", "--no-direct", "--no-hole-punch"];
    let mut host = Headless::start_with(&dir.path().join("host"), flags);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Big"}));
    let mut lines = String::new();
    for i in 0..10_000 {
        let title = format!("Track {i} {}", "t".repeat(text))
            .chars()
            .take(text.max(12))
            .collect::<String>();
        let artist = format!("Artist {}", "a".repeat(text))
            .chars()
            .take(text.max(6))
            .collect::<String>();
        lines.push_str(&json!({"id": format!("t{i}"), "cmd": "track.add", "args": {"title": title, "artist": artist, "duration_ms": 200000}}).to_string());
        lines.push('\n');
    }
    host.send_line(lines.trim_end());
    for i in 0..10_000 {
        let reply = host.reply_to(&json!(format!("t{i}")));
        assert_eq!(reply["ok"], json!(true), "{reply}");
    }
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), flags);
    let started = Instant::now();
    guest.ok("session.join", json!({"invite": url}));
    let joined = started.elapsed();
    let n = guest.ok("session.state", json!(null))["queue"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        n, 10_000,
        "the whole queue is there when session.join answers"
    );
    let ms = joined.as_secs_f64() * 1e3;
    println!(
        "join through the relay of a session with {n} tracks ({text}-character titles and artists): {ms:.0} ms to the reply"
    );
    // The target is for an ordinary queue; the largest the caps allow is reported beside it.
    let target = if text == 0 { "≤ 300 ms" } else { "—" };
    println!(
        "figure: join a {n}-track session, relayed ({text}-char text) | {ms:.0} ms | {target}"
    );
}

fn main() {
    latency("relayed", &["--no-mdns", "--no-direct", "--no-hole-punch"]);
    latency(
        "direct after hole punching",
        &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    join_big_session(0);
    join_big_session(whatnext_core::limits::MAX_TEXT_CHARS);
}
