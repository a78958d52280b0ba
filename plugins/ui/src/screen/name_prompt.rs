//! The first-run (and "Rename") window that asks for a display name.

use bevy_egui::egui::{self, Key};
use whatnext_core::prelude::*;

use crate::{Forms, Screen};

/// Asks what people should call this user, on first run or after "Rename".
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    forms: &mut Forms,
    actions: &mut Vec<Action>,
) {
    let renaming = !forms.name_prompt_done && !forms.display_name.is_empty();
    if !(screen.ask_name || renaming) || forms.name_prompt_done {
        return;
    }
    egui::Window::new("What should people call you?")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ui.ctx(), |ui| {
            ui.label("Your name shows next to the tracks you add. You can change it later.");
            let field = ui.text_edit_singleline(&mut forms.display_name);
            let ready = !forms.display_name.trim().is_empty();
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            ui.horizontal(|ui| {
                if ui.add_enabled(ready, egui::Button::new("Save")).clicked() || (enter && ready) {
                    actions.push(Action::Local(LocalAction::SetDisplayName {
                        name: forms.display_name.trim().to_owned(),
                    }));
                    forms.name_prompt_done = true;
                    forms.display_name.clear();
                }
                if ui.button("Later").clicked() {
                    forms.name_prompt_done = true;
                    forms.display_name.clear();
                }
            });
        });
}
