//! Answering other peers' media requests: only the session's members, only files of the
//! session's queue, only from verified files this device holds. Outboards are computed once
//! per file on a thread and kept. Ranges wait in a queue and a few are answered a frame,
//! taking turns between the peers asking: so members share this device's link, and answers
//! leave one after another instead of all at once (a batch of answers interleaved on the
//! link arrives all at once, and the asker's next batch waits for the whole of it).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, NetPeerId, Response, peer_of};

use crate::tree;
use crate::wire::{MAX_RANGE_LEAVES, MediaAsk, MediaReply, encode};

/// Ranges (of 1 MiB) answered a frame at most. The app runs another frame at once while
/// some wait, so this spaces the answers out rather than slowing them.
pub const RANGES_PER_FRAME: usize = 2;

/// Outboards of files this device serves, answers waiting for one being computed, and
/// range requests waiting their turn.
#[derive(Resource)]
pub(crate) struct Outboards {
    ready: HashMap<ContentHash, Arc<Vec<u8>>>,
    ranges: VecDeque<(NetPeerId, u64, MediaAsk)>,
    /// Who was answered last, so the next turn goes to someone else.
    last_served: Option<NetPeerId>,
    waiting: HashMap<ContentHash, Vec<u64>>,
    tx: Sender<(ContentHash, Option<Vec<u8>>)>,
    rx: Receiver<(ContentHash, Option<Vec<u8>>)>,
}

impl Default for Outboards {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self {
            ready: HashMap::new(),
            ranges: VecDeque::new(),
            last_served: None,
            waiting: HashMap::new(),
            tx,
            rx,
        }
    }
}

/// In `Update`: answers this frame's media requests.
pub(crate) fn serve(
    mut events: MessageReader<NetEvent>,
    mut net: MessageWriter<NetCommand>,
    mut outboards: ResMut<Outboards>,
    files: Res<LocalFiles>,
    tracks: Query<&Track>,
    participants: Query<&Participant>,
    waker: Option<Res<AppWaker>>,
) {
    // Outboards finished on their thread answer whoever waited for them.
    while let Ok((hash, outboard)) = outboards.rx.try_recv() {
        let reply = match &outboard {
            Some(bytes) => MediaReply::Outboard(bytes.clone()),
            None => MediaReply::NotHere,
        };
        for waiting in outboards.waiting.remove(&hash).unwrap_or_default() {
            respond(&mut net, waiting, &reply);
        }
        if let Some(bytes) = outboard {
            outboards.ready.insert(hash, Arc::new(bytes));
        }
    }
    for event in events.read() {
        let NetEvent::MediaRequest { peer, reply, body } = event else {
            continue;
        };
        let answer = match postcard::from_bytes::<MediaAsk>(body) {
            Ok(ask @ MediaAsk::Range { .. }) => {
                outboards.ranges.push_back((*peer, *reply, ask));
                continue;
            }
            Ok(ask) => answer(peer, &ask, &files, &tracks, &participants),
            Err(error) => {
                net.write(NetCommand::Strike {
                    peer: *peer,
                    what: "a media request that did not decode",
                });
                Answer::Now(MediaReply::Refused(format!(
                    "malformed media request: {error}"
                )))
            }
        };
        match answer {
            Answer::Now(media_reply) => respond(&mut net, *reply, &media_reply),
            Answer::Outboard(hash, path) => {
                if let Some(ready) = outboards.ready.get(&hash) {
                    respond(&mut net, *reply, &MediaReply::Outboard(ready.to_vec()));
                    continue;
                }
                let first = !outboards.waiting.contains_key(&hash);
                outboards.waiting.entry(hash).or_default().push(*reply);
                if first {
                    let tx = outboards.tx.clone();
                    let waker = waker.as_deref().cloned();
                    let _ = std::thread::Builder::new()
                        .name("media-outboard".into())
                        .spawn(move || {
                            let _ = tx.send((hash, outboard_of_file(&path).ok()));
                            if let Some(waker) = waker {
                                waker.wake();
                            }
                        });
                }
            }
        }
    }
    for _ in 0..RANGES_PER_FRAME {
        // The oldest request from someone other than the last one answered, if any.
        let last = outboards.last_served;
        let turn = outboards
            .ranges
            .iter()
            .position(|(peer, ..)| Some(*peer) != last)
            .unwrap_or(0);
        let Some((peer, reply, ask)) = outboards.ranges.remove(turn) else {
            break;
        };
        outboards.last_served = Some(peer);
        if let Answer::Now(media_reply) = answer(&peer, &ask, &files, &tracks, &participants) {
            respond(&mut net, reply, &media_reply);
        }
    }
    if !outboards.ranges.is_empty()
        && let Some(waker) = &waker
    {
        waker.wake();
    }
}

enum Answer {
    Now(MediaReply),
    Outboard(ContentHash, PathBuf),
}

fn respond(net: &mut MessageWriter<NetCommand>, reply: u64, answer: &MediaReply) {
    net.write(NetCommand::Respond {
        reply,
        response: Response::Media(encode(answer)),
    });
}

fn answer(
    peer: &NetPeerId,
    ask: &MediaAsk,
    files: &LocalFiles,
    tracks: &Query<&Track>,
    participants: &Query<&Participant>,
) -> Answer {
    let asker = peer_of(peer);
    if !participants.iter().any(|p| p.peer == asker) {
        return Answer::Now(MediaReply::Refused(
            "only the session's members get its music".into(),
        ));
    }
    let hash = match ask {
        MediaAsk::Outboard { hash } | MediaAsk::Range { hash, .. } => *hash,
    };
    let Some(media) = tracks
        .iter()
        .filter_map(|t| t.media)
        .find(|m| m.hash == hash)
    else {
        return Answer::Now(MediaReply::Refused(
            "that file is not in the session's queue".into(),
        ));
    };
    let Some(path) = files.path_of(&hash) else {
        return Answer::Now(MediaReply::NotHere);
    };
    match ask {
        MediaAsk::Outboard { .. } => Answer::Outboard(hash, path.clone()),
        MediaAsk::Range { first, count, .. } => {
            let leaves = tree::leaves(media.size);
            if *count == 0
                || *count > MAX_RANGE_LEAVES
                || first.saturating_add(*count as u64) > leaves
            {
                return Answer::Now(MediaReply::Refused(format!(
                    "a range of 1 to {MAX_RANGE_LEAVES} leaves within the file's {leaves}"
                )));
            }
            let start = tree::leaf_range(media.size, *first).start;
            let end = tree::leaf_range(media.size, first + *count as u64 - 1).end;
            match read_range(path, start, end) {
                Ok(bytes) => Answer::Now(MediaReply::Range(bytes)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read a file to share");
                    Answer::Now(MediaReply::NotHere)
                }
            }
        }
    }
}

fn read_range(path: &Path, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    // Read straight into spare capacity: zeroing a megabyte first costs as much as the copy.
    let len = (end - start) as usize;
    let mut bytes = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut bytes)?;
    if bytes.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

/// The outboard of a file on disk, leaf by leaf.
fn outboard_of_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if tree::leaves(size) == 1 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(tree::leaves(size) as usize * 32);
    let mut buffer = vec![0u8; tree::LEAF as usize];
    for i in 0..tree::leaves(size) {
        let range = tree::leaf_range(size, i);
        let leaf = &mut buffer[..(range.end - range.start) as usize];
        file.read_exact(leaf)?;
        out.extend_from_slice(&tree::leaf_cv(i, leaf));
    }
    Ok(out)
}
