//! The wire of `/whatnext/code/1`, the relay's short-code registry.
//!
//! A host registers a short code on its relay; a joiner who knows the code looks it up and
//! gets the host's peer id and addresses. The registrant is always the authenticated remote
//! peer of the connection, so nobody can register a code for somebody else. There is no
//! request that lists codes: the relay answers a code only to someone who sends it.
//!
//! Each message is a 2-byte big-endian length and a postcard body of at most
//! [`MAX_MESSAGE_BYTES`]; anything longer or malformed is an error, never a panic.

use std::fmt;
use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

/// The protocol id.
pub const CODE_PROTOCOL: StreamProtocol = StreamProtocol::new("/whatnext/code/1");

/// The largest message accepted either way.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The longest code the relay accepts (the app's codes have 6 characters).
pub const MAX_CODE_LEN: usize = 16;

/// The most addresses a registration carries; more are dropped.
pub const MAX_ADDRS: usize = 8;

/// One request. (New variants go last: postcard numbers them.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeRequest {
    /// Registers `code` for the sender, or refreshes the sender's own registration of it.
    Register {
        /// The short code.
        code: String,
        /// Where the sender can be reached (multiaddr bytes), at most [`MAX_ADDRS`].
        addrs: Vec<Vec<u8>>,
    },
    /// Drops the sender's registration of `code` (a no-op if it is not the sender's).
    Unregister {
        /// The short code.
        code: String,
    },
    /// Who holds `code`?
    Lookup {
        /// The short code.
        code: String,
    },
}

/// One response. (New variants go last: postcard numbers them.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeResponse {
    /// The code is the sender's for `ttl_secs`; refresh before then.
    Registered {
        /// Seconds until the registration lapses.
        ttl_secs: u64,
    },
    /// The answer to every [`CodeRequest::Unregister`].
    Unregistered,
    /// The code's holder.
    Found {
        /// The holder's peer id (bytes).
        peer: Vec<u8>,
        /// The holder's addresses (multiaddr bytes).
        addrs: Vec<Vec<u8>>,
    },
    /// No live registration has that code.
    NotFound,
    /// The relay would not do it.
    Refused {
        /// Why.
        reason: Refusal,
    },
}

/// Why the relay refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Another peer holds the code.
    Taken,
    /// The sender (or its network) holds as many codes as it may.
    TooManyCodes,
    /// The relay holds as many codes as it may.
    Full,
    /// Too many requests from this peer or its network; try again later.
    RateLimited,
    /// The code is empty, too long or has characters codes do not have.
    BadCode,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Taken => "another peer holds that code",
            Refusal::TooManyCodes => {
                "this peer or its network already holds as many codes as the relay allows"
            }
            Refusal::Full => "the relay holds as many codes as it can",
            Refusal::RateLimited => {
                "too many code requests from this peer or its network; try again in a minute"
            }
            Refusal::BadCode => "that is not a short code",
        })
    }
}

/// A code as the registry keys it: upper case, checked; `None` if it cannot be a code.
pub fn normalize_code(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| code.to_ascii_uppercase())
}

/// Multiaddrs as they go on the wire, at most [`MAX_ADDRS`].
pub fn addrs_to_wire(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    addrs.iter().take(MAX_ADDRS).map(|a| a.to_vec()).collect()
}

/// Multiaddrs from the wire; ones that do not parse are dropped.
pub fn addrs_from_wire(addrs: &[Vec<u8>]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .take(MAX_ADDRS)
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .collect()
}

/// A peer id from the wire.
pub fn peer_from_wire(bytes: &[u8]) -> Option<PeerId> {
    PeerId::from_bytes(bytes).ok()
}

/// Reads one message; errors name what was wrong.
pub async fn read_message<T: serde::de::DeserializeOwned, R: AsyncRead + Unpin>(
    io: &mut R,
) -> io::Result<T> {
    let mut len = [0u8; 2];
    io.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte message is over the {MAX_MESSAGE_BYTES}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a malformed message: {e}"),
        )
    })
}

/// Writes one message.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    io: &mut W,
    value: &T,
) -> io::Result<()> {
    let body = postcard::to_allocvec(value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {}-byte message is over the limit", body.len()),
        ));
    }
    let mut frame = (body.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    io.write_all(&frame).await?;
    io.flush().await
}

/// The request-response codec for [`CodeRequest`] and [`CodeResponse`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CodeCodec;

#[async_trait::async_trait]
impl libp2p::request_response::Codec for CodeCodec {
    type Protocol = StreamProtocol;
    type Request = CodeRequest;
    type Response = CodeResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<CodeRequest> {
        read_message(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<CodeResponse> {
        read_message(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: CodeRequest,
    ) -> io::Result<()> {
        write_message(io, &request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: CodeResponse,
    ) -> io::Result<()> {
        write_message(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn a_message_round_trips() {
        let request = CodeRequest::Register {
            code: "ABC234".into(),
            addrs: addrs_to_wire(&["/ip4/127.0.0.1/tcp/1".parse().expect("addr")]),
        };
        let mut buf = Vec::new();
        block_on(write_message(&mut buf, &request)).expect("write");
        let back: CodeRequest = block_on(read_message(&mut buf.as_slice())).expect("read");
        assert_eq!(back, request);
    }

    #[test]
    fn an_oversized_or_truncated_message_is_an_error() {
        let mut big = ((MAX_MESSAGE_BYTES + 1) as u16).to_be_bytes().to_vec();
        big.extend_from_slice(&[0; 8]);
        let error =
            block_on(read_message::<CodeRequest, _>(&mut big.as_slice())).expect_err("refused");
        assert!(error.to_string().contains("over the"), "{error}");
        let short = [0u8, 10, 1, 2];
        assert!(block_on(read_message::<CodeRequest, _>(&mut short.as_slice())).is_err());
        let garbage = [0u8, 3, 9, 9, 9];
        assert!(block_on(read_message::<CodeRequest, _>(&mut garbage.as_slice())).is_err());
    }

    #[test]
    fn codes_are_upper_cased_and_checked() {
        assert_eq!(normalize_code("ab2cd3").as_deref(), Some("AB2CD3"));
        assert_eq!(normalize_code(""), None);
        assert_eq!(normalize_code("AB/CD"), None);
        assert_eq!(normalize_code(&"A".repeat(MAX_CODE_LEN + 1)), None);
    }
}
