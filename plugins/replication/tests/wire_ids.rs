//! Components are named on the wire by registration id: an update naming an id this build
//! does not know is refused whole (and logged), never a panic, and the member carries on.

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, Response};
use whatnext_replication::Registry;
use whatnext_replication::protocol::{
    Change, ComponentBytes, SessionRequest, SessionResponse, Update, decode, encode,
};
use whatnext_test_support::{HOST, MEMBER, net_id, replicating_app};

/// Delivers `update` from the host to `member`, updates once, and returns the answer.
fn deliver(member: &mut App, reply: u64, update: Update) -> Vec<SessionResponse> {
    let payload = encode(&SessionRequest::Update(update)).expect("encode");
    member.world_mut().write_message(NetEvent::Request {
        peer: net_id(HOST),
        reply,
        payload,
    });
    member.update();
    member
        .world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .filter_map(|command| match command {
            NetCommand::Respond {
                reply: r,
                response: Response::Payload(bytes),
            } if r == reply => Some(decode(&bytes).expect("an answer the member encoded")),
            _ => None,
        })
        .collect()
}

fn mirrored(member: &mut App, net_id: u64) -> bool {
    member
        .world_mut()
        .query::<&NetId>()
        .iter(member.world())
        .any(|id| id.0 == net_id)
}

#[test]
fn an_update_naming_an_unknown_component_id_is_refused_not_applied() {
    let mut member = replicating_app(MEMBER);
    member.world_mut().spawn(Host(PeerId::new(HOST)));
    let unknown = u16::try_from(member.world().resource::<Registry>().len()).expect("few");
    let track = member
        .world()
        .resource::<Registry>()
        .id_of::<Track>()
        .expect("the core registers Track");
    let value = Track {
        id: TrackId(1),
        title: "T".into(),
        artist: "A".into(),
        duration_ms: 1,
        media: None,
        added_by: PeerId::new(HOST),
    };
    let bytes = postcard::to_allocvec(&value).expect("encode");

    let answers = deliver(
        &mut member,
        1,
        Update {
            epoch: 0,
            seq: 1,
            changes: vec![
                Change::Insert {
                    net_id: 5,
                    component: ComponentBytes {
                        id: track,
                        bytes: bytes.clone(),
                    },
                },
                Change::Insert {
                    net_id: 6,
                    component: ComponentBytes {
                        id: unknown,
                        bytes: vec![1, 2, 3],
                    },
                },
            ],
        },
    );
    assert!(
        matches!(answers.as_slice(), [SessionResponse::Refused { .. }]),
        "{answers:?}"
    );
    assert!(
        !mirrored(&mut member, 5),
        "nothing of a refused update applies"
    );
    assert!(!mirrored(&mut member, 6));

    // The same seq with known components is then applied as usual.
    let answers = deliver(
        &mut member,
        2,
        Update {
            epoch: 0,
            seq: 1,
            changes: vec![Change::Insert {
                net_id: 5,
                component: ComponentBytes { id: track, bytes },
            }],
        },
    );
    assert_eq!(answers, vec![SessionResponse::Ack]);
    assert!(mirrored(&mut member, 5));
}
