//! The party does not hang on one device: the host hands it to a co-host on purpose
//! (`host.handoff`), and everyone follows the new host. Real processes and a relay on
//! loopback, every byte through the relay.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::natlab::{Lab, RELAY_IP};
use crate::relay::{RELAY_ONLY, Relay, peer_on, wait_relay_status};

fn role_of(state: &Value, peer: &str) -> Option<String> {
    state["participants"].as_array().and_then(|ps| {
        ps.iter()
            .find(|p| p["peer_id"] == json!(peer))
            .and_then(|p| p["role"].as_str().map(str::to_owned))
    })
}

fn online_on(state: &Value, peer: &str) -> bool {
    state["participants"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["peer_id"] == json!(peer) && p["online"] == json!(true))
    })
}

/// Once `guest` reaches `new_host`, it adds a track `title`; the answer must be the new
/// host's (applied), not the outbox's `pending`.
fn guest_adds_a_confirmed_track(guest: &mut Headless, new_host: &str, title: &str) {
    wait_state(guest, "the new host reachable", |s| {
        s["host"] == json!(new_host) && online_on(s, new_host)
    });
    // Let the guest's welcome by the new host land before it adds.
    std::thread::sleep(Duration::from_millis(500));
    let added = guest.ok(
        "track.add",
        json!({"title": title, "artist": "G", "duration_ms": 60000}),
    );
    assert_ne!(
        added["pending"],
        json!(true),
        "the new host confirms a guest's track: {added}"
    );
}

/// A party on a relay: the host (with a track "Before" when `with_track`), a co-host holding
/// a reservation on the relay (so members can reach it once it hosts), and a guest.
struct Party {
    dir: tempfile::TempDir,
    // Kept alive for the test's length.
    _relay: Relay,
    host: Headless,
    cohost: Headless,
    guest: Headless,
    host_id: String,
    cohost_id: String,
    guest_id: String,
    session: Value,
    /// The host's invite link, made before any move.
    url: String,
    /// The host's short code, made before any move.
    code: String,
}

impl Party {
    fn start(name: &str, with_track: bool) -> Party {
        let dir = tempfile::tempdir().expect("tempdir");
        let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
        let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
        host.ok("session.create", json!({"name": name}));
        let invite = host.relayed_invite(true);
        let url = invite["url"].as_str().expect("url").to_owned();
        let code = invite["short_code"].as_str().expect("code").to_owned();
        let mut cohost = peer_on(&relay, &dir.path().join("cohost"), "Cole");
        let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
        let (host_id, cohost_id, guest_id) = (
            peer_id(&mut host),
            peer_id(&mut cohost),
            peer_id(&mut guest),
        );
        let session = cohost.ok("session.join", json!({"invite": url}))["session_id"].clone();
        guest.ok("session.join", json!({"invite": url}));
        if with_track {
            host.ok(
                "track.add",
                json!({"title": "Before", "artist": "A", "duration_ms": 60000}),
            );
        }
        host.ok("cohost.add", json!({"peer_id": cohost_id}));
        wait_state(&mut guest, "the co-host promoted", |s| {
            role_of(s, &cohost_id).as_deref() == Some("cohost")
        });
        wait_state(&mut host, "the co-host online", |s| {
            online_on(s, &cohost_id)
        });
        Party {
            dir,
            _relay: relay,
            host,
            cohost,
            guest,
            host_id,
            cohost_id,
            guest_id,
            session,
            url,
            code,
        }
    }
}

#[test]
fn a_planned_handoff_moves_the_party_to_the_cohost_and_everyone_follows() {
    let Party {
        dir,
        _relay,
        mut host,
        mut cohost,
        mut guest,
        host_id,
        cohost_id,
        guest_id,
        session,
        url,
        ..
    } = Party::start("Handoff", true);
    // Only the host hands the party over, and only to a co-host.
    assert_eq!(
        guest.error_code("host.handoff", json!({"peer_id": cohost_id})),
        "not_permitted"
    );
    assert_eq!(
        host.error_code("host.handoff", json!({"peer_id": guest_id})),
        "not_permitted"
    );

    host.ok("host.handoff", json!({"peer_id": cohost_id}));
    for app in [&mut host, &mut cohost, &mut guest] {
        let changed = wait_event(app, "host.changed", |d| d["host"] == json!(cohost_id));
        assert_eq!(changed["previous"], json!(host_id), "{changed}");
    }
    // Everyone is in the same party, now hosted by the co-host; the old host stays on as a
    // co-host and is admitted by the new one like any member.
    for app in [&mut host, &mut cohost, &mut guest] {
        let (state, _) = wait_state(app, "the new host's party", |s| {
            s["host"] == json!(cohost_id)
                && role_of(s, &host_id).as_deref() == Some("cohost")
                && titles(s) == ["Before"]
        });
        assert_eq!(state["session_id"], session);
    }
    wait_state(&mut cohost, "the guest and the old host back in", |s| {
        online_on(s, &guest_id) && online_on(s, &host_id)
    });
    guest_adds_a_confirmed_track(&mut guest, &cohost_id, "After");
    for app in [&mut host, &mut cohost, &mut guest] {
        wait_state(app, "the guest's track everywhere, confirmed", |s| {
            titles(s) == ["Before", "After"]
                && s["queue"]
                    .as_array()
                    .is_some_and(|q| q.iter().all(|t| t["pending"] == json!(false)))
        });
    }
    // The old link still works: the old host, now a co-host, points the joiner at the new
    // host, whose key checks the link's secret.
    let mut late = Headless::start_with(&dir.path().join("late"), RELAY_ONLY);
    let joined = late.ok("session.join", json!({"invite": url}));
    assert_eq!(joined["session_id"], session);
    wait_state(&mut late, "the party through the old link", |s| {
        s["host"] == json!(cohost_id) && titles(s) == ["Before", "After"]
    });
    // The new host's own link lets a newcomer into the same party.
    let new_url = cohost.relayed_invite_url();
    let mut newcomer = Headless::start_with(&dir.path().join("newcomer"), RELAY_ONLY);
    let joined = newcomer.ok("session.join", json!({"invite": new_url}));
    assert_eq!(joined["session_id"], session);
    wait_state(&mut newcomer, "the whole queue", |s| {
        titles(s) == ["Before", "After"] && s["host"] == json!(cohost_id)
    });
}

#[test]
fn when_the_host_dies_the_cohost_takes_over_and_the_old_host_comes_back_as_a_cohost() {
    let Party {
        dir,
        _relay: relay,
        mut host,
        mut cohost,
        mut guest,
        host_id,
        cohost_id,
        session,
        url,
        code,
        ..
    } = Party::start("Takeover", true);
    // The host sends the co-host the session's key right after the promotion.
    std::thread::sleep(Duration::from_secs(1));

    let _ = host.child.kill();
    let _ = host.child.wait();
    drop(host);
    let killed = std::time::Instant::now();
    let changed = wait_event(&mut cohost, "host.changed", |d| {
        d["host"] == json!(cohost_id)
    });
    let took = killed.elapsed();
    assert_eq!(changed["previous"], json!(host_id), "{changed}");
    assert_eq!(changed["reason"], json!("takeover"), "{changed}");
    assert!(
        took < Duration::from_secs(20),
        "the co-host took over {took:?} after the host died (deadline 10 s)"
    );
    let changed = wait_event(&mut guest, "host.changed", |d| {
        d["host"] == json!(cohost_id)
    });
    assert_eq!(changed["reason"], json!("takeover"), "{changed}");
    guest_adds_a_confirmed_track(&mut guest, &cohost_id, "After");
    wait_state(&mut cohost, "the guest's track on the new host", |s| {
        titles(s) == ["Before", "After"]
    });

    // A friend who has only the link made before the crash gets into the same party: the
    // host it names is gone, so the joiner asks the link's relay who holds the link's code,
    // which the new host registered when it took over.
    let mut late = Headless::start_with(&dir.path().join("late"), RELAY_ONLY);
    let joined = late.ok("session.join", json!({"invite": url}));
    assert_eq!(joined["session_id"], session);
    wait_state(&mut late, "the party through the old link", |s| {
        s["host"] == json!(cohost_id) && titles(s) == ["Before", "After"]
    });
    // And one who has only the old code knocks at the new host, who lets them in.
    let mut knocker = peer_on(&relay, &dir.path().join("knocker"), "Kit");
    let knocker_id = peer_id(&mut knocker);
    knocker.send_line(
        &json!({"id": "join", "cmd": "session.join", "args": {"invite": code}}).to_string(),
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !cohost
        .ok("knock.list", json!(null))
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k["peer_id"] == json!(knocker_id)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no knock at the new host"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cohost.ok("knock.approve", json!({"peer_id": knocker_id}));
    let reply = knocker.reply_to(&json!("join"));
    assert_eq!(reply["ok"], json!(true), "{reply}");
    assert_eq!(reply["result"]["session_id"], session);

    // The old host comes back: it learns of the newer host from it, steps down, and is a
    // co-host of the same party, with what the new host has.
    let mut back = Headless::start_with(&dir.path().join("host"), RELAY_ONLY);
    let (state, _) = wait_state(&mut back, "the old host following the new one", |s| {
        s["host"] == json!(cohost_id)
            && role_of(s, &host_id).as_deref() == Some("cohost")
            && titles(s) == ["Before", "After"]
    });
    assert_eq!(state["session_id"], session);
    wait_state(&mut cohost, "the old host back in as a member", |s| {
        online_on(s, &host_id)
    });
}

#[test]
fn a_host_who_leaves_hands_the_party_to_a_cohost_instead_of_ending_it() {
    let Party {
        dir,
        _relay,
        mut host,
        mut cohost,
        mut guest,
        host_id,
        cohost_id,
        session,
        url,
        ..
    } = Party::start("Leaving", false);
    std::thread::sleep(Duration::from_secs(1));

    host.ok("session.leave", json!(null));
    let left = wait_event(&mut host, "session.left", |_| true);
    assert_eq!(left["reason"], json!("left"), "{left}");
    assert!(host.call("session.state", json!(null))["ok"] == json!(false));
    for app in [&mut cohost, &mut guest] {
        let changed = wait_event(app, "host.changed", |d| d["host"] == json!(cohost_id));
        assert_eq!(changed["previous"], json!(host_id), "{changed}");
        assert_eq!(changed["reason"], json!("left"), "{changed}");
    }
    // The party goes on: nobody was told it ended, and the guest's track is confirmed.
    assert!(
        !guest
            .events
            .iter()
            .any(|e| e["event"] == json!("session.left")),
        "the guest was not put out: {:?}",
        guest.events
    );
    guest_adds_a_confirmed_track(&mut guest, &cohost_id, "Still on");
    wait_state(&mut cohost, "the guest's track", |s| {
        titles(s) == ["Still on"]
    });
    // The link made before the host left still lets a newcomer in: its host, still running
    // but out of the party, refuses, and the joiner finds the new host by the link's code.
    let mut late = Headless::start_with(&dir.path().join("late"), RELAY_ONLY);
    let joined = late.ok("session.join", json!({"invite": url}));
    assert_eq!(joined["session_id"], session);
    wait_state(&mut late, "the party through the old link", |s| {
        s["host"] == json!(cohost_id) && titles(s) == ["Still on"]
    });
}

/// The host's device freezes (a laptop lid, a stopped process: `SIGSTOP`) rather than dies:
/// its links time out, the co-host takes over, and when the old host wakes up, still sure it
/// hosts, it learns of the newer host, steps down to co-host and keeps what the new host has.
#[test]
fn a_host_that_freezes_and_wakes_after_a_takeover_steps_down_to_the_new_hosts_party() {
    let Party {
        _relay,
        mut host,
        mut cohost,
        mut guest,
        host_id,
        cohost_id,
        session,
        ..
    } = Party::start("Frozen", true);
    // The host sends the co-host the session's key right after the promotion.
    std::thread::sleep(Duration::from_secs(1));
    let signal = |sig: &str, app: &Headless| {
        let status = std::process::Command::new("kill")
            .args([sig, &app.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig}");
    };
    signal("-STOP", &host);
    // The links to a frozen device go only when their heartbeats time out (15 s, and 20 s
    // for an answer), then the takeover waits its 10 s.
    let long = Duration::from_secs(120);
    wait_state_for(&mut cohost, "the co-host hosting", long, |s| {
        s["host"] == json!(cohost_id)
    });
    wait_state_for(&mut guest, "the guest following the co-host", long, |s| {
        s["host"] == json!(cohost_id)
    });
    guest_adds_a_confirmed_track(&mut guest, &cohost_id, "After");

    signal("-CONT", &host);
    let (state, _) = wait_state_for(&mut host, "the woken host following", long, |s| {
        s["host"] == json!(cohost_id)
            && role_of(s, &host_id).as_deref() == Some("cohost")
            && titles(s) == ["Before", "After"]
    });
    assert_eq!(state["session_id"], session);
    wait_state_for(&mut cohost, "the old host back in as a member", long, |s| {
        online_on(s, &host_id) && role_of(s, &host_id).as_deref() == Some("cohost")
    });
}

/// A true partition: the host's network goes dead (its namespace in the NAT lab drops every
/// packet) while the co-host and the guest, in another home network, keep theirs. The co-host
/// takes over; the cut-off host, sure it still hosts, goes on working and adds a track. Once
/// its network is back it finds the newer host, steps down to co-host (exactly one host),
/// and the track it added while cut off reaches the new host through its outbox, confirmed
/// there. Needs root, iproute2 and nftables, like the NAT tests.
#[test]
fn a_host_cut_off_by_a_partition_steps_down_once_back_and_what_it_did_meanwhile_reaches_the_new_host()
 {
    let lab = Lab::up("cone", "pt");
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("/ip4/{RELAY_IP}/tcp/4001");
    let relay = Relay::start_in_netns(
        &lab.ns("relay"),
        &dir.path().join("relay.key"),
        &["--listen", &listen],
    );
    let in_lab = |side: &str, name: &str| {
        let mut app = Headless::start_in_netns(&lab.ns(side), &dir.path().join(name), RELAY_ONLY);
        app.ok("identity.set_name", json!({"name": name}));
        app.ok("relay.add", json!({"addr": relay.addr()}));
        wait_relay_status(&mut app, relay.addr(), "reserved", TIMEOUT);
        app
    };
    let mut host = in_lab("a", "Hana");
    host.ok("session.create", json!({"name": "Partition"}));
    let url = host.relayed_invite_url();
    let mut cohost = in_lab("b", "Cole");
    let mut guest = in_lab("b", "Gus");
    let (host_id, cohost_id) = (peer_id(&mut host), peer_id(&mut cohost));
    let session = cohost.ok("session.join", json!({"invite": url}))["session_id"].clone();
    guest.ok("session.join", json!({"invite": url}));
    host.ok(
        "track.add",
        json!({"title": "Before", "artist": "A", "duration_ms": 60000}),
    );
    host.ok("cohost.add", json!({"peer_id": cohost_id}));
    wait_state(&mut guest, "the co-host promoted", |s| {
        role_of(s, &cohost_id).as_deref() == Some("cohost")
    });
    wait_state(&mut cohost, "the first track", |s| titles(s) == ["Before"]);
    // The host sends the co-host the session's key right after the promotion.
    std::thread::sleep(Duration::from_secs(1));

    lab.cut("a");
    // The relay and the co-host notice only when their heartbeats to the host time out,
    // then the takeover waits its 10 s.
    let long = Duration::from_secs(120);
    wait_state_for(&mut cohost, "the co-host hosting", long, |s| {
        s["host"] == json!(cohost_id)
    });
    wait_state_for(&mut guest, "the guest following the co-host", long, |s| {
        s["host"] == json!(cohost_id)
    });
    guest_adds_a_confirmed_track(&mut guest, &cohost_id, "After");
    // Cut off, the old host still hosts as far as it knows, and goes on working.
    let added = host.ok(
        "track.add",
        json!({"title": "Cut off", "artist": "H", "duration_ms": 60000}),
    );
    assert_ne!(added["pending"], json!(true), "{added}");
    assert_eq!(
        host.ok("session.state", json!(null))["host"],
        json!(host_id),
        "the cut-off host does not know yet"
    );

    lab.heal("a");
    let all_three = |s: &Value| {
        let mut t = titles(s);
        t.sort();
        t == ["After", "Before", "Cut off"]
            && s["queue"]
                .as_array()
                .is_some_and(|q| q.iter().all(|t| t["pending"] == json!(false)))
    };
    let (state, _) = wait_state_for(&mut host, "the old host stepped down", long, |s| {
        s["host"] == json!(cohost_id) && role_of(s, &host_id).as_deref() == Some("cohost")
    });
    assert_eq!(state["session_id"], session);
    // Exactly one host, and what the cut-off host did is the new host's, confirmed.
    for app in [&mut cohost, &mut guest, &mut host] {
        let (state, _) = wait_state_for(app, "one host and all three tracks", long, |s| {
            s["host"] == json!(cohost_id) && all_three(s)
        });
        assert_eq!(state["session_id"], session);
    }
}
