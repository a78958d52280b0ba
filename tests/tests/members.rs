//! Hosts stay in control, through the control protocol with real processes on loopback: a
//! kicked guest is told and put out, a banned one cannot come back with the link, and a
//! rotated invite refuses the old link and code.

use serde_json::{Value, json};

use crate::harness::*;
use crate::relay::{RELAY_ONLY, Relay, peer_on};

fn has_participant(state: &Value, peer: &str) -> bool {
    state["participants"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["peer_id"] == json!(peer)))
}

#[test]
fn a_kicked_guest_is_told_removed_and_a_banned_one_cannot_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Kicks"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    let guest_id = peer_id(&mut guest);
    guest.ok("session.join", json!({"invite": url}));
    wait_state(&mut host, "the guest joined", |s| {
        has_participant(s, &guest_id)
    });

    // Kicked without a ban: told, out, and back in with the link.
    host.ok("member.kick", json!({"peer_id": guest_id}));
    wait_event(&mut guest, "session.left", |d| {
        d["reason"] == json!("removed")
    });
    assert_eq!(
        guest.error_code("session.state", json!(null)),
        "not_in_session"
    );
    let (state, _) = wait_state(&mut host, "the guest gone", |s| {
        !has_participant(s, &guest_id)
    });
    assert!(!has_participant(&state, &guest_id));
    guest.ok("session.join", json!({"invite": url}));
    wait_state(&mut host, "the guest back", |s| {
        has_participant(s, &guest_id)
    });

    // Banned: out, and the link no longer lets it in.
    guest.events.clear();
    host.ok("member.kick", json!({"peer_id": guest_id, "ban": true}));
    wait_event(&mut guest, "session.left", |d| {
        d["reason"] == json!("removed")
    });
    wait_state(&mut host, "the guest gone again", |s| {
        !has_participant(s, &guest_id)
    });
    assert_eq!(
        guest.error_code("session.join", json!({"invite": url})),
        "denied"
    );
}

#[test]
fn a_guest_cannot_kick_and_nobody_kicks_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    let host_id = peer_id(&mut host);
    host.ok("session.create", json!({"name": "Kicks"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": url}));
    assert_eq!(
        guest.error_code("member.kick", json!({"peer_id": host_id})),
        "not_permitted"
    );
    assert_eq!(
        host.error_code("member.kick", json!({"peer_id": host_id})),
        "not_permitted"
    );
}

#[test]
fn a_rotated_invite_refuses_the_old_link_and_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Rotation"}));
    let old = host.relayed_invite(true);
    let new = host.ok("session.invite.rotate", json!(null));
    let new_url = new["url"].as_str().expect("a new link").to_owned();
    assert_ne!(old["url"], new["url"], "the link did not change");
    assert!(new["short_code"].is_string(), "no new code: {new}");
    assert_ne!(
        old["short_code"], new["short_code"],
        "the code did not change"
    );

    let mut late = Headless::start_with(&dir.path().join("late"), RELAY_ONLY);
    assert_eq!(
        late.error_code("session.join", json!({"invite": old["url"]})),
        "invalid_invite"
    );
    late.ok("session.join", json!({"invite": new_url}));
}

#[test]
fn only_the_host_ends_the_party_and_every_guest_is_told_it_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Short"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": url}));
    assert_eq!(
        guest.error_code("session.end", json!(null)),
        "not_permitted"
    );
    host.ok("session.end", json!(null));
    wait_event(&mut host, "session.left", |d| d["reason"] == json!("ended"));
    wait_event(&mut guest, "session.left", |d| {
        d["reason"] == json!("ended")
    });
    assert_eq!(
        guest.error_code("session.state", json!(null)),
        "not_in_session"
    );
}
