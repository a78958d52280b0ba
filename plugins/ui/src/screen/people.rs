//! The session's people: who is online, their roles, promoting or demoting co-hosts, and
//! removing (or banning) someone.

use bevy_egui::egui::{self, Color32, RichText};
use whatnext_core::prelude::*;
use whatnext_core::view::ParticipantView;

use crate::Screen;
use crate::permitted::allowed;
use crate::theme::{ACCENT, GOOD, dot};
use crate::words::{connection_name, role_name};

/// The "People" list.
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    actions: &mut Vec<Action>,
) {
    ui.heading("People");
    for p in &session.participants {
        participant_row(ui, screen, session, p, actions);
    }
}

fn participant_row(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    p: &ParticipantView,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        dot(ui, if p.online { GOOD } else { Color32::GRAY }).on_hover_text(if p.online {
            "online"
        } else {
            "offline"
        });
        ui.label(&p.display_name);
        ui.weak(role_name(p.role));
        ui.weak(connection_name(p.connection));
        if p.peer_id == session.playback_owner {
            ui.label(RichText::new("playing").small().color(ACCENT));
        }
        let promote = SessionAction::AddCohost {
            peer: p.peer_id.clone(),
        };
        let demote = SessionAction::RemoveCohost {
            peer: p.peer_id.clone(),
        };
        if p.role == Role::Guest && allowed(screen, session, &promote) {
            if ui
                .small_button("Make co-host")
                .on_hover_text("Co-hosts can take playback, move tracks and let people in")
                .clicked()
            {
                actions.push(Action::Session(promote));
            }
        } else if p.role == Role::CoHost && allowed(screen, session, &demote) {
            if ui.small_button("Remove co-host").clicked() {
                actions.push(Action::Session(demote));
            }
            let transfer = SessionAction::TransferHost {
                to: p.peer_id.clone(),
            };
            if allowed(screen, session, &transfer)
                && ui
                    .small_button("Make host")
                    .on_hover_text("Hand the party to them: you stay on as a co-host")
                    .clicked()
            {
                actions.push(Action::Session(transfer));
            }
        }
        let remove = |ban| SessionAction::RemoveMember {
            peer: p.peer_id.clone(),
            ban,
        };
        if p.peer_id != screen.me.peer && allowed(screen, session, &remove(false)) {
            ui.menu_button("Remove…", |ui| {
                if ui
                    .button("Remove from the party")
                    .on_hover_text("They can come back with the invite")
                    .clicked()
                {
                    actions.push(Action::Session(remove(false)));
                    ui.close();
                }
                if ui
                    .button("Remove and ban")
                    .on_hover_text("They cannot come back to this party")
                    .clicked()
                {
                    actions.push(Action::Session(remove(true)));
                    ui.close();
                }
            });
        }
    });
}
