//! The screens, as a function of a [`Screen`] model: `draw` returns what the user asked for.
//! Whether a control is enabled comes from `rules::authorize`, the same rules the host
//! enforces, so the window never offers what would be refused.

use bevy_egui::egui::{self, Color32, Key, RichText};
use whatnext_core::prelude::*;
use whatnext_core::relay::validate_relay_addr;
use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};

use crate::words::{Problem, connection_name, format_ms, role_name};
use crate::{Forms, Page, Screen};

pub const ACCENT: Color32 = Color32::from_rgb(120, 140, 250);
const GOOD: Color32 = Color32::from_rgb(90, 200, 120);
const WARN: Color32 = Color32::from_rgb(230, 190, 90);
const BAD: Color32 = Color32::from_rgb(240, 110, 100);

/// Widget ids tests and keyboard shortcuts look for.
pub const JOIN_FIELD: &str = "join-field";

/// Draws the whole screen and returns what the user asked for.
pub fn draw(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms) -> Vec<Action> {
    let mut actions = Vec::new();
    shortcuts(ui, screen, forms, &mut actions);
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
    });
    name_prompt(ui, screen, forms, &mut actions);
    egui::Panel::right("people-and-links")
        .default_size(320.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                if let Some(session) = &screen.session {
                    knock_prompts(ui, screen, &mut actions);
                    participants(ui, screen, session, &mut actions);
                    ui.separator();
                    // The host's relay holds the code; members pass the host's invite on.
                    if session.host == screen.me.peer {
                        share(ui, &screen.invite);
                    } else {
                        ui.heading("Invite");
                        ui.weak("Ask the host for the code or link to invite more people.");
                    }
                    ui.separator();
                }
                relays(ui, &screen.relays, forms, &mut actions);
            });
        });
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
            start_session(ui, forms, &mut actions);
            ui.add_space(24.0);
            join_session(ui, screen, forms, &mut actions);
        });
        return actions;
    };
    if forms.join_open {
        let mut open = true;
        egui::Window::new("Join another party")
            .open(&mut open)
            .collapsible(false)
            .show(ui.ctx(), |ui| join_session(ui, screen, forms, &mut actions));
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
        problem(ui, forms);
        now_playing(ui, screen, session, &mut actions);
        ui.separator();
        if screen.my_role != Some(Role::Display) {
            add_track_form(ui, forms, &mut actions);
            ui.separator();
        }
        queue(ui, screen, session, &mut actions);
    });
    actions
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

/// Whether the rules let this device do `action` now (what the host would check).
pub fn allowed(screen: &Screen, session: &SessionSnapshot, action: &SessionAction) -> bool {
    let Some(role) = screen.my_role else {
        return false;
    };
    let mut facts = Facts::of(role);
    facts.is_playback_owner = session.playback_owner == screen.me.peer;
    match action {
        SessionAction::RemoveTrack { track_id } => {
            facts.added_the_track = session
                .queue
                .iter()
                .any(|t| t.track_id == *track_id && t.added_by == screen.me.peer);
        }
        SessionAction::HandOff { to } => {
            facts.target_role = session
                .participants
                .iter()
                .find(|p| p.peer_id == *to)
                .map(|p| p.role);
        }
        _ => {}
    }
    authorize(action, &facts).is_ok()
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

fn name_prompt(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms, actions: &mut Vec<Action>) {
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

fn problem(ui: &mut egui::Ui, forms: &mut Forms) {
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

fn short_peer(peer: &PeerId) -> String {
    let text = peer.as_str();
    let tail = &text[text.len().saturating_sub(6)..];
    format!("…{tail}")
}

fn dot(ui: &mut egui::Ui, colour: Color32) -> egui::Response {
    // Painted, not a glyph: the bundled fonts have no bullet character.
    let (rect, response) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.0, colour);
    response
}

fn start_session(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
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

fn join_session(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms, actions: &mut Vec<Action>) {
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
    }
    if screen.session.is_none() {
        problem(ui, forms);
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

fn relays(ui: &mut egui::Ui, relays: &[RelayEntry], forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.heading("Relays");
    if relays.is_empty() {
        ui.weak("None yet. Add the address your relay printed (it ends in /p2p/…).");
    }
    for relay in relays {
        ui.horizontal(|ui| {
            let colour = match relay.status {
                RelayStatus::Reserved => GOOD,
                RelayStatus::Connecting => WARN,
                RelayStatus::Failed { .. } => BAD,
                RelayStatus::Disconnected => Color32::GRAY,
            };
            let hover = match &relay.status {
                RelayStatus::Failed { reason } => reason.clone(),
                other => other.as_str().to_owned(),
            };
            dot(ui, colour).on_hover_text(&hover);
            let status = ui.label(RichText::new(relay.status.as_str()).small());
            if let RelayStatus::Failed { reason } = &relay.status {
                status.on_hover_text(reason);
            }
            // The manager reserves a slot on its active relay only.
            if relay.status == RelayStatus::Reserved {
                ui.label(RichText::new("in use").small().color(ACCENT));
            }
            if ui
                .small_button("Remove")
                .on_hover_text("Stop using this relay")
                .clicked()
            {
                actions.push(Action::Local(LocalAction::RemoveRelay {
                    addr: relay.addr.clone(),
                }));
            }
        });
        ui.label(RichText::new(&relay.addr).small().weak());
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut forms.relay).hint_text("/ip4/…/tcp/4001/p2p/12D3Koo…"),
        );
        let typed = forms.relay.trim();
        let check = (!typed.is_empty()).then(|| validate_relay_addr(typed));
        if ui
            .add_enabled(matches!(check, Some(Ok(_))), egui::Button::new("Add"))
            .clicked()
            && let Some(Ok(addr)) = check.as_ref()
        {
            actions.push(Action::Local(LocalAction::AddRelay { addr: addr.clone() }));
            forms.relay.clear();
        } else if let Some(Err(bad)) = check {
            ui.colored_label(BAD, "!").on_hover_text(bad.to_string());
        }
    });
}

fn knock_prompts(ui: &mut egui::Ui, screen: &Screen, actions: &mut Vec<Action>) {
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

fn participants(
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
        } else if p.role == Role::CoHost
            && allowed(screen, session, &demote)
            && ui.small_button("Remove co-host").clicked()
        {
            actions.push(Action::Session(demote));
        }
    });
}

fn now_playing(
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

fn add_track_form(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        if let Some((title, artist, duration_ms)) = track_fields(ui, forms, "Add to queue") {
            actions.push(Action::Session(SessionAction::AddTrack {
                track_id: TrackId::random(&mut rand::thread_rng()),
                title,
                artist,
                duration_ms,
                path: None,
            }));
        }
    });
}

/// Title, artist and minutes fields with a button: the typed track once the button is
/// clicked with valid input (the title field is then cleared for the next one).
pub fn track_fields(
    ui: &mut egui::Ui,
    forms: &mut Forms,
    button: &str,
) -> Option<(String, String, u64)> {
    ui.label("Title");
    ui.add(egui::TextEdit::singleline(&mut forms.track_title).desired_width(180.0));
    ui.label("Artist");
    ui.add(egui::TextEdit::singleline(&mut forms.track_artist).desired_width(140.0));
    ui.label("Minutes");
    ui.add(egui::TextEdit::singleline(&mut forms.track_minutes).desired_width(40.0));
    let minutes = minutes(&forms.track_minutes);
    let ready = !forms.track_title.trim().is_empty() && minutes.is_some();
    if !ui.add_enabled(ready, egui::Button::new(button)).clicked() {
        return None;
    }
    let track = (
        forms.track_title.trim().to_owned(),
        forms.track_artist.trim().to_owned(),
        (minutes.unwrap_or(0.0) * 60_000.0) as u64,
    );
    forms.track_title.clear();
    Some(track)
}

/// A duration typed in minutes ("3.5"), if it is one.
pub fn minutes(text: &str) -> Option<f64> {
    text.trim()
        .parse()
        .ok()
        .filter(|m: &f64| m.is_finite() && *m > 0.0)
}

fn name_of(session: &SessionSnapshot, peer: &PeerId) -> String {
    session
        .participants
        .iter()
        .find(|p| p.peer_id == *peer)
        .map_or_else(|| short_peer(peer), |p| p.display_name.clone())
}

/// The queue, drawing only the rows on screen so thousands of tracks stay cheap. Rows can be
/// dragged to a new place by those allowed to move tracks.
fn queue(ui: &mut egui::Ui, screen: &Screen, session: &SessionSnapshot, actions: &mut Vec<Action>) {
    ui.heading(format!("Up next · {} tracks", session.queue.len()));
    let movable = session.queue.first().is_some_and(|t| {
        allowed(
            screen,
            session,
            &SessionAction::MoveTrack {
                track_id: t.track_id,
                after: None,
            },
        )
    });
    if movable {
        ui.weak("Drag a track by its handle to move it.");
    }
    let row_height = ui.spacing().interact_size.y + 4.0;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, session.queue.len(), |ui, rows| {
            for index in rows {
                track_row(ui, screen, session, index, movable, actions);
            }
        });
}

fn track_row(
    ui: &mut egui::Ui,
    screen: &Screen,
    session: &SessionSnapshot,
    index: usize,
    movable: bool,
    actions: &mut Vec<Action>,
) {
    let t: &TrackView = &session.queue[index];
    let current = session.playback.track_id == Some(t.track_id);
    let row = ui.horizontal(|ui| {
        if movable {
            let id = egui::Id::new(("track-drag", t.track_id.0));
            ui.dnd_drag_source(id, index, |ui| {
                ui.label(RichText::new("=").monospace().weak());
            })
            .response
            .on_hover_text("Drag to move");
        }
        let title = if current {
            RichText::new(&t.title).strong().color(ACCENT)
        } else {
            RichText::new(&t.title)
        };
        ui.label(title);
        ui.weak(&t.artist);
        ui.weak(format_ms(t.duration_ms));
        ui.weak(format!("added by {}", name_of(session, &t.added_by)));
        if t.pending {
            ui.colored_label(WARN, "pending")
                .on_hover_text("Waiting for the host to confirm it");
        }
        let remove = SessionAction::RemoveTrack {
            track_id: t.track_id,
        };
        if !t.pending && allowed(screen, session, &remove) && ui.small_button("Remove").clicked() {
            actions.push(Action::Session(remove));
        }
    });
    if let Some(from) = row.response.dnd_release_payload::<usize>() {
        let from = *from;
        if from != index {
            // Dropped on a row: it takes that row's place, moving the others along.
            let after = if from < index {
                Some(session.queue[index].track_id)
            } else {
                index
                    .checked_sub(1)
                    .map(|before| session.queue[before].track_id)
            };
            actions.push(Action::Session(SessionAction::MoveTrack {
                track_id: session.queue[from].track_id,
                after,
            }));
        }
    }
}
