//! `UiPlugin`: the desktop window's screens, drawn with bevy_egui.
//!
//! Drawing is a function of a plain [`Screen`] model that returns the actions the user
//! clicked; the system around it reads the model from `SessionReader` and sends the actions
//! as intents, exactly as the control protocol does. So the UI has no private path into the
//! state, and panels are tested without a window (egui_kittest, `tests/`).

mod idle;
pub mod library;
pub mod permitted;
pub mod qr;
pub mod screen;
pub mod theme;
pub mod track_form;
pub mod words;

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::egui::{self, LayerId, UiBuilder};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass};
use whatnext_core::prelude::*;

pub use screen::draw;
pub use words::Problem;

/// Adds the desktop window's screens (egui), drawn from the session's read model. Adds
/// `EguiPlugin` and the [`Forms`] resource; a 2D camera in `Startup`; in
/// `EguiPrimaryContextPass` the theme, then `draw_screen`, which draws [`draw`] and sends
/// the actions it returns as intents (applied in `SessionSet::Apply` of the next frame); in
/// `Update` the window title, and, after `SessionSet::Apply`, the intents' outcomes kept
/// for the forms; in `PreUpdate`, drops the egui input that would redraw an idle window
/// every frame (`idle`).
pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(EguiPlugin::default())
            .init_resource::<Forms>()
            .add_systems(Startup, spawn_camera)
            .add_systems(
                EguiPrimaryContextPass,
                (theme::apply_theme, draw_screen).chain(),
            )
            .add_systems(
                Update,
                (window_title, remember_outcomes.after(SessionSet::Apply)),
            )
            .add_systems(PostUpdate, note_host_changes.after(SessionSet::Events));
        idle::build(app);
    }
}

fn spawn_camera(mut commands: Commands) {
    commands.spawn(Camera2d);
}

/// What the user is typing and where the UI's own intents stand.
#[derive(Resource, Default, Debug, Clone)]
pub struct Forms {
    /// The name being typed in the name prompt.
    pub display_name: String,
    /// The first-run name prompt was answered (or skipped) in this run.
    pub name_prompt_done: bool,
    /// The new party's name.
    pub session_name: String,
    /// The typed track's title.
    pub track_title: String,
    /// The typed track's artist.
    pub track_artist: String,
    /// The typed track's length in minutes.
    pub track_minutes: String,
    /// The invite link or code being typed.
    pub invite: String,
    /// The relay address being typed.
    pub relay: String,
    /// The last refusal of one of the UI's own intents.
    pub problem: Option<Problem>,
    /// Intents sent and not answered yet.
    pub sent: Vec<IntentId>,
    /// The join in progress, if any.
    pub joining: Option<IntentId>,
    /// Ctrl+L asked for the join field.
    pub focus_join: bool,
    /// The join window is open over a session.
    pub join_open: bool,
    /// Which page of the central panel shows.
    pub page: Page,
    /// The library search.
    pub library_query: String,
    /// The folder to import.
    pub import_folder: String,
    /// An invite the app was opened with (the desktop's `whtnxt://` handler), waiting for
    /// the user to confirm it: a link clicked on a web page never joins by itself.
    pub opened_with: Option<String>,
    /// The folder import in progress, if any, and how the last one went.
    pub importing: Option<IntentId>,
    /// How the last import went, in words.
    pub import_result: Option<String>,
    /// The last change of host, in words, shown under the top bar until the instant given.
    pub host_notice: Option<(String, std::time::Instant)>,
}

/// The central panel's pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Page {
    /// The session: now playing, the queue, or start/join when not in one.
    #[default]
    Party,
    /// This device's library.
    Library,
}

/// Everything one frame of the screen shows.
#[derive(Debug, Clone)]
pub struct Screen {
    /// This device.
    pub me: LocalPeer,
    /// This device's role, if in a session.
    pub my_role: Option<Role>,
    /// The session, if in one.
    pub session: Option<SessionSnapshot>,
    /// How to invite people (for the host).
    pub invite: SessionInvite,
    /// The user's relays.
    pub relays: Vec<RelayEntry>,
    /// People knocking.
    pub knocks: Vec<Knock>,
    /// False when the app runs without a network (`--offline`).
    pub network: bool,
    /// Ask for a display name (first run).
    pub ask_name: bool,
    /// A join of ours in progress, and how far it has got.
    pub join: Option<JoinProgress>,
    /// The library tracks matching the search (filled only while the library page shows).
    pub library: Vec<LibraryTrack>,
    /// How many tracks the library holds in all.
    pub library_size: usize,
    /// Why this device cannot save right now (a full disk, say); `None` when it can.
    pub storage_problem: Option<String>,
    /// The phone page's link, while this device serves one (the host).
    pub phone_link: Option<String>,
    /// What this device's sound is doing (for "Listen along").
    pub audio: AudioStatus,
}

impl Screen {
    /// A screen with no session, for this device.
    pub fn new(me: LocalPeer) -> Self {
        Self {
            me,
            my_role: None,
            session: None,
            invite: SessionInvite::default(),
            relays: Vec::new(),
            knocks: Vec::new(),
            network: true,
            ask_name: false,
            join: None,
            library: Vec::new(),
            library_size: 0,
            storage_problem: None,
            phone_link: None,
            audio: AudioStatus::default(),
        }
    }
}

/// The app was opened with an invite link (the desktop's `whtnxt://` handler): the window
/// asks "Join …?" first ([`Forms::opened_with`]); the party screen joins it at once.
#[derive(Resource, Clone, Debug)]
pub struct OpenedWith(pub String);

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

/// How long the sentence about a new host stays under the top bar.
const HOST_NOTICE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// A change of host is said under the top bar for a while: who hosts now, and why.
fn note_host_changes(
    mut forms: ResMut<Forms>,
    local: Res<LocalPeer>,
    reader: SessionReader,
    mut events: MessageReader<SessionEvent>,
) {
    for event in events.read() {
        let SessionEvent::HostChanged {
            host,
            previous,
            why,
        } = event
        else {
            continue;
        };
        let names = reader
            .snapshot()
            .map(|s| s.participants)
            .unwrap_or_default();
        let name = |peer: &PeerId| {
            if *peer == local.peer {
                "you".to_owned()
            } else {
                names
                    .iter()
                    .find(|p| p.peer_id == *peer)
                    .map(|p| p.display_name.clone())
                    .unwrap_or_else(|| words::short_peer(peer))
            }
        };
        let text = words::host_changed(&name(host), &name(previous), *why);
        forms.host_notice = Some((text, std::time::Instant::now() + HOST_NOTICE_FOR));
    }
}

/// Keeps the outcomes of the UI's own intents for the forms, and shows an outbox intent the
/// host refused (its `pending` answer came long before).
fn remember_outcomes(
    mut forms: ResMut<Forms>,
    mut outcomes: MessageReader<IntentOutcome>,
    mut refusals: MessageReader<IntentRefused>,
) {
    for refused in refusals.read() {
        forms.problem = Some(Problem::refused_later(refused));
    }
    for outcome in outcomes.read() {
        if let Some(i) = forms.sent.iter().position(|id| *id == outcome.id) {
            forms.sent.swap_remove(i);
            forms.problem = outcome.result.as_ref().err().map(Problem::from_error);
        }
        if forms.importing.as_ref() == Some(&outcome.id) {
            forms.importing = None;
            forms.import_result = outcome.result.as_ref().ok().map(|applied| match applied {
                Applied::Imported { added, skipped: 0 } => format!("Added {added} tracks."),
                Applied::Imported { added, skipped } => format!(
                    "Added {added} tracks; {skipped} files could not be read (see the log)."
                ),
                _ => "Done.".to_owned(),
            });
        }
        if forms.joining.as_ref() == Some(&outcome.id) {
            forms.joining = None;
            if outcome.result.is_ok() {
                forms.join_open = false;
                forms.invite.clear();
            }
        }
    }
}

fn draw_screen(
    mut contexts: EguiContexts,
    reader: SessionReader,
    invite: Res<SessionInvite>,
    relays: Res<Relays>,
    knocks: Option<Res<Knocks>>,
    network: Option<Res<NetworkPresent>>,
    chosen: Option<Res<DisplayNameChosen>>,
    progress: Option<Res<JoinProgress>>,
    library: Res<Library>,
    (opened, persistence): (Option<Res<OpenedWith>>, Option<Res<Persistence>>),
    (phone, audio): (Option<Res<CompanionLink>>, Option<Res<AudioStatus>>),
    mut commands: Commands,
    mut forms: ResMut<Forms>,
    mut intents: IntentSender,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let join = forms
        .joining
        .as_ref()
        .map(|_| progress.as_deref().copied().unwrap_or_default());
    let screen = Screen {
        me: reader.local_peer().clone(),
        my_role: reader.my_role(),
        session: reader.snapshot(),
        invite: invite.clone(),
        relays: relays.0.clone(),
        knocks: knocks.map(|k| k.0.clone()).unwrap_or_default(),
        network: network.is_some(),
        ask_name: chosen.is_some_and(|c| !c.0) && !forms.name_prompt_done,
        join,
        library: if forms.page == Page::Library {
            library.search(&forms.library_query).cloned().collect()
        } else {
            Vec::new()
        },
        library_size: library.0.len(),
        storage_problem: persistence.and_then(|p| p.problem.clone()),
        phone_link: phone.and_then(|p| p.url.clone()),
        audio: audio.map(|a| *a).unwrap_or_default(),
    };
    let mut root = egui::Ui::new(
        ctx.clone(),
        "whatnext-root".into(),
        UiBuilder::new()
            .layer_id(LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    if let Some(opened) = opened {
        commands.remove_resource::<OpenedWith>();
        forms.opened_with = Some(opened.0.clone());
    }
    let actions = draw(&mut root, &screen, &mut forms);
    for action in actions {
        let is_join = matches!(action, Action::Local(LocalAction::JoinSession { .. }));
        let is_import = matches!(action, Action::Local(LocalAction::ImportFolder { .. }));
        let id = intents.send(action);
        if is_join {
            forms.joining = Some(id.clone());
        }
        if is_import {
            forms.importing = Some(id.clone());
            forms.import_result = None;
        }
        forms.sent.push(id);
    }
    Ok(())
}
