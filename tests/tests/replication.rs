//! A live session across processes: relay + host + co-host + guest, joined through the relay.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::relay::{Relay, wait_relay_status};

const RELAY_ONLY: &[&str] = &["--no-mdns", "--no-direct", "--no-hole-punch"];

struct Party {
    relay: Relay,
    host: Headless,
    cohost: Headless,
    guest: Headless,
    ids: [String; 3],
}

fn id_of(app: &mut Headless) -> String {
    app.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn party(dir: &std::path::Path) -> Party {
    party_on_port(dir, 0)
}

fn party_on_port(dir: &std::path::Path, port: u16) -> Party {
    let relay = Relay::start(&dir.join("relay.key"), port, &[]);
    let mut host = Headless::start_with(&dir.join("host"), RELAY_ONLY);
    host.ok("identity.set_name", json!({"name": "Hana"}));
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Live"}));
    let url = host.relayed_invite_url();
    let mut cohost = Headless::start_with(&dir.join("cohost"), RELAY_ONLY);
    cohost.ok("identity.set_name", json!({"name": "Cole"}));
    cohost.ok("session.join", json!({"invite": url}));
    let mut guest = Headless::start_with(&dir.join("guest"), RELAY_ONLY);
    guest.ok("identity.set_name", json!({"name": "Gus"}));
    guest.ok("session.join", json!({"invite": url}));
    let ids = [id_of(&mut host), id_of(&mut cohost), id_of(&mut guest)];
    host.ok("cohost.add", json!({"peer_id": ids[1]}));
    Party {
        relay,
        host,
        cohost,
        guest,
        ids,
    }
}

#[test]
fn a_guests_track_reaches_host_and_cohost_in_the_same_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    p.host.ok(
        "track.add",
        json!({"title": "First", "artist": "A", "duration_ms": 100000}),
    );
    let added = p.guest.ok(
        "track.add",
        json!({"title": "From guest", "artist": "G", "duration_ms": 200000}),
    );
    let track_id = added["track_id"].clone();
    for (name, app) in [
        ("host", &mut p.host),
        ("co-host", &mut p.cohost),
        ("guest", &mut p.guest),
    ] {
        let (state, took) = wait_state(app, "the guest's track", |s| {
            titles(s) == ["First", "From guest"]
        });
        let track = &state["queue"][1];
        assert_eq!(track["track_id"], track_id);
        assert_eq!(track["added_by"], json!(p.ids[2]), "{name}: {state}");
        eprintln!("{name} saw the guest's track after {took:?}");
    }
    // Co-host role replicated to everyone.
    let (state, _) = wait_state(&mut p.guest, "the co-host", |s| {
        s["cohosts"] == json!([p.ids[1]])
    });
    assert_eq!(state["host"], json!(p.ids[0]));
}

#[test]
fn a_guests_pause_is_refused_and_nothing_changes_anywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    p.host.ok(
        "track.add",
        json!({"title": "One", "artist": "A", "duration_ms": 100000}),
    );
    p.host.ok("playback.play", json!(null));
    for app in [&mut p.cohost, &mut p.guest] {
        wait_state(app, "playing", |s| {
            s["playback"]["state"] == json!("playing")
        });
    }
    let reply = p.guest.call("playback.pause", json!(null));
    assert_eq!(reply["error"]["code"], json!("not_permitted"), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("playback owner")
    );
    std::thread::sleep(Duration::from_millis(300));
    for app in [&mut p.host, &mut p.cohost, &mut p.guest] {
        let state = app.ok("session.state", json!(null));
        assert_eq!(state["playback"]["state"], json!("playing"), "{state}");
        assert_eq!(state["playback_owner"], json!(p.ids[0]));
    }
}

#[test]
fn ownership_goes_host_to_cohost_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    p.host.ok(
        "track.add",
        json!({"title": "One", "artist": "A", "duration_ms": 100000}),
    );
    p.host.ok("playback.play", json!(null));
    p.host.ok("playback.handoff", json!({"peer_id": p.ids[1]}));
    wait_state(&mut p.cohost, "the co-host owning playback", |s| {
        s["playback_owner"] == json!(p.ids[1])
    });
    p.cohost.ok("playback.pause", json!(null));
    for app in [&mut p.host, &mut p.cohost, &mut p.guest] {
        wait_state(app, "paused by the co-host", |s| {
            s["playback"]["state"] == json!("paused") && s["playback_owner"] == json!(p.ids[1])
        });
    }
    // The host, no longer owner, cannot play; it takes playback back instead.
    assert_eq!(
        p.host.error_code("playback.play", json!(null)),
        "not_permitted"
    );
    p.host.ok("playback.take", json!(null));
    for app in [&mut p.host, &mut p.cohost, &mut p.guest] {
        wait_state(app, "the host owning playback again", |s| {
            s["playback_owner"] == json!(p.ids[0])
        });
    }
    // A guest cannot take playback.
    assert_eq!(
        p.guest.error_code("playback.take", json!(null)),
        "not_permitted"
    );
}

#[test]
fn when_the_owner_drops_playback_returns_to_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    p.host.ok("playback.handoff", json!({"peer_id": p.ids[1]}));
    wait_state(&mut p.host, "the co-host owning playback", |s| {
        s["playback_owner"] == json!(p.ids[1])
    });
    let _ = p.cohost.child.kill();
    let (_, took) = wait_state(&mut p.host, "playback back with the host", |s| {
        s["playback_owner"] == json!(p.ids[0])
    });
    eprintln!("ownership returned {took:?} after the owner was killed");
    wait_state(
        &mut p.guest,
        "the guest seeing the host own playback",
        |s| s["playback_owner"] == json!(p.ids[0]),
    );
}

/// The guest is cut off (the relay dies), adds two tracks, quits; the relay and the guest come
/// back. The two tracks reach every peer, exactly once, without anyone doing anything.
#[test]
fn a_guests_offline_adds_arrive_exactly_once_after_reconnecting_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::relay::free_tcp_port();
    let mut p = party_on_port(dir.path(), port);
    p.guest.ok(
        "track.add",
        json!({"title": "Before", "artist": "A", "duration_ms": 100000}),
    );
    for app in [&mut p.host, &mut p.cohost, &mut p.guest] {
        wait_state(app, "the first track", |s| titles(s) == ["Before"]);
    }
    let host_id = p.ids[0].clone();
    drop(p.relay); // SIGKILL: the relay, and every relayed link, is gone
    wait_state(&mut p.guest, "the host offline", |s| {
        s["participants"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|x| x["peer_id"] == json!(host_id) && x["online"] == json!(false))
        })
    });
    for title in ["Offline 1", "Offline 2"] {
        let result = p.guest.ok(
            "track.add",
            json!({"title": title, "artist": "G", "duration_ms": 100000}),
        );
        assert_eq!(result["pending"], json!(true), "{result}");
        assert!(result["track_id"].is_string());
    }
    let state = p.guest.ok("session.state", json!(null));
    assert_eq!(titles(&state), ["Before", "Offline 1", "Offline 2"]);
    assert_eq!(state["queue"][1]["pending"], json!(true));
    p.guest.ok("quit", json!(null));
    assert!(p.guest.wait_exit().success());

    let _relay = Relay::start(&dir.path().join("relay.key"), port, &[]);
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    // Reservations come back within the backoff cap (30 s), then the guest gets back in.
    let limit = Duration::from_secs(120);
    let want = ["Before", "Offline 1", "Offline 2"];
    for (name, app) in [
        ("host", &mut p.host),
        ("co-host", &mut p.cohost),
        ("guest", &mut guest),
    ] {
        let (state, took) = wait_state_for(app, "both offline tracks", limit, |s| {
            titles(s) == want
                && s["queue"]
                    .as_array()
                    .is_some_and(|q| q.iter().all(|t| t["pending"] == json!(false)))
        });
        assert_eq!(titles(&state), want, "exactly once on the {name}");
        eprintln!("{name} had the offline tracks {took:?} after the guest restarted");
    }
}

/// The host quits and comes back: its members get back in by themselves and follow the
/// session again (the host's update numbers restart, so they resync from a snapshot).
#[test]
fn members_follow_the_session_after_the_host_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    p.host.ok(
        "track.add",
        json!({"title": "Before", "artist": "A", "duration_ms": 100000}),
    );
    wait_state(&mut p.guest, "the first track", |s| titles(s) == ["Before"]);
    p.host.ok("quit", json!(null));
    assert!(p.host.wait_exit().success());
    let mut host = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
    wait_relay_status(&mut host, p.relay.addr(), "reserved", TIMEOUT);
    host.ok(
        "track.add",
        json!({"title": "After", "artist": "A", "duration_ms": 100000}),
    );
    let limit = Duration::from_secs(60);
    for (name, app) in [("guest", &mut p.guest), ("co-host", &mut p.cohost)] {
        let (_, took) = wait_state_for(app, "the track added after the restart", limit, |s| {
            titles(s) == ["Before", "After"]
        });
        eprintln!("{name} followed the restarted host after {took:?}");
    }
    // And the guest's own changes reach the restarted host.
    p.guest.ok(
        "track.add",
        json!({"title": "Guest again", "artist": "G", "duration_ms": 100000}),
    );
    wait_state(&mut host, "the guest's new track", |s| {
        titles(s) == ["Before", "After", "Guest again"]
    });
}

/// A guest pipelines a burst of additions (more than the transport's concurrent-stream limit
/// and more than the host's rate burst). They show in its queue at once, marked pending;
/// every one is confirmed, none goes through the outbox, and each arrives exactly once.
#[test]
fn a_burst_of_guest_additions_shows_pending_then_arrives_exactly_once() {
    const BURST: usize = 250;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = party(dir.path());
    let mut lines = String::new();
    for i in 0..BURST {
        let request = json!({"id": format!("add{i}"), "cmd": "track.add",
            "args": {"title": format!("B{i:03}"), "artist": "G", "duration_ms": 1000}});
        lines.push_str(&format!("{request}\n"));
    }
    lines.push_str(&json!({"id": "state", "cmd": "session.state"}).to_string());
    p.guest.send_line(&lines);
    let mut ids: Vec<Value> = (0..BURST).map(|i| json!(format!("add{i}"))).collect();
    ids.push(json!("state"));
    let mut replies = p.guest.replies_to(&ids);
    let state = replies.pop().expect("state reply");
    let queue = state["result"]["queue"].as_array().expect("queue").clone();
    let pending: Vec<&Value> = queue
        .iter()
        .filter(|t| t["pending"] == json!(true))
        .collect();
    assert!(!pending.is_empty(), "nothing was shown pending: {state}");
    assert!(pending.iter().all(|t| t["added_by"] == json!(p.ids[2])));
    for reply in &replies {
        assert_eq!(reply["ok"], json!(true), "{reply}");
        assert_ne!(
            reply["result"]["pending"],
            json!(true),
            "went via the outbox: {reply}"
        );
    }
    let want: Vec<String> = (0..BURST).map(|i| format!("B{i:03}")).collect();
    for (name, app) in [("host", &mut p.host), ("guest", &mut p.guest)] {
        let (state, took) = wait_state(app, "every addition, confirmed", |s| {
            titles(s) == want
                && s["queue"]
                    .as_array()
                    .is_some_and(|q| q.iter().all(|t| t["pending"] == json!(false)))
        });
        assert_eq!(
            titles(&state),
            want,
            "exactly once, in order, on the {name}"
        );
        eprintln!("{name} had all {BURST} confirmed after {took:?}");
    }
}

/// A guest whose system clock is 45 s fast still sees the host's playback position: it reads
/// the shared playback clock against the host's clock, estimated from time requests.
#[test]
fn a_guest_with_a_wrong_system_clock_sees_the_same_playback_position_as_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Clocks"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with_env(
        &dir.path().join("guest"),
        RELAY_ONLY,
        &[("WHATNEXT_TEST_CLOCK_SKEW_MS", "45000")],
    );
    guest.ok("session.join", json!({"invite": url}));
    host.ok(
        "track.add",
        json!({"title": "Long one", "artist": "A", "duration_ms": 600000}),
    );
    host.ok("playback.play", json!(null));
    wait_state(&mut guest, "playback playing", |s| {
        s["playback"]["state"] == json!("playing")
    });
    // A few time samples have come back by now (one every 200 ms after joining).
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        let on_host = host.ok("session.state", json!(null))["playback"]["position_ms"]
            .as_i64()
            .expect("host position");
        let on_guest = guest.ok("session.state", json!(null))["playback"]["position_ms"]
            .as_i64()
            .expect("guest position");
        eprintln!("position: host {on_host} ms, guest {on_guest} ms");
        // Read one after the other, so a little apart; 45 s apart without the estimate.
        assert!(
            (on_guest - on_host).abs() < 1_000,
            "host at {on_host} ms, guest at {on_guest} ms"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
