//! The short-code registry on the wire: `/whatnext/code/1` answered from the [`Registry`],
//! the registrant being the authenticated remote peer and its network taken from the
//! connection the request came on.

use std::time::{Duration, Instant};

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::ConnectionId;
use tracing::debug;
use whatnext_code_protocol::{CODE_PROTOCOL, CodeCodec, CodeRequest, CodeResponse};

use crate::prefix::Prefix;
use crate::registry::{Outcome, Registry};

/// How often expired codes are dropped.
pub const PURGE_EVERY: Duration = Duration::from_secs(30);

/// The server side of `/whatnext/code/1`: it answers, it never asks.
pub fn behaviour() -> request_response::Behaviour<CodeCodec> {
    request_response::Behaviour::with_codec(
        CodeCodec,
        [(CODE_PROTOCOL, ProtocolSupport::Inbound)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(10))
            .with_max_concurrent_streams(8),
    )
}

/// Answers one request event; returns what it did, for the metrics.
pub fn on_event(
    registry: &mut Registry,
    codes: &mut request_response::Behaviour<CodeCodec>,
    prefix_of: impl Fn(ConnectionId) -> Option<Prefix>,
    event: request_response::Event<CodeRequest, CodeResponse>,
) -> Option<Outcome> {
    let request_response::Event::Message {
        peer,
        connection_id,
        message: request_response::Message::Request {
            request, channel, ..
        },
    } = event
    else {
        return None;
    };
    let (response, outcome) =
        registry.handle(peer, prefix_of(connection_id), request, Instant::now());
    if codes.send_response(channel, response).is_err() {
        debug!(%peer, "a peer left before its code answer");
    }
    Some(outcome)
}
