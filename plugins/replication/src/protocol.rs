//! The session protocol: what a host and its members say to each other. The network carries
//! these as opaque payloads ([`whatnext_network::Request::Payload`]); this module encodes
//! them, and [`decode_net_events`] turns the network's events into typed messages once a
//! frame, so every other system reads [`PeerRequest`] and [`PeerAnswer`].
//!
//! New variants go last: postcard numbers them.

use bevy::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, Request, Response, net_peer, peer_of};

/// A member's (or a would-be member's) request, or the host's update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRequest {
    /// A guest's first words to a host.
    Hello(Hello),
    /// Host → member: the next batch of replicated changes.
    Update(Update),
    /// Member → host: an intent to authorize and apply.
    Intent(Intent),
    /// Member → host: send the updates after this sequence number of this epoch (or a
    /// snapshot).
    Resync {
        /// The host run the member knows.
        epoch: u64,
        /// The last update it applied.
        after: u64,
    },
    /// Host → member: you were removed from the session; nothing more will come.
    Removed {
        /// The session it was removed from.
        session: SessionId,
    },
    /// Host → member: the host ended the session; nothing more will come.
    Ended {
        /// The session that ended.
        session: SessionId,
    },
    /// Host → co-host: who may come in, with the session's key, so that the co-host can
    /// check links and keep bans if the host role moves to it. Sent over the link to the
    /// co-host only (never replicated); again whenever it changes.
    Access {
        /// The session.
        session: SessionId,
        /// Its access, key included.
        access: SessionAccess,
    },
    /// Former host → its members: it stepped down to a newer host of the session; say hello
    /// to that one. Sent until each member acknowledges it.
    SteppedDown {
        /// The session.
        session: SessionId,
        /// Who hosts it now.
        host: PeerId,
        /// Its term: a member follows only a newer host than its own.
        term: u64,
    },
}

/// The answer to a [`SessionRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionResponse {
    /// The hello was accepted: here is the session.
    Welcome(Welcome),
    /// The host must approve this join; it has been told.
    Knocked,
    /// No, with the reason as a sentence.
    Refused {
        /// Why.
        reason: String,
    },
    /// An update was received.
    Ack,
    /// The authority's answer to an intent.
    IntentResult(Result<Applied, IntentError>),
    /// The answer to `Resync`: the missing updates.
    Updates(Vec<Update>),
    /// The answer to `Resync` when the missing updates are gone: the whole state.
    Snapshot(Snapshot),
    /// A join refused for good: this peer was banned from the session.
    Denied {
        /// Why, as a sentence.
        reason: String,
    },
    /// This device is in the session asked for but no longer hosts it: say hello to `host`
    /// (a link made before the host role moved).
    Moved {
        /// Who hosts the session now.
        host: PeerId,
    },
}

/// A guest's first words to a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The guest's protocol hash (registered components and messages): a host with a
    /// different one refuses, saying the versions differ.
    pub protocol: u64,
    /// From an invite link: the session...
    pub session: Option<SessionId>,
    /// ...and its secret, which admits at once.
    pub key: Option<String>,
    /// From a short code: knocks, and waits for approval.
    pub code: Option<String>,
    /// The name the guest chose.
    pub display_name: String,
    /// Joining as a party screen (read-only).
    pub display: bool,
}

/// The host's welcome: the session, as of the update its snapshot was taken at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The host's protocol hash; a member with a different one leaves, saying so.
    pub protocol: u64,
    /// The session joined.
    pub session: SessionId,
    /// Its name.
    pub name: String,
    /// Its host.
    pub host: PeerId,
    /// The host's term: a device that already follows a host of this session takes a
    /// welcome from another one only with a higher term (or, between two hosts of the same
    /// term, from the one whose peer id sorts first).
    pub term: u64,
    /// The session's replicated state; the member applies updates after its `seq`.
    pub snapshot: Snapshot,
    /// An invite link (with its secret) that lets this member back in after a drop.
    pub rejoin: Option<String>,
    /// For a hello that proved a secret: `welcome_proof` of that secret, so the joiner knows
    /// the welcome comes from a holder of the party's key.
    pub proof: Option<String>,
}

/// One replicated component's serialized value, named by its registration id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentBytes {
    /// The component's registration id.
    pub id: u16,
    /// Its value, postcard-encoded (one byte string on the wire, not a number per byte).
    #[serde(with = "whatnext_network::transport::as_bytes")]
    pub bytes: Vec<u8>,
}

/// One tick's changes on the authority, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Chosen at random when the authority starts: sequence numbers restart with it.
    pub epoch: u64,
    /// One more than the update before.
    pub seq: u64,
    /// In the order the authority found them.
    pub changes: Vec<Change>,
}

/// One change to one replicated entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Insert or replace a component (spawning the entity if it is new).
    Insert {
        /// The entity.
        net_id: u64,
        /// The component.
        component: ComponentBytes,
    },
    /// Remove a component.
    Remove {
        /// The entity.
        net_id: u64,
        /// The component's registration id.
        component: u16,
    },
    /// Despawn the entity.
    Despawn {
        /// The entity.
        net_id: u64,
    },
}

/// Every replicated entity with its components, as of update `seq`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The host run.
    pub epoch: u64,
    /// The last update included.
    pub seq: u64,
    /// Entities by net id.
    pub entities: Vec<(u64, Vec<ComponentBytes>)>,
}

/// A session message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Ours did not encode (a bug, or a message over the frame limit).
    #[error("cannot encode a session message: {0}")]
    Encode(postcard::Error),
    /// A peer's did not decode.
    #[error("a session message did not decode: {0}")]
    Decode(postcard::Error),
}

/// What travels as a payload: a request or its answer, nothing else (so a `Hello` cannot be
/// sent bare by mistake).
pub trait SessionMessage: Serialize + DeserializeOwned {}
impl SessionMessage for SessionRequest {}
impl SessionMessage for SessionResponse {}

/// Encodes a session message for the network.
pub fn encode<T: SessionMessage>(message: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_allocvec(message).map_err(WireError::Encode)
}

/// Decodes a session message from the network.
pub fn decode<T: SessionMessage>(bytes: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(WireError::Decode)
}

/// A peer asked us something (decoded from [`NetEvent::Request`]); answer with [`respond`].
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct PeerRequest {
    /// Who asked.
    pub peer: PeerId,
    /// Goes back in the answer.
    pub reply: u64,
    /// What.
    pub request: SessionRequest,
}

/// What came of one of our requests (decoded from [`NetEvent::Response`] and
/// [`NetEvent::SendFailed`]).
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The request's token.
    pub token: u64,
    /// The peer asked.
    pub peer: PeerId,
    /// Its answer.
    pub answer: Answer,
}

/// The answer to one of our requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A session answer.
    Session(SessionResponse),
    /// The peer's clock, in ms since the Unix epoch (the answer to `Request::Time`).
    Time {
        /// The reading.
        now_ms: u64,
    },
    /// No usable answer: the request was lost, refused by the transport, or its answer did
    /// not decode. The sentence says which.
    Failed(String),
}

/// The command that sends a session request (`None` when `peer` is not a peer id or the
/// request does not encode; both are logged).
pub fn send_command(token: u64, peer: &PeerId, request: &SessionRequest) -> Option<NetCommand> {
    let Some(to) = net_peer(peer) else {
        tracing::warn!(%peer, "not a peer id; a request was not sent");
        return None;
    };
    match encode(request) {
        Ok(payload) => Some(NetCommand::Send {
            token,
            peer: to,
            request: Request::Payload(payload),
        }),
        Err(error) => {
            tracing::error!(%error, "a request was not sent");
            None
        }
    }
}

/// The command that answers a [`PeerRequest`].
pub fn respond_command(reply: u64, response: &SessionResponse) -> NetCommand {
    let response = match encode(response) {
        Ok(payload) => Response::Payload(payload),
        Err(error) => {
            tracing::error!(%error, "an answer could not be encoded");
            Response::Refused {
                reason: "the answer could not be encoded".into(),
            }
        }
    };
    NetCommand::Respond { reply, response }
}

/// Sends a session request; its answer comes back as a [`PeerAnswer`] with `token`.
pub fn send(
    net: &mut MessageWriter<NetCommand>,
    token: u64,
    peer: &PeerId,
    request: &SessionRequest,
) {
    if let Some(command) = send_command(token, peer, request) {
        net.write(command);
    }
}

/// Sends a session request that confirms nothing by being sent (an update; a member's
/// intent, which its answer confirms): it leaves before the frame's write to disk
/// ([`NetCommand::Publish`]).
pub fn publish(
    net: &mut MessageWriter<NetCommand>,
    token: u64,
    peer: &PeerId,
    request: &SessionRequest,
) {
    if let Some(NetCommand::Send {
        token,
        peer,
        request,
    }) = send_command(token, peer, request)
    {
        net.write(NetCommand::Publish {
            token,
            peer,
            request,
        });
    }
}

/// Answers a [`PeerRequest`].
pub fn respond(net: &mut MessageWriter<NetCommand>, reply: u64, response: &SessionResponse) {
    net.write(respond_command(reply, response));
}

/// Decodes the network's requests and answers once, into [`PeerRequest`] and [`PeerAnswer`].
/// A request that does not decode is refused with the reason and counted against its peer.
pub fn decode_net_events(
    mut events: MessageReader<NetEvent>,
    mut requests: MessageWriter<PeerRequest>,
    mut answers: MessageWriter<PeerAnswer>,
    mut net: MessageWriter<NetCommand>,
) {
    for event in events.read() {
        match event {
            NetEvent::Request {
                peer,
                reply,
                payload,
            } => match decode::<SessionRequest>(payload) {
                Ok(request) => {
                    requests.write(PeerRequest {
                        peer: peer_of(peer),
                        reply: *reply,
                        request,
                    });
                }
                Err(error) => {
                    tracing::warn!(%peer, %error, "refused a malformed session request");
                    net.write(NetCommand::Respond {
                        reply: *reply,
                        response: Response::Refused {
                            reason: format!("malformed message: {error}"),
                        },
                    });
                    net.write(NetCommand::Strike {
                        peer: *peer,
                        what: "a session message that did not decode",
                    });
                }
            },
            NetEvent::Response {
                token,
                peer,
                response,
            } => {
                answers.write(PeerAnswer {
                    token: *token,
                    peer: peer_of(peer),
                    answer: answer_of(response),
                });
            }
            NetEvent::SendFailed { token, peer, error } => {
                answers.write(PeerAnswer {
                    token: *token,
                    peer: peer_of(peer),
                    answer: Answer::Failed(error.clone()),
                });
            }
            _ => {}
        }
    }
}

/// What a transport response means to the session.
pub fn answer_of(response: &Response) -> Answer {
    match response {
        Response::Payload(bytes) => match decode::<SessionResponse>(bytes) {
            Ok(response) => Answer::Session(response),
            Err(error) => Answer::Failed(error.to_string()),
        },
        Response::Time { now_ms } => Answer::Time { now_ms: *now_ms },
        Response::Refused { reason } => Answer::Failed(format!("refused: {reason}")),
        Response::Pong(_) => Answer::Failed("a pong where a session answer was due".into()),
    }
}
