//! Joining a party with an invite link or short code, and how far the join has got.

use bevy_egui::egui;
use whatnext_core::prelude::*;

use super::JOIN_FIELD;
use crate::words::Problem;
use crate::{Forms, Screen};

/// The "Join a party" form, with the join's progress under it.
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    forms: &mut Forms,
    actions: &mut Vec<Action>,
) {
    ui.heading("Join a party");
    ui.label("Paste the invite link, or type the short code the host reads out. (Ctrl+L)");
    ui.horizontal(|ui| {
        let field = ui.add(
            egui::TextEdit::singleline(&mut forms.invite)
                .id_salt(JOIN_FIELD)
                .hint_text("whtnxt://connect/… or ABC234")
                .desired_width(360.0),
        );
        if forms.focus_join {
            field.request_focus();
            forms.focus_join = false;
        }
        let ready = !forms.invite.trim().is_empty() && screen.join.is_none();
        if ui.add_enabled(ready, egui::Button::new("Join")).clicked() {
            let invite = forms.invite.trim().to_owned();
            // Caught here, a typo gets its sentence at once instead of a round trip.
            match invite.parse::<whatnext_core::invite::Invite>() {
                Ok(_) => {
                    forms.problem = None;
                    actions.push(Action::Local(LocalAction::JoinSession { invite }));
                }
                Err(bad) => forms.problem = Some(Problem::bad_invite(bad.to_string())),
            }
        }
    });
    if let Some(stage) = screen.join {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(match stage {
                JoinProgress::Idle | JoinProgress::ConnectingToHost => {
                    "Connecting to the host through the relay…"
                }
                JoinProgress::LookingUpCode => "Looking the code up on your relay…",
                JoinProgress::WaitingForApproval => {
                    "Waiting for the host to let you in (they see a prompt)…"
                }
            });
        });
        if stage == JoinProgress::WaitingForApproval {
            // The host sees this next to the name, so they can tell it is really you.
            ui.label(format!("Your key: {}", screen.me.peer.fingerprint()));
        }
    }
    if screen.session.is_none() {
        super::problem::show(ui, forms);
    }
}
