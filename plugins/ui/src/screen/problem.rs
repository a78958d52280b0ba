//! The last refusal of one of the UI's own intents, in words, with its details folded away.

use bevy_egui::egui::{self, RichText};

use crate::Forms;
use crate::theme::BAD;

/// Shows the problem, if any, until dismissed.
pub(super) fn show(ui: &mut egui::Ui, forms: &mut Forms) {
    let Some(problem) = &forms.problem else {
        return;
    };
    let mut dismiss = false;
    ui.horizontal(|ui| {
        ui.colored_label(BAD, &problem.sentence);
        dismiss = ui.small_button("Dismiss").clicked();
    });
    egui::CollapsingHeader::new("Details")
        .id_salt("problem-details")
        .show(ui, |ui| {
            ui.label(RichText::new(&problem.detail).monospace().small());
        });
    if dismiss {
        forms.problem = None;
    }
}
