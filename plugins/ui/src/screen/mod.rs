//! The screens, as a function of a [`Screen`] model: [`draw`] returns what the user asked
//! for. One module per panel; whether a control is enabled comes from
//! [`allowed`](crate::permitted::allowed), the rules the host enforces.

mod confirm_join;
mod invite;
mod join;
mod knocks;
mod name_prompt;
mod now_playing;
mod people;
mod problem;
mod queue;
mod relays;
mod start;
mod top_bar;

use bevy_egui::egui::{self, Key};
use whatnext_core::prelude::*;

use crate::permitted::allowed;
use crate::{Forms, Page, Screen};

/// Widget ids tests and keyboard shortcuts look for.
pub const JOIN_FIELD: &str = "join-field";

/// Draws the whole screen and returns what the user asked for.
pub fn draw(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms) -> Vec<Action> {
    let mut actions = Vec::new();
    shortcuts(ui, screen, forms, &mut actions);
    confirm_join::show(ui, forms, &mut actions);
    top_bar::show(ui, screen, forms);
    name_prompt::show(ui, screen, forms, &mut actions);
    side_panel(ui, screen, forms, &mut actions);
    if forms.page == Page::Library {
        egui::CentralPanel::default().show(ui, |ui| {
            pages(ui, screen, forms);
            crate::library::page(ui, screen, forms, &mut actions);
        });
        return actions;
    }
    let Some(session) = &screen.session else {
        egui::CentralPanel::default().show(ui, |ui| {
            pages(ui, screen, forms);
            start::show(ui, forms, &mut actions);
            ui.add_space(24.0);
            join::show(ui, screen, forms, &mut actions);
        });
        return actions;
    };
    if forms.join_open {
        let mut open = true;
        egui::Window::new("Join another party")
            .open(&mut open)
            .collapsible(false)
            .show(ui.ctx(), |ui| join::show(ui, screen, forms, &mut actions));
        forms.join_open &= open;
    }
    egui::CentralPanel::default().show(ui, |ui| {
        pages(ui, screen, forms);
        ui.horizontal(|ui| {
            ui.heading(&session.name);
            if ui.small_button("Leave").clicked() {
                actions.push(Action::Local(LocalAction::LeaveSession));
            }
        });
        problem::show(ui, forms);
        now_playing::show(ui, screen, session, &mut actions);
        ui.separator();
        if screen.my_role != Some(Role::Display) {
            queue::add_track_form(ui, forms, &mut actions);
            ui.separator();
        }
        queue::show(ui, screen, session, &mut actions);
    });
    actions
}

/// The right-hand panel: knocks, people and the invite while in a session, then relays.
fn side_panel(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms, actions: &mut Vec<Action>) {
    egui::Panel::right("people-and-links")
        .default_size(320.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                if let Some(session) = &screen.session {
                    knocks::show(ui, screen, actions);
                    people::show(ui, screen, session, actions);
                    ui.separator();
                    invite::show(ui, screen, session, actions);
                    ui.separator();
                }
                relays::show(ui, &screen.relays, forms, actions);
            });
        });
}

/// The tabs over the central panel: the party, and this device's library.
fn pages(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms) {
    ui.horizontal(|ui| {
        let party = if screen.session.is_some() {
            "Party"
        } else {
            "Start or join"
        };
        ui.selectable_value(&mut forms.page, Page::Party, party);
        ui.selectable_value(
            &mut forms.page,
            Page::Library,
            format!("Library ({})", screen.library_size),
        );
    });
    ui.separator();
}

/// Space toggles playback for its owner; Ctrl+L goes to the join field.
fn shortcuts(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms, actions: &mut Vec<Action>) {
    let typing = ui.ctx().memory(|m| m.focused().is_some());
    let (space, ctrl_l) = ui.input(|i| {
        (
            i.key_pressed(Key::Space),
            i.modifiers.command && i.key_pressed(Key::L),
        )
    });
    if ctrl_l {
        forms.focus_join = true;
        forms.join_open = screen.session.is_some();
        forms.page = Page::Party;
    }
    if space
        && !typing
        && let Some(session) = &screen.session
        && allowed(screen, session, &SessionAction::Play)
    {
        actions.push(Action::Session(
            if session.playback.state == PlayState::Playing {
                SessionAction::Pause
            } else {
                SessionAction::Play
            },
        ));
    }
}
