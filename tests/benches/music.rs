//! Prints shared-music figures with real processes on loopback (relay, host, guest): the
//! transfer rate of a 50 MB file, relayed and direct, next to a plain TCP copy of the same
//! bytes in the same run (the limit), how long a 10 MB track takes from becoming "next" to
//! being here on the playback owner, relayed, and how closely a listener's sound follows the
//! owner's over a 3-minute track (the instrumented silent outputs of both, compared block by
//! block on this machine's clock), relayed and direct, and how long a listener who switches
//! on mid-track takes to be in step.
//!
//! `cargo bench --workspace --bench music` (drives the release binaries when built).

#[allow(unused)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(unused)]
#[path = "../tests/relay.rs"]
mod relay;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::*;
use relay::{Relay, wait_relay_status};
use serde_json::{Value, json};

const RELAYED: &[&str] = &["--no-mdns", "--no-direct", "--no-hole-punch"];
const DIRECT: &[&str] = &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"];
const MB: f64 = 1_000_000.0;

/// Copies the file over a loopback TCP connection; returns MB/s.
fn plain_tcp(path: &Path) -> f64 {
    let bytes = std::fs::read(path).expect("read");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(&bytes).expect("send");
    });
    let (mut stream, _) = listener.accept().expect("accept");
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("receive");
    sender.join().expect("sender");
    let took = started.elapsed();
    received.len() as f64 / MB / took.as_secs_f64()
}

/// A host and a guest on a relay, both with `flags`, in a session.
fn party(dir: &Path, flags: &[&str]) -> (Relay, Headless, Headless) {
    let relay = Relay::start(&dir.join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&dir.join("host"), flags);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Bench"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.join("guest"), flags);
    guest.ok("relay.add", json!({"addr": relay.addr()}));
    guest.ok("session.join", json!({"invite": url}));
    (relay, host, guest)
}

fn add(guest: &mut Headless, path: &Path) -> String {
    add_lasting(guest, path, 60_000)
}

/// Queues `path` as a track `duration_ms` long (the authority moves on at its end).
fn add_lasting(guest: &mut Headless, path: &Path, duration_ms: u64) -> String {
    let added = guest.ok(
        "track.add",
        json!({"title": "Bench", "artist": "B", "duration_ms": duration_ms,
               "path": path.to_str().expect("utf-8")}),
    );
    added["track_id"].as_str().expect("track id").to_owned()
}

/// Polls until the track's file is here on `app`; returns when.
fn wait_here(app: &mut Headless, track: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let media: Value = app.ok("track.media", json!({"track_id": track}));
        if media["state"] == json!("here") {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "never arrived: {media}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// MB/s of a 50 MB file from the guest to the host.
fn transfer(label: &str, flags: &[&str], file: &Path, size: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_relay, mut host, mut guest) = party(dir.path(), flags);
    if flags == DIRECT {
        std::thread::sleep(Duration::from_secs(2)); // let hole punching settle
        let state = host.ok("session.state", json!(null));
        let links: Vec<&Value> = state["participants"]
            .as_array()
            .map(|ps| ps.iter().map(|p| &p["connection"]).collect())
            .unwrap_or_default();
        println!("{label}: the host's links {links:?}");
    }
    let track = add(&mut guest, file);
    let added = Instant::now();
    let here = wait_here(&mut host, &track);
    let rate = size as f64 / MB / (here - added).as_secs_f64();
    println!(
        "{label}: {:.1} MB in {:?}: {rate:.1} MB/s",
        size as f64 / MB,
        here - added
    );
    rate
}

/// Two co-hosts fetch the same 50 MB from the host at once, direct: each one's MB/s, so
/// how evenly the holder's link is shared between members.
fn two_at_once(file: &Path, size: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, mut host, mut first) = party(dir.path(), DIRECT);
    let mut second = Headless::start_with(&dir.path().join("second"), DIRECT);
    second.ok("relay.add", json!({"addr": relay.addr()}));
    second.ok("session.join", json!({"invite": host.relayed_invite_url()}));
    let host_id = peer_id(&mut host);
    for guest in [&mut first, &mut second] {
        let id = peer_id(guest);
        host.ok("cohost.add", json!({"peer_id": id}));
        // Each co-host's link to the host settles (hole punching on loopback).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = guest.ok("session.state", json!(null));
            let direct = state["participants"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["peer_id"] == json!(host_id) && p["connection"] == json!("direct"))
            });
            if direct || Instant::now() > deadline {
                println!("two at once: a co-host's link to the host is direct: {direct}");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let track = add(&mut host, file);
    let added = Instant::now();
    let mut here: [Option<Duration>; 2] = [None, None];
    let deadline = added + Duration::from_secs(300);
    while here.iter().any(Option::is_none) {
        for (app, here) in [&mut first, &mut second].into_iter().zip(here.iter_mut()) {
            if here.is_none() {
                // Not found until the addition reaches this co-host.
                let media = app.call("track.media", json!({"track_id": track}));
                if media["result"]["state"] == json!("here") {
                    *here = Some(added.elapsed());
                }
            }
        }
        assert!(Instant::now() < deadline, "never arrived on both");
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate =
        |took: Option<Duration>| size as f64 / MB / took.map_or(f64::INFINITY, |t| t.as_secs_f64());
    (rate(here[0]), rate(here[1]))
}

/// From `playback.next` making a 10 MB track "next" to its file being here on the owner.
fn next_to_here(dir: &Path) -> Duration {
    let (_relay, mut host, mut guest) = party(dir, RELAYED);
    let mut tracks = Vec::new();
    for i in 0..4 {
        let path = dir.join(format!("t{i}.wav"));
        // 10 MB, and 200 kB for the others.
        write_noise_wav(&path, if i == 3 { 625_000 } else { 12_500 }, 100 + i);
        tracks.push(add(&mut guest, &path));
    }
    host.ok("playback.play", json!(null));
    for track in &tracks[..3] {
        wait_here(&mut host, track);
    }
    let far = host.ok("track.media", json!({"track_id": tracks[3]}));
    assert_eq!(
        far["state"],
        json!("missing"),
        "three ahead is not fetched yet: {far}"
    );
    host.ok("playback.next", json!(null));
    let started = Instant::now();
    wait_here(&mut host, &tracks[3]) - started
}

/// One recorded block: local µs it leaves the device, the track frame it starts with, rate.
type Block = (i64, u64, u32);

fn read_record(path: &Path) -> Vec<Block> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace().map(str::parse::<i64>);
            Some((
                parts.next()?.ok()?,
                parts.next()?.ok()? as u64,
                parts.next()?.ok()? as u32,
            ))
        })
        .collect()
}

/// The owner's track position in frames at local time `t`, between its blocks.
fn frame_at(owner: &[Block], t: i64) -> Option<f64> {
    let i = owner.partition_point(|b| b.0 <= t);
    let (a, b) = (owner.get(i.checked_sub(1)?)?, owner.get(i)?);
    // A block after a seek or pause is not a line from the one before it.
    if b.0 - a.0 > 20_000 {
        return None;
    }
    let along = (t - a.0) as f64 / (b.0 - a.0) as f64;
    Some(a.1 as f64 + along * (b.1 as f64 - a.1 as f64))
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// The owner and a listener play a track of `secs` seconds; the listener switches on
/// `listen_after` into it. Prints the skew and the time to be in step.
fn skew(label: &str, flags: &[&str], secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let (host_rec, lou_rec) = (dir.path().join("host.rec"), dir.path().join("lou.rec"));
    let host_env = [("WHATNEXT_AUDIO_RECORD", host_rec.to_str().expect("utf-8"))];
    let mut host = Headless::start_with_env(&dir.path().join("host"), flags, &host_env);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Skew"}));
    let url = host.relayed_invite_url();
    let lou_env = [("WHATNEXT_AUDIO_RECORD", lou_rec.to_str().expect("utf-8"))];
    let mut lou = Headless::start_with_env(&dir.path().join("lou"), flags, &lou_env);
    lou.ok("relay.add", json!({"addr": relay.addr()}));
    lou.ok("session.join", json!({"invite": url}));
    // The host's own file: 8 kHz mono, `secs` long.
    let song = dir.path().join("song.wav");
    write_noise_wav(&song, secs * 1000, 42);
    let track = add_lasting(&mut host, &song, secs * 1000);
    host.ok("playback.play", json!(null));
    std::thread::sleep(Duration::from_secs(5));
    let switched_on = whatnext_core::time::now_us();
    lou.ok("listen.set", json!({"on": true}));
    wait_here(&mut lou, &track);
    std::thread::sleep(Duration::from_secs(secs.saturating_sub(8)));
    let (owner, listener) = (read_record(&host_rec), read_record(&lou_rec));
    let mut skews: Vec<(i64, f64)> = listener
        .iter()
        .filter_map(|(t, frame, rate)| {
            let at = frame_at(&owner, *t)?;
            Some((*t, (*frame as f64 - at) * 1000.0 / f64::from(*rate)))
        })
        .collect();
    skews.sort_by_key(|s| s.0);
    let in_step = skews
        .iter()
        .find(|(_, s)| s.abs() <= 10.0)
        .map(|(t, _)| t - switched_on);
    let from = in_step.map_or(0, |d| switched_on + d);
    let mut steady: Vec<f64> = skews
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(_, s)| s.abs())
        .collect();
    steady.sort_by(f64::total_cmp);
    if steady.is_empty() {
        println!(
            "figure: listen-along skew, {label} | no samples (owner {} blocks, listener {}) | p95 ≤ 10 ms",
            owner.len(),
            listener.len()
        );
        return;
    }
    let (p50, p95, max) = (
        percentile_ms(&steady, 0.5),
        percentile_ms(&steady, 0.95),
        steady[steady.len() - 1],
    );
    println!(
        "{label}: {} blocks compared over {secs} s; |skew| p50 {p50:.3} ms, p95 {p95:.3} ms, max {max:.3} ms; in step {:?} after switching on",
        steady.len(),
        in_step.map(|us| Duration::from_micros(us.max(0) as u64))
    );
    println!(
        "figure: listen-along skew, {label} (p50 / p95 / max) | {p50:.2} / {p95:.2} / {max:.2} ms | p95 ≤ 10 ms"
    );
    if let Some(us) = in_step {
        println!(
            "figure: listener switched on mid-track, in step after ({label}) | {:.0} ms | —",
            us as f64 / 1e3
        );
    }
}

fn main() {
    let secs = std::env::var("MUSIC_SKEW_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    skew("relayed", RELAYED, secs);
    skew("direct", DIRECT, secs);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fifty.wav");
    let size = write_noise_wav(&file, 3_125_000, 7).len(); // 50 MB
    // This machine's figures vary run to run (two cores, several processes): medians of 3,
    // the transfers interleaved with the copies they are compared with.
    let (mut tcps, mut relayeds, mut directs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        tcps.push(plain_tcp(&file));
        relayeds.push(transfer("relayed", RELAYED, &file, size));
        directs.push(transfer("direct", DIRECT, &file, size));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (tcp, relayed, direct) = (
        median(&mut tcps),
        median(&mut relayeds),
        median(&mut directs),
    );
    println!(
        "plain TCP copies on loopback: {tcps:.0?} MB/s; relayed {relayeds:.1?}; direct {directs:.1?}"
    );
    println!(
        "figure: transfer 50 MB, plain TCP on loopback (the limit, median of 3) | {tcp:.0} MB/s | —"
    );
    println!(
        "figure: transfer 50 MB, direct (median of 3) | {direct:.1} MB/s ({:.1}% of TCP) | ≥ 25% of TCP",
        100.0 * direct / tcp
    );
    println!(
        "figure: transfer 50 MB, relayed (median of 3) | {relayed:.1} MB/s ({:.1}% of TCP) | —",
        100.0 * relayed / tcp
    );
    let shares: Vec<(f64, f64)> = (0..3).map(|_| two_at_once(&file, size)).collect();
    println!("two co-hosts fetching 50 MB at once from the host, direct (MB/s each): {shares:.1?}");
    let mut evenness: Vec<f64> = shares.iter().map(|(a, b)| a.min(*b) / a.max(*b)).collect();
    let even = median(&mut evenness);
    let mut totals: Vec<f64> = shares.iter().map(|(a, b)| a + b).collect();
    println!(
        "figure: two members fetch 50 MB at once from one holder, direct: slower / faster (median of 3) | {even:.2} ({:.0} MB/s together) | —",
        median(&mut totals)
    );
    let mut samples: Vec<Duration> = (0..3)
        .map(|i| {
            let run = dir.path().join(format!("next{i}"));
            std::fs::create_dir_all(&run).expect("dir");
            next_to_here(&run)
        })
        .collect();
    samples.sort();
    println!("10 MB from next to here, relayed: {samples:?}");
    println!(
        "figure: 10 MB track, next → here on the owner, relayed (median of 3) | {:.0} ms | —",
        samples[1].as_secs_f64() * 1e3
    );
}
