//! The session protocol's decoders read what any peer sends: random bytes, and valid
//! messages mutated (bits flipped, cut short, bytes inserted or dropped, a length or tag
//! changed) decode or are refused, never a panic; so do the replicated components a host
//! sends inside them. `WHATNEXT_FUZZ_CASES` sets the count.

use proptest::prelude::*;
use whatnext_core::prelude::*;
use whatnext_replication::protocol::{
    Change, ComponentBytes, Hello, SessionRequest, SessionResponse, Snapshot, Update, Welcome,
    decode, encode,
};

use crate::mutate::{fuzz_config, mutate, mutation, random_bytes};

/// Every decoder a peer's bytes reach: the two session messages, and the replicated
/// components and intents carried inside them.
fn decode_everything(bytes: &[u8]) {
    let _ = decode::<SessionRequest>(bytes);
    let _ = decode::<SessionResponse>(bytes);
    let _ = postcard::from_bytes::<Track>(bytes);
    let _ = postcard::from_bytes::<PlaybackClock>(bytes);
    let _ = postcard::from_bytes::<Participant>(bytes);
    let _ = postcard::from_bytes::<Intent>(bytes);
}

fn text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn component() -> impl Strategy<Value = ComponentBytes> {
    (
        any::<u16>(),
        (
            any::<u64>(),
            text(),
            any::<u64>(),
            proptest::option::of(any::<[u8; 32]>()),
        ),
    )
        .prop_map(|(id, (track, title, duration_ms, hash))| ComponentBytes {
            id,
            bytes: postcard::to_allocvec(&Track {
                id: TrackId(track),
                title,
                artist: String::new(),
                duration_ms,
                media: hash.map(|h| Media {
                    hash: ContentHash(h),
                    size: 1,
                    format: AudioFormat::Flac,
                }),
                added_by: PeerId::new("12D3KooWGus"),
            })
            .expect("encodes"),
        })
}

fn update() -> impl Strategy<Value = Update> {
    let change = prop_oneof![
        (any::<u64>(), component())
            .prop_map(|(net_id, component)| Change::Insert { net_id, component }),
        (any::<u64>(), any::<u16>())
            .prop_map(|(net_id, component)| Change::Remove { net_id, component }),
        any::<u64>().prop_map(|net_id| Change::Despawn { net_id }),
    ];
    (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(change, 0..4),
    )
        .prop_map(|(epoch, seq, changes)| Update {
            epoch,
            seq,
            changes,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(
            (any::<u64>(), proptest::collection::vec(component(), 0..3)),
            0..3,
        ),
    )
        .prop_map(|(epoch, seq, entities)| Snapshot {
            epoch,
            seq,
            entities,
        })
}

fn request() -> impl Strategy<Value = SessionRequest> {
    prop_oneof![
        (
            any::<u64>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
            text(),
            any::<bool>()
        )
            .prop_map(|(protocol, session, key, code, display_name, display)| {
                SessionRequest::Hello(Hello {
                    protocol,
                    session: session.map(SessionId),
                    key,
                    code,
                    display_name,
                    display,
                })
            }),
        update().prop_map(SessionRequest::Update),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(counter, position_ms, track)| {
            SessionRequest::Intent(Intent {
                id: IntentId {
                    author: PeerId::new("12D3KooWGus"),
                    counter,
                },
                action: if track % 2 == 0 {
                    Action::Session(SessionAction::Seek { position_ms })
                } else {
                    Action::Session(SessionAction::RemoveTrack {
                        track_id: TrackId(track),
                    })
                },
            })
        }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(epoch, after)| SessionRequest::Resync { epoch, after }),
    ]
}

fn response() -> impl Strategy<Value = SessionResponse> {
    prop_oneof![
        (
            any::<u64>(),
            text(),
            snapshot(),
            proptest::option::of(text())
        )
            .prop_map(|(protocol, name, snapshot, rejoin)| {
                SessionResponse::Welcome(Welcome {
                    protocol,
                    session: SessionId("S".into()),
                    name,
                    host: PeerId::new("12D3KooWHana"),
                    term: protocol.rotate_left(7),
                    snapshot,
                    proof: rejoin.clone(),
                    rejoin,
                })
            }),
        Just(SessionResponse::Knocked),
        text().prop_map(|reason| SessionResponse::Refused { reason }),
        Just(SessionResponse::Ack),
        proptest::collection::vec(update(), 0..3).prop_map(SessionResponse::Updates),
        snapshot().prop_map(SessionResponse::Snapshot),
        text().prop_map(|host| SessionResponse::Moved {
            host: PeerId::new(host)
        }),
    ]
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_random_bytes_decode_or_are_refused_never_a_panic(bytes in random_bytes()) {
        decode_everything(&bytes);
    }

    #[test]
    fn fuzz_mutated_requests_decode_or_are_refused_never_a_panic(
        request in request(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = encode(&request).expect("encodes");
        prop_assert_eq!(decode::<SessionRequest>(&bytes).ok(), Some(request));
        decode_everything(&mutate(bytes, &mutations));
    }

    #[test]
    fn fuzz_mutated_responses_decode_or_are_refused_never_a_panic(
        response in response(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = encode(&response).expect("encodes");
        prop_assert_eq!(decode::<SessionResponse>(&bytes).ok(), Some(response));
        decode_everything(&mutate(bytes, &mutations));
    }
}
