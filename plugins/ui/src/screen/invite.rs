//! Inviting people: the host shows its code, QR code and link; members are told to ask.

use bevy_egui::egui::{self, RichText};
use whatnext_core::prelude::*;

use crate::Screen;
use crate::theme::WARN;

/// The invite section of the side panel, for the host or for a member.
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    actions: &mut Vec<Action>,
) {
    // The host's relay holds the code; members pass the host's invite on.
    if session.host == screen.me.peer {
        share(ui, &screen.invite);
        if let Some(link) = &screen.phone_link {
            phones(ui, link);
        }
        // A link that leaked (a screenshot in the wrong chat) can be made useless; members
        // keep their own way back in.
        if ui
            .small_button("New link and code")
            .on_hover_text("The old link and code stop working; people already here stay")
            .clicked()
        {
            actions.push(Action::Local(LocalAction::RotateInvite));
        }
    } else {
        ui.heading("Invite");
        ui.weak("Ask the host for the code or link to invite more people.");
    }
}

/// The invite: the short code large enough to read across a room, a QR code, and the link.
fn share(ui: &mut egui::Ui, invite: &SessionInvite) {
    ui.heading("Invite");
    match &invite.short_code {
        Some(code) => {
            ui.label(RichText::new(code).size(44.0).monospace().strong());
        }
        None => {
            ui.weak("No short code yet (it needs a reserved relay).");
        }
    }
    if let Some(url) = &invite.url {
        crate::qr::paint(ui, url, 180.0);
        if ui.button("Copy invite link").clicked() {
            ui.ctx().copy_text(url.clone());
        }
        ui.add(egui::Label::new(RichText::new(url).small().weak()).wrap());
    }
    if let Some(problem) = &invite.problem {
        ui.colored_label(WARN, problem);
    }
}

/// The phone page: guests nearby open it in their phone's browser, no app needed.
fn phones(ui: &mut egui::Ui, link: &str) {
    ui.separator();
    ui.label(RichText::new("Phones on this Wi-Fi").strong());
    ui.weak("Scan to see the queue, add songs and react from a browser.");
    crate::qr::paint(ui, link, 140.0);
    if ui.button("Copy phone link").clicked() {
        ui.ctx().copy_text(link.to_owned());
    }
    ui.add(egui::Label::new(RichText::new(link).small().weak()).wrap());
}
