//! A host's own changes wait in its outbox until every co-host it is linked to has
//! acknowledged the update that carried them; a co-host's refusal (it hosts a newer term) is
//! no acknowledgement, and without co-hosts nothing waits.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{ConnectionKind, NetCommand, NetEvent, PeerLinks, Request, Response};
use whatnext_replication::Members;
use whatnext_replication::protocol::{SessionRequest, SessionResponse, decode, encode};
use whatnext_test_support::{Author, HOST, MEMBER, net_id, replicating_app};

/// A host with a session and `MEMBER` admitted and linked; a co-host when `cohost`.
fn host_with(cohost: bool) -> App {
    let mut host = replicating_app(HOST);
    Author::new(HOST)
        .act(
            &mut host,
            Action::Local(LocalAction::CreateSession {
                session_id: SessionId("O".into()),
                name: "Own".into(),
            }),
        )
        .expect("create");
    let member = PeerId::new(MEMBER);
    host.world_mut()
        .resource_mut::<Members>()
        .0
        .insert(member.clone());
    host.world_mut()
        .resource_mut::<PeerLinks>()
        .0
        .insert(member.clone(), ConnectionKind::Relayed);
    if cohost {
        let mut cohosts = host.world_mut().query::<&mut CoHosts>();
        for mut list in cohosts.iter_mut(host.world_mut()) {
            list.0.push(member.clone());
        }
    }
    host.update();
    host
}

/// The host adds a track itself; returns the token of the update that carried it to
/// `MEMBER`.
fn host_adds(host: &mut App, author: &mut Author, track: u64) -> u64 {
    let intent = author.intent(Action::Session(SessionAction::AddTrack {
        track_id: TrackId(track),
        title: format!("T{track}"),
        artist: "H".into(),
        duration_ms: 60_000,
        media: None,
    }));
    host.world_mut().write_message(intent);
    host.update();
    host.world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .find_map(|command| match command {
            NetCommand::Publish {
                token,
                request: Request::Payload(bytes),
                ..
            }
            | NetCommand::Send {
                token,
                request: Request::Payload(bytes),
                ..
            } if matches!(decode(&bytes), Ok(SessionRequest::Update(_))) => Some(token),
            _ => None,
        })
        .expect("the update went to the member")
}

fn member_answers(host: &mut App, token: u64, answer: &SessionResponse) {
    host.world_mut().write_message(NetEvent::Response {
        token,
        peer: net_id(MEMBER),
        response: Response::Payload(encode(answer).expect("encode")),
    });
    host.update();
}

fn waiting(host: &App) -> Vec<IntentId> {
    host.world()
        .resource::<Outbox>()
        .0
        .iter()
        .map(|i| i.id.clone())
        .collect()
}

#[test]
fn a_hosts_own_change_waits_until_its_cohost_acknowledges_the_update_not_a_refusal() {
    let mut host = host_with(true);
    let mut author = Author::new(HOST);
    let first = host_adds(&mut host, &mut author, 1);
    assert_eq!(waiting(&host).len(), 1, "the host's own track waits");
    let refused = SessionResponse::Refused {
        reason: "this device hosts a newer term".into(),
    };
    member_answers(&mut host, first, &refused);
    assert_eq!(waiting(&host).len(), 1, "a refusal is no acknowledgement");
    let second = host_adds(&mut host, &mut author, 2);
    assert_eq!(waiting(&host).len(), 2);
    member_answers(&mut host, second, &SessionResponse::Ack);
    assert!(
        waiting(&host).is_empty(),
        "the co-host acknowledged an update carrying both"
    );
}

#[test]
fn without_a_cohost_nothing_the_host_does_waits() {
    let mut host = host_with(false);
    let mut author = Author::new(HOST);
    host_adds(&mut host, &mut author, 1);
    assert!(waiting(&host).is_empty(), "nobody could take over");
}
