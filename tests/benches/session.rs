//! Prints session figures with real processes on loopback (relay, host, two guests):
//! intent-to-visible latency on the other guest, relayed and direct (p50/p99 over 700
//! intents, and 300 more timed until their author's reply), and the join time of a session
//! with 10,000 tracks.
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

/// A guest may have 1,000 tracks in the queue: 700 timed until B shows them, 300 until A's
/// reply.
const INTENTS: usize = 700;
const CONFIRMED: usize = 300;

/// Waits for the `track.added` event of the track titled `title` on `app`.
fn wait_added(app: &mut Headless, title: &str) {
    loop {
        if let Some(i) = app
            .events
            .iter()
            .position(|e| e["event"] == json!("track.added") && e["data"]["title"] == json!(title))
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

/// Intents timed on guest A: until guest B shows them (`INTENTS` of them), then until A's
/// own reply says the host confirmed them (`CONFIRMED` more). The two are timed apart:
/// waiting for A's reply first would add the host's write to disk, which B's copy never
/// waits for (the host publishes before it writes; `docs/decisions/wake-up-path.md`).
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
    let track = |i: usize| json!({"title": format!("T{i}"), "artist": "A", "duration_ms": 1000});
    let mut visible = Vec::with_capacity(INTENTS);
    for i in 0..INTENTS {
        // Paced under the host's per-member rate limit (50 a second).
        std::thread::sleep(Duration::from_millis(25));
        let started = Instant::now();
        let id = a.send("track.add", track(i));
        wait_added(&mut b, &format!("T{i}"));
        visible.push(started.elapsed());
        let reply = a.reply_to(&id);
        assert_eq!(reply["ok"], json!(true), "{reply}");
    }
    let mut confirmed = Vec::with_capacity(CONFIRMED);
    for i in INTENTS..INTENTS + CONFIRMED {
        std::thread::sleep(Duration::from_millis(25));
        let started = Instant::now();
        a.ok("track.add", track(i));
        confirmed.push(started.elapsed());
        wait_added(&mut b, &format!("T{i}"));
    }
    let state = b.ok("session.state", json!(null));
    let connection = state["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["role"] == json!("host")))
        .map(|p| p["connection"].clone());
    let ms = |samples: &mut Vec<Duration>, p| percentile(samples, p).as_secs_f64() * 1e3;
    let (p50, p99) = (ms(&mut visible, 50), ms(&mut visible, 99));
    let (c50, c99) = (ms(&mut confirmed, 50), ms(&mut confirmed, 99));
    println!(
        "intent on guest A visible on guest B, {label} (B sees the host as {}): p50 {p50:.2} ms, p99 {p99:.2} ms over {INTENTS}; confirmed to A: p50 {c50:.2} ms, p99 {c99:.2} ms over {CONFIRMED}",
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
    println!("figure: intent confirmed to its author, {label}, p50 | {c50:.2} ms | —");
    println!("figure: intent confirmed to its author, {label}, p99 | {c99:.2} ms | —");
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
