//! Parsing request lines into commands. Every way a line can be wrong has its own message.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use whatnext_core::ids::{PeerId, TrackId};

/// A request that could not be turned into a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The request's id, when one could be read.
    pub id: Value,
    pub message: String,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub command: Command,
}

/// Every command of CONTROL.md, with typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Identity,
    SetName {
        name: String,
    },
    RelayAdd {
        addr: String,
    },
    RelayRemove {
        addr: String,
    },
    RelayList,
    SessionCreate {
        name: String,
    },
    SessionInvite,
    SessionJoin {
        invite: String,
    },
    SessionLeave,
    SessionState,
    TrackAdd {
        title: String,
        artist: String,
        duration_ms: u64,
        path: Option<String>,
    },
    TrackRemove {
        track_id: TrackId,
    },
    TrackMove {
        track_id: TrackId,
        after: Option<TrackId>,
    },
    Play,
    Pause,
    Next,
    Seek {
        position_ms: u64,
    },
    Take,
    Handoff {
        peer_id: PeerId,
    },
    CohostAdd {
        peer_id: PeerId,
    },
    CohostRemove {
        peer_id: PeerId,
    },
    KnockList,
    KnockApprove {
        peer_id: PeerId,
    },
    KnockDeny {
        peer_id: PeerId,
    },
    LibraryAdd {
        title: String,
        artist: String,
        duration_ms: u64,
        path: Option<String>,
    },
    LibraryImport {
        path: String,
    },
    LibraryList {
        query: String,
    },
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
    "library.add",
    "library.import",
    "library.list",
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

/// Parses one input line.
pub fn parse_line(line: &str) -> Result<Request, BadRequest> {
    let value: Value = serde_json::from_str(line).map_err(|e| BadRequest {
        id: Value::Null,
        message: format!("the line is not JSON: {e}"),
    })?;
    let Value::Object(mut object) = value else {
        return Err(BadRequest {
            id: Value::Null,
            message: "the line must be a JSON object with `cmd`".into(),
        });
    };
    let id = object.remove("id").unwrap_or(Value::Null);
    if !(id.is_null() || id.is_number() || id.is_string()) {
        return Err(BadRequest {
            id: Value::Null,
            message: "`id` must be a number or a string".into(),
        });
    }
    let fail = |message: String| BadRequest {
        id: id.clone(),
        message,
    };
    let cmd = match object.remove("cmd") {
        Some(Value::String(cmd)) => cmd,
        Some(_) => return Err(fail("`cmd` must be a string".into())),
        None => return Err(fail("the request has no `cmd`".into())),
    };
    let args = object.remove("args").unwrap_or(Value::Null);
    let command = command(&cmd, args).map_err(fail)?;
    Ok(Request { id, command })
}

fn args<T: DeserializeOwned>(cmd: &str, args: Value) -> Result<T, String> {
    // Commands with arguments need an object; a missing `args` reads as an empty one.
    let args = if args.is_null() {
        Value::Object(Default::default())
    } else {
        args
    };
    serde_json::from_value(args).map_err(|e| format!("invalid arguments for {cmd}: {e}"))
}

fn track_id(cmd: &str, text: &str) -> Result<TrackId, String> {
    text.parse()
        .map_err(|e| format!("invalid arguments for {cmd}: {e}"))
}

fn peer_id(cmd: &str, text: String) -> Result<PeerId, String> {
    if text.trim().is_empty() {
        return Err(format!("invalid arguments for {cmd}: `peer_id` is empty"));
    }
    Ok(PeerId::new(text.trim()))
}

fn command(cmd: &str, raw: Value) -> Result<Command, String> {
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
        "quit" => C::Quit,
        other => {
            return Err(format!(
                "unknown command `{other}`; the commands are: {}",
                COMMANDS.join(", ")
            ));
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
        let error = parse_line(line).expect_err("bad");
        assert!(error.message.contains(expected), "{}", error.message);
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
                "path": "/music", "query": "q"
            });
            let line = serde_json::json!({"id": 1, "cmd": cmd, "args": args}).to_string();
            assert!(parse_line(&line).is_ok(), "{cmd}");
        }
    }
}
