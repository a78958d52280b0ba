//! `SessionPlugin` applying intents to real entities.

use bevy::prelude::*;
use whatnext_core::prelude::*;

use crate::*;

#[test]
fn the_host_is_the_first_playback_owner_and_first_participant() {
    let mut app = party();
    assert_eq!(owner(&mut app), HOST);
    let world = app.world_mut();
    let peers: Vec<String> = world
        .query::<&Participant>()
        .iter(world)
        .map(|p| p.peer.to_string())
        .collect();
    assert!(peers.contains(&HOST.to_string()));
}

#[test]
fn added_tracks_queue_in_order_of_arrival() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    add_track(&mut app, GUEST, 2, "Two").expect("add");
    add_track(&mut app, COHOST, 3, "Three").expect("add");
    assert_eq!(titles(&mut app), ["One", "Two", "Three"]);
}

/// The tracks from a given one on, in play order, without walking those before it.
#[test]
fn the_queue_reads_in_order_from_any_track() {
    let mut app = party();
    for (id, title) in [(1, "A"), (2, "B"), (3, "C"), (4, "D")] {
        add_track(&mut app, HOST, id, title).expect("add");
    }
    app.update();
    let index = app.world().resource::<QueueIndex>();
    let ids = |from: Option<TrackId>| -> Vec<u64> {
        index
            .in_order_from(from, app.world())
            .map(|(id, _)| id.0)
            .collect()
    };
    assert_eq!(ids(Some(TrackId(3))), [3, 4]);
    assert_eq!(ids(None), [1, 2, 3, 4]);
    assert_eq!(
        ids(Some(TrackId(99))),
        [1, 2, 3, 4],
        "not queued: from the start"
    );
}

/// A new host gets again an addition the old one applied but could not confirm (the
/// author's outbox delivers it once more): the same addition from the same author is
/// already done, not a second track and not a refusal. Anything else with a used id is.
#[test]
fn the_same_addition_again_from_its_author_is_already_done() {
    let mut app = party();
    assert_eq!(
        add_track(&mut app, GUEST, 7, "Once"),
        Ok(Applied::TrackAdded(TrackId(7)))
    );
    assert_eq!(
        add_track(&mut app, GUEST, 7, "Once"),
        Ok(Applied::TrackAdded(TrackId(7)))
    );
    assert_eq!(titles(&mut app), ["Once"]);
    let other_author = add_track(&mut app, COHOST, 7, "Once").expect_err("taken id");
    assert_eq!(other_author.code, ErrorCode::BadRequest);
    let other_track = add_track(&mut app, GUEST, 7, "Twice").expect_err("taken id");
    assert_eq!(other_track.code, ErrorCode::BadRequest);
    assert_eq!(titles(&mut app), ["Once"]);
}

#[test]
fn a_track_moves_to_the_front_and_after_another() {
    let mut app = party();
    for (id, title) in [(1, "One"), (2, "Two"), (3, "Three")] {
        add_track(&mut app, HOST, id, title).expect("add");
    }
    act(
        &mut app,
        COHOST,
        SessionAction::MoveTrack {
            track_id: TrackId(3),
            after: None,
        },
    )
    .expect("move");
    assert_eq!(titles(&mut app), ["Three", "One", "Two"]);
    act(
        &mut app,
        HOST,
        SessionAction::MoveTrack {
            track_id: TrackId(3),
            after: Some(TrackId(2)),
        },
    )
    .expect("move");
    assert_eq!(titles(&mut app), ["One", "Two", "Three"]);
    act(
        &mut app,
        HOST,
        SessionAction::MoveTrack {
            track_id: TrackId(1),
            after: Some(TrackId(2)),
        },
    )
    .expect("move");
    assert_eq!(titles(&mut app), ["Two", "One", "Three"]);
}

#[test]
fn a_guest_removes_its_own_track_but_not_another() {
    let mut app = party();
    add_track(&mut app, GUEST, 1, "Mine").expect("add");
    add_track(&mut app, HOST, 2, "Theirs").expect("add");
    let refused = act(
        &mut app,
        GUEST,
        SessionAction::RemoveTrack {
            track_id: TrackId(2),
        },
    );
    assert_eq!(
        refused.map_err(|e| e.rule),
        Err(Some(Rule::GuestsRemoveOnlyTheirOwnTracks))
    );
    act(
        &mut app,
        GUEST,
        SessionAction::RemoveTrack {
            track_id: TrackId(1),
        },
    )
    .expect("remove own");
    assert_eq!(titles(&mut app), ["Theirs"]);
}

#[test]
fn a_guests_pause_is_refused_and_changes_nothing() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    let before = clock(&mut app);
    let error = act(&mut app, GUEST, SessionAction::Pause).expect_err("refused");
    assert_eq!(error.code, ErrorCode::NotPermitted);
    assert_eq!(error.rule, Some(Rule::OnlyPlaybackOwnerControlsPlayback));
    assert_eq!(clock(&mut app), before);
}

#[test]
fn ownership_moves_by_hand_off_and_take_back() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    act(
        &mut app,
        HOST,
        SessionAction::HandOff {
            to: PeerId::new(COHOST),
        },
    )
    .expect("hand off");
    assert_eq!(owner(&mut app), COHOST);
    // The host is no longer the owner, so the host cannot pause...
    let refused = act(&mut app, HOST, SessionAction::Pause).expect_err("host not owner");
    assert_eq!(refused.rule, Some(Rule::OnlyPlaybackOwnerControlsPlayback));
    // ...but the co-host can.
    act(&mut app, COHOST, SessionAction::Pause).expect("cohost pauses");
    assert_eq!(clock(&mut app).state, PlayState::Paused);
    act(&mut app, HOST, SessionAction::TakePlayback).expect("take back");
    assert_eq!(owner(&mut app), HOST);
}

#[test]
fn hand_off_to_a_guest_is_refused() {
    let mut app = party();
    let error = act(
        &mut app,
        HOST,
        SessionAction::HandOff {
            to: PeerId::new(GUEST),
        },
    )
    .expect_err("refused");
    assert_eq!(error.rule, Some(Rule::HandOffOnlyToHostOrCohost));
    assert_eq!(owner(&mut app), HOST);
}

#[test]
fn demoting_the_owning_cohost_returns_playback_to_the_host() {
    let mut app = party();
    act(
        &mut app,
        HOST,
        SessionAction::HandOff {
            to: PeerId::new(COHOST),
        },
    )
    .expect("hand off");
    act(
        &mut app,
        HOST,
        SessionAction::RemoveCohost {
            peer: PeerId::new(COHOST),
        },
    )
    .expect("demote");
    assert_eq!(owner(&mut app), HOST);
}

#[test]
fn play_pause_seek_move_the_shared_clock() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    app.world_mut().resource_mut::<WallClock>().now_ms += 5_000;
    let now = app.world().resource::<WallClock>().now_ms;
    assert_eq!(clock(&mut app).position_at(now), 5_000);
    act(
        &mut app,
        HOST,
        SessionAction::Seek {
            position_ms: 60_000,
        },
    )
    .expect("seek");
    act(&mut app, HOST, SessionAction::Pause).expect("pause");
    app.world_mut().resource_mut::<WallClock>().now_ms += 9_000;
    let now = app.world().resource::<WallClock>().now_ms;
    assert_eq!(clock(&mut app).position_at(now), 60_000);
}

#[test]
fn next_moves_through_the_queue_and_stops_at_its_end() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    add_track(&mut app, HOST, 2, "Two").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    assert_eq!(clock(&mut app).track, Some(TrackId(1)));
    act(&mut app, HOST, SessionAction::Next).expect("next");
    assert_eq!(clock(&mut app).track, Some(TrackId(2)));
    assert_eq!(clock(&mut app).state, PlayState::Playing);
    act(&mut app, HOST, SessionAction::Next).expect("next");
    assert_eq!(clock(&mut app).state, PlayState::Stopped);
}

#[test]
fn a_finished_track_advances_the_queue_on_the_authority() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    add_track(&mut app, HOST, 2, "Two").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    app.world_mut().resource_mut::<WallClock>().now_ms += 180_000 + 250;
    app.update();
    let c = clock(&mut app);
    assert_eq!(c.track, Some(TrackId(2)));
    let now = app.world().resource::<WallClock>().now_ms;
    assert_eq!(
        c.position_at(now),
        250,
        "no time is lost at the track boundary"
    );
}

#[test]
fn a_redelivered_intent_is_applied_once() {
    let mut app = party();
    let intent = Intent {
        id: IntentId {
            author: PeerId::new(GUEST),
            counter: 42,
        },
        action: Action::Session(SessionAction::AddTrack {
            track_id: TrackId(7),
            title: "Once".into(),
            artist: String::new(),
            duration_ms: 1_000,
            media: None,
        }),
    };
    let first = whatnext_core::session::apply_intent(app.world_mut(), &intent);
    let again = whatnext_core::session::apply_intent(app.world_mut(), &intent);
    assert_eq!(first, Ok(Applied::TrackAdded(TrackId(7))));
    assert_eq!(again, first);
    assert_eq!(titles(&mut app), ["Once"]);
}

#[test]
fn unknown_tracks_and_strangers_get_clear_errors() {
    let mut app = party();
    let missing = act(
        &mut app,
        HOST,
        SessionAction::RemoveTrack {
            track_id: TrackId(99),
        },
    )
    .expect_err("missing");
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert!(
        missing.message.contains("0000000000000063"),
        "{}",
        missing.message
    );
    let stranger = add_track(&mut app, "stranger", 1, "x").expect_err("stranger");
    assert_eq!(stranger.code, ErrorCode::NotPermitted);
}

#[test]
fn session_commands_without_a_session_say_so() {
    let mut app = host_app();
    let error = add_track(&mut app, HOST, 1, "x").expect_err("no session");
    assert_eq!(error.code, ErrorCode::NotInSession);
}

#[test]
fn intents_sent_as_messages_get_outcomes_and_events() {
    let mut app = party();
    app.world_mut().write_message(Intent {
        id: IntentId {
            author: PeerId::new(HOST),
            counter: 1,
        },
        action: Action::Session(SessionAction::AddTrack {
            track_id: TrackId(5),
            title: "Five".into(),
            artist: "A".into(),
            duration_ms: 1_000,
            media: None,
        }),
    });
    app.update();
    let outcomes: Vec<IntentOutcome> = app
        .world_mut()
        .resource_mut::<Messages<IntentOutcome>>()
        .drain()
        .collect();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].result, Ok(Applied::TrackAdded(TrackId(5))));
    let events: Vec<SessionEvent> = app
        .world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .drain()
        .collect();
    assert!(
        events.contains(&SessionEvent::TrackAdded {
            track_id: TrackId(5)
        }),
        "{events:?}"
    );
    assert!(events.contains(&SessionEvent::QueueChanged), "{events:?}");
}

#[test]
fn leaving_removes_the_session_and_its_tracks() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    // Without an online co-host, the host's leaving ends the party at once.
    act(
        &mut app,
        HOST,
        SessionAction::RemoveCohost {
            peer: PeerId::new(COHOST),
        },
    )
    .expect("demote");
    act_any(&mut app, HOST, Action::Local(LocalAction::LeaveSession)).expect("leave");
    assert!(app.world().resource::<QueueIndex>().is_empty());
    let again =
        act_any(&mut app, HOST, Action::Local(LocalAction::LeaveSession)).expect_err("not in one");
    assert_eq!(again.code, ErrorCode::NotInSession);
}

#[test]
fn a_host_leaving_with_a_cohost_online_hands_the_party_over_then_leaves() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    act_any(&mut app, HOST, Action::Local(LocalAction::LeaveSession)).expect("leave");
    // This frame: the co-host hosts the next term (the update saying so goes out now).
    let world = app.world_mut();
    let (host, term, cohosts) = world
        .query::<(&Host, &HostTerm, &CoHosts)>()
        .single(world)
        .expect("the session is still here this frame");
    assert_eq!(host.0, PeerId::new(COHOST));
    assert_eq!((term.term, term.why), (1, HostChange::HostLeft));
    assert!(cohosts.0.is_empty(), "the leaving host is no co-host of it");
    // Next frame: this device has left.
    app.update();
    assert!(app.world().resource::<QueueIndex>().is_empty());
    let world = app.world_mut();
    assert_eq!(world.query::<&Session>().iter(world).count(), 0);
}

#[test]
fn relays_must_name_their_peer_id() {
    let mut app = host_app();
    let error = act_any(
        &mut app,
        HOST,
        Action::Local(LocalAction::AddRelay {
            addr: "/ip4/1.2.3.4/tcp/1".into(),
        }),
    )
    .expect_err("no peer id");
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert!(app.world().resource::<Relays>().0.is_empty());
}
