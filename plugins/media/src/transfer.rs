//! One transfer from one source, on its own thread: open a stream, ask for the outboard (if
//! no verified one is kept) and the missing leaves, check each leaf as it arrives and write
//! it to the part file, and move the whole file into place. The app hears progress and the
//! end through a channel; it decides what happens next (see [`crate::fetching`]).

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use futures::AsyncReadExt;
use whatnext_core::prelude::*;
use whatnext_network::{NetPeerId, OpenStreamError, Stream, StreamOpener};

use crate::store::{Partial, PutError, Store};
use crate::tree::{self, Verifier};
use crate::wire::{self, MediaAnswer, MediaAsk, within};

/// What a transfer thread tells the app.
pub(crate) enum News {
    /// Leaves here so far, of all of them.
    Progress { hash: ContentHash, done: u64 },
    /// The transfer is over; the part file (if one was begun) comes back for the next one.
    Ended {
        hash: ContentHash,
        from: PeerId,
        partial: Option<Box<Partial>>,
        outcome: Outcome,
    },
}

/// How a transfer ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every leaf verified; the whole copy is at this path.
    Here(PathBuf),
    /// The stream ended before the file did (a relay's circuit ran out, a peer left);
    /// `progressed` says whether any leaf arrived this time.
    Cut { progressed: bool, why: String },
    /// The source serves as many streams as it will.
    Busy,
    /// The source does not hold the file, refused, or speaks no media protocol.
    NotFromThem(String),
    /// The source sent bytes that did not verify.
    Lied(String),
    /// This device could not write the store.
    Disk(String),
}

/// Everything a transfer thread needs.
pub(crate) struct Transfer {
    pub opener: StreamOpener,
    pub peer: NetPeerId,
    pub from: PeerId,
    pub media: Media,
    pub store: Store,
    pub partial: Option<Partial>,
    pub news: Sender<News>,
    pub wake: Option<AppWaker>,
}

impl Transfer {
    /// Runs the transfer on a thread of its own.
    pub(crate) fn start(self) -> io::Result<()> {
        std::thread::Builder::new()
            .name("media-fetch".into())
            .spawn(move || self.run())
            .map(|_| ())
    }

    fn run(mut self) {
        let mut partial = self.partial.take().or_else(|| self.resume());
        // Where it starts from, before any byte moves (a resumed file is partly here).
        self.tell(News::Progress {
            hash: self.media.hash,
            done: partial.as_ref().map_or(0, Partial::done),
        });
        let outcome = futures::executor::block_on(self.fetch(&mut partial));
        let outcome = match (outcome, partial) {
            (Ok(()), Some(whole)) if whole.complete() => match self.store.finish(whole) {
                Ok(path) => (None, Outcome::Here(path)),
                Err(error) => (None, Outcome::Disk(error.to_string())),
            },
            (Ok(()), partial) => (
                partial,
                Outcome::Cut {
                    progressed: true,
                    why: "more leaves to ask for".into(),
                },
            ),
            (Err(outcome), partial) => (partial, outcome),
        };
        self.tell(News::Ended {
            hash: self.media.hash,
            from: self.from.clone(),
            partial: outcome.0.map(Box::new),
            outcome: outcome.1,
        });
    }

    fn tell(&self, news: News) {
        if self.news.send(news).is_ok()
            && let Some(wake) = &self.wake
        {
            wake.wake();
        }
    }

    /// An interrupted transfer's part file, if its outboard was kept.
    fn resume(&self) -> Option<Partial> {
        let verifier = self.store.saved_outboard(&self.media)?;
        self.store
            .begin(&self.media, verifier)
            .map_err(|error| tracing::warn!(%error, "cannot resume a transfer; starting it again"))
            .ok()
    }

    /// Fetches what `partial` lacks (beginning it if need be): the outboard first when none
    /// is kept, then the missing leaves over [`LANES`] streams at once.
    async fn fetch(&self, partial: &mut Option<Partial>) -> Result<(), Outcome> {
        if partial.is_none() {
            *partial = Some(self.begin().await?);
        }
        let Some(partial) = partial.as_mut() else {
            return Err(Outcome::Disk("no part file".into()));
        };
        let leaves = tree::leaves(self.media.size);
        let runs = wire::missing_runs(leaves, |i| partial.has(i));
        let partial = RefCell::new(partial);
        let last_told = RefCell::new(Instant::now());
        let lanes = wire::split_into_lanes(&runs, LANES);
        let lanes = lanes
            .into_iter()
            .map(|runs| self.lane(runs, &partial, &last_told));
        let ended = futures::future::join_all(lanes).await;
        // The worst news decides: a lie, a full disk, then whether anything arrived at all.
        let got: u64 = ended.iter().map(|(got, _)| got).sum();
        let mut outcomes: Vec<Outcome> = ended.into_iter().filter_map(|(_, e)| e.err()).collect();
        outcomes.sort_by_key(|o| match o {
            Outcome::Lied(_) => 0,
            Outcome::Disk(_) => 1,
            Outcome::NotFromThem(_) => 2,
            Outcome::Busy => 3,
            _ => 4,
        });
        match outcomes.into_iter().next() {
            None => Ok(()),
            Some(worst @ (Outcome::Lied(_) | Outcome::Disk(_))) => Err(worst),
            Some(_) if got > 0 => Err(Outcome::Cut {
                progressed: true,
                why: "a stream ended early".into(),
            }),
            Some(other) => Err(other),
        }
    }

    /// Opens a stream, asks, and reads the answer frame: the stream when bytes follow.
    async fn ask(&self, ask: &MediaAsk) -> Result<Stream, Outcome> {
        let cut = |error: io::Error| Outcome::Cut {
            progressed: false,
            why: error.to_string(),
        };
        let opened = within(wire::ANSWER_WAIT, async {
            self.opener
                .clone()
                .open_stream(self.peer, wire::PROTOCOL)
                .await
                .map_err(|error| match error {
                    OpenStreamError::UnsupportedProtocol(_) => {
                        io::Error::new(io::ErrorKind::Unsupported, error.to_string())
                    }
                    other => io::Error::other(other.to_string()),
                })
        })
        .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) if error.kind() == io::ErrorKind::Unsupported => {
                return Err(Outcome::NotFromThem(error.to_string()));
            }
            Err(error) => return Err(cut(error)),
        };
        within(wire::ANSWER_WAIT, wire::write(&mut stream, ask))
            .await
            .map_err(cut)?;
        match within(wire::ANSWER_WAIT, wire::read(&mut stream)).await {
            Ok(MediaAnswer::Sending) => Ok(stream),
            Ok(MediaAnswer::Busy) => Err(Outcome::Busy),
            Ok(MediaAnswer::NotHere) => Err(Outcome::NotFromThem("does not hold the file".into())),
            Ok(MediaAnswer::Refused(why)) => Err(Outcome::NotFromThem(why)),
            Err(error) if error.kind() == io::ErrorKind::InvalidData => Err(Outcome::Lied(
                format!("an answer that did not decode: {error}"),
            )),
            Err(error) => Err(cut(error)),
        }
    }

    /// Asks for the outboard (32 bytes a leaf, none for a one-leaf file), checks it against
    /// the hash before any leaf is taken, and begins the part file.
    async fn begin(&self) -> Result<Partial, Outcome> {
        let (hash, size) = (self.media.hash, self.media.size);
        let ask = MediaAsk {
            hash,
            outboard: true,
            runs: Vec::new(),
        };
        let mut stream = self.ask(&ask).await?;
        let leaves = tree::leaves(size) as usize;
        let mut bytes = vec![0u8; if leaves > 1 { 32 * leaves } else { 0 }];
        within(wire::ANSWER_WAIT, stream.read_exact(&mut bytes))
            .await
            .map_err(|error| Outcome::Cut {
                progressed: false,
                why: error.to_string(),
            })?;
        let verifier = tree::cvs_from_bytes(&bytes)
            .ok_or(tree::VerifyError::OutboardMismatch)
            .and_then(|cvs| Verifier::new(hash, size, cvs))
            .map_err(|error| Outcome::Lied(error.to_string()))?;
        self.store
            .begin(&self.media, verifier)
            .map_err(|error| Outcome::Disk(error.to_string()))
    }

    /// One stream's share of the leaves: each checked and written as it arrives. Returns how
    /// many arrived, and how the stream ended.
    async fn lane(
        &self,
        runs: Vec<(u64, u64)>,
        partial: &RefCell<&mut Partial>,
        last_told: &RefCell<Instant>,
    ) -> (u64, Result<(), Outcome>) {
        let ask = MediaAsk {
            hash: self.media.hash,
            outboard: false,
            runs: runs.clone(),
        };
        let mut stream = match self.ask(&ask).await {
            Ok(stream) => stream,
            Err(outcome) => return (0, Err(outcome)),
        };
        let size = self.media.size;
        let mut block = vec![0u8; (READ_LEAVES * tree::LEAF) as usize];
        let mut got = 0u64;
        for (first, end) in runs {
            // A few leaves per read (one timer each), then each leaf checked on its own.
            for from in (first..end).step_by(READ_LEAVES as usize) {
                let to = (from + READ_LEAVES).min(end);
                let start = tree::leaf_range(size, from).start;
                let bytes = &mut block[..(tree::leaf_range(size, to - 1).end - start) as usize];
                if let Err(error) = within(wire::ANSWER_WAIT, stream.read_exact(bytes)).await {
                    let why = error.to_string();
                    return (
                        got,
                        Err(Outcome::Cut {
                            progressed: got > 0,
                            why,
                        }),
                    );
                }
                // Borrowed between reads only: the lanes take turns on one thread.
                let mut partial = partial.borrow_mut();
                let mut last_told = last_told.borrow_mut();
                for leaf in from..to {
                    let range = tree::leaf_range(size, leaf);
                    let data = &bytes[(range.start - start) as usize..(range.end - start) as usize];
                    match partial.put(leaf, data) {
                        Ok(()) => got += 1,
                        Err(PutError::Refused(error)) => {
                            return (got, Err(Outcome::Lied(error.to_string())));
                        }
                        Err(PutError::Disk(error)) => {
                            return (got, Err(Outcome::Disk(error.to_string())));
                        }
                    }
                }
                // Often enough for a progress bar; each news costs the app a frame.
                if last_told.elapsed() >= PROGRESS_EVERY {
                    *last_told = Instant::now();
                    self.tell(News::Progress {
                        hash: self.media.hash,
                        done: partial.done(),
                    });
                }
            }
        }
        (got, Ok(()))
    }
}

/// Streams a transfer reads at once. Each stream's window starts at 256 KiB and yamux grows
/// it only when the round trip is long next to the transfer, which on a fast link it is not;
/// several streams keep several windows of bytes in flight.
pub const LANES: usize = 8;

/// Leaves read from a stream at once (1 MiB).
const READ_LEAVES: u64 = 16;
/// Progress is told at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
