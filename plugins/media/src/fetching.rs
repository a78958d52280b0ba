//! Fetching the files the party is about to play. The playback owner, the host and the
//! co-hosts (who may be handed playback), and anyone listening along fetch the current track
//! and the next two; everyone else fetches nothing. Sources are tried in order, online ones
//! only: direct links before relayed ones, and within each the adder, the host, the co-hosts
//! and the other members. A source that sends a leaf that does not verify is a liar:
//! struck, never asked again, and the next source takes over from the leaves already here.

use std::collections::{HashMap, HashSet};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use whatnext_core::prelude::*;
use whatnext_network::{NetCommand, StreamControl, net_peer};

use crate::store::{Partial, Store};
use crate::transfer::{News, Outcome, Transfer};

/// A file nobody online holds is looked for again after this long.
pub const RETRY_AFTER_MS: u64 = 1_000;
/// A busy source is asked again after this long.
pub const BUSY_WAIT_MS: u64 = 200;
/// A source whose stream breaks this many times in a row without a leaf is passed over.
pub const CUTS_BEFORE_NEXT_SOURCE: u32 = 3;
/// How many tracks from the current one are fetched (it and the next two).
pub const AHEAD: usize = 3;

/// The content store, when this device has one (it needs a data dir).
#[derive(Resource, Clone, Debug)]
pub struct ContentStore(pub Store);

/// Transfers under way, and what is known about sources.
#[derive(Resource)]
pub(crate) struct Fetches {
    active: HashMap<ContentHash, Fetch>,
    /// Peers that sent bytes that did not verify: never asked again this run.
    liars: HashSet<PeerId>,
    /// Files nobody had: not looked for again before this time.
    retry_at: HashMap<ContentHash, u64>,
    news_tx: Sender<News>,
    news: Receiver<News>,
}

impl Default for Fetches {
    fn default() -> Self {
        let (news_tx, news) = crossbeam_channel::unbounded();
        Self {
            active: HashMap::new(),
            liars: HashSet::new(),
            retry_at: HashMap::new(),
            news_tx,
            news,
        }
    }
}

struct Fetch {
    media: Media,
    adder: PeerId,
    source: Option<PeerId>,
    tried: HashSet<PeerId>,
    /// The part file, while no transfer thread holds it.
    partial: Option<Partial>,
    /// A transfer thread is running.
    running: bool,
    /// Leaves here, as last told (unknown until a transfer thread has looked).
    done: Option<u64>,
    /// Stream breaks in a row without a leaf, from the current source.
    cuts: u32,
    /// Not asked again before this time (a busy source).
    not_before_ms: u64,
}

/// The media of the current track and the next ones (or the first ones, with none current),
/// in play order, with who added each.
pub(crate) fn coming_up(
    clock: &PlaybackClock,
    index: &QueueIndex,
    tracks: &Query<&Track>,
    positions: &Query<&QueuePosition>,
) -> Vec<(Media, PeerId)> {
    index
        .in_order_from(clock.track, positions)
        .take(AHEAD)
        .filter_map(|(_, e)| tracks.get(e).ok())
        .filter_map(|t| t.media.map(|m| (m, t.added_by.clone())))
        .collect()
}

/// In `Update`: starts fetches of the files this device should have, hands each to a
/// transfer thread, hears how they went, and publishes where each stands in [`MediaStates`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn fetch(
    mut fetches: ResMut<Fetches>,
    store: Option<Res<ContentStore>>,
    mut files: ResMut<LocalFiles>,
    mut states: ResMut<MediaStates>,
    mut net: MessageWriter<NetCommand>,
    control: Res<StreamControl>,
    sessions: Query<(&Host, &CoHosts, &PlaybackOwner, &PlaybackClock)>,
    index: Res<QueueIndex>,
    tracks: Query<&Track>,
    positions: Query<&QueuePosition>,
    people: Query<(&Participant, Option<&Presence>)>,
    local: Res<LocalPeer>,
    listening: Res<Listening>,
    wall: Res<WallClock>,
    waker: Option<Res<AppWaker>>,
) {
    let fetches = &mut *fetches;
    let wanted = sessions
        .iter()
        .next()
        .map(|(_, _, _, clock)| coming_up(clock, &index, &tracks, &positions))
        .unwrap_or_default();
    let news: Vec<News> = fetches.news.try_iter().collect();
    for news in news {
        match news {
            News::Progress { hash, done } => {
                if let Some(fetch) = fetches.active.get_mut(&hash) {
                    fetch.done = Some(done);
                }
            }
            News::Ended {
                hash,
                from,
                partial,
                outcome,
            } => on_ended(
                fetches,
                store.as_deref(),
                &mut files,
                &mut states,
                &mut net,
                &wanted,
                wall.now_ms,
                (hash, from, partial, outcome),
            ),
        }
    }
    let Some(store) = store else { return };
    let Some((host, cohosts, owner, _)) = sessions.iter().next() else {
        fetches.active.clear();
        states.0.clear();
        return;
    };
    let me = &local.peer;
    // Who may have to play it: the owner, whoever may be handed playback, and a listener.
    let fetcher = host.0 == *me || owner.0 == *me || cohosts.0.contains(me) || listening.0;
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
                        running: false,
                        done: None,
                        cuts: 0,
                        not_before_ms: 0,
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
    let opener = control.get();
    let mut gave_up = Vec::new();
    for (hash, fetch) in fetches.active.iter_mut() {
        if fetch.running || wall.now_ms < fetch.not_before_ms {
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
                Some(peer) => {
                    fetch.source = Some(peer);
                    fetch.cuts = 0;
                }
                None => {
                    gave_up.push(*hash);
                    continue;
                }
            }
        }
        let (Some(source), Some(opener)) = (fetch.source.clone(), opener.clone()) else {
            continue;
        };
        let Some(peer) = net_peer(&source) else {
            fetch.tried.insert(source);
            fetch.source = None;
            continue;
        };
        let transfer = Transfer {
            opener,
            peer,
            from: source,
            media: fetch.media,
            store: store.0.clone(),
            partial: fetch.partial.take(),
            news: fetches.news_tx.clone(),
            wake: waker.as_deref().cloned(),
        };
        match transfer.start() {
            Ok(()) => fetch.running = true,
            Err(error) => tracing::warn!(%error, "cannot start a transfer thread"),
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
    for (hash, fetch) in &fetches.active {
        // Shown once known: a resumed transfer does not start at 0%.
        let Some(done) = fetch.done else { continue };
        let leaves = crate::tree::leaves(fetch.media.size).max(1);
        let state = MediaState::Fetching {
            progress: done as f32 / leaves as f32,
            from: fetch.source.clone().unwrap_or_else(|| fetch.adder.clone()),
        };
        if states.0.get(hash) != Some(&state) {
            states.0.insert(*hash, state);
        }
    }
}

/// A transfer thread ended: keep its part file, and decide what the next attempt does.
#[allow(clippy::too_many_arguments)]
fn on_ended(
    fetches: &mut Fetches,
    store: Option<&ContentStore>,
    files: &mut LocalFiles,
    states: &mut MediaStates,
    net: &mut MessageWriter<NetCommand>,
    wanted: &[(Media, PeerId)],
    now_ms: u64,
    (hash, from, partial, outcome): (ContentHash, PeerId, Option<Box<Partial>>, Outcome),
) {
    let Some(fetch) = fetches.active.get_mut(&hash) else {
        return;
    };
    fetch.running = false;
    if let Some(partial) = &partial {
        fetch.done = Some(partial.done());
    }
    fetch.partial = partial.map(|p| *p);
    let mut next_source = false;
    match outcome {
        Outcome::Here(path) => {
            tracing::info!(%hash, path = %path.display(), "a track's file is here, verified");
            fetches.active.remove(&hash);
            files.copies.insert(hash, path);
            states.0.remove(&hash);
            if let Some(store) = store {
                let keep: HashSet<ContentHash> = wanted.iter().map(|(m, _)| m.hash).collect();
                for gone in store.0.evict(&mut files.copies, &keep) {
                    tracing::info!(hash = %gone, "evicted from the content store");
                }
            }
            return;
        }
        Outcome::Cut { progressed, why } => {
            tracing::debug!(peer = %from, %why, "a media stream ended before the file");
            fetch.cuts = if progressed { 0 } else { fetch.cuts + 1 };
            next_source = fetch.cuts >= CUTS_BEFORE_NEXT_SOURCE;
        }
        Outcome::Busy => fetch.not_before_ms = now_ms + BUSY_WAIT_MS,
        Outcome::NotFromThem(why) => {
            tracing::debug!(peer = %from, %why, "this source cannot give the file");
            next_source = true;
        }
        Outcome::Lied(error) => {
            tracing::warn!(peer = %from, %error, "refused a lying peer's bytes");
            if let Some(peer) = net_peer(&from) {
                net.write(NetCommand::Strike {
                    peer,
                    what: "media bytes that did not match their hash",
                });
            }
            fetches.liars.insert(from.clone());
            next_source = true;
        }
        Outcome::Disk(error) => {
            tracing::warn!(%error, "the content store refused a write");
            fetch.not_before_ms = now_ms + RETRY_AFTER_MS;
        }
    }
    if next_source {
        fetch.tried.insert(from.clone());
        if fetch.source.as_ref() == Some(&from) {
            fetch.source = None;
        }
    }
}
