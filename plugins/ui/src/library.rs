//! The library page: this device's tracks, searchable; add one by hand, import a folder, and
//! put any of them in the party's queue.

use bevy_egui::egui::{self, RichText};
use whatnext_core::prelude::*;

use crate::permitted::allowed;
use crate::track_form::track_fields;
use crate::words::format_ms;
use crate::{Forms, Screen};

/// The library page: import, add by hand, search, and queue a track.
pub fn page(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label("Import a folder");
        ui.add(
            egui::TextEdit::singleline(&mut forms.import_folder)
                .hint_text("/home/you/Music")
                .desired_width(320.0),
        );
        let ready = !forms.import_folder.trim().is_empty() && forms.importing.is_none();
        if ui.add_enabled(ready, egui::Button::new("Import")).clicked() {
            actions.push(Action::Local(LocalAction::ImportFolder {
                path: forms.import_folder.trim().to_owned(),
            }));
        }
        if forms.importing.is_some() {
            ui.spinner();
            ui.label("Reading tags and durations…");
        } else if let Some(result) = &forms.import_result {
            ui.label(result);
        }
    });
    add_by_hand(ui, forms, actions);
    ui.separator();
    ui.horizontal(|ui| {
        ui.label("Search");
        ui.add(
            egui::TextEdit::singleline(&mut forms.library_query)
                .hint_text("title, artist or file")
                .desired_width(320.0),
        );
        ui.weak(format!(
            "{} of {} tracks",
            screen.library.len(),
            screen.library_size
        ));
    });
    let can_queue = screen.session.as_ref().is_some_and(|session| {
        allowed(
            screen,
            session,
            &SessionAction::AddTrack {
                track_id: TrackId(0),
                title: String::new(),
                artist: String::new(),
                duration_ms: 0,
                media: None,
            },
        )
    });
    let why_not = if screen.session.is_none() {
        "Start or join a party first"
    } else {
        "A party screen cannot add tracks"
    };
    if screen.library_size == 0 {
        ui.weak("Your library is empty: import a folder of music, or add a track by hand.");
    }
    let row_height = ui.spacing().interact_size.y + 4.0;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, screen.library.len(), |ui, rows| {
            for t in &screen.library[rows] {
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(can_queue, egui::Button::new("Add to queue").small())
                        .on_disabled_hover_text(why_not)
                        .clicked()
                    {
                        // A new id: the same library track can be queued twice.
                        actions.push(t.queue_action(TrackId::random(&mut rand::thread_rng())));
                    }
                    ui.label(&t.title);
                    ui.weak(&t.artist);
                    ui.weak(format_ms(t.duration_ms));
                    if let Some(path) = &t.path {
                        ui.label(RichText::new(path).small().weak());
                    }
                });
            }
        });
}

fn add_by_hand(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label("Add by hand:");
        let typed = track_fields(ui, forms, "Add to library");
        if let Some((title, artist, duration_ms)) = typed {
            actions.push(Action::Local(LocalAction::AddToLibrary {
                track_id: TrackId::random(&mut rand::thread_rng()),
                title,
                artist,
                duration_ms,
                path: None,
            }));
        }
    });
}
