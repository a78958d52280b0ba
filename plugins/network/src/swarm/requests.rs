//! The session transport's traffic: our requests and hellos in flight, inbound requests
//! waiting for Bevy's answer, and what the thread answers itself (ping, time, malformed).

use std::collections::HashMap;

use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;
use whatnext_core::intent::ErrorCode;

use super::Task;
use crate::NetEvent;
use crate::transport::{Request, Response};

/// Most inbound requests waiting for the app's answer at once. Beyond it, new ones are
/// refused at once ("busy"): the app is behind, and queueing more only costs memory.
pub const MAX_WAITING_REQUESTS: usize = 1024;

/// The request side of the task's state.
#[derive(Default)]
pub(super) struct Requests {
    /// Our hellos in flight, by request: the join token.
    joins: HashMap<OutboundRequestId, u64>,
    /// Bevy's own requests in flight: request → token.
    sends: HashMap<OutboundRequestId, u64>,
    /// Inbound requests waiting for Bevy's answer.
    replies: HashMap<u64, ResponseChannel<Response>>,
    next_reply: u64,
}

impl Task {
    pub(super) fn join_failed(&self, token: u64, code: ErrorCode, message: String) {
        self.out.emit(NetEvent::JoinFailed {
            token,
            code,
            message,
        });
    }

    pub(super) fn send_hello(
        &mut self,
        token: u64,
        host: PeerId,
        addresses: Vec<Multiaddr>,
        hello: Vec<u8>,
    ) {
        let id = self
            .swarm
            .behaviour_mut()
            .session
            .send_request_with_addresses(&host, Request::Payload(hello), addresses);
        self.requests.joins.insert(id, token);
    }

    pub(super) fn send(&mut self, token: u64, peer: PeerId, request: Request) {
        let id = self
            .swarm
            .behaviour_mut()
            .session
            .send_request(&peer, request);
        self.requests.sends.insert(id, token);
    }

    pub(super) fn respond(&mut self, reply: u64, response: Response) {
        if let Some(channel) = self.requests.replies.remove(&reply)
            && self
                .swarm
                .behaviour_mut()
                .session
                .send_response(channel, response)
                .is_err()
        {
            debug!("a peer left before its answer was sent");
        }
    }

    /// Back-pressure: too many inbound requests wait for the app (answers it never gave
    /// are forgotten once their peer stops waiting), so a new one is refused at once.
    fn app_is_behind(&mut self) -> bool {
        if self.requests.replies.len() < MAX_WAITING_REQUESTS {
            return false;
        }
        self.requests.replies.retain(|_, channel| channel.is_open());
        self.requests.replies.len() >= MAX_WAITING_REQUESTS
    }

    /// Keeps an inbound request's channel until the app answers; returns its reply number.
    fn wait_for_app(&mut self, channel: ResponseChannel<Response>) -> u64 {
        self.requests.next_reply += 1;
        let reply = self.requests.next_reply;
        self.requests.replies.insert(reply, channel);
        reply
    }

    fn answer_now(&mut self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .session
            .send_response(channel, response);
    }

    pub(super) fn on_session(&mut self, event: request_response::Event<Request, Response>) {
        use request_response::{Event as E, Message};
        match event {
            E::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => match request {
                Request::Ping(n) => self.answer_now(channel, Response::Pong(n)),
                Request::Time => {
                    let now_ms = whatnext_core::session::now_ms();
                    self.answer_now(channel, Response::Time { now_ms });
                }
                Request::Malformed(reason) => {
                    let refusal = Response::Refused {
                        reason: format!("malformed message: {reason}"),
                    };
                    self.answer_now(channel, refusal);
                    self.strike(peer, "a frame that did not decode");
                }
                Request::Payload(_) if self.app_is_behind() => {
                    let busy = Response::Refused {
                        reason: "busy: too many requests are waiting; try again shortly".into(),
                    };
                    self.answer_now(channel, busy);
                }
                Request::Payload(payload) => {
                    let reply = self.wait_for_app(channel);
                    self.out.emit(NetEvent::Request {
                        peer,
                        reply,
                        payload,
                    });
                }
            },
            E::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(token) = self.requests.joins.remove(&request_id) {
                    self.out.emit(NetEvent::JoinAnswer {
                        token,
                        host: peer,
                        response,
                    });
                } else if let Some(token) = self.requests.sends.remove(&request_id) {
                    self.out.emit(NetEvent::Response {
                        token,
                        peer,
                        response,
                    });
                }
            }
            E::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(token) = self.requests.joins.remove(&request_id) {
                    self.join_failed(
                        token,
                        ErrorCode::Unreachable,
                        format!("could not reach the host {peer}: {error}"),
                    );
                } else if let Some(token) = self.requests.sends.remove(&request_id) {
                    let error = error.to_string();
                    self.out.emit(NetEvent::SendFailed { token, peer, error });
                }
            }
            E::InboundFailure { peer, error, .. } => {
                // A stream cut short by a closing connection, or a timeout. (Frames that do
                // not decode arrive as `Request::Malformed`.)
                debug!(%peer, %error, "a session request went unanswered");
            }
            E::ResponseSent { .. } => {}
        }
    }
}
