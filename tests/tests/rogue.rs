//! A modified client against a real host process: the rogue speaks the real session protocol
//! (whatnext's own swarm, transport and message types) through a real relay on loopback, and
//! sends what the app's UI never would. One test per attack, named after what it tries; each
//! checks the host refused it and that the party is intact.

use std::time::{Duration, Instant};

use serde_json::json;
use whatnext_core::prelude::*;
use whatnext_replication::protocol::{SessionRequest, SessionResponse};

use crate::harness::*;
use crate::relay::{RELAY_ONLY, Relay, peer_on};
use crate::rogue_client::Rogue;

/// A relay, a host with a session, and the host's relayed link.
struct Party {
    _dir: tempfile::TempDir,
    _relay: Relay,
    host: Headless,
    url: String,
}

fn party() -> Party {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Target"}));
    let url = host.relayed_invite_url();
    Party {
        _dir: dir,
        _relay: relay,
        host,
        url,
    }
}

fn refusal(answer: SessionResponse) -> IntentError {
    match answer {
        SessionResponse::IntentResult(Err(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn rogue_member_sends_the_hosts_local_actions() {
    let mut party = party();
    let mut rogue = Rogue::aimed_at(&party.url);
    assert!(matches!(rogue.join(), SessionResponse::Welcome(_)));
    let attacks = [
        LocalAction::LeaveSession,
        LocalAction::SetDisplayName {
            name: "pwned".into(),
        },
        LocalAction::ImportFolder {
            path: "/etc".into(),
        },
        LocalAction::JoinSession {
            invite: "ABCDEF".into(),
        },
    ];
    for attack in attacks {
        let error = refusal(rogue.intent(Action::Local(attack.clone())));
        assert_eq!(error.code, ErrorCode::NotPermitted, "{attack:?}: {error}");
    }
    let state = party.host.ok("session.state", json!(null));
    assert_eq!(state["name"], json!("Target"), "the party ended: {state}");
    let me = party.host.ok("identity", json!(null));
    assert_eq!(me["display_name"], json!("Hana"), "the host was renamed");
}

#[test]
fn rogue_member_picks_the_sessions_replication_id_as_a_track_id() {
    let mut party = party();
    // A real guest: on members, a track carrying the session's replication id would merge
    // into the session entity, and removing it would end the party for them.
    let mut guest = Headless::start_with(&party._dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": party.url}));
    let mut rogue = Rogue::aimed_at(&party.url);
    let SessionResponse::Welcome(welcome) = rogue.join() else {
        panic!("not welcomed");
    };
    // Every replicated entity's id is in the snapshot: pick the session's (any will do to
    // try the merge; try them all).
    for (n, (net_id, _)) in welcome.snapshot.entities.iter().enumerate() {
        let track_id = TrackId(*net_id);
        let added = rogue.intent(Action::Session(SessionAction::AddTrack {
            track_id,
            title: format!("Merge {n}"),
            artist: String::new(),
            duration_ms: 1_000,
            media: None,
        }));
        assert!(
            matches!(added, SessionResponse::IntentResult(Ok(_))),
            "{added:?}"
        );
        let removed = rogue.intent(Action::Session(SessionAction::RemoveTrack { track_id }));
        assert!(
            matches!(removed, SessionResponse::IntentResult(Ok(_))),
            "{removed:?}"
        );
    }
    let state = party.host.ok("session.state", json!(null));
    assert_eq!(state["name"], json!("Target"), "the session went: {state}");
    assert_eq!(
        state["participants"].as_array().map(Vec::len),
        Some(3),
        "{state}"
    );
    // Updates arrive in order: once the guest has the host's marker, it has applied every
    // addition and removal before it, and is still in the party.
    party.host.ok(
        "track.add",
        json!({"title": "After", "artist": "", "duration_ms": 1000}),
    );
    let (state, _) = wait_state(&mut guest, "the marker track", |s| {
        titles(s).contains(&"After".to_owned())
    });
    assert_eq!(state["name"], json!("Target"), "{state}");
    assert_eq!(titles(&state), vec!["After".to_owned()]);
}

#[test]
fn rogue_member_adds_a_track_with_a_five_megabyte_artist() {
    let mut party = party();
    let mut rogue = Rogue::aimed_at(&party.url);
    assert!(matches!(rogue.join(), SessionResponse::Welcome(_)));
    let error = refusal(rogue.intent(Action::Session(SessionAction::AddTrack {
        track_id: TrackId(1),
        title: "Huge".into(),
        artist: "x".repeat(5_000_000),
        duration_ms: 1_000,
        media: None,
    })));
    assert_eq!(error.code, ErrorCode::TooLarge, "{error}");
    let state = party.host.ok("session.state", json!(null));
    assert!(titles(&state).is_empty(), "{:?}", titles(&state));
}

#[test]
fn rogue_stranger_sends_intents_and_resyncs_without_joining() {
    let mut party = party();
    let mut rogue = Rogue::aimed_at(&party.url);
    let error = refusal(rogue.intent(Action::Session(SessionAction::AddTrack {
        track_id: TrackId(1),
        title: "Sneaky".into(),
        artist: String::new(),
        duration_ms: 1,
        media: None,
    })));
    assert_eq!(error.code, ErrorCode::NotPermitted);
    let resync = rogue.send(&SessionRequest::Resync { epoch: 0, after: 0 });
    assert!(
        matches!(resync, SessionResponse::Refused { .. }),
        "{resync:?}"
    );
    let state = party.host.ok("session.state", json!(null));
    assert!(titles(&state).is_empty());
}

#[test]
fn rogue_floods_the_host_with_hellos() {
    let party = party();
    let mut rogue = Rogue::aimed_at(&party.url);
    let wrong = rogue.hello(Some("not-the-key".into()), None, "Flood");
    let mut refused_for_rate = 0;
    for _ in 0..40 {
        if let SessionResponse::Refused { reason } =
            rogue.send(&SessionRequest::Hello(wrong.clone()))
            && reason.contains("too many")
        {
            refused_for_rate += 1;
        }
    }
    assert!(
        refused_for_rate > 20,
        "only {refused_for_rate} of 40 refused for rate"
    );
}

#[test]
fn rogue_knocks_with_many_throwaway_ids() {
    let mut party = party();
    let invite = party.host.relayed_invite(true);
    let code = invite["short_code"].as_str().expect("code").to_owned();
    let mut knocked = 0;
    let mut refused = 0;
    let started = Instant::now();
    for i in 0..30 {
        let mut rogue = Rogue::aimed_at(&party.url);
        let hello = rogue.hello(None, Some(code.clone()), &format!("Ghost {i}"));
        match rogue.send(&SessionRequest::Hello(hello)) {
            SessionResponse::Knocked => knocked += 1,
            SessionResponse::Refused { .. } => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    eprintln!(
        "30 throwaway ids knocked in {:?}: {knocked} waiting, {refused} refused",
        started.elapsed()
    );
    let knocks = party.host.ok("knock.list", json!(null));
    let waiting = knocks.as_array().map_or(0, Vec::len);
    assert!(waiting <= 20, "{waiting} knocks waiting: {knocks}");
    assert!(refused >= 10, "{refused} refused");
    // The knocks stop asking: they expire, and the host's list empties by itself.
    std::thread::sleep(Duration::from_secs(12));
    let knocks = party.host.ok("knock.list", json!(null));
    assert_eq!(knocks.as_array().map_or(0, Vec::len), 0, "{knocks}");
}

#[test]
fn rogue_banned_peer_says_hello_again() {
    let mut party = party();
    let mut rogue = Rogue::aimed_at(&party.url);
    assert!(matches!(rogue.join(), SessionResponse::Welcome(_)));
    let id = rogue.peer_id();
    party
        .host
        .ok("member.kick", json!({"peer_id": id.as_str(), "ban": true}));
    let again = rogue.join();
    assert!(matches!(again, SessionResponse::Denied { .. }), "{again:?}");
    let state = party.host.ok("session.state", json!(null));
    let in_party = state["participants"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["peer_id"] == json!(id.as_str())));
    assert!(!in_party, "a banned peer is back: {state}");
}
