//! Who gets in and who is put out, on a real host app speaking the real session protocol:
//! rotated links, bans, removals, knocks that are capped and expire, hellos rate-limited,
//! each member's own rejoin key, and memberships ending with the session.

use std::time::Duration;

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use libp2p::identity::Keypair;
use whatnext_core::invite::{InviteUrl, hello_proof};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, NetKeys, NetPeerId, Response};
use whatnext_replication::protocol::{Hello, SessionRequest, SessionResponse, decode, encode};
use whatnext_replication::{
    HELLO_BURST, KNOCK_STALE, MAX_WAITING_KNOCKS, Members, Registry, invite_secret, member_secret,
};
use whatnext_test_support::{Author, FRAME, HOST, MEMBER, net_id, replicating_app};

const RELAY: &str =
    "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA284B2yjxoAAqAFwwVj6eRQ8DogF3t8wdpMzZ8Hh8wh4";

/// A host with a session "A", a reserved relay and a registered short code.
struct Host {
    app: App,
    author: Author,
    code: String,
    next_reply: u64,
}

fn drain(app: &mut App) -> Vec<NetCommand> {
    app.world_mut()
        .resource_mut::<Messages<NetCommand>>()
        .drain()
        .collect()
}

fn fresh_peer() -> NetPeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

impl Host {
    fn new() -> Self {
        let mut app = replicating_app(HOST);
        app.insert_resource(NetKeys(Keypair::generate_ed25519()));
        app.world_mut().resource_mut::<Relays>().0.push(RelayEntry {
            addr: RELAY.into(),
            status: RelayStatus::Reserved,
        });
        let mut author = Author::new(HOST);
        author
            .act(
                &mut app,
                Action::Local(LocalAction::CreateSession {
                    session_id: SessionId("A".into()),
                    name: "Admission".into(),
                }),
            )
            .expect("create");
        let mut host = Self {
            app,
            author,
            code: String::new(),
            next_reply: 1,
        };
        host.register_code();
        host
    }

    /// Runs a frame, and confirms the short code the host asked the relay for.
    fn register_code(&mut self) {
        self.app.update();
        let code = drain(&mut self.app).into_iter().find_map(|c| match c {
            NetCommand::SetCode(Some(code)) => Some(code),
            _ => None,
        });
        let code = code.expect("the host registers a code");
        self.app
            .world_mut()
            .write_message(NetEvent::CodeRegistered(code.clone()));
        self.app.update();
        self.code = code;
    }

    fn link_hello(&self, key: String) -> Hello {
        Hello {
            protocol: self.app.world().resource::<Registry>().protocol_hash(),
            session: Some(SessionId("A".into())),
            key: Some(key),
            code: None,
            display_name: "Guest".into(),
            display: false,
        }
    }

    fn code_hello(&self) -> Hello {
        Hello {
            session: None,
            key: None,
            code: Some(self.code.clone()),
            ..self.link_hello(String::new())
        }
    }

    fn secret(&self, generation: u32) -> String {
        invite_secret(&self.key(), &SessionId("A".into()), generation)
    }

    /// The hosted session's key (its access, on the host).
    fn key(&self) -> SessionKey {
        let world = self.app.world();
        world
            .try_query::<&SessionAccess>()
            .and_then(|mut q| q.iter(world).next().map(|a| a.key.clone()))
            .expect("a hosted session has its access")
    }

    /// `peer` says `hello`, proving the secret in its `key` as a guest does; the host's
    /// answer.
    fn hello(&mut self, peer: NetPeerId, hello: Hello) -> SessionResponse {
        let guest = PeerId::new(peer.to_string());
        let hello = Hello {
            key: hello.key.map(|secret| hello_proof(&secret, &guest)),
            ..hello
        };
        self.hello_as_sent(peer, hello)
    }

    /// `peer` sends `hello` as it is.
    fn hello_as_sent(&mut self, peer: NetPeerId, hello: Hello) -> SessionResponse {
        let reply = self.next_reply;
        self.next_reply += 1;
        let payload = encode(&SessionRequest::Hello(hello)).expect("encode");
        self.app.world_mut().write_message(NetEvent::Request {
            peer,
            reply,
            payload,
        });
        self.app.update();
        drain(&mut self.app)
            .into_iter()
            .find_map(|c| match c {
                NetCommand::Respond {
                    reply: r,
                    response: Response::Payload(bytes),
                } if r == reply => Some(decode::<SessionResponse>(&bytes).expect("decode")),
                _ => None,
            })
            .expect("the host answers every hello")
    }

    fn act(&mut self, action: Action) -> Result<Applied, IntentError> {
        self.author.act(&mut self.app, action)
    }

    fn is_member(&self, peer: &str) -> bool {
        self.app
            .world()
            .resource::<Members>()
            .0
            .contains(&PeerId::new(peer))
    }

    fn waiting_knocks(&self) -> usize {
        self.app
            .world()
            .resource::<Knocks>()
            .0
            .iter()
            .filter(|k| k.decision.is_none())
            .count()
    }
}

fn welcomed(response: &SessionResponse) -> bool {
    matches!(response, SessionResponse::Welcome(_))
}

#[test]
fn a_rotated_invite_refuses_the_old_link_and_admits_with_the_new_one() {
    let mut host = Host::new();
    let old_link = host.link_hello(host.secret(0));
    let old_code = host.code.clone();
    host.act(Action::Local(LocalAction::RotateInvite))
        .expect("rotate");
    host.register_code();
    assert_ne!(host.code, old_code, "the short code did not change");
    let invite = host.app.world().resource::<SessionInvite>().clone();
    assert!(
        invite
            .url
            .as_deref()
            .is_some_and(|u| u.contains(&host.secret(1))),
        "the invite does not carry the new secret: {invite:?}"
    );
    let refused = host.hello(fresh_peer(), old_link);
    assert!(
        matches!(&refused, SessionResponse::Refused { reason } if reason.contains("not valid")),
        "{refused:?}"
    );
    let mut stale_code = host.code_hello();
    stale_code.code = Some(old_code);
    let refused = host.hello(fresh_peer(), stale_code);
    assert!(
        matches!(refused, SessionResponse::Refused { .. }),
        "{refused:?}"
    );
    let new_link = host.link_hello(host.secret(1));
    assert!(welcomed(&host.hello(net_id(MEMBER), new_link)));
}

#[test]
fn each_member_gets_its_own_rejoin_key_not_the_link_secret() {
    let mut host = Host::new();
    let SessionResponse::Welcome(welcome) =
        host.hello(net_id(MEMBER), host.link_hello(host.secret(0)))
    else {
        panic!("not welcomed");
    };
    let rejoin: InviteUrl = welcome
        .rejoin
        .as_deref()
        .expect("a rejoin link")
        .parse()
        .expect("a link");
    let own = member_secret(&host.key(), &SessionId("A".into()), &PeerId::new(MEMBER));
    assert_eq!(rejoin.key.as_deref(), Some(own.as_str()));
    assert_ne!(rejoin.key, Some(host.secret(0)));
    // The key is bound to its member: another peer cannot use it.
    let stolen = host.hello(fresh_peer(), host.link_hello(own.clone()));
    assert!(
        matches!(stolen, SessionResponse::Refused { .. }),
        "{stolen:?}"
    );
    // Its member can, even after the invite was rotated.
    host.act(Action::Local(LocalAction::RotateInvite))
        .expect("rotate");
    assert!(welcomed(&host.hello(net_id(MEMBER), host.link_hello(own))));
}

#[test]
fn a_hello_admits_only_with_a_proof_made_for_its_own_sender() {
    let mut host = Host::new();
    let secret = host.secret(0);
    // The secret itself, as a build before proofs sent it, is no proof.
    let bare = host.hello_as_sent(net_id(MEMBER), host.link_hello(secret.clone()));
    assert!(matches!(bare, SessionResponse::Refused { .. }), "{bare:?}");
    // A proof one guest made, replayed by another peer (say, a device that registered the
    // party's code to collect hellos), admits nobody.
    let replayed = Hello {
        key: Some(hello_proof(&secret, &PeerId::new(MEMBER))),
        ..host.link_hello(String::new())
    };
    let stolen = host.hello_as_sent(fresh_peer(), replayed.clone());
    assert!(
        matches!(stolen, SessionResponse::Refused { .. }),
        "{stolen:?}"
    );
    // Its own sender it admits.
    assert!(welcomed(&host.hello_as_sent(net_id(MEMBER), replayed)));
}

#[test]
fn a_guest_let_in_by_knock_gets_its_own_key_not_the_permanent_link() {
    let mut host = Host::new();
    let guest = fresh_peer();
    let first = host.hello(guest, host.code_hello());
    assert_eq!(first, SessionResponse::Knocked);
    host.act(Action::Session(SessionAction::ApproveKnock {
        peer: PeerId::new(guest.to_string()),
    }))
    .expect("approve");
    let SessionResponse::Welcome(welcome) = host.hello(guest, host.code_hello()) else {
        panic!("not let in");
    };
    let link = welcome.rejoin.expect("a rejoin link");
    assert!(
        !link.contains(&host.secret(0)),
        "a knocker was handed the permanent link: {link}"
    );
}

#[test]
fn a_removed_member_is_told_and_gets_no_more_updates() {
    let mut host = Host::new();
    assert!(welcomed(
        &host.hello(net_id(MEMBER), host.link_hello(host.secret(0)))
    ));
    host.app.update();
    assert!(host.is_member(MEMBER));
    host.act(Action::Session(SessionAction::RemoveMember {
        peer: PeerId::new(MEMBER),
        ban: false,
    }))
    .expect("remove");
    host.app.update();
    let sent = drain(&mut host.app);
    let told = sent.iter().any(|c| match c {
        NetCommand::Send {
            peer,
            request: whatnext_network::Request::Payload(bytes),
            ..
        } if *peer == net_id(MEMBER) => matches!(
            decode::<SessionRequest>(bytes),
            Ok(SessionRequest::Removed { .. })
        ),
        _ => false,
    });
    assert!(told, "the removed member was not told: {sent:?}");
    assert!(!host.is_member(MEMBER));
    host.act(Action::Session(SessionAction::AddTrack {
        track_id: TrackId(1),
        title: "After".into(),
        artist: String::new(),
        duration_ms: 1,
        media: None,
    }))
    .expect("add");
    host.app.update();
    let to_removed = drain(&mut host.app)
        .into_iter()
        .filter(|c| {
            matches!(c, NetCommand::Send { peer, .. } | NetCommand::Publish { peer, .. }
                if *peer == net_id(MEMBER))
        })
        .count();
    assert_eq!(to_removed, 0, "a removed member still gets updates");
    // Its own rejoin key no longer works; the current link does (it was not banned).
    let own = member_secret(&host.key(), &SessionId("A".into()), &PeerId::new(MEMBER));
    let back = host.hello(net_id(MEMBER), host.link_hello(own));
    assert!(matches!(back, SessionResponse::Refused { .. }), "{back:?}");
    assert!(welcomed(
        &host.hello(net_id(MEMBER), host.link_hello(host.secret(0)))
    ));
}

#[test]
fn a_banned_peer_is_denied_even_with_the_link() {
    let mut host = Host::new();
    assert!(welcomed(
        &host.hello(net_id(MEMBER), host.link_hello(host.secret(0)))
    ));
    host.act(Action::Session(SessionAction::RemoveMember {
        peer: PeerId::new(MEMBER),
        ban: true,
    }))
    .expect("ban");
    let again = host.hello(net_id(MEMBER), host.link_hello(host.secret(0)));
    assert!(matches!(again, SessionResponse::Denied { .. }), "{again:?}");
    let knock = host.hello(net_id(MEMBER), host.code_hello());
    assert!(matches!(knock, SessionResponse::Denied { .. }), "{knock:?}");
}

#[test]
fn ending_the_session_revokes_every_member() {
    let mut host = Host::new();
    assert!(welcomed(
        &host.hello(net_id(MEMBER), host.link_hello(host.secret(0)))
    ));
    host.app.update();
    assert!(host.is_member(MEMBER));
    host.act(Action::Local(LocalAction::LeaveSession))
        .expect("end");
    host.app.update();
    // Each member is told the session ended (no host is left to send it updates).
    let to_member: Vec<SessionRequest> = drain(&mut host.app)
        .into_iter()
        .filter_map(|c| match c {
            NetCommand::Send {
                peer,
                request: whatnext_network::Request::Payload(bytes),
                ..
            } if peer == net_id(MEMBER) => decode(&bytes).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(
        to_member,
        vec![SessionRequest::Ended {
            session: SessionId("A".into())
        }]
    );
    host.act(Action::Local(LocalAction::CreateSession {
        session_id: SessionId("B".into()),
        name: "Next".into(),
    }))
    .expect("create another");
    host.app.update();
    assert!(!host.is_member(MEMBER), "a former guest is still a member");
    let resync = encode(&SessionRequest::Resync { epoch: 0, after: 0 }).expect("encode");
    host.app.world_mut().write_message(NetEvent::Request {
        peer: net_id(MEMBER),
        reply: 999,
        payload: resync,
    });
    host.app.update();
    let answer = drain(&mut host.app).into_iter().find_map(|c| match c {
        NetCommand::Respond {
            reply: 999,
            response: Response::Payload(bytes),
        } => decode::<SessionResponse>(&bytes).ok(),
        _ => None,
    });
    assert!(
        matches!(answer, Some(SessionResponse::Refused { .. })),
        "a former guest got {answer:?}"
    );
}

#[test]
fn knocks_are_capped() {
    let mut host = Host::new();
    for _ in 0..MAX_WAITING_KNOCKS {
        // Each from a new peer id: what a stranger with throwaway ids would do.
        assert_eq!(
            host.hello(fresh_peer(), host.code_hello()),
            SessionResponse::Knocked
        );
    }
    let over = host.hello(fresh_peer(), host.code_hello());
    assert!(
        matches!(&over, SessionResponse::Refused { reason } if reason.contains("waiting")),
        "{over:?}"
    );
    assert_eq!(host.waiting_knocks(), MAX_WAITING_KNOCKS);
}

#[test]
fn a_knock_whose_knocker_stopped_asking_expires() {
    let mut host = Host::new();
    assert_eq!(
        host.hello(fresh_peer(), host.code_hello()),
        SessionResponse::Knocked
    );
    assert_eq!(host.waiting_knocks(), 1);
    host.app.insert_resource(TimeUpdateStrategy::ManualDuration(
        KNOCK_STALE + Duration::from_secs(1),
    ));
    host.app.update();
    host.app.update();
    host.app
        .insert_resource(TimeUpdateStrategy::ManualDuration(FRAME));
    assert_eq!(host.waiting_knocks(), 0);
}

#[test]
fn hellos_beyond_the_burst_are_refused() {
    let mut host = Host::new();
    let stranger = fresh_peer();
    let bad = host.link_hello("wrong".into());
    let mut refused_for_rate = 0;
    for _ in 0..(HELLO_BURST as usize + 5) {
        if let SessionResponse::Refused { reason } = host.hello(stranger, bad.clone())
            && reason.contains("too many")
        {
            refused_for_rate += 1;
        }
    }
    assert!(refused_for_rate >= 4, "{refused_for_rate} refused for rate");
}

#[test]
fn a_hello_with_an_oversized_name_is_refused() {
    let mut host = Host::new();
    let mut hello = host.link_hello(host.secret(0));
    hello.display_name = "x".repeat(5_000_000);
    let answer = host.hello(net_id(MEMBER), hello);
    assert!(
        matches!(&answer, SessionResponse::Refused { reason } if reason.contains("200")),
        "{}",
        format!("{answer:?}").chars().take(200).collect::<String>()
    );
    assert!(!host.is_member(MEMBER));
}

/// A member app in session "A" hosted by `HOST`, as a welcome leaves it.
fn member_in_session() -> App {
    let mut member = replicating_app(MEMBER);
    member.world_mut().spawn((
        Session {
            id: SessionId("A".into()),
            name: "Admission".into(),
        },
        Host(PeerId::new(HOST)),
        CoHosts::default(),
        PlaybackOwner(PeerId::new(HOST)),
        PlaybackClock::stopped(),
    ));
    member.world_mut().resource_mut::<RejoinInvite>().0 = Some("whtnxt://rejoin".into());
    member.update();
    member
        .world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .clear();
    member
}

fn removed_notice(member: &mut App, from: NetPeerId) {
    notice(
        member,
        from,
        SessionRequest::Removed {
            session: SessionId("A".into()),
        },
    );
}

fn notice(member: &mut App, from: NetPeerId, request: SessionRequest) {
    let payload = encode(&request).expect("encode");
    member.world_mut().write_message(NetEvent::Request {
        peer: from,
        reply: 5,
        payload,
    });
    member.update();
    member.update();
}

fn in_session(member: &mut App) -> bool {
    member
        .world_mut()
        .query::<&Session>()
        .iter(member.world())
        .next()
        .is_some()
}

#[test]
fn a_member_its_host_removed_leaves_saying_removed() {
    let mut member = member_in_session();
    removed_notice(&mut member, net_id(HOST));
    assert!(!in_session(&mut member), "still in the session");
    let left: Vec<SessionEvent> = member
        .world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .drain()
        .filter(|e| matches!(e, SessionEvent::SessionLeft { .. }))
        .collect();
    assert_eq!(
        left,
        vec![SessionEvent::SessionLeft {
            session_id: SessionId("A".into()),
            reason: LeaveReason::Removed,
        }]
    );
    assert_eq!(member.world().resource::<RejoinInvite>().0, None);
}

#[test]
fn only_the_host_can_remove_a_member() {
    let mut member = member_in_session();
    removed_notice(&mut member, fresh_peer());
    assert!(in_session(&mut member), "a stranger put this member out");
}

#[test]
fn a_member_whose_host_ended_the_session_leaves_saying_ended() {
    let mut member = member_in_session();
    notice(
        &mut member,
        net_id(HOST),
        SessionRequest::Ended {
            session: SessionId("A".into()),
        },
    );
    assert!(!in_session(&mut member), "still in the session");
    let reasons: Vec<LeaveReason> = member
        .world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .drain()
        .filter_map(|e| match e {
            SessionEvent::SessionLeft { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![LeaveReason::Ended]);
}
