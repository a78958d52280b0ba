//! Now playing: the current track, its progress, and the playback controls.

use bevy_egui::egui::{self, RichText};
use whatnext_core::prelude::*;
use whatnext_core::view::{ParticipantView, PlaybackView};

use crate::Screen;
use crate::permitted::allowed;
use crate::words::{format_ms, listening_words, media_words, name_of, role_name};

/// The current track with seek, play/pause, next, take playback and hand off.
pub(super) fn show(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    actions: &mut Vec<Action>,
) {
    let PlaybackView {
        state,
        track_id,
        position_ms,
    } = &session.playback;
    let current = track_id.and_then(|id| session.queue.iter().find(|t| t.track_id == id));
    let is_owner = allowed(screen, session, &SessionAction::Play);
    match current {
        Some(t) => {
            ui.label(RichText::new(format!("{} — {}", t.title, t.artist)).size(22.0));
            if let Some(media) = t.media.as_ref().filter(|m| m.state != "here") {
                ui.weak(format!("The song's file: {}", media_words(session, media)));
            }
            let fraction = if t.duration_ms == 0 {
                0.0
            } else {
                *position_ms as f32 / t.duration_ms as f32
            };
            ui.add(
                egui::ProgressBar::new(fraction.clamp(0.0, 1.0)).text(format!(
                    "{} / {}",
                    format_ms(*position_ms),
                    format_ms(t.duration_ms)
                )),
            );
            if is_owner {
                let mut seconds = *position_ms as f64 / 1000.0;
                let seek = ui.add(
                    egui::Slider::new(&mut seconds, 0.0..=t.duration_ms as f64 / 1000.0)
                        .show_value(false)
                        .text("seek"),
                );
                if seek.drag_stopped() || (seek.changed() && !seek.dragged()) {
                    actions.push(Action::Session(SessionAction::Seek {
                        position_ms: (seconds * 1000.0) as u64,
                    }));
                }
            }
        }
        None => {
            ui.label("Nothing playing.");
        }
    }
    let owner_name = name_of(session, &session.playback_owner);
    let why = format!("{owner_name} controls playback");
    ui.horizontal(|ui| {
        let (label, action) = if *state == PlayState::Playing {
            ("Pause", SessionAction::Pause)
        } else {
            ("Play", SessionAction::Play)
        };
        let mut control = |ui: &mut egui::Ui, label: &str, action: SessionAction| {
            if ui
                .add_enabled(is_owner, egui::Button::new(label))
                .on_disabled_hover_text(&why)
                .clicked()
            {
                actions.push(Action::Session(action));
            }
        };
        control(ui, label, action);
        control(ui, "Next", SessionAction::Next);
        let take = SessionAction::TakePlayback;
        if !is_owner && screen.my_role.is_some() {
            let can_take = allowed(screen, session, &take);
            if ui
                .add_enabled(can_take, egui::Button::new("Take playback"))
                .on_disabled_hover_text("Only the host and co-hosts can take playback")
                .clicked()
            {
                actions.push(Action::Session(take));
            }
        }
        if is_owner {
            hand_off_menu(ui, screen, session, actions);
        } else if screen.my_role.is_some() {
            // Nobody hears anything they did not switch on.
            let mut on = session.listening;
            if ui
                .checkbox(&mut on, "Listen along")
                .on_hover_text("Play the party's music on this device too, in step with it")
                .changed()
            {
                actions.push(Action::Local(LocalAction::SetListening { on }));
            }
            if session.listening {
                ui.weak(listening_words(&screen.audio));
            }
        }
        ui.weak(format!("{} · {why}", state.as_str()));
    });
}

fn hand_off_menu(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    actions: &mut Vec<Action>,
) {
    let targets: Vec<&ParticipantView> = session
        .participants
        .iter()
        .filter(|p| p.peer_id != screen.me.peer)
        .filter(|p| {
            allowed(
                screen,
                session,
                &SessionAction::HandOff {
                    to: p.peer_id.clone(),
                },
            )
        })
        .collect();
    ui.add_enabled_ui(!targets.is_empty(), |ui| {
        ui.menu_button("Hand off to…", |ui| {
            for p in targets {
                if ui
                    .button(format!("{} ({})", p.display_name, role_name(p.role)))
                    .clicked()
                {
                    actions.push(Action::Session(SessionAction::HandOff {
                        to: p.peer_id.clone(),
                    }));
                    ui.close();
                }
            }
        })
        .response
        .on_disabled_hover_text(
            "Make someone a co-host first: playback goes to the host or a co-host",
        );
    });
}
