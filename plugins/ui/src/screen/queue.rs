//! The queue: adding a track by hand, and the rows, which can be dragged or removed.

use bevy_egui::egui::{self, RichText};
use whatnext_core::prelude::*;
use whatnext_core::view::TrackView;

use crate::permitted::allowed;
use crate::theme::{ACCENT, WARN};
use crate::track_form::track_fields;
use crate::words::{format_ms, media_words, name_of};
use crate::{Forms, Screen};

/// The form that adds a typed track to the queue.
pub(super) fn add_track_form(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        if let Some((title, artist, duration_ms)) = track_fields(ui, forms, "Add to queue") {
            actions.push(Action::Session(SessionAction::AddTrack {
                track_id: TrackId::random(&mut rand::thread_rng()),
                title,
                artist,
                duration_ms,
                media: None,
            }));
        }
    });
}

/// The queue, drawing only the rows on screen so thousands of tracks stay cheap. Rows can be
/// dragged to a new place by those allowed to move tracks.
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    actions: &mut Vec<Action>,
) {
    ui.heading(format!("Up next · {} tracks", session.queue.len()));
    let movable = session.queue.first().is_some_and(|t| {
        allowed(
            screen,
            session,
            &SessionAction::MoveTrack {
                track_id: t.track_id,
                after: None,
            },
        )
    });
    if movable {
        ui.weak("Drag a track by its handle to move it.");
    }
    let row_height = ui.spacing().interact_size.y + 4.0;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, session.queue.len(), |ui, rows| {
            for index in rows {
                track_row(ui, screen, session, index, movable, actions);
            }
        });
}

fn track_row(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    index: usize,
    movable: bool,
    actions: &mut Vec<Action>,
) {
    let t: &TrackView = &session.queue[index];
    let current = session.playback.track_id == Some(t.track_id);
    let row = ui.horizontal(|ui| {
        if movable {
            let id = egui::Id::new(("track-drag", t.track_id.0));
            // The payload is the track, not its row: the queue can change under a drag.
            ui.dnd_drag_source(id, t.track_id, |ui| {
                ui.label(RichText::new("=").monospace().weak());
            })
            .response
            .on_hover_text("Drag to move");
        }
        let title = if current {
            RichText::new(&t.title).strong().color(ACCENT)
        } else {
            RichText::new(&t.title)
        };
        ui.label(title);
        ui.weak(&t.artist);
        ui.weak(format_ms(t.duration_ms));
        ui.weak(format!("added by {}", name_of(session, &t.added_by)));
        if t.pending {
            ui.colored_label(WARN, "pending")
                .on_hover_text("Waiting for the host to confirm it");
        }
        if let Some(media) = &t.media {
            let words = media_words(session, media);
            match media.state {
                "fetching" => ui.colored_label(ACCENT, words),
                "unavailable" => ui.colored_label(WARN, words),
                _ => ui.weak(words),
            }
            .on_hover_text("Where this track's file is on this device");
        }
        let remove = SessionAction::RemoveTrack {
            track_id: t.track_id,
        };
        if !t.pending && allowed(screen, session, &remove) && ui.small_button("Remove").clicked() {
            actions.push(Action::Session(remove));
        }
    });
    if let Some(dragged) = row.response.dnd_release_payload::<TrackId>()
        && let Some(action) = drop_onto(&session.queue, *dragged, index)
    {
        actions.push(action);
    }
}

/// The move for `dragged` dropped on the row at `index`: it takes that row's place, moving
/// the others along. Nothing if it is dropped on itself or has left the queue meanwhile.
fn drop_onto(queue: &[TrackView], dragged: TrackId, index: usize) -> Option<Action> {
    let from = queue.iter().position(|t| t.track_id == dragged)?;
    if from == index {
        return None;
    }
    let after = if from < index {
        Some(queue.get(index)?.track_id)
    } else {
        index
            .checked_sub(1)
            .and_then(|before| queue.get(before))
            .map(|t| t.track_id)
    };
    Some(Action::Session(SessionAction::MoveTrack {
        track_id: dragged,
        after,
    }))
}
