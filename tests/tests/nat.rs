//! Across real NATs: a relay on a "public" segment, a host behind one masquerading router and
//! guests behind another, built by `tests/nat/natlab.sh` in namespaces each test makes and
//! removes. In the `cone` variant hole punching must upgrade the session to a direct
//! connection; in the `symmetric` variant it cannot, and the session must keep working
//! through the relay. Needs root, iproute2 and nftables (the README's test command installs
//! them).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::natlab::{Lab, RELAY_IP};
use crate::relay::{Relay, wait_relay_status};

/// No mDNS: nothing to find across NATs, and it keeps the logs clean.
const FLAGS: &[&str] = &["--no-mdns"];
const METRICS_PORT: u16 = 9464;

fn start_relay(lab: &Lab, dir: &Path, extra: &[&str]) -> Relay {
    let listen = format!("/ip4/{RELAY_IP}/tcp/4001");
    let metrics = format!("127.0.0.1:{METRICS_PORT}");
    let mut args = vec!["--listen", &listen, "--metrics", &metrics];
    args.extend_from_slice(extra);
    Relay::start_in_netns(&lab.ns("relay"), &dir.join("relay.key"), &args)
}

fn id_of(app: &mut Headless) -> String {
    app.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned()
}

/// A host in home network A with a session, its invite URL and short code.
fn host_session(lab: &Lab, dir: &Path, relay: &str) -> (Headless, String, String) {
    let mut host = Headless::start_in_netns(&lab.ns("a"), &dir.join("host"), FLAGS);
    host.ok("identity.set_name", json!({"name": "Hana"}));
    host.ok("relay.add", json!({"addr": relay}));
    wait_relay_status(&mut host, relay, "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Behind NAT"}));
    let invite = host.relayed_invite(true);
    let url = invite["url"].as_str().expect("url").to_owned();
    let code = invite["short_code"].as_str().expect("code").to_owned();
    (host, url, code)
}

/// A guest in home network B, given only the relay's address.
fn guest(lab: &Lab, dir: &Path, name: &str, relay: &str) -> Headless {
    let mut guest = Headless::start_in_netns(&lab.ns("b"), &dir.join(name), FLAGS);
    guest.ok("identity.set_name", json!({"name": name}));
    guest.ok("relay.add", json!({"addr": relay}));
    guest
}

/// How `state` shows the link to `peer`: `direct`, `relayed`, … or `offline`.
fn link_to(state: &Value, peer: &str) -> String {
    let participants = state["participants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match participants.iter().find(|p| p["peer_id"] == json!(peer)) {
        Some(p) if p["online"] == json!(true) => p["connection"].as_str().unwrap_or("").into(),
        Some(_) => "offline".into(),
        None => "absent".into(),
    }
}

fn queue_len(state: &Value) -> usize {
    state["queue"].as_array().map_or(0, Vec::len)
}

/// Adds `count` tracks with the longest title and artist allowed (200 characters, here of
/// four bytes each), one after another; returns the bytes of text sent.
fn add_heavy_tracks(app: &mut Headless, tag: &str, count: usize) -> u64 {
    let filler = "\u{1F3B5}".repeat(190);
    for i in 0..count {
        app.ok(
            "track.add",
            json!({"title": format!("{tag} {i} {filler}"), "artist": filler, "duration_ms": 60000}),
        );
    }
    (count * 2 * filler.len()) as u64
}

/// A second guest knocks with the short code; the host approves.
fn join_by_code(host: &mut Headless, guest: &mut Headless, code: &str) {
    guest.send_line(
        &json!({"id": "join", "cmd": "session.join", "args": {"invite": code}}).to_string(),
    );
    let deadline = Instant::now() + TIMEOUT * 2;
    let knocker = loop {
        let knocks = host.ok("knock.list", json!(null));
        if let Some(peer) = knocks[0]["peer_id"].as_str() {
            break peer.to_owned();
        }
        assert!(Instant::now() < deadline, "no knock reached the host");
        std::thread::sleep(Duration::from_millis(100));
    };
    host.ok("knock.approve", json!({"peer_id": knocker}));
    let reply = guest.reply_to(&json!("join"));
    assert_eq!(reply["ok"], json!(true), "join by code: {reply}");
}

#[test]
fn behind_cone_nats_a_relayed_session_goes_direct_and_its_traffic_leaves_the_relay() {
    let lab = Lab::up("cone", "c");
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = start_relay(&lab, dir.path(), &[]);
    let (mut host, url, code) = host_session(&lab, dir.path(), relay.addr());
    let host_id = id_of(&mut host);

    // By invite URL: admitted at once, through the relay.
    let started = Instant::now();
    let mut gus = guest(&lab, dir.path(), "Gus", relay.addr());
    let joined = gus.ok("session.join", json!({"invite": url}));
    assert!(joined["session_id"].is_string(), "{joined}");
    let relayed_after = started.elapsed();
    let gus_id = id_of(&mut gus);
    let (_, direct_after) = wait_state(&mut gus, "a direct link to the host", |s| {
        link_to(s, &host_id) == "direct"
    });
    wait_state(&mut host, "a direct link to the guest", |s| {
        link_to(s, &gus_id) == "direct"
    });
    eprintln!(
        "cone: joined through the relay after {relayed_after:?}; direct {direct_after:?} later"
    );
    // The relayed circuit is closed once the direct connection is up.
    let deadline = Instant::now() + TIMEOUT;
    while lab.relay_metric(METRICS_PORT, "whatnext_relay_circuits") != 0 {
        assert!(Instant::now() < deadline, "the relayed circuit stayed open");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Session traffic takes the direct path: the relay host's byte counters barely move.
    let before = lab.relay_bytes();
    let payload = add_heavy_tracks(&mut gus, "Direct", 40);
    wait_state(&mut host, "the guest's 40 tracks", |s| queue_len(s) == 40);
    let through_relay = lab.relay_bytes() - before;
    eprintln!("cone: {payload} bytes of titles sent; the relay host saw {through_relay} bytes");
    assert!(
        through_relay < payload / 4,
        "{through_relay} bytes crossed the relay for {payload} bytes of session data"
    );

    // By short code: a second guest knocks, the host approves, and it syncs.
    let mut cleo = guest(&lab, dir.path(), "Cleo", relay.addr());
    wait_relay_status(&mut cleo, relay.addr(), "reserved", TIMEOUT);
    join_by_code(&mut host, &mut cleo, &code);
    wait_state(&mut cleo, "the queue and a direct link", |s| {
        queue_len(s) == 40 && link_to(s, &host_id) == "direct"
    });
}

#[test]
fn behind_symmetric_nats_the_session_stays_relayed_and_everything_works() {
    let lab = Lab::up("symmetric", "s");
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = start_relay(&lab, dir.path(), &[]);
    let relay_addr = relay.addr().to_owned();
    let (mut host, url, code) = host_session(&lab, dir.path(), &relay_addr);
    let host_id = id_of(&mut host);
    let mut gus = guest(&lab, dir.path(), "Gus", &relay_addr);
    gus.ok("session.join", json!({"invite": url}));
    let gus_id = id_of(&mut gus);
    wait_state(&mut gus, "a relayed link to the host", |s| {
        link_to(s, &host_id) == "relayed"
    });

    // Adds, both ways.
    gus.ok(
        "track.add",
        json!({"title": "From Gus", "artist": "G", "duration_ms": 60000}),
    );
    wait_state(&mut host, "the guest's track", |s| queue_len(s) == 1);
    host.ok(
        "track.add",
        json!({"title": "From Hana", "artist": "H", "duration_ms": 60000}),
    );
    wait_state(&mut gus, "the host's track", |s| queue_len(s) == 2);

    // Playback hand-off: host → co-host Gus, who pauses; the host sees it.
    host.ok("playback.play", json!(null));
    host.ok("cohost.add", json!({"peer_id": gus_id}));
    wait_state(&mut gus, "being a co-host", |s| {
        s["cohosts"]
            .as_array()
            .is_some_and(|c| c.contains(&json!(gus_id)))
    });
    host.ok("playback.handoff", json!({"peer_id": gus_id}));
    wait_state(&mut gus, "owning playback", |s| {
        s["playback_owner"] == json!(gus_id)
    });
    gus.ok("playback.pause", json!(null));
    wait_state(&mut host, "the guest's pause", |s| {
        s["playback"]["state"] == json!("paused") && s["playback_owner"] == json!(gus_id)
    });

    // More than libp2p's default circuit budget (128 KiB) goes through the relay, and the
    // circuit stays up (this relay allows 256 MiB by default).
    let before = lab.relay_bytes();
    let payload = add_heavy_tracks(&mut gus, "Heavy", 100);
    wait_state(&mut host, "the 100 heavy tracks", |s| queue_len(s) == 102);
    let through_relay = lab.relay_bytes() - before;
    eprintln!("symmetric: {payload} bytes of titles; the relay host saw {through_relay} bytes");
    assert!(
        payload > 128 * 1024 && through_relay > payload,
        "{through_relay}"
    );

    // The second guest joins by short code, through the relay too.
    let mut cleo = guest(&lab, dir.path(), "Cleo", &relay_addr);
    wait_relay_status(&mut cleo, &relay_addr, "reserved", TIMEOUT);
    join_by_code(&mut host, &mut cleo, &code);
    wait_state(&mut cleo, "the queue over the relay", |s| {
        queue_len(s) == 102 && link_to(s, &host_id) == "relayed"
    });

    // Gus is cut off (the relay dies), adds two tracks offline; the relay comes back.
    drop(relay);
    wait_state(&mut gus, "the host offline", |s| {
        link_to(s, &host_id) == "offline"
    });
    for title in ["Offline 1", "Offline 2"] {
        let added = gus.ok(
            "track.add",
            json!({"title": title, "artist": "G", "duration_ms": 60000}),
        );
        assert_eq!(added["pending"], json!(true), "{added}");
    }
    let _relay = start_relay(&lab, dir.path(), &[]);
    let (state, took) = wait_state_for(
        &mut host,
        "both offline tracks",
        Duration::from_secs(120),
        |s| queue_len(s) == 104,
    );
    let titles: Vec<&str> = state["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .filter(|t| t.starts_with("Offline"))
        .collect();
    assert_eq!(titles, ["Offline 1", "Offline 2"], "exactly once, in order");
    eprintln!("symmetric: the outbox arrived {took:?} after the relay came back");
    wait_state_for(
        &mut gus,
        "the host again, still relayed",
        Duration::from_secs(60),
        |s| link_to(s, &host_id) == "relayed" && queue_len(s) == 104,
    );
}

/// libp2p's default circuit limits are 2 minutes and 128 KiB: a session through our relay
/// outlives both (see the symmetric test for the bytes; here, the time).
#[test]
fn a_relayed_session_outlives_libp2ps_default_circuit_duration() {
    let lab = Lab::up("symmetric", "l");
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = start_relay(&lab, dir.path(), &[]);
    let (mut host, url, _) = host_session(&lab, dir.path(), relay.addr());
    let host_id = id_of(&mut host);
    let mut gus = guest(&lab, dir.path(), "Gus", relay.addr());
    gus.ok("session.join", json!({"invite": url}));
    let started = Instant::now();
    let mut added = 0usize;
    while started.elapsed() < Duration::from_secs(135) {
        std::thread::sleep(Duration::from_secs(15));
        gus.ok(
            "track.add",
            json!({"title": format!("At {:?}", started.elapsed()), "artist": "G", "duration_ms": 1000}),
        );
        added += 1;
        wait_state(&mut host, "the latest track", |s| queue_len(s) == added);
        let state = gus.ok("session.state", json!(null));
        assert_eq!(link_to(&state, &host_id), "relayed");
    }
    assert_eq!(
        lab.relay_metric(METRICS_PORT, "whatnext_relay_circuits_total"),
        1,
        "one circuit carried the whole session"
    );
}

/// The relay cuts circuits after 5 s here; the guest opens a new one by itself and the
/// session goes on.
#[test]
fn when_the_relay_drops_a_circuit_the_peers_open_a_new_one_by_themselves() {
    let lab = Lab::up("symmetric", "d");
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = start_relay(&lab, dir.path(), &["--max-circuit-secs", "5"]);
    let (mut host, url, _) = host_session(&lab, dir.path(), relay.addr());
    let mut gus = guest(&lab, dir.path(), "Gus", relay.addr());
    gus.ok("session.join", json!({"invite": url}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.relay_metric(METRICS_PORT, "whatnext_relay_circuits_total") < 3 {
        assert!(
            Instant::now() < deadline,
            "no new circuits after the first was cut"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    gus.ok(
        "track.add",
        json!({"title": "After two cuts", "artist": "G", "duration_ms": 1000}),
    );
    wait_state(&mut host, "the track sent after the cuts", |s| {
        queue_len(s) == 1
    });
}
