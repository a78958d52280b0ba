//! Parsing request lines into commands. Every way a line can be wrong has its own message.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use whatnext_core::ids::{BadTrackId, PeerId, TrackId};
use whatnext_core::intent::ErrorCode;

/// A request that could not be turned into a command.
#[derive(Debug)]
pub struct BadRequest {
    /// The request's id, when one could be read.
    pub id: Value,
    /// What is wrong with the line; its Display text is the reply's `message`.
    pub error: RequestError,
}

/// Why a request line is not a command. The Display texts are the `message` of the
/// protocol's error replies, so clients and tests may match on them.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The line does not parse as JSON.
    #[error("the line is not JSON: {source}")]
    NotJson {
        /// serde_json's error, with the line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The line is JSON, but not an object.
    #[error("the line must be a JSON object with `cmd`")]
    NotAnObject,
    /// `id` is an array, an object or a boolean.
    #[error("`id` must be a number or a string")]
    BadId,
    /// `cmd` is there but is not a string.
    #[error("`cmd` must be a string")]
    CmdNotAString,
    /// The object has no `cmd`.
    #[error("the request has no `cmd`")]
    NoCmd,
    /// `cmd` names no command of CONTROL.md.
    #[error("unknown command `{cmd}`; the commands are: {}", COMMANDS.join(", "))]
    UnknownCommand {
        /// The name that was sent.
        cmd: String,
    },
    /// `args` does not have the fields, or the field types, the command takes.
    #[error("invalid arguments for {cmd}: {source}")]
    InvalidArguments {
        /// The command.
        cmd: String,
        /// serde_json's error, naming the field.
        #[source]
        source: serde_json::Error,
    },
    /// A `track_id` or `after` argument is not a track id.
    #[error("invalid arguments for {cmd}: {source}")]
    InvalidTrackId {
        /// The command.
        cmd: String,
        /// The text that is not a track id.
        #[source]
        source: BadTrackId,
    },
    /// The `peer_id` argument is empty or blank.
    #[error("invalid arguments for {cmd}: `peer_id` is empty")]
    EmptyPeerId {
        /// The command.
        cmd: String,
    },
}

impl RequestError {
    /// The protocol's error code for the reply: always `bad_request`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BadRequest
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's id for the request, echoed in the reply; `null` when it sent none.
    pub id: Value,
    /// What the request asks for.
    pub command: Command,
}

/// Every command of CONTROL.md, with typed arguments. Each variant's doc names its command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `identity`: this device's peer id and display name.
    Identity,
    /// `identity.set_name`: changes the display name.
    SetName {
        /// The new display name.
        name: String,
    },
    /// `relay.add`: adds a relay to use.
    RelayAdd {
        /// The relay's multiaddress.
        addr: String,
    },
    /// `relay.remove`: stops using a relay.
    RelayRemove {
        /// The relay's multiaddress.
        addr: String,
    },
    /// `relay.list`: the relays and their status.
    RelayList,
    /// `session.create`: starts a session hosted here.
    SessionCreate {
        /// The session's name.
        name: String,
    },
    /// `session.invite`: the current session's invite link and short code.
    SessionInvite,
    /// `session.companion`: the phone page's link, with its token.
    SessionCompanion,
    /// `session.join`: joins a session by invite link or short code.
    SessionJoin {
        /// The invite link or short code.
        invite: String,
    },
    /// `session.leave`: leaves the current session.
    SessionLeave,
    /// `session.state`: the whole session snapshot.
    SessionState,
    /// `track.add`: adds a track to the queue.
    TrackAdd {
        /// The track's title.
        title: String,
        /// The track's artist.
        artist: String,
        /// The track's length.
        duration_ms: u64,
        /// The local file, when the track has one.
        path: Option<String>,
    },
    /// `track.remove`: removes a track from the queue.
    TrackRemove {
        /// The track to remove.
        track_id: TrackId,
    },
    /// `track.move`: moves a track in the queue.
    TrackMove {
        /// The track to move.
        track_id: TrackId,
        /// The track it goes after; `None` puts it first.
        after: Option<TrackId>,
    },
    /// `playback.play`: plays (or resumes) the current track.
    Play,
    /// `playback.pause`: pauses.
    Pause,
    /// `playback.next`: skips to the next track.
    Next,
    /// `playback.seek`: moves within the current track.
    Seek {
        /// Where to go, from the track's start.
        position_ms: u64,
    },
    /// `playback.take`: makes this device the playback owner.
    Take,
    /// `playback.handoff`: makes another participant the playback owner.
    Handoff {
        /// The new owner.
        peer_id: PeerId,
    },
    /// `cohost.add`: makes a participant a cohost.
    CohostAdd {
        /// The participant.
        peer_id: PeerId,
    },
    /// `cohost.remove`: makes a cohost a plain guest again.
    CohostRemove {
        /// The cohost.
        peer_id: PeerId,
    },
    /// `knock.list`: the guests waiting to be let in.
    KnockList,
    /// `knock.approve`: lets a waiting guest in.
    KnockApprove {
        /// The guest.
        peer_id: PeerId,
    },
    /// `knock.deny`: turns a waiting guest away.
    KnockDeny {
        /// The guest.
        peer_id: PeerId,
    },
    /// `member.kick`: removes a participant; `ban` also refuses its joins from now on.
    MemberKick {
        /// The participant.
        peer_id: PeerId,
        /// Refuse its joins for the rest of the session.
        ban: bool,
    },
    /// `session.invite.rotate`: a new invite secret and short code; the old ones stop working.
    InviteRotate,
    /// `session.end`: ends the party for everyone (host only).
    SessionEnd,
    /// `host.handoff`: makes a co-host the host (host only).
    HostHandoff {
        /// The co-host.
        peer_id: PeerId,
    },
    /// `library.add`: adds one track to this device's library.
    LibraryAdd {
        /// The track's title.
        title: String,
        /// The track's artist.
        artist: String,
        /// The track's length.
        duration_ms: u64,
        /// The local file, when the track has one.
        path: Option<String>,
    },
    /// `library.import`: imports the audio files of a folder into the library.
    LibraryImport {
        /// The folder.
        path: String,
    },
    /// `library.list`: the library tracks matching a search.
    LibraryList {
        /// Words every listed track contains; empty lists everything.
        query: String,
    },
    /// `track.media`: where a queued track's file stands on this device.
    TrackMedia {
        /// The track.
        track_id: TrackId,
    },
    /// `listen.set`: switches "Listen along" on or off.
    ListenSet {
        /// On or off.
        on: bool,
    },
    /// `audio.status`: what this device's sound is doing.
    AudioStatus,
    /// `quit`: replies, then ends the app.
    Quit,
}

/// The command names, for the error that lists them.
pub const COMMANDS: &[&str] = &[
    "identity",
    "identity.set_name",
    "relay.add",
    "relay.remove",
    "relay.list",
    "session.create",
    "session.invite",
    "session.join",
    "session.leave",
    "session.state",
    "track.add",
    "track.remove",
    "track.move",
    "playback.play",
    "playback.pause",
    "playback.next",
    "playback.seek",
    "playback.take",
    "playback.handoff",
    "cohost.add",
    "cohost.remove",
    "knock.list",
    "knock.approve",
    "knock.deny",
    "member.kick",
    "session.invite.rotate",
    "session.end",
    "host.handoff",
    "session.companion",
    "library.add",
    "library.import",
    "library.list",
    "track.media",
    "listen.set",
    "audio.status",
    "quit",
];

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}
#[derive(Deserialize)]
struct AddrArgs {
    addr: String,
}
#[derive(Deserialize)]
struct InviteArgs {
    invite: String,
}
#[derive(Deserialize)]
struct TrackAddArgs {
    title: String,
    artist: String,
    duration_ms: u64,
    path: Option<String>,
}
#[derive(Deserialize)]
struct OnArgs {
    on: bool,
}
#[derive(Deserialize)]
struct TrackIdArgs {
    track_id: String,
}
#[derive(Deserialize)]
struct TrackMoveArgs {
    track_id: String,
    after: Option<String>,
}
#[derive(Deserialize)]
struct PathArgs {
    path: String,
}
#[derive(Deserialize)]
struct QueryArgs {
    #[serde(default)]
    query: String,
}
#[derive(Deserialize)]
struct SeekArgs {
    position_ms: u64,
}
#[derive(Deserialize)]
struct PeerArgs {
    peer_id: String,
}

#[derive(Deserialize)]
struct KickArgs {
    peer_id: String,
    #[serde(default)]
    ban: bool,
}

/// Parses one input line.
pub fn parse_line(line: &str) -> Result<Request, BadRequest> {
    let without_id = |error| BadRequest {
        id: Value::Null,
        error,
    };
    let value: Value = serde_json::from_str(line)
        .map_err(|source| without_id(RequestError::NotJson { source }))?;
    let Value::Object(mut object) = value else {
        return Err(without_id(RequestError::NotAnObject));
    };
    let id = object.remove("id").unwrap_or(Value::Null);
    if !(id.is_null() || id.is_number() || id.is_string()) {
        return Err(without_id(RequestError::BadId));
    }
    let fail = |error| BadRequest {
        id: id.clone(),
        error,
    };
    let cmd = match object.remove("cmd") {
        Some(Value::String(cmd)) => cmd,
        Some(_) => return Err(fail(RequestError::CmdNotAString)),
        None => return Err(fail(RequestError::NoCmd)),
    };
    let args = object.remove("args").unwrap_or(Value::Null);
    let command = command(&cmd, args).map_err(fail)?;
    Ok(Request { id, command })
}

fn args<T: DeserializeOwned>(cmd: &str, args: Value) -> Result<T, RequestError> {
    // Commands with arguments need an object; a missing `args` reads as an empty one.
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args
    };
    serde_json::from_value(args).map_err(|source| RequestError::InvalidArguments {
        cmd: cmd.to_owned(),
        source,
    })
}

fn track_id(cmd: &str, text: &str) -> Result<TrackId, RequestError> {
    text.parse().map_err(|source| RequestError::InvalidTrackId {
        cmd: cmd.to_owned(),
        source,
    })
}

fn peer_id(cmd: &str, text: String) -> Result<PeerId, RequestError> {
    if text.trim().is_empty() {
        return Err(RequestError::EmptyPeerId {
            cmd: cmd.to_owned(),
        });
    }
    Ok(PeerId::new(text.trim()))
}

/// The command `cmd` names, with its arguments read from `raw`.
fn command(cmd: &str, raw: Value) -> Result<Command, RequestError> {
    use Command as C;
    Ok(match cmd {
        "identity" => C::Identity,
        "identity.set_name" => C::SetName {
            name: args::<NameArgs>(cmd, raw)?.name,
        },
        "relay.add" => C::RelayAdd {
            addr: args::<AddrArgs>(cmd, raw)?.addr,
        },
        "relay.remove" => C::RelayRemove {
            addr: args::<AddrArgs>(cmd, raw)?.addr,
        },
        "relay.list" => C::RelayList,
        "session.create" => C::SessionCreate {
            name: args::<NameArgs>(cmd, raw)?.name,
        },
        "session.invite" => C::SessionInvite,
        "session.join" => C::SessionJoin {
            invite: args::<InviteArgs>(cmd, raw)?.invite,
        },
        "session.leave" => C::SessionLeave,
        "session.state" => C::SessionState,
        "track.add" => {
            let a: TrackAddArgs = args(cmd, raw)?;
            C::TrackAdd {
                title: a.title,
                artist: a.artist,
                duration_ms: a.duration_ms,
                path: a.path,
            }
        }
        "library.add" => {
            let a: TrackAddArgs = args(cmd, raw)?;
            C::LibraryAdd {
                title: a.title,
                artist: a.artist,
                duration_ms: a.duration_ms,
                path: a.path,
            }
        }
        "library.import" => C::LibraryImport {
            path: args::<PathArgs>(cmd, raw)?.path,
        },
        "library.list" => C::LibraryList {
            query: args::<QueryArgs>(cmd, raw)?.query,
        },
        "listen.set" => C::ListenSet {
            on: args::<OnArgs>(cmd, raw)?.on,
        },
        "audio.status" => C::AudioStatus,
        "track.media" => C::TrackMedia {
            track_id: track_id(cmd, &args::<TrackIdArgs>(cmd, raw)?.track_id)?,
        },
        "track.remove" => C::TrackRemove {
            track_id: track_id(cmd, &args::<TrackIdArgs>(cmd, raw)?.track_id)?,
        },
        "track.move" => {
            let a: TrackMoveArgs = args(cmd, raw)?;
            C::TrackMove {
                track_id: track_id(cmd, &a.track_id)?,
                after: a.after.as_deref().map(|t| track_id(cmd, t)).transpose()?,
            }
        }
        "playback.play" => C::Play,
        "playback.pause" => C::Pause,
        "playback.next" => C::Next,
        "playback.seek" => C::Seek {
            position_ms: args::<SeekArgs>(cmd, raw)?.position_ms,
        },
        "playback.take" => C::Take,
        "playback.handoff" => C::Handoff {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "cohost.add" => C::CohostAdd {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "cohost.remove" => C::CohostRemove {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "knock.list" => C::KnockList,
        "knock.approve" => C::KnockApprove {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "knock.deny" => C::KnockDeny {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "member.kick" => {
            let a: KickArgs = args(cmd, raw)?;
            C::MemberKick {
                peer_id: peer_id(cmd, a.peer_id)?,
                ban: a.ban,
            }
        }
        "session.invite.rotate" => C::InviteRotate,
        "session.end" => C::SessionEnd,
        "host.handoff" => C::HostHandoff {
            peer_id: peer_id(cmd, args::<PeerArgs>(cmd, raw)?.peer_id)?,
        },
        "session.companion" => C::SessionCompanion,
        "quit" => C::Quit,
        other => {
            return Err(RequestError::UnknownCommand {
                cmd: other.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::not_json("{oops", "not JSON")]
    #[case::not_an_object("[1,2]", "JSON object")]
    #[case::no_cmd(r#"{"id": 1}"#, "no `cmd`")]
    #[case::bad_id(
        r#"{"id": [1], "cmd": "identity"}"#,
        "`id` must be a number or a string"
    )]
    #[case::cmd_not_a_string(r#"{"id": 1, "cmd": 5}"#, "`cmd` must be a string")]
    #[case::empty_peer(
        r#"{"id": 1, "cmd": "cohost.add", "args": {"peer_id": " "}}"#,
        "invalid arguments for cohost.add: `peer_id` is empty"
    )]
    #[case::unknown(r#"{"id": 1, "cmd": "dance"}"#, "unknown command `dance`")]
    #[case::wrong_type(r#"{"id": 1, "cmd": "track.add", "args": {"title": "t", "artist": "a", "duration_ms": "long"}}"#, "invalid arguments for track.add")]
    #[case::missing_arg(r#"{"id": 1, "cmd": "session.create"}"#, "missing field `name`")]
    #[case::bad_track_id(
        r#"{"id": 1, "cmd": "track.remove", "args": {"track_id": "xyz"}}"#,
        "not a track id"
    )]
    #[case::negative(
        r#"{"id": 1, "cmd": "playback.seek", "args": {"position_ms": -5}}"#,
        "invalid arguments for playback.seek"
    )]
    fn bad_lines_say_what_is_wrong(#[case] line: &str, #[case] expected: &str) {
        let error = parse_line(line).expect_err("bad").error;
        assert_eq!(error.code(), ErrorCode::BadRequest);
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn the_id_is_kept_when_it_could_be_read() {
        assert_eq!(
            parse_line(r#"{"id": "a", "cmd": "nope"}"#)
                .expect_err("bad")
                .id,
            Value::from("a")
        );
        assert_eq!(parse_line("nope").expect_err("bad").id, Value::Null);
    }

    #[test]
    fn args_may_be_left_out_when_a_command_takes_none() {
        let r = parse_line(r#"{"id": 7, "cmd": "session.state"}"#).expect("ok");
        assert_eq!(r.command, Command::SessionState);
        assert_eq!(r.id, Value::from(7));
    }

    #[test]
    fn every_listed_command_parses_with_good_args() {
        let tid = "00000000000000ff";
        for cmd in COMMANDS {
            let args = serde_json::json!({
                "name": "n", "addr": "a", "invite": "i", "title": "t", "artist": "a",
                "duration_ms": 1, "track_id": tid, "after": tid, "position_ms": 1, "peer_id": "p",
                "path": "/music", "query": "q", "on": true
            });
            let line = serde_json::json!({"id": 1, "cmd": cmd, "args": args}).to_string();
            assert!(parse_line(&line).is_ok(), "{cmd}");
        }
    }
}
