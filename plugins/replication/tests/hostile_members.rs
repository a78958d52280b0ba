//! An admitted member running a modified client: it sends, over the real session protocol,
//! what the UI never would. The host refuses each attempt with a clear error and changes
//! nothing it should not.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, Response};
use whatnext_replication::Members;
use whatnext_replication::protocol::{SessionRequest, SessionResponse, decode, encode};
use whatnext_test_support::{Author, HOST, MEMBER, net_id, replicating_app, session_state};

/// A host with a session and `MEMBER` admitted (a member and a participant).
fn host_with_member() -> App {
    let mut host = replicating_app(HOST);
    Author::new(HOST)
        .act(
            &mut host,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("H".into()),
                name: "Hostile".into(),
            }),
        )
        .expect("create");
    host.world_mut()
        .resource_mut::<Members>()
        .0
        .insert(PeerId::new(MEMBER));
    host.world_mut().spawn((
        Participant {
            peer: PeerId::new(MEMBER),
            display_name: "Mallory".into(),
            display: false,
        },
        Presence {
            online: true,
            connection: Connection::Relayed,
        },
        NetId(7),
        Replicated,
    ));
    host.update();
    host
}

/// Sends `request` from `MEMBER` to the host and runs frames until it is answered.
fn ask(host: &mut App, reply: u64, request: &SessionRequest) -> SessionResponse {
    let payload = encode(request).expect("encode");
    host.world_mut().write_message(NetEvent::Request {
        peer: net_id(MEMBER),
        reply,
        payload,
    });
    for _ in 0..10 {
        host.update();
        let answer = host
            .world_mut()
            .resource_mut::<Messages<NetCommand>>()
            .drain()
            .find_map(|command| match command {
                NetCommand::Respond {
                    reply: r,
                    response: Response::Payload(bytes),
                } if r == reply => Some(decode::<SessionResponse>(&bytes).expect("decode")),
                _ => None,
            });
        if let Some(answer) = answer {
            return answer;
        }
    }
    panic!("the host never answered request {reply}");
}

fn refusal(answer: SessionResponse) -> IntentError {
    match answer {
        SessionResponse::IntentResult(Err(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn add_track(track_id: u64, title: &str, artist: &str) -> Action {
    Action::Session(SessionAction::AddTrack {
        track_id: TrackId(track_id),
        title: title.into(),
        artist: artist.into(),
        duration_ms: 1_000,
        media: None,
    })
}

#[test]
fn a_member_cannot_send_the_hosts_local_actions() {
    let mut host = host_with_member();
    let before = session_state(&mut host);
    let mut mallory = Author::new(MEMBER);
    let attacks = [
        LocalAction::LeaveSession,
        LocalAction::SetDisplayName {
            name: "pwned".into(),
        },
        LocalAction::RemoveRelay {
            addr: "/ip4/127.0.0.1/tcp/1".into(),
        },
        LocalAction::ImportFolder {
            path: "/etc".into(),
        },
        LocalAction::JoinSession {
            invite: "ABCDEF".into(),
        },
        LocalAction::CreateSession {
            session_id: SessionId("X".into()),
            name: "Hijacked".into(),
        },
    ];
    for (i, action) in attacks.into_iter().enumerate() {
        let intent = mallory.intent(Action::Local(action.clone()));
        let error = refusal(ask(
            &mut host,
            i as u64 + 1,
            &SessionRequest::Intent(intent),
        ));
        assert_eq!(error.code, ErrorCode::NotPermitted, "{action:?}: {error}");
    }
    assert_eq!(
        session_state(&mut host),
        before,
        "a local action got through"
    );
    assert_eq!(
        host.world().resource::<LocalPeer>().display_name,
        HOST,
        "the host was renamed"
    );
}

#[test]
fn the_host_allocates_net_ids_whatever_track_id_a_member_picks() {
    let mut host = host_with_member();
    let session_net_id = host
        .world_mut()
        .query_filtered::<&NetId, With<Session>>()
        .single(host.world())
        .expect("one session")
        .0;
    let mut mallory = Author::new(MEMBER);
    // A track id equal to the session's replication id: on members it would merge into
    // the session entity, and removing it would despawn the session everywhere.
    let added = ask(
        &mut host,
        1,
        &SessionRequest::Intent(mallory.intent(add_track(session_net_id, "Merge", ""))),
    );
    assert!(
        matches!(added, SessionResponse::IntentResult(Ok(_))),
        "{added:?}"
    );
    let mut ids: Vec<u64> = host
        .world_mut()
        .query_filtered::<&NetId, With<Replicated>>()
        .iter(host.world())
        .map(|id| id.0)
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "two replicated entities share a NetId");
}

#[test]
fn oversized_fields_are_refused_as_too_large_and_change_nothing() {
    let mut host = host_with_member();
    let before = session_state(&mut host);
    let mut mallory = Author::new(MEMBER);
    let huge = "x".repeat(5_000_000);
    let cases = [add_track(1, "ok", &huge), add_track(2, &huge, "ok")];
    for (i, action) in cases.into_iter().enumerate() {
        let error = refusal(ask(
            &mut host,
            i as u64 + 1,
            &SessionRequest::Intent(mallory.intent(action)),
        ));
        assert_eq!(error.code, ErrorCode::TooLarge, "{error}");
    }
    assert_eq!(
        session_state(&mut host),
        before,
        "an oversized track got in"
    );
}

#[test]
fn a_member_cannot_add_more_tracks_than_the_per_member_cap() {
    let mut host = host_with_member();
    let mut mallory = Author::new(MEMBER);
    let cap = whatnext_core::limits::MAX_TRACKS_PER_MEMBER;
    for i in 0..cap as u64 {
        let intent = mallory.intent(add_track(i + 1, &format!("T{i}"), ""));
        whatnext_core::session::apply_intent(host.world_mut(), &intent).expect("under the cap");
    }
    let over = mallory.intent(add_track(cap as u64 + 1, "one more", ""));
    let error = refusal(ask(&mut host, 1, &SessionRequest::Intent(over)));
    assert_eq!(error.code, ErrorCode::TooLarge, "{error}");
    assert_eq!(host.world().resource::<QueueIndex>().len(), cap);
}
