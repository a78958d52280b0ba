//! The media transfer's wire, `/whatnext/media/2`: one plain stream per transfer. The asker
//! writes one [`MediaAsk`] frame; the holder writes one [`MediaAnswer`] frame and, when it
//! is [`MediaAnswer::Sending`], the raw bytes: the outboard if asked for, then the leaves of
//! each run in order. No framing is needed for those: both sides know the file's size, so
//! both know every length. The holder closes the stream when done.

use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use serde::{Deserialize, Serialize};
use whatnext_core::media::ContentHash;
use whatnext_network::StreamProtocol;
use whatnext_network::transport::{read_frame_within, write_frame};

/// The protocol id (version 1 was request-response ranges on the session protocol).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/whatnext/media/2");

/// The most runs of leaves one ask names; an asker with more gaps asks again.
pub const MAX_RUNS: usize = 64;

/// The largest ask or answer frame: 64 runs and a hash, or a sentence.
pub const MAX_FRAME: usize = 4096;

/// What an asker wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaAsk {
    /// Which file.
    pub hash: ContentHash,
    /// Send the outboard (leaf chaining values) first.
    pub outboard: bool,
    /// Runs of leaves, `first .. end`, at most [`MAX_RUNS`].
    pub runs: Vec<(u64, u64)>,
}

/// A holder's answer to an ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaAnswer {
    /// The bytes follow.
    Sending,
    /// This peer does not hold the file.
    NotHere,
    /// Refused, with the reason (not a member, not a file of the session, a bad run).
    Refused(String),
    /// Serving as many streams as it will; ask again shortly.
    Busy,
}

/// How long a holder waits for the ask after a stream opens.
pub const ASK_WAIT: Duration = Duration::from_secs(10);
/// How long either side waits for the other to take or give the next bytes: a stalled peer
/// costs a thread this long at most.
pub const ANSWER_WAIT: Duration = Duration::from_secs(20);

/// `io` within `wait`, else a `TimedOut` error.
pub async fn within<T>(
    wait: Duration,
    io: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    let io = std::pin::pin!(io);
    match futures::future::select(io, futures_timer::Delay::new(wait)).await {
        futures::future::Either::Left((done, _)) => done,
        futures::future::Either::Right(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("nothing for {} s", wait.as_secs()),
        )),
    }
}

/// Reads a frame of this protocol (ask or answer), capped at [`MAX_FRAME`].
pub async fn read<T: serde::de::DeserializeOwned, R: AsyncRead + Unpin>(
    io: &mut R,
) -> std::io::Result<T> {
    read_frame_within(io, MAX_FRAME).await
}

/// Writes a frame of this protocol.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(
    io: &mut W,
    message: &T,
) -> std::io::Result<()> {
    write_frame(io, message).await
}

/// Why an ask is not one this build would send, or `None` when it is well formed for a file
/// of `leaves` leaves.
pub fn ask_error(ask: &MediaAsk, leaves: u64) -> Option<String> {
    if ask.runs.len() > MAX_RUNS {
        return Some(format!("at most {MAX_RUNS} runs of leaves an ask"));
    }
    ask.runs
        .iter()
        .any(|(first, end)| first >= end || *end > leaves)
        .then(|| format!("runs of leaves within the file's {leaves}"))
}

/// The runs of leaves `has` says are missing, first to last.
pub fn missing_runs(leaves: u64, has: impl Fn(u64) -> bool) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut leaf = 0;
    while leaf < leaves {
        if has(leaf) {
            leaf += 1;
            continue;
        }
        let first = leaf;
        while leaf < leaves && !has(leaf) {
            leaf += 1;
        }
        runs.push((first, leaf));
    }
    runs
}

/// `runs` cut into at most `lanes` asks of about as many leaves each, in order, each of at
/// most [`MAX_RUNS`] runs (what does not fit is left for the next attempt).
pub fn split_into_lanes(runs: &[(u64, u64)], lanes: usize) -> Vec<Vec<(u64, u64)>> {
    let total: u64 = runs.iter().map(|(first, end)| end - first).sum();
    let per_lane = total.div_ceil(lanes.max(1) as u64).max(1);
    let mut out: Vec<Vec<(u64, u64)>> = Vec::new();
    let mut room = 0;
    for &(mut first, end) in runs {
        while first < end {
            if room == 0 {
                out.push(Vec::new());
                room = per_lane;
            }
            let take = (end - first).min(room);
            if let Some(lane) = out.last_mut()
                && lane.len() < MAX_RUNS
            {
                lane.push((first, first + take));
            }
            first += take;
            room -= take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_runs_are_the_gaps_in_order() {
        let have = [true, false, false, true, false];
        assert_eq!(missing_runs(5, |i| have[i as usize]), vec![(1, 3), (4, 5)]);
        assert_eq!(missing_runs(3, |_| true), Vec::<(u64, u64)>::new());
        assert_eq!(missing_runs(1000, |i| i % 2 == 0).len(), 500);
    }

    #[test]
    fn lanes_share_the_leaves_evenly_in_order_within_the_run_cap() {
        assert_eq!(
            split_into_lanes(&[(0, 10)], 4),
            vec![vec![(0, 3)], vec![(3, 6)], vec![(6, 9)], vec![(9, 10)]]
        );
        assert_eq!(
            split_into_lanes(&[(0, 2), (5, 9)], 2),
            vec![vec![(0, 2), (5, 6)], vec![(6, 9)]]
        );
        assert_eq!(
            split_into_lanes(&[(0, 2)], 8),
            vec![vec![(0, 1)], vec![(1, 2)]]
        );
        assert!(split_into_lanes(&[], 8).is_empty());
        let gaps: Vec<(u64, u64)> = (0..1000).map(|i| (2 * i, 2 * i + 1)).collect();
        let lanes = split_into_lanes(&gaps, 2);
        assert!(lanes.iter().all(|lane| lane.len() == MAX_RUNS), "{lanes:?}");
    }

    #[test]
    fn an_ask_outside_the_file_or_with_too_many_runs_is_named() {
        let ask = |runs| MediaAsk {
            hash: ContentHash([0; 32]),
            outboard: false,
            runs,
        };
        assert_eq!(ask_error(&ask(vec![(0, 4)]), 4), None);
        assert!(ask_error(&ask(vec![(0, 5)]), 4).is_some());
        assert!(ask_error(&ask(vec![(2, 2)]), 4).is_some());
        assert!(ask_error(&ask(vec![(0, 1); MAX_RUNS + 1]), 4).is_some());
    }
}
