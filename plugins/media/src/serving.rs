//! Serving other peers' asks on `/whatnext/media/2`: only the session's members, only files
//! of the session's queue, only from verified files this device holds.
//!
//! A Bevy system keeps [`Shares`] (who may ask, for what, where it is) up to date; the
//! streams are served on their own threads, so a transfer's bytes never wait for a frame.
//! Each asker's stream is its own flow on the link, so members asking at once share it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use futures::{AsyncWriteExt, StreamExt};
use whatnext_core::prelude::*;
use whatnext_network::{IncomingStreams, NetCommand, NetPeerId, Stream, StreamControl, net_peer};

use crate::tree;
use crate::wire::{self, MediaAnswer, MediaAsk, within};

/// Streams served at once, in all; more are turned away as busy.
pub const MAX_SERVING: usize = 64;
/// Streams served at once to one peer: three files at most, each over a few streams.
pub const MAX_SERVING_PER_PEER: usize = 4 * crate::transfer::LANES;
/// Bytes read from the file and written to the stream at a time.
const CHUNK: usize = 256 * 1024;

/// What this device shares: read by the serving threads, written by [`share`].
#[derive(Default)]
struct Shares {
    members: HashSet<NetPeerId>,
    queue: HashSet<ContentHash>,
    /// Files of the queue held here: path and size.
    held: HashMap<ContentHash, (PathBuf, u64)>,
}

/// State the serving threads share.
struct Shared {
    shares: RwLock<Shares>,
    /// Outboards computed so far, by file.
    outboards: Mutex<HashMap<ContentHash, Arc<Vec<u8>>>>,
    /// Streams being served, by peer.
    busy: Mutex<HashMap<NetPeerId, usize>>,
    /// Peers that sent what no whatnext sends, for the network's strike count.
    strikes: Sender<(NetPeerId, &'static str)>,
}

/// The serving side's handle in the app.
#[derive(Resource)]
pub(crate) struct Serving {
    shared: Arc<Shared>,
    strikes: Receiver<(NetPeerId, &'static str)>,
    accepting: bool,
    /// Files this device just added, by hash: size and when. Served at once, before the
    /// host's confirmation brings the track back here (the host asks for the file as soon as
    /// it has applied the addition, which is before that).
    pending: HashMap<ContentHash, (u64, u64)>,
}

impl Default for Serving {
    fn default() -> Self {
        let (strikes, rx) = crossbeam_channel::unbounded();
        Self {
            shared: Arc::new(Shared {
                shares: RwLock::new(Shares::default()),
                outboards: Mutex::new(HashMap::new()),
                busy: Mutex::new(HashMap::new()),
                strikes,
            }),
            strikes: rx,
            accepting: false,
            pending: HashMap::new(),
        }
    }
}

/// How long a file just added is served without its track in the queue here.
const PENDING_MS: u64 = 60_000;

impl Serving {
    /// A file this device just added: served at once, with the outboard computed while it
    /// was named, so the first ask does not wait for a second pass over the file.
    pub(crate) fn just_added(&mut self, media: Media, outboard: Vec<u8>, now_ms: u64) {
        self.pending.insert(media.hash, (media.size, now_ms));
        if let Ok(mut outboards) = self.shared.outboards.lock() {
            outboards.insert(media.hash, Arc::new(outboard));
        }
    }
}

/// In `Update`: starts accepting streams once the swarm is up, keeps [`Shares`] current, and
/// hands the serving threads' strikes to the network.
#[allow(clippy::too_many_arguments)]
pub(crate) fn share(
    mut serving: ResMut<Serving>,
    control: Res<StreamControl>,
    files: Res<LocalFiles>,
    tracks: Query<&Track>,
    participants: Query<&Participant>,
    changed: Query<(), Or<(Changed<Track>, Changed<Participant>)>>,
    mut removed_tracks: RemovedComponents<Track>,
    mut removed_people: RemovedComponents<Participant>,
    mut net: MessageWriter<NetCommand>,
    wall: Res<WallClock>,
) {
    if !serving.accepting
        && let Some(control) = control.get()
    {
        serving.accepting = true;
        match control.clone().accept(wire::PROTOCOL) {
            Ok(incoming) => {
                let shared = serving.shared.clone();
                let _ = std::thread::Builder::new()
                    .name("media-accept".into())
                    .spawn(move || accept(incoming, shared));
            }
            Err(error) => tracing::error!(%error, "cannot serve music to peers"),
        }
    }
    let removed = removed_tracks.read().count() + removed_people.read().count();
    if files.is_changed() || !changed.is_empty() || removed > 0 {
        let mut queue: HashSet<ContentHash> = tracks
            .iter()
            .filter_map(|t| t.media)
            .map(|m| m.hash)
            .collect();
        serving.pending.retain(|hash, (_, since)| {
            !queue.contains(hash) && wall.now_ms < since.saturating_add(PENDING_MS)
        });
        let sizes = tracks
            .iter()
            .filter_map(|t| t.media)
            .map(|m| (m.hash, m.size));
        let pending = serving
            .pending
            .iter()
            .map(|(hash, (size, _))| (*hash, *size));
        let held = sizes
            .chain(pending)
            .filter_map(|(hash, size)| Some((hash, (files.path_of(&hash)?.clone(), size))))
            .collect();
        queue.extend(serving.pending.keys());
        let members = participants
            .iter()
            .filter_map(|p| net_peer(&p.peer))
            .collect();
        if let Ok(mut shares) = serving.shared.shares.write() {
            *shares = Shares {
                members,
                queue,
                held,
            };
        }
    }
    for (peer, what) in serving.strikes.try_iter() {
        net.write(NetCommand::Strike { peer, what });
    }
}

/// The accepting thread: one serving thread per stream, within the caps.
fn accept(mut incoming: IncomingStreams, shared: Arc<Shared>) {
    futures::executor::block_on(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let slot = shared.take_slot(peer);
            let thread_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("media-serve".into())
                .spawn(move || {
                    let served =
                        futures::executor::block_on(serve(peer, stream, &thread_shared, slot));
                    if slot {
                        thread_shared.free_slot(peer);
                    }
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "a media stream ended early");
                    }
                });
            if spawned.is_err() && slot {
                shared.free_slot(peer);
            }
        }
    });
}

impl Shared {
    /// Counts a stream in; `false` when over a cap (it is then answered as busy).
    fn take_slot(&self, peer: NetPeerId) -> bool {
        let Ok(mut busy) = self.busy.lock() else {
            return false;
        };
        let total: usize = busy.values().sum();
        let mine = busy.entry(peer).or_default();
        if total >= MAX_SERVING || *mine >= MAX_SERVING_PER_PEER {
            return false;
        }
        *mine += 1;
        true
    }

    fn free_slot(&self, peer: NetPeerId) {
        if let Ok(mut busy) = self.busy.lock()
            && let Some(mine) = busy.get_mut(&peer)
        {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                busy.remove(&peer);
            }
        }
    }

    fn strike(&self, peer: NetPeerId, what: &'static str) {
        let _ = self.strikes.send((peer, what));
    }

    /// Where the asked file is, or the answer that refuses the ask.
    fn lookup(&self, peer: &NetPeerId, hash: &ContentHash) -> Result<(PathBuf, u64), MediaAnswer> {
        let shares = self.shares.read().map_err(|_| MediaAnswer::NotHere)?;
        if !shares.members.contains(peer) {
            return Err(MediaAnswer::Refused(
                "only the session's members get its music".into(),
            ));
        }
        if !shares.queue.contains(hash) {
            return Err(MediaAnswer::Refused(
                "that file is not in the session's queue".into(),
            ));
        }
        shares.held.get(hash).cloned().ok_or(MediaAnswer::NotHere)
    }

    /// The file's outboard, computed on first use and kept.
    fn outboard(&self, hash: ContentHash, path: &Path) -> io::Result<Arc<Vec<u8>>> {
        if let Some(ready) = self
            .outboards
            .lock()
            .ok()
            .and_then(|o| o.get(&hash).cloned())
        {
            return Ok(ready);
        }
        let outboard = Arc::new(tree::read_file_tree(path)?.2);
        if let Ok(mut outboards) = self.outboards.lock() {
            outboards.insert(hash, outboard.clone());
        }
        Ok(outboard)
    }
}

/// Serves one stream: reads the ask, answers, and sends the bytes.
async fn serve(peer: NetPeerId, mut stream: Stream, shared: &Shared, slot: bool) -> io::Result<()> {
    let ask: MediaAsk = match within(wire::ASK_WAIT, wire::read(&mut stream)).await {
        Ok(ask) => ask,
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            shared.strike(peer, "a media ask that did not decode");
            let refusal = MediaAnswer::Refused(format!("malformed media ask: {error}"));
            return answer(&mut stream, &refusal).await;
        }
        Err(error) => return Err(error),
    };
    if !slot {
        return answer(&mut stream, &MediaAnswer::Busy).await;
    }
    let (path, size) = match shared.lookup(&peer, &ask.hash) {
        Ok(found) => found,
        Err(refusal) => return answer(&mut stream, &refusal).await,
    };
    if let Some(why) = wire::ask_error(&ask, tree::leaves(size)) {
        shared.strike(peer, "a media ask that no whatnext sends");
        return answer(&mut stream, &MediaAnswer::Refused(why)).await;
    }
    let opened = File::open(&path).and_then(|file| {
        let outboard = ask
            .outboard
            .then(|| shared.outboard(ask.hash, &path))
            .transpose()?;
        Ok((file, outboard))
    });
    let (mut file, outboard) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read a file to share");
            return answer(&mut stream, &MediaAnswer::NotHere).await;
        }
    };
    within(
        wire::ANSWER_WAIT,
        wire::write(&mut stream, &MediaAnswer::Sending),
    )
    .await?;
    if let Some(outboard) = outboard {
        within(wire::ANSWER_WAIT, stream.write_all(&outboard)).await?;
    }
    // Straight from the file to the stream, a chunk at a time: nothing waits for a frame.
    let mut buffer = vec![0u8; CHUNK];
    for (first, end) in &ask.runs {
        let start = tree::leaf_range(size, *first).start;
        let stop = tree::leaf_range(size, end - 1).end;
        file.seek(SeekFrom::Start(start))?;
        let mut left = stop - start;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            file.read_exact(&mut buffer[..n])?;
            within(wire::ANSWER_WAIT, stream.write_all(&buffer[..n])).await?;
            left -= n as u64;
        }
    }
    within(wire::ANSWER_WAIT, stream.close()).await
}

async fn answer(stream: &mut Stream, answer: &MediaAnswer) -> io::Result<()> {
    within(wire::ANSWER_WAIT, wire::write(stream, answer)).await?;
    within(wire::ANSWER_WAIT, stream.close()).await
}
