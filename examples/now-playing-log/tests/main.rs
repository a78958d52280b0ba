//! The extension in a headless app: whatnext's session plugin, the extension, and intents as
//! a user would send them. It receives the events and writes the log.

use whatnext::prelude::*;

fn intent(counter: u64, action: Action) -> Intent {
    Intent {
        id: IntentId {
            author: PeerId::new("me"),
            counter,
        },
        action,
    }
}

#[test]
fn the_extension_logs_each_track_as_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("now-playing.log");
    let mut app = App::new();
    app.add_plugins(SessionPlugin)
        .add_plugins(whatnext_now_playing_log::NowPlayingLog { path: log.clone() });
    app.insert_resource(LocalPeer {
        peer: PeerId::new("me"),
        display_name: "Hana".into(),
    });
    app.init_resource::<Relays>();
    app.update();
    let actions = [
        Action::Local(LocalAction::CreateSession {
            session_id: SessionId("S".into()),
            name: "Test".into(),
        }),
        Action::Session(SessionAction::AddTrack {
            track_id: TrackId(1),
            title: "Harbour Lights".into(),
            artist: "The Quiet Tides".into(),
            duration_ms: 60_000,
            media: None,
        }),
        Action::Session(SessionAction::AddTrack {
            track_id: TrackId(2),
            title: "Night Bus Home".into(),
            artist: "The Late Shift".into(),
            duration_ms: 60_000,
            media: None,
        }),
        Action::Session(SessionAction::Play),
    ];
    for (i, action) in actions.into_iter().enumerate() {
        app.world_mut().write_message(intent(i as u64 + 1, action));
        app.update();
    }
    app.world_mut()
        .write_message(intent(10, Action::Session(SessionAction::Next)));
    app.update();
    app.update();
    let text = std::fs::read_to_string(&log).expect("the log was written");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0][1..], ["Harbour Lights", "The Quiet Tides", "Hana"]);
    assert_eq!(lines[1][1..], ["Night Bus Home", "The Late Shift", "Hana"]);
}
