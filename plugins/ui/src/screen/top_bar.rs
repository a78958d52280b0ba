//! The bar across the top: who this device is, renaming, whether it is offline, and whether
//! it can save.

use bevy_egui::egui;

use crate::Forms;
use crate::Screen;
use crate::theme::{ACCENT, BAD, WARN};
use crate::words::short_peer;

/// The top panel: the app's name, this device's name and peer, "Rename", the status badge.
pub(super) fn show(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms) {
    egui::Panel::top("identity").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("whatnext");
            ui.separator();
            ui.label(&screen.me.display_name);
            ui.weak(short_peer(&screen.me.peer));
            if ui.small_button("Rename").clicked() {
                forms.display_name = screen.me.display_name.clone();
                forms.name_prompt_done = false;
            }
            status_badge(ui, screen);
        });
        if let Some((notice, until)) = &forms.host_notice
            && std::time::Instant::now() < *until
        {
            ui.colored_label(ACCENT, notice);
        }
        if let Some(problem) = &screen.storage_problem {
            ui.colored_label(
                BAD,
                "Can't save: the disk is full or failing. Changes are refused until it works again.",
            )
            .on_hover_text(problem);
        }
    });
}

fn status_badge(ui: &mut egui::Ui, screen: &Screen) {
    let host_away = screen.session.as_ref().is_some_and(|s| {
        s.host != screen.me.peer
            && s.participants
                .iter()
                .any(|p| p.peer_id == s.host && !p.online)
    });
    if !screen.network {
        ui.colored_label(WARN, "Offline: started without a network");
    } else if host_away {
        ui.colored_label(WARN, "Offline: the host can't be reached; reconnecting…")
            .on_hover_text("Tracks you add now are kept and sent when the host is back.");
    }
}
