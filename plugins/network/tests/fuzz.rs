//! The frame codec reads what any peer sends: random bytes, and valid frames mutated (bits
//! flipped, cut short, the length prefix or a length inside the body changed) are read or
//! refused, never a panic. `WHATNEXT_FUZZ_CASES` sets the count.

use futures::executor::block_on;
use futures::io::Cursor;
use proptest::prelude::*;
use whatnext_network::transport::{MAX_MESSAGE_BYTES, Request, Response, encode_frame, read_frame};

use crate::mutate::{fuzz_config, mutate, mutation, random_bytes};

fn read_both(bytes: &[u8]) {
    let _ = block_on(read_frame::<Request, _>(&mut Cursor::new(bytes)));
    let _ = block_on(read_frame::<Response, _>(&mut Cursor::new(bytes)));
    let _ = postcard::from_bytes::<Request>(bytes);
    let _ = postcard::from_bytes::<Response>(bytes);
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u64>().prop_map(Request::Ping),
        Just(Request::Time),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(Request::Payload),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u64>().prop_map(Response::Pong),
        any::<u64>().prop_map(|now_ms| Response::Time { now_ms }),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(Response::Payload),
        ".{0,40}".prop_map(|reason| Response::Refused { reason }),
    ]
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_random_bytes_are_read_or_refused_never_a_panic(bytes in random_bytes()) {
        read_both(&bytes);
        // The same bytes behind a length prefix that says exactly their length.
        let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        read_both(&framed);
    }

    #[test]
    fn fuzz_mutated_frames_are_read_or_refused_never_a_panic(
        request in request(),
        response in response(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let frame = encode_frame(&request).expect("encodes");
        prop_assert_eq!(block_on(read_frame::<Request, _>(&mut Cursor::new(&frame))).ok(), Some(request));
        read_both(&mutate(frame, &mutations));
        let frame = encode_frame(&response).expect("encodes");
        prop_assert_eq!(block_on(read_frame::<Response, _>(&mut Cursor::new(&frame))).ok(), Some(response));
        read_both(&mutate(frame, &mutations));
    }

    /// The length prefix is a peer's claim: any value, over the limit or over what follows,
    /// is an error, and the body is never allocated at the claimed size up front.
    #[test]
    fn fuzz_any_length_prefix_is_an_error_unless_it_is_true(
        claimed in any::<u32>(),
        request in request(),
    ) {
        let frame = encode_frame(&request).expect("encodes");
        let body = &frame[4..];
        let mut lying = claimed.to_be_bytes().to_vec();
        lying.extend_from_slice(body);
        let read = block_on(read_frame::<Request, _>(&mut Cursor::new(&lying)));
        if claimed as usize > MAX_MESSAGE_BYTES || claimed as usize > body.len() {
            prop_assert!(read.is_err());
        }
    }
}
