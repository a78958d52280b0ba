//! Peers whose protocol hashes differ (other registered components, so other wire ids) do
//! not join: the host refuses the hello, and the joiner's answer says the versions differ;
//! a member also refuses a welcome whose hash is not its own.

use bevy::prelude::*;
use serde::{Deserialize, Serialize};
use whatnext_core::invite::{InviteUrl, welcome_proof};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, NetKeys, Response};
use whatnext_replication::protocol::{SessionResponse, Snapshot, Welcome, encode};
use whatnext_replication::{AppReplicationExt, Registry, invite_secret};
use whatnext_test_support::{Author, HOST, MEMBER, net_id, replicating_app};

/// A component only one side replicates: its registration changes that side's hash.
#[derive(Component, Clone, Serialize, Deserialize)]
struct Extra(u8);

/// A host with a session and its network key; returns its invite link.
fn host_with_session(host: &mut App) -> String {
    let keys = NetKeys(libp2p::identity::Keypair::generate_ed25519());
    host.insert_resource(keys.clone());
    let session = SessionId("V".into());
    Author::new(HOST)
        .act(
            host,
            Action::Local(LocalAction::CreateSession {
                session_id: session.clone(),
                name: "Versions".into(),
            }),
        )
        .expect("create");
    let key = host
        .world_mut()
        .query::<&SessionAccess>()
        .iter(host.world())
        .next()
        .expect("the hosted session's access")
        .key
        .clone();
    InviteUrl {
        host: PeerId::new(HOST),
        relay: None,
        session: session.clone(),
        key: Some(invite_secret(&key, &session, 0)),
    }
    .to_string()
}

/// A member app that joins with `invite`; returns the join intent's id.
fn start_join(member: &mut App, invite: &str) -> IntentId {
    member.insert_resource(NetworkPresent);
    let intent = Author::new(MEMBER).intent(Action::Local(LocalAction::JoinSession {
        invite: invite.into(),
    }));
    member.world_mut().write_message(intent.clone());
    member.update();
    intent.id
}

/// A member app joining session `V` at `HOST` by a link with `secret`: the app, the join's
/// intent id, and the token its host's answer must carry.
fn joining_by_link_with_secret(secret: &str) -> (App, IntentId, u64) {
    let mut member = replicating_app(MEMBER);
    let join = start_join(
        &mut member,
        &InviteUrl {
            host: PeerId::new(HOST),
            relay: None,
            session: SessionId("V".into()),
            key: Some(secret.into()),
        }
        .to_string(),
    );
    let token = drain_commands(&mut member)
        .into_iter()
        .find_map(|c| match c {
            NetCommand::JoinViaUrl { token, .. } => Some(token),
            _ => None,
        })
        .expect("the member said hello");
    (member, join, token)
}

fn drain_commands(app: &mut App) -> Vec<NetCommand> {
    app.world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .collect()
}

/// Carries the member's hello to the host and the host's answer back, as the network does.
fn deliver_hello(member: &mut App, host: &mut App) {
    let Some((token, hello)) = drain_commands(member).into_iter().find_map(|c| match c {
        NetCommand::JoinViaUrl { token, hello, .. } => Some((token, hello)),
        _ => None,
    }) else {
        panic!("the member said no hello");
    };
    host.world_mut().write_message(NetEvent::Request {
        peer: net_id(MEMBER),
        reply: 1,
        payload: hello,
    });
    host.update();
    let Some(response) = drain_commands(host).into_iter().find_map(|c| match c {
        NetCommand::Respond { reply: 1, response } => Some(response),
        _ => None,
    }) else {
        panic!("the host did not answer the hello");
    };
    member.world_mut().write_message(NetEvent::JoinAnswer {
        token,
        host: net_id(HOST),
        response,
    });
    member.update();
}

fn outcome_of(app: &mut App, id: &IntentId) -> Option<Result<Applied, IntentError>> {
    app.world_mut()
        .resource_mut::<Messages<IntentOutcome>>()
        .drain()
        .find(|o| o.id == *id)
        .map(|o| o.result)
}

#[test]
fn a_joiner_with_the_same_protocol_is_welcomed() {
    let mut host = replicating_app(HOST);
    let mut member = replicating_app(MEMBER);
    let invite = host_with_session(&mut host);
    let join = start_join(&mut member, &invite);
    deliver_hello(&mut member, &mut host);
    assert_eq!(
        outcome_of(&mut member, &join),
        Some(Ok(Applied::SessionJoined(SessionId("V".into()))))
    );
}

#[test]
fn a_joiner_with_another_protocol_is_refused_and_told_the_versions_differ() {
    let mut host = replicating_app(HOST);
    let mut member = replicating_app(MEMBER);
    member.replicate_as::<Extra>("extra");
    assert_ne!(
        host.world().resource::<Registry>().protocol_hash(),
        member.world().resource::<Registry>().protocol_hash()
    );
    let invite = host_with_session(&mut host);
    let join = start_join(&mut member, &invite);
    deliver_hello(&mut member, &mut host);
    let Some(Err(error)) = outcome_of(&mut member, &join) else {
        panic!("the join was not refused");
    };
    assert!(error.message.contains("versions differ"), "{error}");
    assert!(
        !host
            .world_mut()
            .query::<&Participant>()
            .iter(host.world())
            .any(|p| p.peer.as_str() == MEMBER),
        "the host admitted a peer it cannot understand"
    );
}

#[test]
fn a_welcome_from_a_host_with_another_protocol_is_refused_by_the_member() {
    let (mut member, join, token) = joining_by_link_with_secret("00");
    let ours = member.world().resource::<Registry>().protocol_hash();
    let welcome = SessionResponse::Welcome(Welcome {
        protocol: ours ^ 1,
        session: SessionId("V".into()),
        name: "Versions".into(),
        host: PeerId::new(HOST),
        term: 0,
        snapshot: Snapshot::default(),
        rejoin: None,
        proof: None,
    });
    member.world_mut().write_message(NetEvent::JoinAnswer {
        token,
        host: net_id(HOST),
        response: Response::Payload(encode(&welcome).expect("encode")),
    });
    member.update();
    let Some(Err(error)) = outcome_of(&mut member, &join) else {
        panic!("the welcome was taken");
    };
    assert!(error.message.contains("versions differ"), "{error}");
    assert!(
        member
            .world_mut()
            .query::<&Session>()
            .iter(member.world())
            .next()
            .is_none(),
        "the member applied a snapshot it cannot read"
    );
}

/// A joiner by link takes a welcome only from a device that proves it holds the link's
/// secret: someone else answering for the party (say, a device that registered the party's
/// code after its host went) cannot put the joiner into a party of its own.
#[test]
fn a_welcome_that_does_not_prove_the_links_secret_is_not_taken() {
    let (mut member, join, token) = joining_by_link_with_secret("00");
    let welcome = |proof: Option<String>, member: &App| {
        SessionResponse::Welcome(Welcome {
            protocol: member.world().resource::<Registry>().protocol_hash(),
            session: SessionId("V".into()),
            name: "Versions".into(),
            host: PeerId::new(HOST),
            term: 0,
            snapshot: Snapshot::default(),
            rejoin: None,
            proof,
        })
    };
    let in_session = |member: &mut App| {
        member
            .world_mut()
            .query::<&Session>()
            .iter(member.world())
            .next()
            .is_some()
    };
    for forged in [None, Some(welcome_proof("guessed", &PeerId::new(MEMBER)))] {
        let answer = welcome(forged, &member);
        member.world_mut().write_message(NetEvent::JoinAnswer {
            token,
            host: net_id(HOST),
            response: Response::Payload(encode(&answer).expect("encode")),
        });
        member.update();
        assert!(outcome_of(&mut member, &join).is_none(), "the join ended");
        assert!(!in_session(&mut member), "a forged welcome was taken");
    }
    // The real host's welcome proves the secret, and is taken.
    let answer = welcome(Some(welcome_proof("00", &PeerId::new(MEMBER))), &member);
    member.world_mut().write_message(NetEvent::JoinAnswer {
        token,
        host: net_id(HOST),
        response: Response::Payload(encode(&answer).expect("encode")),
    });
    member.update();
    assert!(
        matches!(outcome_of(&mut member, &join), Some(Ok(_))),
        "the proven welcome was not taken"
    );
}
