//! `UiPlugin`: the desktop window's screens, drawn with bevy_egui.
//!
//! Drawing is a function of a plain [`Screen`] model that returns the actions the user
//! clicked; the system around it reads the model from `SessionReader` and sends the actions
//! as intents. So the UI has no private path into the state, and panels can be tested
//! without a window.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::egui::{self, Color32, LayerId, RichText, UiBuilder};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass};
use whatnext_core::prelude::*;
use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};

pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(EguiPlugin::default())
            .init_resource::<Forms>()
            .add_systems(Startup, spawn_camera)
            .add_systems(EguiPrimaryContextPass, draw_screen)
            .add_systems(
                Update,
                (window_title, remember_errors.after(SessionSet::Apply)),
            );
    }
}

fn spawn_camera(mut commands: Commands) {
    commands.spawn(Camera2d);
}

/// Text the user is typing, and the last refusal of one of the UI's own intents.
#[derive(Resource, Default, Debug, Clone)]
pub struct Forms {
    pub session_name: String,
    pub track_title: String,
    pub track_artist: String,
    pub track_minutes: String,
    pub invite: String,
    pub relay: String,
    pub last_error: Option<String>,
    pub sent: Vec<IntentId>,
}

/// Everything one frame of the screen shows.
#[derive(Debug, Clone)]
pub struct Screen {
    pub me: LocalPeer,
    pub my_role: Option<Role>,
    pub session: Option<SessionSnapshot>,
    pub invite: SessionInvite,
    pub relays: Vec<RelayEntry>,
}

/// The window title names the session, as desktop apps do.
fn window_title(reader: SessionReader, mut window: Single<&mut Window, With<PrimaryWindow>>) {
    let title = match reader.snapshot() {
        Some(s) => format!("{} — whatnext", s.name),
        None => "whatnext".to_owned(),
    };
    if window.title != title {
        window.title = title;
    }
}

fn remember_errors(mut forms: ResMut<Forms>, mut outcomes: MessageReader<IntentOutcome>) {
    for outcome in outcomes.read() {
        if let Some(i) = forms.sent.iter().position(|id| *id == outcome.id) {
            forms.sent.swap_remove(i);
            forms.last_error = outcome.result.as_ref().err().map(|e| e.message.clone());
        }
    }
}

fn draw_screen(
    mut contexts: EguiContexts,
    reader: SessionReader,
    invite: Res<SessionInvite>,
    relays: Res<Relays>,
    mut forms: ResMut<Forms>,
    mut intents: IntentSender,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let screen = Screen {
        me: reader.local_peer().clone(),
        my_role: reader.my_role(),
        session: reader.snapshot(),
        invite: invite.clone(),
        relays: relays.0.clone(),
    };
    let mut root = egui::Ui::new(
        ctx.clone(),
        "whatnext-root".into(),
        UiBuilder::new()
            .layer_id(LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let actions = draw(&mut root, &screen, &mut forms);
    for action in actions {
        let id = intents.send(action);
        forms.sent.push(id);
    }
    Ok(())
}

/// Draws the whole screen and returns what the user asked for.
pub fn draw(ui: &mut egui::Ui, screen: &Screen, forms: &mut Forms) -> Vec<Action> {
    let mut actions = Vec::new();
    egui::Panel::top("identity").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading("whatnext");
            ui.separator();
            ui.label(&screen.me.display_name);
            ui.weak(short_peer(&screen.me.peer));
        });
    });
    egui::Panel::right("people-and-links")
        .default_size(300.0)
        .show(ui, |ui| {
            if let Some(session) = &screen.session {
                participants(ui, &session.participants);
                ui.separator();
                share(ui, &screen.invite);
                ui.separator();
            }
            relays(ui, &screen.relays, forms, &mut actions);
        });
    let Some(session) = &screen.session else {
        egui::CentralPanel::default().show(ui, |ui| {
            start_session(ui, forms, &mut actions);
            ui.add_space(24.0);
            join_session(ui, forms, &mut actions);
            if let Some(error) = &forms.last_error {
                ui.colored_label(Color32::from_rgb(240, 120, 110), error);
            }
        });
        return actions;
    };
    egui::CentralPanel::default().show(ui, |ui| {
        ui.heading(&session.name);
        if let Some(error) = &forms.last_error {
            ui.colored_label(Color32::from_rgb(240, 120, 110), error);
        }
        now_playing(ui, screen, session, &mut actions);
        ui.separator();
        add_track_form(ui, forms, &mut actions);
        ui.separator();
        queue(ui, session);
    });
    actions
}

fn short_peer(peer: &PeerId) -> String {
    let text = peer.as_str();
    let tail = &text[text.len().saturating_sub(6)..];
    format!("…{tail}")
}

fn start_session(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.add_space(24.0);
    ui.heading("Start a listening party");
    ui.label("Name it, then invite friends (the panel on the right) and add tracks.");
    ui.horizontal(|ui| {
        ui.text_edit_singleline(&mut forms.session_name);
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

fn join_session(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.heading("Join a party");
    ui.label("Paste the invite link, or type the short code the host reads out.");
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut forms.invite).desired_width(360.0));
        let ready = !forms.invite.trim().is_empty();
        if ui.add_enabled(ready, egui::Button::new("Join")).clicked() {
            actions.push(Action::Local(LocalAction::JoinSession {
                invite: forms.invite.trim().to_owned(),
            }));
        }
    });
}

/// The invite link to copy and the short code, large enough to read across a room.
fn share(ui: &mut egui::Ui, invite: &SessionInvite) {
    ui.heading("Invite");
    match &invite.short_code {
        Some(code) => {
            ui.label(RichText::new(code).size(40.0).monospace().strong());
        }
        None => {
            ui.weak("No short code yet (it needs a reserved relay).");
        }
    }
    if let Some(url) = &invite.url {
        if ui.button("Copy invite link").clicked() {
            ui.ctx().copy_text(url.clone());
        }
        ui.add(egui::Label::new(RichText::new(url).small().weak()).wrap());
    }
    if let Some(problem) = &invite.problem {
        ui.colored_label(Color32::from_rgb(230, 190, 90), problem);
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
                RelayStatus::Reserved => Color32::from_rgb(90, 200, 120),
                RelayStatus::Connecting => Color32::from_rgb(230, 190, 90),
                RelayStatus::Failed { .. } => Color32::from_rgb(240, 110, 100),
                RelayStatus::Disconnected => Color32::GRAY,
            };
            let (rect, response) =
                ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().circle_filled(rect.center(), 4.0, colour);
            if let RelayStatus::Failed { reason } = &relay.status {
                response.on_hover_text(reason);
            }
            ui.label(RichText::new(relay.status.as_str()).small());
            ui.label(RichText::new(&relay.addr).small().weak());
        });
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut forms.relay).hint_text("/ip4/…/tcp/4001/p2p/12D3Koo…"),
        );
        if ui
            .add_enabled(!forms.relay.trim().is_empty(), egui::Button::new("Add"))
            .clicked()
        {
            actions.push(Action::Local(LocalAction::AddRelay {
                addr: forms.relay.trim().to_owned(),
            }));
            forms.relay.clear();
        }
    });
}

fn participants(ui: &mut egui::Ui, people: &[ParticipantView]) {
    ui.heading("People");
    for p in people {
        ui.horizontal(|ui| {
            let dot = if p.online {
                Color32::from_rgb(90, 200, 120)
            } else {
                Color32::GRAY
            };
            // Painted, not a glyph: the bundled fonts have no bullet character.
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().circle_filled(rect.center(), 4.0, dot);
            ui.label(&p.display_name);
            ui.weak(p.role.as_str());
            ui.weak(p.connection.as_str());
        });
    }
}

fn format_ms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
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
    match current {
        Some(t) => {
            ui.label(RichText::new(format!("{} — {}", t.title, t.artist)).size(20.0));
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
        }
        None => {
            ui.label("Nothing playing.");
        }
    }
    let owner_name = session
        .participants
        .iter()
        .find(|p| p.peer_id == session.playback_owner)
        .map_or_else(
            || session.playback_owner.to_string(),
            |p| p.display_name.clone(),
        );
    let is_owner = session.playback_owner == screen.me.peer;
    let why = format!("{owner_name} controls playback");
    ui.horizontal(|ui| {
        let (label, action) = if *state == PlayState::Playing {
            ("Pause", SessionAction::Pause)
        } else {
            ("Play", SessionAction::Play)
        };
        if ui
            .add_enabled(is_owner, egui::Button::new(label))
            .on_disabled_hover_text(&why)
            .clicked()
        {
            actions.push(Action::Session(action));
        }
        if ui
            .add_enabled(is_owner, egui::Button::new("Next"))
            .on_disabled_hover_text(&why)
            .clicked()
        {
            actions.push(Action::Session(SessionAction::Next));
        }
        let can_take = !is_owner && screen.my_role.is_some_and(Role::is_host_or_cohost);
        if can_take && ui.button("Take playback").clicked() {
            actions.push(Action::Session(SessionAction::TakePlayback));
        }
        ui.weak(format!("{} · {}", state.as_str(), why));
    });
}

fn add_track_form(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label("Title");
        ui.add(egui::TextEdit::singleline(&mut forms.track_title).desired_width(180.0));
        ui.label("Artist");
        ui.add(egui::TextEdit::singleline(&mut forms.track_artist).desired_width(140.0));
        ui.label("Minutes");
        ui.add(egui::TextEdit::singleline(&mut forms.track_minutes).desired_width(40.0));
        let minutes: Option<f64> = forms
            .track_minutes
            .trim()
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0);
        let ready = !forms.track_title.trim().is_empty() && minutes.is_some();
        if ui
            .add_enabled(ready, egui::Button::new("Add to queue"))
            .clicked()
        {
            actions.push(Action::Session(SessionAction::AddTrack {
                track_id: TrackId::random(&mut rand::thread_rng()),
                title: forms.track_title.trim().to_owned(),
                artist: forms.track_artist.trim().to_owned(),
                duration_ms: (minutes.unwrap_or(0.0) * 60_000.0) as u64,
                path: None,
            }));
            forms.track_title.clear();
        }
    });
}

/// The queue, drawing only the rows on screen so thousands of tracks stay cheap.
fn queue(ui: &mut egui::Ui, session: &SessionSnapshot) {
    ui.heading(format!("Up next · {} tracks", session.queue.len()));
    let name_of = |peer: &PeerId| {
        session
            .participants
            .iter()
            .find(|p| p.peer_id == *peer)
            .map_or_else(|| short_peer(peer), |p| p.display_name.clone())
    };
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 6.0;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, session.queue.len(), |ui, rows| {
            for t in &session.queue[rows] {
                track_row(
                    ui,
                    t,
                    session.playback.track_id == Some(t.track_id),
                    &name_of(&t.added_by),
                );
            }
        });
}

fn track_row(ui: &mut egui::Ui, t: &TrackView, current: bool, added_by: &str) {
    ui.horizontal(|ui| {
        let title = if current {
            RichText::new(&t.title).strong()
        } else {
            RichText::new(&t.title)
        };
        ui.label(title);
        ui.weak(&t.artist);
        ui.weak(format_ms(t.duration_ms));
        ui.weak(format!("added by {added_by}"));
        if t.pending {
            ui.colored_label(Color32::YELLOW, "pending");
        }
    });
}
