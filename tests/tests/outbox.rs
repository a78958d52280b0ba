//! A guest's outbox across restarts, end to end: relay + host + guest, joined through the
//! relay. The host is gone; the guest adds two tracks (pending) and quits; then both come
//! back, in each order. Every pending track arrives exactly once, and nobody is listed twice.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::relay::{RELAY_ONLY, Relay, peer_on, wait_relay_status};

/// Reservations come back within the relay manager's backoff cap (30 s).
const LIMIT: Duration = Duration::from_secs(120);
const WANT: [&str; 3] = ["Before", "Offline 1", "Offline 2"];

fn peers(state: &Value) -> Vec<String> {
    let mut peers: Vec<String> = state["participants"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["peer_id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    peers.sort();
    peers
}

fn add(app: &mut Headless, title: &str) -> Value {
    app.ok(
        "track.add",
        json!({"title": title, "artist": "G", "duration_ms": 100000}),
    )
}

fn start_host(dir: &Path, relay: &Relay) -> Headless {
    let mut host = Headless::start_with(&dir.join("host"), RELAY_ONLY);
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host
}

/// Which of the two comes back first.
#[derive(Clone, Copy, Debug)]
enum Order {
    HostFirst,
    GuestFirst,
    Both,
}

/// Relay, host and guest; one track through the session; the host quits; the guest adds two
/// tracks (pending), quits; both restart in `order`. Checks both ends.
fn two_pending_tracks_survive_restarts(order: Order) {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Live"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("identity.set_name", json!({"name": "Gus"}));
    guest.ok("session.join", json!({"invite": url}));
    add(&mut guest, "Before");
    let (state, _) = wait_state(&mut host, "the first track", |s| titles(s) == ["Before"]);
    let everyone = peers(&state);
    assert_eq!(everyone.len(), 2, "{state}");
    let host_id = host.ok("identity", json!(null))["peer_id"].clone();

    host.ok("quit", json!(null));
    assert!(host.wait_exit().success());
    wait_state(&mut guest, "the host offline", |s| {
        s["participants"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["peer_id"] == host_id && p["online"] == json!(false))
        })
    });
    for title in ["Offline 1", "Offline 2"] {
        let result = add(&mut guest, title);
        assert_eq!(result["pending"], json!(true), "{result}");
    }
    guest.ok("quit", json!(null));
    assert!(guest.wait_exit().success());

    let guest_dir = dir.path().join("guest");
    let (mut host, mut guest) = match order {
        Order::HostFirst => {
            let host = start_host(dir.path(), &relay);
            (host, Headless::start_with(&guest_dir, RELAY_ONLY))
        }
        Order::GuestFirst => {
            let mut guest = Headless::start_with(&guest_dir, RELAY_ONLY);
            std::thread::sleep(Duration::from_secs(2)); // it tries, and fails, to get back in
            // Its outbox shows, pending, as before the restart.
            let state = guest.ok("session.state", json!(null));
            assert_eq!(titles(&state), WANT, "{state}");
            let pending: Vec<&Value> = state["queue"]
                .as_array()
                .expect("queue")
                .iter()
                .map(|t| &t["pending"])
                .collect();
            assert_eq!(pending, [&json!(false), &json!(true), &json!(true)]);
            (start_host(dir.path(), &relay), guest)
        }
        Order::Both => {
            let guest = Headless::start_with(&guest_dir, RELAY_ONLY);
            let host = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
            (host, guest)
        }
    };
    for (name, app) in [("host", &mut host), ("guest", &mut guest)] {
        let (state, took) = wait_state_for(app, "both pending tracks, confirmed", LIMIT, |s| {
            titles(s).len() >= WANT.len()
                && s["queue"]
                    .as_array()
                    .is_some_and(|q| q.iter().all(|t| t["pending"] == json!(false)))
        });
        assert_eq!(
            titles(&state),
            WANT,
            "exactly once on the {name} ({order:?})"
        );
        assert_eq!(
            peers(&state),
            everyone,
            "each participant once on the {name} ({order:?})"
        );
        eprintln!("{order:?}: the {name} had both tracks {took:?} after the restarts");
    }
    // Settled: nothing more arrives (a second delivery would show up here).
    std::thread::sleep(Duration::from_secs(2));
    for (name, app) in [("host", &mut host), ("guest", &mut guest)] {
        let state = app.ok("session.state", json!(null));
        assert_eq!(
            titles(&state),
            WANT,
            "still exactly once on the {name} ({order:?})"
        );
        assert_eq!(
            peers(&state),
            everyone,
            "still once each on the {name} ({order:?})"
        );
    }
}

#[test]
fn pending_tracks_arrive_once_when_the_host_restarts_first() {
    two_pending_tracks_survive_restarts(Order::HostFirst);
}

#[test]
fn pending_tracks_arrive_once_when_the_guest_restarts_first() {
    two_pending_tracks_survive_restarts(Order::GuestFirst);
}

#[test]
fn pending_tracks_arrive_once_when_both_restart_together() {
    two_pending_tracks_survive_restarts(Order::Both);
}

/// The host is gone; the guest removes the host's track (a guest may remove only its own) and
/// adds one of its own, both into the outbox. When the host is back, the addition arrives and
/// the removal is refused: the guest is told which intent, and why, by an `intent.refused`
/// event, and the outbox does not send it again.
#[test]
fn an_outbox_intent_the_host_refuses_is_reported_to_its_author() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Live"}));
    let hosts_track = add(&mut host, "Host's")["track_id"].clone();
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": url}));
    wait_state(&mut guest, "the host's track", |s| titles(s) == ["Host's"]);
    let host_id = host.ok("identity", json!(null))["peer_id"].clone();
    host.ok("quit", json!(null));
    assert!(host.wait_exit().success());
    wait_state(&mut guest, "the host offline", |s| {
        s["participants"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["peer_id"] == host_id && p["online"] == json!(false))
        })
    });
    let removal = guest.ok("track.remove", json!({"track_id": hosts_track}));
    assert_eq!(removal["pending"], json!(true), "{removal}");
    assert_eq!(add(&mut guest, "Guest's")["pending"], json!(true));

    let mut host = start_host(dir.path(), &relay);
    wait_state_for(&mut guest, "the guest's track, confirmed", LIMIT, |s| {
        titles(s) == ["Host's", "Guest's"] && s["queue"][1]["pending"] == json!(false)
    });
    let deadline = std::time::Instant::now() + TIMEOUT;
    let refused = loop {
        let seen = guest
            .events
            .iter()
            .find(|e| e["event"] == json!("intent.refused"))
            .cloned();
        if let Some(event) = seen {
            break event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no intent.refused within {TIMEOUT:?}: {:?}",
            guest.events
        );
        guest.ok("session.state", json!(null));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused["data"]["code"], json!("not_permitted"), "{refused}");
    assert!(
        refused["data"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("only remove tracks they added")),
        "{refused}"
    );
    assert!(refused["data"]["intent_id"].is_string(), "{refused}");
    // Refused once, reported once, and the host's track is still everywhere.
    std::thread::sleep(Duration::from_secs(1));
    guest.ok("session.state", json!(null));
    let reports = guest
        .events
        .iter()
        .filter(|e| e["event"] == json!("intent.refused"))
        .count();
    assert_eq!(reports, 1, "{:?}", guest.events);
    for app in [&mut host, &mut guest] {
        let state = app.ok("session.state", json!(null));
        assert_eq!(titles(&state), ["Host's", "Guest's"]);
    }
}

/// The host is killed (SIGKILL) while a guest adds tracks one after another. Every addition
/// the host confirmed to the guest (`ok`, not pending) must be in the host's database: its
/// answer leaves only after its write.
#[test]
fn every_track_the_host_confirmed_to_a_guest_survives_a_host_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Live"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": url}));
    let pid = host.child.id().to_string();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill the host");
    });
    let mut confirmed = Vec::new();
    for i in 0..10_000 {
        let reply = guest.call(
            "track.add",
            json!({"title": format!("T{i}"), "artist": "G", "duration_ms": 1000}),
        );
        assert_eq!(reply["ok"], json!(true), "{reply}");
        if reply["result"]["pending"] == json!(true) {
            break; // the host is gone: this one waits in the outbox
        }
        confirmed.push(reply["result"]["track_id"].as_str().expect("id").to_owned());
    }
    killer.join().expect("killer");
    let _ = host.child.wait();
    drop(guest); // SIGKILL: its outbox must not deliver anything to the restarted host
    drop(host);
    assert!(
        confirmed.len() > 5,
        "too few confirmed before the kill: {confirmed:?}"
    );
    let mut host = Headless::start(&dir.path().join("host"));
    let state = host.ok("session.state", json!(null));
    let stored: std::collections::HashSet<&str> = state["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .map(|t| t["track_id"].as_str().expect("id"))
        .collect();
    let missing: Vec<&String> = confirmed
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} confirmed tracks lost: {missing:?}",
        missing.len(),
        confirmed.len()
    );
    eprintln!("{} confirmed before the kill, all stored", confirmed.len());
}
