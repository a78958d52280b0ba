//! A host's own changes that no co-host has yet. A host cut off from its co-hosts (its
//! network went, say) goes on working, and a co-host may take over meanwhile; what the
//! cut-off host changed then exists only on it, and stepping down to the new host's party
//! (whose snapshot replaces this device's copy) would lose it without a word. So each of
//! the host's own session intents goes into its persisted outbox once applied, and leaves
//! it once every co-host it is linked to has acknowledged the update that carried it. If it
//! steps down first, the outbox delivers what is left to the new host, like any member's.
//!
//! The other way round: intents still in the outbox of a member that becomes the host, or
//! sent and not yet answered, were never confirmed by anyone (the old host went before they
//! reached it, or before it answered); the new host applies them itself.

use std::collections::HashMap;

use bevy::prelude::*;
use whatnext_core::prelude::*;
use whatnext_network::PeerLinks;

use crate::authority::Authority;
use crate::membership::Members;
use crate::outbox::GuestIntents;

/// The host's own applied intents in the outbox, by the update (of this authority run)
/// that carried them.
#[derive(Resource, Default)]
pub(crate) struct OwnChanges {
    /// Own session intents read this frame, waiting for their outcome (same frame).
    asked: HashMap<IntentId, Intent>,
    /// Applied last frame: the update that frame flushed (or, if it changed nothing, the
    /// one before) carries them.
    fresh: Vec<IntentId>,
    carried_by: HashMap<IntentId, u64>,
    /// The session's host at the last look, to tell a takeover from a start.
    last_host: Option<PeerId>,
}

/// The first update of an authority run carries the whole session (`begin_hosting` marks
/// everything changed): entries kept from before this run were carried by it.
const FIRST_UPDATE: u64 = 1;

/// After `SessionSet::Apply`: the host's own applied session intents go into the outbox,
/// while it has a co-host who could take over; what a member had in its outbox when it
/// became the host is applied now.
pub(crate) fn keep_own_changes(
    mut commands: Commands,
    local: Res<LocalPeer>,
    auth: Res<Authority>,
    sessions: Query<(&Host, &CoHosts)>,
    mut own: ResMut<OwnChanges>,
    mut outbox: ResMut<Outbox>,
    mut intents: MessageReader<Intent>,
    mut outcomes: MessageReader<IntentOutcome>,
    mut applied: ResMut<AppliedIntents>,
    pending: Query<Entity, With<Pending>>,
    mut guest: ResMut<GuestIntents>,
) {
    let me = &local.peer;
    let session = sessions.iter().next();
    let hosting = session.is_some_and(|(h, _)| h.0 == *me);
    let heirs = session.is_some_and(|(_, c)| c.0.iter().any(|c| c != me));
    let before = std::mem::replace(&mut own.last_host, session.map(|(h, _)| h.0.clone()));
    if before.as_ref() == Some(me) && session.is_some() && !hosting {
        // Stepped down: what this device applied as host is the old term's.
        applied.forget();
    }
    if !hosting {
        own.asked.clear();
        own.fresh.clear();
        own.carried_by.clear();
        intents.clear();
        outcomes.clear();
        return;
    }
    let took_over = before.as_ref().is_some_and(|h| h != me);
    let unanswered = if took_over {
        guest.take_unanswered()
    } else {
        Vec::new()
    };
    if took_over {
        // Previews go: what waited is made for real below, replicated this time; what the
        // old host confirmed and this device never received is not in this party.
        for preview in &pending {
            commands.entity(preview).despawn();
        }
    }
    if took_over && !(outbox.0.is_empty() && unanswered.is_empty()) {
        tracing::info!(
            count = outbox.0.len() + unanswered.len(),
            "this device hosts now: applying what waited for the host"
        );
        let waited = std::mem::take(&mut outbox.0);
        for intent in waited.into_iter().chain(unanswered) {
            // Applied for real: an old term's record of it is not this state's.
            applied.by_id.remove(&intent.id);
            commands.write_message(intent);
        }
    }
    let last = auth.last_seq();
    for id in std::mem::take(&mut own.fresh) {
        own.carried_by.insert(id, last);
    }
    // Entries from before this run (restored from disk) were carried by its first update.
    let unknown: Vec<IntentId> = outbox
        .0
        .iter()
        .filter(|i| !own.carried_by.contains_key(&i.id))
        .map(|i| i.id.clone())
        .collect();
    for id in unknown {
        own.carried_by.insert(id, FIRST_UPDATE);
    }
    for intent in intents.read() {
        if intent.id.author == *me && matches!(intent.action, Action::Session(_)) {
            own.asked.insert(intent.id.clone(), intent.clone());
        }
    }
    for outcome in outcomes.read() {
        let Some(intent) = own.asked.remove(&outcome.id) else {
            continue;
        };
        if heirs && outcome.result.is_ok() && !outbox.0.iter().any(|i| i.id == intent.id) {
            own.fresh.push(intent.id.clone());
            outbox.0.push(intent);
        }
    }
    own.asked.clear();
}

/// Host: own intents whose update every co-host it is linked to has acknowledged leave the
/// outbox: a co-host that takes over has them. With no co-host left, none can take over,
/// and the outbox empties. While none is linked, everything stays.
pub(crate) fn forget_mirrored_own_changes(
    local: Res<LocalPeer>,
    auth: Res<Authority>,
    members: Res<Members>,
    links: Res<PeerLinks>,
    sessions: Query<(&Host, &CoHosts)>,
    mut own: ResMut<OwnChanges>,
    mut outbox: ResMut<Outbox>,
) {
    let me = &local.peer;
    let Some((host, cohosts)) = sessions.iter().next() else {
        return;
    };
    if host.0 != *me || own.carried_by.is_empty() {
        return;
    }
    let heirs: Vec<&PeerId> = cohosts.0.iter().filter(|c| *c != me).collect();
    let mirrored = if heirs.is_empty() {
        u64::MAX
    } else {
        let linked: Vec<&PeerId> = heirs
            .into_iter()
            .filter(|c| members.0.contains(*c) && links.0.contains_key(*c))
            .collect();
        match linked.iter().map(|c| auth.acknowledged(c)).min() {
            Some(seq) => seq,
            None => return,
        }
    };
    let done = |id: &IntentId| own.carried_by.get(id).is_some_and(|seq| *seq <= mirrored);
    // Touch the outbox only to change it: storage saves it when it changes.
    if outbox
        .bypass_change_detection()
        .0
        .iter()
        .any(|i| done(&i.id))
    {
        let OwnChanges { carried_by, .. } = &mut *own;
        outbox.0.retain(|i| {
            let keep = carried_by.get(&i.id).is_none_or(|seq| *seq > mirrored);
            if !keep {
                carried_by.remove(&i.id);
            }
            keep
        });
    }
}
