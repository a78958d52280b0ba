//! People knocking with a short code, for those allowed to let them in.

use bevy_egui::egui;
use whatnext_core::prelude::*;

use crate::Screen;
use crate::permitted::allowed;
use crate::theme::ACCENT;

/// One prompt per waiting knock, if this device may answer knocks.
pub(super) fn show(ui: &mut egui::Ui, screen: &Screen, actions: &mut Vec<Action>) {
    let Some(session) = &screen.session else {
        return;
    };
    for knock in screen.knocks.iter().filter(|k| k.decision.is_none()) {
        let approve = SessionAction::ApproveKnock {
            peer: knock.peer.clone(),
        };
        if !allowed(screen, session, &approve) {
            continue;
        }
        egui::Frame::group(ui.style())
            .stroke(egui::Stroke::new(1.0, ACCENT))
            .show(ui, |ui| {
                let what = if knock.display {
                    "wants to show this party on a screen"
                } else {
                    "wants to join"
                };
                ui.label(format!("{} {what}", knock.display_name));
                // Anyone can pick a name; the key's fingerprint tells who it really is.
                ui.label(
                    egui::RichText::new(format!("key {}", knock.peer.fingerprint()))
                        .monospace()
                        .weak(),
                )
                .on_hover_text(
                    "Ask them to read theirs out: it is on their screen when they knock",
                );
                ui.horizontal(|ui| {
                    if ui.button("Let in").clicked() {
                        actions.push(Action::Session(approve.clone()));
                    }
                    if ui.button("Say no").clicked() {
                        actions.push(Action::Session(SessionAction::DenyKnock {
                            peer: knock.peer.clone(),
                        }));
                    }
                });
            });
    }
}
