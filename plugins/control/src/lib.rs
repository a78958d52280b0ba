//! `ControlPlugin`: the headless control protocol of CONTROL.md. Requests become the same
//! intents the UI sends, and answers come from the same `SessionReader`; no private paths.

mod events;
pub mod io;
pub mod protocol;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bevy::prelude::*;
use crossbeam_channel::Receiver;
use serde_json::{Value, json};
use whatnext_core::prelude::*;

#[cfg(target_os = "linux")]
pub use io::StdinReader;
pub use io::{ControlInput, ControlIo, ControlOutput, OutputClosed, StdioThreads};
use protocol::{Command, Request, parse_line};

/// Serves the control protocol over a [`ControlIo`]. Adds the private `Channels` and
/// `ControlState` resources; in `Update`, before `SessionSet::Apply`, a system reads request
/// lines, sends their intents and answers queries; in `Last`, after `PersistSet`, systems
/// reply to applied intents (so a reply means it is on disk) and push events (a member's
/// session events go before `PersistSet`: its copy is the host's, see `events.rs`).
pub struct ControlPlugin {
    io: Mutex<Option<ControlIo>>,
}

impl ControlPlugin {
    /// A plugin that reads requests from `io.input` and writes replies to `io.output`.
    pub fn new(io: ControlIo) -> Self {
        Self {
            io: Mutex::new(Some(io)),
        }
    }
}

#[derive(Resource)]
struct Channels {
    input: Receiver<ControlInput>,
    output: ControlOutput,
}

/// How long `session.invite` waits for the relay to confirm the short code.
pub const INVITE_CODE_WAIT_MS: u64 = 5_000;

/// Requests read but not handled yet, and requests waiting for their intent's outcome.
#[derive(Resource, Default)]
struct ControlState {
    backlog: VecDeque<ControlInput>,
    waiting: HashMap<IntentId, (Value, Command)>,
    /// `session.invite` (and `.rotate`) requests waiting for the short code: (id, until, in
    /// wall-clock ms, and a rotated-away link the answer must not carry).
    invites: Vec<(Value, u64, Option<String>)>,
    quitting: bool,
}

impl Plugin for ControlPlugin {
    fn build(&self, app: &mut App) {
        let Some(io) = self.io.lock().ok().and_then(|mut io| io.take()) else {
            tracing::error!("ControlPlugin was added twice; the second copy does nothing");
            return;
        };
        app.insert_resource(Channels {
            input: io.input,
            output: io.output,
        })
        .init_resource::<ControlState>()
        .init_resource::<events::HeldEvents>()
        .add_systems(Update, read_requests.before(SessionSet::Apply))
        .add_systems(Last, events::push_events.before(PersistSet))
        .add_systems(
            Last,
            (
                answer_outcomes,
                answer_invites,
                events::flush_held_events,
                events::push_media_events,
            )
                .chain()
                .after(PersistSet),
        );
    }
}

fn send_line(channels: &Channels, value: Value) {
    // The output closes only when stdout did; nobody is left to read replies.
    let _ = channels.output.send(value.to_string());
}

fn reply_ok(channels: &Channels, id: &Value, result: Value) {
    send_line(channels, json!({"id": id, "ok": true, "result": result}));
}

fn reply_error(channels: &Channels, id: &Value, code: ErrorCode, message: &str) {
    send_line(
        channels,
        json!({"id": id, "ok": false, "error": {"code": code.as_str(), "message": message}}),
    );
}

/// Handles requests in order. Intents are sent in a run and answered once applied; a
/// request after such a run waits for the next frame, so it sees their effects.
fn read_requests(
    channels: Res<Channels>,
    mut state: ResMut<ControlState>,
    reader: SessionReader,
    shared: SharedState,
    mut intents: IntentSender,
    mut exit: MessageWriter<AppExit>,
    wall: Res<WallClock>,
    waker: Option<Res<AppWaker>>,
) {
    let mut sent_intents = false;
    loop {
        if state.quitting {
            return;
        }
        let input = match state.backlog.pop_front() {
            Some(input) => input,
            None => match channels.input.try_recv() {
                Ok(input) => input,
                Err(_) => break,
            },
        };
        let parsed = match &input {
            ControlInput::Closed => Ok(None),
            ControlInput::TooLong => Err((
                Value::Null,
                ErrorCode::TooLarge,
                format!(
                    "a request line is over {} MiB; it was skipped",
                    io::MAX_LINE_BYTES >> 20
                ),
            )),
            ControlInput::Line(line) if line.trim().is_empty() => continue,
            ControlInput::Line(line) => parse_line(line)
                .map(Some)
                .map_err(|bad| (bad.id, bad.error.code(), bad.error.to_string())),
        };
        let request = match parsed {
            Ok(request) => request,
            Err((id, code, message)) => {
                if sent_intents {
                    state.backlog.push_front(input);
                    break;
                }
                reply_error(&channels, &id, code, &message);
                continue;
            }
        };
        let makes_intent = request.as_ref().and_then(|r| intent_for(&r.command));
        if sent_intents && makes_intent.is_none() {
            state.backlog.push_front(input);
            break;
        }
        let Some(Request { id, command }) = request else {
            // Input closed: shut down exactly as `quit` does, minus the reply.
            state.quitting = true;
            exit.write(AppExit::Success);
            return;
        };
        if let Some(action) = makes_intent {
            let intent_id = intents.send(action);
            state.waiting.insert(intent_id, (id, command));
            sent_intents = true;
            continue;
        }
        if command == Command::Quit {
            reply_ok(&channels, &id, json!({}));
            state.quitting = true;
            exit.write(AppExit::Success);
            return;
        }
        // The code is on its way to the relay: answer once it is there (or says why not).
        if command == Command::SessionInvite && reader.in_session() && code_pending(&shared.invite)
        {
            let until = wall.now_ms.saturating_add(INVITE_CODE_WAIT_MS);
            state.invites.push((id, until, None));
            continue;
        }
        match answer_query(&command, &reader, &shared) {
            Ok(result) => reply_ok(&channels, &id, result),
            Err(error) => reply_error(&channels, &id, error.code, &error.message),
        }
    }
    if !state.backlog.is_empty()
        && let Some(waker) = waker
    {
        waker.wake();
    }
}

/// The intent a command sends, if it sends one.
fn intent_for(command: &Command) -> Option<Action> {
    use Command as C;
    let mut rng = rand::thread_rng();
    let local = |a| Some(Action::Local(a));
    let session = |a| Some(Action::Session(a));
    match command.clone() {
        C::SetName { name } => local(LocalAction::SetDisplayName { name }),
        C::RelayAdd { addr } => local(LocalAction::AddRelay { addr }),
        C::RelayRemove { addr } => local(LocalAction::RemoveRelay { addr }),
        C::SessionCreate { name } => local(LocalAction::CreateSession {
            session_id: SessionId::random(&mut rng),
            name,
        }),
        C::SessionJoin { invite } => local(LocalAction::JoinSession { invite }),
        C::SessionLeave => local(LocalAction::LeaveSession),
        // A file is read and named by content first (the media plugin), then added.
        C::TrackAdd {
            title,
            artist,
            duration_ms,
            path: Some(path),
        } => local(LocalAction::AddFile {
            track_id: TrackId::random(&mut rng),
            title,
            artist,
            duration_ms,
            path,
        }),
        C::TrackAdd {
            title,
            artist,
            duration_ms,
            path: None,
        } => session(SessionAction::AddTrack {
            track_id: TrackId::random(&mut rng),
            title,
            artist,
            duration_ms,
            media: None,
        }),
        C::TrackRemove { track_id } => session(SessionAction::RemoveTrack { track_id }),
        C::TrackMove { track_id, after } => session(SessionAction::MoveTrack { track_id, after }),
        C::Play => session(SessionAction::Play),
        C::Pause => session(SessionAction::Pause),
        C::Next => session(SessionAction::Next),
        C::Seek { position_ms } => session(SessionAction::Seek { position_ms }),
        C::Take => session(SessionAction::TakePlayback),
        C::Handoff { peer_id } => session(SessionAction::HandOff { to: peer_id }),
        C::CohostAdd { peer_id } => session(SessionAction::AddCohost { peer: peer_id }),
        C::CohostRemove { peer_id } => session(SessionAction::RemoveCohost { peer: peer_id }),
        C::KnockApprove { peer_id } => session(SessionAction::ApproveKnock { peer: peer_id }),
        C::KnockDeny { peer_id } => session(SessionAction::DenyKnock { peer: peer_id }),
        C::MemberKick { peer_id, ban } => {
            session(SessionAction::RemoveMember { peer: peer_id, ban })
        }
        C::InviteRotate => local(LocalAction::RotateInvite),
        C::SessionEnd => local(LocalAction::EndSession),
        C::HostHandoff { peer_id } => session(SessionAction::TransferHost { to: peer_id }),
        C::LibraryAdd {
            title,
            artist,
            duration_ms,
            path,
        } => local(LocalAction::AddToLibrary {
            track_id: TrackId::random(&mut rng),
            title,
            artist,
            duration_ms,
            path,
        }),
        C::LibraryImport { path } => local(LocalAction::ImportFolder { path }),
        C::ListenSet { on } => local(LocalAction::SetListening { on }),
        C::Identity
        | C::TrackMedia { .. }
        | C::AudioStatus
        | C::LibraryList { .. }
        | C::RelayList
        | C::SessionInvite
        | C::SessionCompanion
        | C::SessionState
        | C::KnockList
        | C::Quit => None,
    }
}

/// Device and session state that queries read besides the session itself.
#[derive(bevy::ecs::system::SystemParam)]
struct SharedState<'w> {
    library: Res<'w, Library>,
    relays: Res<'w, Relays>,
    invite: Res<'w, SessionInvite>,
    knocks: Res<'w, Knocks>,
    companion: Res<'w, CompanionLink>,
    files: Res<'w, LocalFiles>,
    audio: Res<'w, AudioStatus>,
}

/// Answers a command that reads state.
fn answer_query(
    command: &Command,
    reader: &SessionReader,
    shared: &SharedState,
) -> Result<Value, IntentError> {
    match command {
        Command::Identity => {
            let me = reader.local_peer();
            Ok(json!({"peer_id": me.peer, "display_name": me.display_name,
                "fingerprint": me.peer.fingerprint()}))
        }
        Command::RelayList => Ok(Value::Array(
            shared.relays.0.iter().map(relay_json).collect(),
        )),
        Command::SessionState => reader
            .snapshot()
            .map(|s| serde_json::to_value(s).unwrap_or_else(|e| json!({"error": e.to_string()})))
            .ok_or_else(|| IntentError::new(ErrorCode::NotInSession, "not in a session")),
        Command::SessionInvite => {
            if !reader.in_session() {
                return Err(IntentError::new(
                    ErrorCode::NotInSession,
                    "not in a session",
                ));
            }
            invite_json(&shared.invite)
        }
        Command::SessionCompanion => {
            if !reader.in_session() {
                return Err(IntentError::new(
                    ErrorCode::NotInSession,
                    "not in a session",
                ));
            }
            match &shared.companion.url {
                Some(url) => Ok(json!({"url": url})),
                None => Err(IntentError::new(
                    ErrorCode::Unreachable,
                    shared.companion.problem.clone().unwrap_or_else(|| {
                        "no phone page: only the device that hosts the session serves one".into()
                    }),
                )),
            }
        }
        Command::LibraryList { query } => Ok(Value::Array(
            shared
                .library
                .search(query)
                .map(|t| {
                    json!({"track_id": t.id.to_string(), "title": t.title, "artist": t.artist,
                        "duration_ms": t.duration_ms, "path": t.path})
                })
                .collect(),
        )),
        Command::AudioStatus => {
            Ok(serde_json::to_value(*shared.audio).unwrap_or_else(|_| json!({})))
        }
        Command::TrackMedia { track_id } => {
            let track = reader.track(*track_id).ok_or_else(|| {
                IntentError::new(
                    ErrorCode::NotFound,
                    format!("no track {track_id} in the queue"),
                )
            })?;
            let media = track.media.ok_or_else(|| {
                IntentError::new(
                    ErrorCode::NotFound,
                    format!("track {track_id} has no file (it was added without one)"),
                )
            })?;
            let mut answer = serde_json::to_value(&media).unwrap_or_else(|_| json!({}));
            // Paths are local: this device's own verified copy, only when it is here.
            if media.state == "here"
                && let Some(path) = shared.files.path_of(&media.hash)
            {
                answer["path"] = json!(path.to_string_lossy());
            }
            Ok(answer)
        }
        Command::KnockList => Ok(Value::Array(
            shared
                .knocks
                .0
                .iter()
                .filter(|k| k.decision.is_none())
                .map(|k| {
                    json!({"peer_id": k.peer, "display_name": k.display_name,
                        "fingerprint": k.peer.fingerprint()})
                })
                .collect(),
        )),
        other => Err(IntentError::new(
            ErrorCode::Internal,
            format!("{other:?} was routed as a query; this is a bug"),
        )),
    }
}

/// The link can be shared (a relay is reserved) but the relay has not confirmed the code yet.
fn code_pending(invite: &SessionInvite) -> bool {
    invite.url.is_some() && invite.problem.is_none() && invite.short_code.is_none()
}

/// `session.invite`'s result: the link, the short code (or null), and a warning when
/// something keeps friends elsewhere out.
fn invite_json(invite: &SessionInvite) -> Result<Value, IntentError> {
    match &invite.url {
        Some(url) => {
            let mut result = json!({"url": url, "short_code": invite.short_code});
            if let Some(problem) = &invite.problem {
                result["warning"] = json!(problem);
            }
            Ok(result)
        }
        None => Err(IntentError::new(
            ErrorCode::Unreachable,
            invite.problem.clone().unwrap_or_else(|| {
                "no invite yet: add a relay and wait until it is reserved".into()
            }),
        )),
    }
}

/// Answers `session.invite` requests that waited for the short code: once the relay has it,
/// once the invite changes so there will be none (the relay went, the session ended), or
/// after `INVITE_CODE_WAIT_MS` with a warning.
fn answer_invites(
    channels: Res<Channels>,
    mut state: ResMut<ControlState>,
    invite: Res<SessionInvite>,
    wall: Res<WallClock>,
) {
    if state.invites.is_empty() {
        return;
    }
    let now = wall.now_ms;
    // Every request gets its reply, even when the app is about to exit.
    let quitting = state.quitting;
    state.invites.retain(|(id, until, rotated_away)| {
        // A rotation is answered with the new link, once the invite carries it.
        let stale = rotated_away.is_some() && invite.url == *rotated_away;
        let pending = stale || code_pending(&invite);
        if pending && now < *until && !quitting {
            return true;
        }
        let answer = invite_json(&invite).map(|mut result| {
            if pending {
                result["warning"] = json!(format!(
                    "the relay has not confirmed the short code within {} s; the link works, ask again for the code",
                    INVITE_CODE_WAIT_MS / 1000
                ));
            }
            result
        });
        match answer {
            Ok(result) => reply_ok(&channels, id, result),
            Err(error) => reply_error(&channels, id, error.code, &error.message),
        }
        false
    });
}

fn relay_json(relay: &RelayEntry) -> Value {
    let mut value = json!({"addr": relay.addr, "status": relay.status.as_str()});
    if let RelayStatus::Failed { reason } = &relay.status {
        value["error"] = json!(reason);
    }
    value
}

/// The result object of an applied intent.
fn applied_json(applied: &Applied) -> Value {
    match applied {
        Applied::SessionCreated(session_id) | Applied::SessionJoined(session_id) => {
            json!({"session_id": session_id})
        }
        Applied::TrackAdded(track_id) => json!({"track_id": track_id.to_string()}),
        Applied::Done => json!({}),
        Applied::Imported { added, skipped } => json!({"added": added, "skipped": skipped}),
        Applied::Pending(inner) => {
            let mut result = applied_json(inner);
            result["pending"] = json!(true);
            result
        }
    }
}

/// Replies to requests whose intents were applied (and persisted) this frame. When this
/// frame's write failed, storage undid the frame: what was applied is answered `storage`.
fn answer_outcomes(
    channels: Res<Channels>,
    persistence: Res<Persistence>,
    mut state: ResMut<ControlState>,
    invite: Res<SessionInvite>,
    wall: Res<WallClock>,
    mut outcomes: MessageReader<IntentOutcome>,
) {
    for outcome in outcomes.read() {
        let Some((id, command)) = state.waiting.remove(&outcome.id) else {
            continue; // another front end's intent
        };
        // A rotated invite answers with the new link and code, as `session.invite` does.
        if command == Command::InviteRotate && outcome.result.is_ok() {
            let until = wall.now_ms.saturating_add(INVITE_CODE_WAIT_MS);
            state.invites.push((id, until, invite.url.clone()));
            continue;
        }
        match &outcome.result {
            Ok(_) if persistence.failed_this_frame => {
                let message = storage_message(&persistence);
                reply_error(&channels, &id, ErrorCode::Storage, &message);
            }
            Ok(applied) => reply_ok(&channels, &id, applied_json(applied)),
            Err(error) => reply_error(&channels, &id, error.code, &error.message),
        }
    }
}

/// The `storage` error's message: nothing changed, and why.
fn storage_message(persistence: &Persistence) -> String {
    format!(
        "nothing changed: it could not be saved ({})",
        persistence
            .problem
            .as_deref()
            .unwrap_or("the disk refused the write")
    )
}
