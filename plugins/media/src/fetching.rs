//! Fetching the files the party is about to play. The playback owner, the host and the
//! co-hosts (who may be handed playback), and anyone listening along fetch the current track
//! and the next two; everyone else fetches nothing. Sources are tried in order, online ones
//! only: direct links before relayed ones, and within each the adder, the host, the co-hosts
//! and the other members. A source that sends a leaf that does not verify is a liar:
//! struck, never asked again, and the next source takes over from the leaves already here.

use std::collections::{BTreeSet, HashMap, HashSet};

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, NetEvent, Request, RequestTokens, Response, net_peer};

use crate::store::{Partial, PutError, Store};
use crate::tree::{self, Verifier};
use crate::wire::{MAX_RANGE_LEAVES, MediaAsk, MediaReply, encode};

/// Most ranges (of 1 MiB) in flight per transfer: enough to keep a direct link busy.
pub const IN_FLIGHT: usize = 16;
/// Ranges in flight when a transfer starts, and after the link is cut: a relay cuts a
/// circuit after so many bytes (64 MiB by default), and the responses in flight then are
/// lost, so the window starts small and grows by one with each range that arrives (halving
/// when the link drops mid-transfer).
pub const FIRST_WINDOW: usize = 4;
/// A file nobody online holds is looked for again after this long.
pub const RETRY_AFTER_MS: u64 = 1_000;
/// How many tracks from the current one are fetched (it and the next two).
pub const AHEAD: usize = 3;

/// The content store, when this device has one (it needs a data dir).
#[derive(Resource, Clone, Debug)]
pub struct ContentStore(pub Store);

/// Transfers under way, and what is known about sources.
#[derive(Resource, Default)]
pub(crate) struct Fetches {
    active: HashMap<ContentHash, Fetch>,
    /// Our requests in flight: token → (file, from whom, what was asked).
    asked: HashMap<u64, (ContentHash, PeerId, Asked)>,
    /// Peers that sent bytes that did not verify: never asked again this run.
    liars: HashSet<PeerId>,
    /// Files nobody had: not looked for again before this time.
    retry_at: HashMap<ContentHash, u64>,
}

struct Fetch {
    media: Media,
    adder: PeerId,
    source: Option<PeerId>,
    tried: HashSet<PeerId>,
    partial: Option<Partial>,
    /// First leaves of the ranges in flight.
    in_flight: BTreeSet<u64>,
    /// How many ranges may be in flight now.
    window: usize,
    outboard_asked: bool,
}

#[derive(Clone, Copy, Debug)]
enum Asked {
    Outboard,
    Range { first: u64, count: u32 },
}

/// The media of the current track and the next ones (or the first ones, with none current),
/// in play order, with who added each.
pub(crate) fn coming_up(
    clock: &PlaybackClock,
    index: &QueueIndex,
    tracks: &Query<&Track>,
) -> Vec<(Media, PeerId)> {
    index
        .in_order_from(clock.track)
        .take(AHEAD)
        .filter_map(|(_, e)| tracks.get(e).ok())
        .filter_map(|t| t.media.map(|m| (m, t.added_by.clone())))
        .collect()
}

/// In `Update`: starts fetches of the files this device should have, drives the ones under
/// way with this frame's answers, and publishes where each stands in [`MediaStates`].
pub(crate) fn fetch(
    mut fetches: ResMut<Fetches>,
    store: Option<Res<ContentStore>>,
    mut files: ResMut<LocalFiles>,
    mut states: ResMut<MediaStates>,
    mut events: MessageReader<NetEvent>,
    mut net: MessageWriter<NetCommand>,
    mut tokens: ResMut<RequestTokens>,
    sessions: Query<(&Host, &CoHosts, &PlaybackOwner, &PlaybackClock)>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    people: Query<(&Participant, Option<&Presence>)>,
    local: Res<LocalPeer>,
    listening: Res<Listening>,
    wall: Res<WallClock>,
) {
    let fetches = &mut *fetches;
    for event in events.read() {
        let (token, reply) = match event {
            NetEvent::Response {
                token,
                response: Response::Media(body),
                ..
            } => (
                token,
                postcard::from_bytes::<MediaReply>(body)
                    .unwrap_or_else(|e| MediaReply::Refused(format!("malformed answer: {e}"))),
            ),
            NetEvent::Response { token, .. } => (
                token,
                MediaReply::Refused("an answer that is not media".into()),
            ),
            NetEvent::SendFailed { token, error, .. } => {
                (token, MediaReply::Refused(format!("no answer: {error}")))
            }
            _ => continue,
        };
        if let Some((hash, from, asked)) = fetches.asked.remove(token) {
            on_reply(
                fetches,
                store.as_deref(),
                &mut net,
                hash,
                from,
                asked,
                reply,
            );
        }
    }
    let Some(store) = store else { return };
    let Some((host, cohosts, owner, clock)) = sessions.iter().next() else {
        fetches.active.clear();
        states.0.clear();
        return;
    };
    let me = &local.peer;
    // Who may have to play it: the owner, whoever may be handed playback, and a listener.
    let fetcher = host.0 == *me || owner.0 == *me || cohosts.0.contains(me) || listening.0;
    let wanted = coming_up(clock, &index, &tracks);
    if fetcher {
        for (media, adder) in &wanted {
            let blocked = fetches
                .retry_at
                .get(&media.hash)
                .is_some_and(|at| wall.now_ms < *at);
            if files.path_of(&media.hash).is_none()
                && !fetches.active.contains_key(&media.hash)
                && !blocked
            {
                fetches.active.insert(
                    media.hash,
                    Fetch {
                        media: *media,
                        adder: adder.clone(),
                        source: None,
                        tried: HashSet::new(),
                        partial: None,
                        in_flight: BTreeSet::new(),
                        window: FIRST_WINDOW,
                        outboard_asked: false,
                    },
                );
            }
        }
    }
    // Everyone online but this device: whether the link goes through a relay, and the role
    // (host, then co-hosts, then everyone else).
    let online: Vec<(bool, u8, PeerId)> = people
        .iter()
        .filter_map(|(p, presence)| {
            let presence = presence.filter(|pr| pr.online && p.peer != *me)?;
            let rank = if p.peer == host.0 {
                1
            } else if cohosts.0.contains(&p.peer) {
                2
            } else {
                3
            };
            let relayed = presence.connection == Connection::Relayed;
            Some((relayed, rank, p.peer.clone()))
        })
        .collect();
    let mut finished = Vec::new();
    let mut gave_up = Vec::new();
    for (hash, fetch) in fetches.active.iter_mut() {
        if fetch.partial.as_ref().is_some_and(Partial::complete) {
            finished.push(*hash);
            continue;
        }
        if fetch.source.is_none() {
            // Direct links first; within each, the adder (who surely has it), then by role.
            let next = online
                .iter()
                .filter(|(_, _, p)| !fetch.tried.contains(p) && !fetches.liars.contains(p))
                .min_by_key(|(relayed, rank, p)| (*relayed, *p != fetch.adder, *rank))
                .map(|(_, _, p)| p.clone());
            match next {
                Some(peer) => fetch.source = Some(peer),
                None => {
                    gave_up.push(*hash);
                    continue;
                }
            }
        }
        let Some(source) = fetch.source.clone() else {
            continue;
        };
        let Some(net_source) = net_peer(&source) else {
            fetch.tried.insert(source);
            fetch.source = None;
            continue;
        };
        let mut ask = |asked: Asked, message: MediaAsk| {
            let token = tokens.fresh();
            fetches.asked.insert(token, (*hash, source.clone(), asked));
            net.write(NetCommand::Send {
                token,
                peer: net_source,
                request: Request::Media(encode(&message)),
            });
        };
        match &fetch.partial {
            // Waiting for the outboard asked for: nothing to do (and no disk to read) now.
            None if fetch.outboard_asked => {}
            None => {
                // An interrupted transfer's outboard, read once per attempt, saves asking.
                let resumed = store
                    .0
                    .saved_outboard(&fetch.media)
                    .map(|saved| store.0.begin(&fetch.media, saved));
                match resumed {
                    Some(Ok(partial)) => fetch.partial = Some(partial),
                    other => {
                        if let Some(Err(error)) = other {
                            tracing::warn!(%error, "cannot resume a transfer; starting it again");
                        }
                        fetch.outboard_asked = true;
                        ask(Asked::Outboard, MediaAsk::Outboard { hash: *hash });
                    }
                }
            }
            Some(partial) => {
                let leaves = partial.verifier().leaves();
                let mut next = 0;
                while fetch.in_flight.len() < fetch.window && next < leaves {
                    // The next run of missing leaves not already asked for.
                    while next < leaves
                        && (partial.has(next) || fetch.in_flight.iter().any(|f| covers(*f, next)))
                    {
                        next += 1;
                    }
                    if next >= leaves {
                        break;
                    }
                    let mut count = 0u32;
                    while count < MAX_RANGE_LEAVES
                        && next + (count as u64) < leaves
                        && !partial.has(next + count as u64)
                    {
                        count += 1;
                    }
                    fetch.in_flight.insert(next);
                    ask(
                        Asked::Range { first: next, count },
                        MediaAsk::Range {
                            hash: *hash,
                            first: next,
                            count,
                        },
                    );
                    next += count as u64;
                }
            }
        }
    }
    for hash in gave_up {
        if let Some(fetch) = fetches.active.remove(&hash) {
            // Leaves already here stay on disk: the next attempt resumes from them.
            fetches.retry_at.insert(hash, wall.now_ms + RETRY_AFTER_MS);
            states.0.insert(
                hash,
                MediaState::Unavailable {
                    holders: vec![fetch.adder],
                },
            );
        }
    }
    for hash in finished {
        let Some(fetch) = fetches.active.remove(&hash) else {
            continue;
        };
        let Some(partial) = fetch.partial else {
            continue;
        };
        match store.0.finish(partial) {
            Ok(path) => {
                tracing::info!(%hash, path = %path.display(), "a track's file is here, verified");
                files.copies.insert(hash, path);
                states.0.remove(&hash);
                let keep: HashSet<ContentHash> = wanted.iter().map(|(m, _)| m.hash).collect();
                for gone in store.0.evict(&mut files.copies, &keep) {
                    tracing::info!(hash = %gone, "evicted from the content store");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot move a finished transfer into place"),
        }
    }
    for (hash, fetch) in &fetches.active {
        let progress = fetch.partial.as_ref().map_or(0.0, |p| {
            p.done() as f32 / p.verifier().leaves().max(1) as f32
        });
        let state = MediaState::Fetching {
            progress,
            from: fetch.source.clone().unwrap_or_else(|| fetch.adder.clone()),
        };
        if states.0.get(hash) != Some(&state) {
            states.0.insert(*hash, state);
        }
    }
}

/// Whether the range starting at `first` (at most [`MAX_RANGE_LEAVES`] long) covers `leaf`.
fn covers(first: u64, leaf: u64) -> bool {
    leaf >= first && leaf < first + MAX_RANGE_LEAVES as u64
}

fn on_reply(
    fetches: &mut Fetches,
    store: Option<&ContentStore>,
    net: &mut MessageWriter<NetCommand>,
    hash: ContentHash,
    from: PeerId,
    asked: Asked,
    reply: MediaReply,
) {
    let Some(fetch) = fetches.active.get_mut(&hash) else {
        return;
    };
    if let Asked::Range { first, .. } = asked {
        fetch.in_flight.remove(&first);
    }
    let mut lied = false;
    match (asked, reply) {
        (Asked::Outboard, MediaReply::Outboard(bytes)) => {
            fetch.outboard_asked = false;
            let verified = tree::cvs_from_bytes(&bytes)
                .ok_or(tree::VerifyError::OutboardMismatch)
                .and_then(|cvs| Verifier::new(hash, fetch.media.size, cvs));
            match (verified, store) {
                (Ok(verifier), Some(store)) => match store.0.begin(&fetch.media, verifier) {
                    Ok(partial) => fetch.partial = Some(partial),
                    Err(error) => tracing::warn!(%error, "cannot start a transfer"),
                },
                (Ok(_), None) => {}
                (Err(error), _) => {
                    tracing::warn!(peer = %from, %error, "refused a lying peer's outboard");
                    lied = true;
                }
            }
        }
        (Asked::Range { first, count }, MediaReply::Range(bytes)) => {
            fetch.window = (fetch.window + 1).min(IN_FLIGHT);
            let Some(partial) = fetch.partial.as_mut() else {
                return;
            };
            let mut offset = 0usize;
            for leaf in first..first + count as u64 {
                let range = tree::leaf_range(fetch.media.size, leaf);
                let len = (range.end - range.start) as usize;
                let Some(data) = bytes.get(offset..offset + len) else {
                    lied = true;
                    break;
                };
                offset += len;
                match partial.put(leaf, data) {
                    Ok(()) => {}
                    Err(PutError::Refused(error)) => {
                        tracing::warn!(peer = %from, %error, "refused a lying peer's bytes");
                        lied = true;
                        break;
                    }
                    Err(PutError::Disk(error)) => {
                        tracing::warn!(%error, "the content store refused a write");
                        break;
                    }
                }
            }
        }
        (_, other) => {
            tracing::debug!(peer = %from, answer = ?other, "this source cannot give the file");
            if let Asked::Outboard = asked {
                fetch.outboard_asked = false;
            }
            // Whatever the reason, fewer ranges at once from the next source.
            fetch.window = (fetch.window / 2).max(1);
            fetch.tried.insert(from.clone());
            if fetch.source.as_ref() == Some(&from) {
                fetch.source = None;
            }
        }
    }
    if lied {
        fetch.tried.insert(from.clone());
        if fetch.source.as_ref() == Some(&from) {
            fetch.source = None;
        }
        fetch.in_flight.clear();
        fetch.outboard_asked = false;
        if let Some(peer) = net_peer(&from) {
            net.write(NetCommand::Strike {
                peer,
                what: "media bytes that did not match their hash",
            });
        }
        fetches.liars.insert(from);
    }
}
