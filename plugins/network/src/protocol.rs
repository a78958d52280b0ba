//! The session protocol, `/whatnext/session/1`: request-response over a stream, each message
//! a 4-byte big-endian length and a postcard body. Frames over the limit are refused before
//! any allocation, and bodies that do not decode are errors, never panics.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use whatnext_core::ids::{PeerId, SessionId};
use whatnext_core::intent::{Applied, Intent, IntentError};

pub const SESSION_PROTOCOL: StreamProtocol = StreamProtocol::new("/whatnext/session/1");

/// The largest message accepted either way. A join snapshot of 10,000 tracks fits.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// A guest's first words to a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRequest {
    Hello(Hello),
    /// Host → member: the next batch of replicated changes.
    Update(Update),
    /// Member → host: an intent to authorize and apply.
    Intent(Intent),
    /// Member → host: send the updates after this sequence number of this epoch (or a
    /// snapshot).
    Resync {
        epoch: u64,
        after: u64,
    },
    /// Measures a round trip; answered by the network thread itself.
    Ping(u64),
    /// Member → host: what time is it on your clock? Answered by the network thread itself,
    /// so the answer is not delayed by a frame. (New variants go last: postcard numbers them.)
    Time,
    /// Never on the wire: what the codec hands over for a frame that does not decode, so the
    /// network thread can refuse it with the reason and count it against the peer.
    #[serde(skip)]
    Malformed(String),
}

/// A request type that can stand for a frame that did not decode.
pub trait MalformedRequest {
    fn malformed(reason: String) -> Self;
}

impl MalformedRequest for SessionRequest {
    fn malformed(reason: String) -> Self {
        SessionRequest::Malformed(reason)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// From an invite link: the session and its secret, which admits at once.
    pub session: Option<SessionId>,
    pub key: Option<String>,
    /// From a short code: knocks, and waits for approval.
    pub code: Option<String>,
    pub display_name: String,
    /// Joining as a party screen (read-only).
    pub display: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionResponse {
    Welcome(Welcome),
    /// The host must approve this join; it has been told.
    Knocked,
    Refused {
        reason: String,
    },
    /// The answer to `Ping`, with its number.
    Pong(u64),
    /// An update was received.
    Ack,
    /// The authority's answer to an intent.
    IntentResult(Result<Applied, IntentError>),
    /// The answer to `Resync`: the missing updates, or a whole snapshot if they are gone.
    Updates(Vec<Update>),
    Snapshot(Snapshot),
    /// The answer to `Time`: the host's wall clock, in ms since the Unix epoch.
    Time {
        now_ms: u64,
    },
}

/// One replicated component's serialized value, named by its registration id (the order in
/// which the replication registry was given it; every peer registers in the same order).
pub type ComponentBytes = (u16, Vec<u8>);

/// One tick's changes on the authority, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Chosen at random when the authority starts: sequence numbers restart with it.
    pub epoch: u64,
    pub seq: u64,
    pub changes: Vec<Change>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Insert or replace a component (spawning the entity if it is new).
    Insert {
        net_id: u64,
        component: ComponentBytes,
    },
    Remove {
        net_id: u64,
        component: u16,
    },
    Despawn {
        net_id: u64,
    },
}

/// Every replicated entity with its components, as of update `seq`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub epoch: u64,
    pub seq: u64,
    pub entities: Vec<(u64, Vec<ComponentBytes>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub session: SessionId,
    pub name: String,
    pub host: PeerId,
    /// The session's replicated state; the member applies updates after its `seq`.
    pub snapshot: Snapshot,
    /// An invite link (with its secret) that lets this member back in after a drop.
    pub rejoin: Option<String>,
}

/// Length-prefixed postcard, for any request and response types.
pub struct PostcardCodec<Req, Res>(PhantomData<(Req, Res)>);

impl<Req, Res> Default for PostcardCodec<Req, Res> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Res> Clone for PostcardCodec<Req, Res> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Reads one frame; errors name what was wrong.
pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(io: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
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

/// Encodes one frame: the length prefix and the body.
pub fn encode_frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message over the size limit",
        ));
    }
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one frame. Encoding happens before any await, so the value need not be `Sync`.
pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    io: &mut W,
    value: &T,
) -> io::Result<()> {
    let frame = encode_frame(value)?;
    io.write_all(&frame).await?;
    io.flush().await
}

async fn write_bytes<W: AsyncWrite + Unpin>(
    io: &mut W,
    frame: io::Result<Vec<u8>>,
) -> io::Result<()> {
    io.write_all(&frame?).await?;
    io.flush().await
}

#[async_trait::async_trait]
impl<Req, Res> libp2p::request_response::Codec for PostcardCodec<Req, Res>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Res: Serialize + DeserializeOwned + Send + 'static,
    Req: MalformedRequest,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Res;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Req> {
        // libp2p drops a request that fails to read without telling anyone which peer sent
        // it; handed over as `Malformed`, it is answered and counted.
        match read_frame(io).await {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Req::malformed(e.to_string())),
            other => other,
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Res> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Req,
    ) -> io::Result<()> {
        write_bytes(io, encode_frame(&req)).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Res,
    ) -> io::Result<()> {
        write_bytes(io, encode_frame(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn hello() -> SessionRequest {
        SessionRequest::Hello(Hello {
            session: Some(SessionId("S".into())),
            key: Some("k".into()),
            code: None,
            display_name: "Gus".into(),
            display: false,
        })
    }

    #[test]
    fn a_frame_round_trips() {
        let mut buf = Vec::new();
        block_on(write_frame(&mut buf, &hello())).expect("write");
        let back: SessionRequest = block_on(read_frame(&mut buf.as_slice())).expect("read");
        assert_eq!(back, hello());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_reading_it() {
        let mut buf = ((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&[0; 16]);
        let error =
            block_on(read_frame::<SessionRequest, _>(&mut buf.as_slice())).expect_err("refused");
        assert!(error.to_string().contains("over the"), "{error}");
    }

    #[test]
    fn random_bytes_and_truncated_frames_are_errors_not_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut good = Vec::new();
        block_on(write_frame(&mut good, &hello())).expect("write");
        for cut in 0..good.len() {
            assert!(block_on(read_frame::<SessionRequest, _>(&mut &good[..cut])).is_err());
        }
        for _ in 0..2_000 {
            let len = rng.gen_range(0..64usize);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if bytes.len() >= 4 && rng.gen_bool(0.5) {
                let body = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_be_bytes());
            }
            let _ = block_on(read_frame::<SessionRequest, _>(&mut bytes.as_slice()));
        }
    }
}
