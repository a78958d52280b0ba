//! Starting a listening party.

use bevy_egui::egui;
use whatnext_core::prelude::*;

use crate::Forms;

/// The "Start a listening party" form.
pub(super) fn show(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.add_space(24.0);
    ui.heading("Start a listening party");
    ui.label("Name it, then invite friends (the panel on the right) and add tracks.");
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut forms.session_name).hint_text("Friday night"));
        let ready = !forms.session_name.trim().is_empty();
        if ui
            .add_enabled(ready, egui::Button::new("Start session"))
            .clicked()
        {
            actions.push(Action::Local(LocalAction::CreateSession {
                session_id: SessionId::random(&mut rand::thread_rng()),
                name: forms.session_name.trim().to_owned(),
            }));
        }
    });
}
