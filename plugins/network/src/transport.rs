//! The wire of `/whatnext/session/2`: request-response over a stream, each message a 4-byte
//! big-endian length and a postcard body.
//!
//! The network crate is a transport: it carries a session's messages as opaque bytes
//! ([`Request::Payload`], [`Response::Payload`]) and answers only what is its own job, a
//! round-trip [`Request::Ping`] and the clock reading [`Request::Time`] (answered on the
//! network thread so the answer is not delayed by a frame). The session protocol that rides
//! in the payloads belongs to `whatnext-replication`.
//!
//! Frames over [`MAX_MESSAGE_BYTES`] are refused before their body is read, bodies are read
//! as they arrive (never allocated at the claimed length up front), and bodies that do not
//! decode are errors, never panics.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol id. Version 2 carries the session's messages as opaque payloads.
pub const SESSION_PROTOCOL: StreamProtocol = StreamProtocol::new("/whatnext/session/2");

/// The largest message accepted either way. A join snapshot of 10,000 tracks fits.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// One request on the wire. (New variants go last: postcard numbers them.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Measures a round trip; answered with [`Response::Pong`] by the network thread.
    Ping(u64),
    /// What time is it on your clock? Answered with [`Response::Time`] by the network thread.
    Time,
    /// A session message, for the app to decode.
    Payload(#[serde(with = "as_bytes")] Vec<u8>),
    /// Never on the wire: what the codec hands over for a frame that does not decode, so the
    /// network thread can refuse it with the reason and count it against the peer.
    #[serde(skip)]
    Malformed(String),
}

/// One response on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The answer to [`Request::Ping`], with its number.
    Pong(u64),
    /// The answer to [`Request::Time`]: the answering peer's wall clock, in ms since the
    /// Unix epoch.
    Time {
        /// The clock reading.
        now_ms: u64,
    },
    /// A session message, for the app to decode.
    Payload(#[serde(with = "as_bytes")] Vec<u8>),
    /// The transport refused the request (it did not decode, say), with the reason.
    Refused {
        /// Why, as a sentence.
        reason: String,
    },
}

/// Serde for a `Vec<u8>` field as one byte string rather than a sequence of numbers. In
/// postcard both are a length and the raw bytes, so the wire does not change, but this is
/// one copy instead of a call per byte (a 1 MB snapshot costs milliseconds, not a second, in
/// a debug build). Use it as `#[serde(with = "whatnext_network::transport::as_bytes")]`.
pub mod as_bytes {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Reads a byte string (or, from formats without one, a sequence of bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The claimed length is a peer's word: grow as bytes really arrive.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                out.push(byte);
            }
            Ok(out)
        }
    }
}

/// Length-prefixed postcard for [`Request`] and [`Response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

/// Reads one frame; errors name what was wrong. The body is read in pieces as it arrives,
/// so a peer that claims 8 MiB and sends nothing costs nothing.
pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(io: &mut R) -> io::Result<T> {
    read_frame_within(io, MAX_MESSAGE_BYTES).await
}

/// [`read_frame`] with a tighter cap than [`MAX_MESSAGE_BYTES`], for protocols whose
/// messages are small.
pub async fn read_frame_within<T: DeserializeOwned, R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte message is over the {limit}-byte limit"),
        ));
    }
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = io.take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the message ended after {read} of its {len} bytes"),
        ));
    }
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
            format!(
                "a {}-byte message is over the {MAX_MESSAGE_BYTES}-byte limit",
                body.len()
            ),
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

#[async_trait::async_trait]
impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        // libp2p drops a request that fails to read without telling anyone which peer sent
        // it; handed over as `Malformed`, it is answered and counted.
        match read_frame(io).await {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Request::Malformed(e.to_string()))
            }
            other => other,
        }
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()> {
        write_frame(io, &request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()> {
        write_frame(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn payload() -> Request {
        Request::Payload(b"a session message".to_vec())
    }

    #[test]
    fn a_payload_is_encoded_as_a_plain_byte_sequence_would_be() {
        // The wire is the same as a `Vec<u8>` without `as_bytes`: a length and the bytes.
        #[derive(Serialize)]
        enum Plain {
            _Ping(u64),
            _Time,
            Payload(Vec<u8>),
        }
        let bytes = vec![7u8; 300];
        let ours = postcard::to_allocvec(&Request::Payload(bytes.clone())).expect("encode");
        let plain = postcard::to_allocvec(&Plain::Payload(bytes)).expect("encode");
        assert_eq!(ours, plain);
    }

    #[test]
    fn a_frame_round_trips() {
        let mut buf = Vec::new();
        block_on(write_frame(&mut buf, &payload())).expect("write");
        let back: Request = block_on(read_frame(&mut buf.as_slice())).expect("read");
        assert_eq!(back, payload());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_reading_it() {
        let mut buf = ((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&[0; 16]);
        let error = block_on(read_frame::<Request, _>(&mut buf.as_slice())).expect_err("refused");
        assert!(error.to_string().contains("over the"), "{error}");
    }

    #[test]
    fn a_frame_that_claims_more_than_it_sends_is_an_error() {
        let mut buf = (1_000_000u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&[0; 16]);
        let error = block_on(read_frame::<Request, _>(&mut buf.as_slice())).expect_err("short");
        assert!(error.to_string().contains("16 of its 1000000"), "{error}");
    }

    #[test]
    fn random_bytes_and_truncated_frames_are_errors_not_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut good = Vec::new();
        block_on(write_frame(&mut good, &payload())).expect("write");
        for cut in 0..good.len() {
            assert!(block_on(read_frame::<Request, _>(&mut &good[..cut])).is_err());
        }
        for _ in 0..2_000 {
            let len = rng.gen_range(0..64usize);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if bytes.len() >= 4 && rng.gen_bool(0.5) {
                let body = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_be_bytes());
            }
            let _ = block_on(read_frame::<Request, _>(&mut bytes.as_slice()));
        }
    }
}
