//! The headless control protocol, end to end.

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::*;

fn add(app: &mut Headless, title: &str) -> String {
    let result = app.ok(
        "track.add",
        json!({"title": title, "artist": "Artist", "duration_ms": 200000}),
    );
    result["track_id"].as_str().expect("track_id").to_owned()
}

#[test]
fn a_session_and_its_queue_survive_a_restart_with_the_same_peer_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peer, session_id);
    {
        let mut app = Headless::start(dir.path());
        let identity = app.ok("identity", json!(null));
        peer = identity["peer_id"].as_str().expect("peer").to_owned();
        assert!(peer.starts_with("12D3Koo"), "{peer}");
        session_id = app.ok("session.create", json!({"name": "Friday"}))["session_id"].clone();
        for title in ["Windowlicker", "Xtal", "Avril 14th"] {
            add(&mut app, title);
        }
        let state = app.ok("session.state", json!(null));
        assert_eq!(titles(&state), ["Windowlicker", "Xtal", "Avril 14th"]);
        assert_eq!(state["host"], json!(peer));
        assert_eq!(state["playback_owner"], json!(peer));
        assert_eq!(state["participants"][0]["role"], json!("host"));
        assert_eq!(state["participants"][0]["connection"], json!("self"));
        assert_eq!(state["queue"][0]["added_by"], json!(peer));
        assert_eq!(state["queue"][0]["pending"], json!(false));
        assert_eq!(app.ok("quit", json!(null)), json!({}));
        assert!(app.wait_exit().success());
    }
    let mut app = Headless::start(dir.path());
    assert_eq!(app.ok("identity", json!(null))["peer_id"], json!(peer));
    let state = app.ok("session.state", json!(null));
    assert_eq!(state["session_id"], session_id);
    assert_eq!(state["name"], json!("Friday"));
    assert_eq!(titles(&state), ["Windowlicker", "Xtal", "Avril 14th"]);
}

#[test]
fn piped_requests_are_answered_in_order_and_see_each_others_effects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(binary())
        .args(["--headless", "--offline", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let input = [
        r#"{"id": 1, "cmd": "identity"}"#,
        r#"{"id": 2, "cmd": "session.create", "args": {"name": "Pipe"}}"#,
        r#"{"id": 3, "cmd": "track.add", "args": {"title": "A", "artist": "x", "duration_ms": 1000}}"#,
        r#"{"id": 4, "cmd": "track.add", "args": {"title": "B", "artist": "x", "duration_ms": 1000}}"#,
        r#"{"id": 5, "cmd": "track.add", "args": {"title": "C", "artist": "x", "duration_ms": 1000}}"#,
        r#"{"id": 6, "cmd": "session.state"}"#,
    ]
    .join("\n");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{input}").expect("write");
        // Dropping stdin closes it: the app must answer everything, then exit cleanly.
    }
    let output = child.wait_with_output().expect("run");
    assert!(output.status.success(), "exit {:?}", output.status);
    let replies: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|v: &Value| v.get("id").is_some())
        .collect();
    let ids: Vec<u64> = replies
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert!(
        replies.iter().all(|r| r["ok"] == json!(true)),
        "{replies:?}"
    );
    assert_eq!(titles(&replies[5]["result"]), ["A", "B", "C"]);
}

/// Replies are written straight from the app's loop while stdout has room and by a writer
/// thread once it is full; a script that reads slowly must still get every reply, in order.
#[test]
fn replies_stay_in_order_when_the_reader_falls_behind() {
    const REQUESTS: u64 = 4_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(binary())
        .args(["--headless", "--offline", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let mut stdin = child.stdin.take().expect("stdin");
    // Requests keep coming while the replies (about 600 KB, ten pipes' worth) back up.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for batch in 0..REQUESTS / 100 {
            let lines: String = (batch * 100 + 1..=batch * 100 + 100)
                .map(|id| format!("{{\"id\": {id}, \"cmd\": \"identity\"}}\n"))
                .collect();
            stdin.write_all(lines.as_bytes()).expect("write requests");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Dropping stdin closes it: the app answers everything, then exits.
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::with_capacity(1024, stdout);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut ids = Vec::new();
    let mut line = String::new();
    loop {
        use std::io::BufRead;
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        let reply: Value = serde_json::from_str(&line).expect("JSON line");
        assert_eq!(reply["ok"], json!(true), "{reply}");
        ids.push(reply["id"].as_u64().expect("id"));
        // Slow down now and then, so the pipe fills up and drains again many times.
        if ids.len() % 50 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    writer.join().expect("writer");
    assert!(wait_for_exit(&mut child, "the app").success());
    let expected: Vec<u64> = (1..=REQUESTS).collect();
    let first_wrong = ids.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        ids == expected,
        "{} replies, first out of place at {first_wrong:?}",
        ids.len()
    );
}

#[test]
fn queue_moves_playback_and_cohost_rules_work_through_the_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Headless::start(dir.path());
    app.ok("session.create", json!({"name": "Moves"}));
    let a = add(&mut app, "A");
    let b = add(&mut app, "B");
    let c = add(&mut app, "C");
    app.ok("track.move", json!({"track_id": c}));
    app.ok("track.move", json!({"track_id": a, "after": b}));
    assert_eq!(
        titles(&app.ok("session.state", json!(null))),
        ["C", "B", "A"]
    );
    app.ok("track.remove", json!({"track_id": b}));
    app.ok("playback.play", json!(null));
    let state = app.ok("session.state", json!(null));
    assert_eq!(state["playback"]["state"], json!("playing"));
    assert_eq!(state["playback"]["track_id"], json!(c));
    app.ok("playback.seek", json!({"position_ms": 30000}));
    app.ok("playback.pause", json!(null));
    let state = app.ok("session.state", json!(null));
    assert_eq!(state["playback"]["state"], json!("paused"));
    let position = state["playback"]["position_ms"].as_u64().expect("position");
    assert!((30000..31000).contains(&position), "{position}");
    app.ok("playback.next", json!(null));
    assert_eq!(
        app.ok("session.state", json!(null))["playback"]["track_id"],
        json!(a)
    );
    // Nobody else is in the session yet, so there is nobody to promote or hand off to.
    assert_eq!(
        app.error_code("cohost.add", json!({"peer_id": "12D3KooWnobody"})),
        "not_found"
    );
    assert_eq!(
        app.error_code("playback.handoff", json!({"peer_id": "12D3KooWnobody"})),
        "not_permitted"
    );
    app.ok("playback.take", json!(null));
    let names: Vec<&str> = app
        .events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for expected in [
        "session.joined",
        "track.added",
        "queue.changed",
        "track.removed",
        "playback.changed",
    ] {
        assert!(
            names.contains(&expected),
            "no {expected} event in {names:?}"
        );
    }
}

#[test]
fn bad_input_gets_clear_errors_and_the_app_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Headless::start(dir.path());
    app.send_line("this is not json");
    let reply = app.reply_to(&Value::Null);
    assert_eq!(reply["error"]["code"], json!("bad_request"));
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("not JSON")
    );
    // A line far over any request (an endless one, say) is skipped with a clear error.
    app.send_line(&format!(
        r#"{{"id": "big", "cmd": "identity", "args": "{}"}}"#,
        "x".repeat(2 << 20)
    ));
    let reply = app.reply_to(&Value::Null);
    assert_eq!(reply["error"]["code"], json!("too_large"), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("over 1 MiB"),
        "{reply}"
    );
    app.send_line(r#"{"id": "x"}"#);
    assert!(
        app.reply_to(&json!("x"))["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("no `cmd`")
    );
    assert_eq!(app.error_code("dance", json!(null)), "bad_request");
    assert_eq!(
        app.error_code(
            "track.add",
            json!({"title": 5, "artist": "a", "duration_ms": 1})
        ),
        "bad_request"
    );
    assert_eq!(
        app.error_code("session.state", json!(null)),
        "not_in_session"
    );
    assert_eq!(
        app.error_code(
            "track.add",
            json!({"title": "t", "artist": "a", "duration_ms": 1})
        ),
        "not_in_session"
    );
    app.ok("session.create", json!({"name": "Errors"}));
    assert_eq!(
        app.error_code("session.create", json!({"name": "Again"})),
        "bad_request"
    );
    assert_eq!(
        app.error_code("track.remove", json!({"track_id": "00000000deadbeef"})),
        "not_found"
    );
    assert_eq!(
        app.error_code("track.remove", json!({"track_id": "nonsense"})),
        "bad_request"
    );
    assert_eq!(
        app.error_code("relay.add", json!({"addr": "/ip4/127.0.0.1/tcp/4001"})),
        "bad_request"
    );
    assert_eq!(
        app.error_code("relay.add", json!({"addr": "not a multiaddr"})),
        "bad_request"
    );
    assert_eq!(
        app.error_code("relay.remove", json!({"addr": "/ip4/1.1.1.1/tcp/1/p2p/x"})),
        "not_found"
    );
    assert_eq!(
        app.error_code("session.join", json!({"invite": "ABCDEF"})),
        "unreachable"
    );
    assert_eq!(app.error_code("session.invite", json!(null)), "unreachable");
    // Still alive and answering.
    assert_eq!(
        app.ok("session.state", json!(null))["name"],
        json!("Errors")
    );
}

#[test]
fn relays_are_stored_and_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    {
        let mut app = Headless::start(dir.path());
        app.ok("relay.add", json!({"addr": relay}));
        app.ok("identity.set_name", json!({"name": "Rae"}));
        app.ok("quit", json!(null));
        assert!(app.wait_exit().success());
    }
    let mut app = Headless::start(dir.path());
    assert_eq!(
        app.ok("relay.list", json!(null)),
        json!([{"addr": relay, "status": "disconnected"}])
    );
    assert_eq!(
        app.ok("identity", json!(null))["display_name"],
        json!("Rae")
    );
    app.ok("relay.remove", json!({"addr": relay}));
    assert_eq!(app.ok("relay.list", json!(null)), json!([]));
}

#[test]
fn closing_stdin_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Headless::start(dir.path());
    app.ok("identity", json!(null));
    app.close_stdin();
    assert!(app.wait_exit().success());
}

#[test]
fn a_corrupt_key_file_stops_the_app_with_a_clear_error_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("identity.key"), "garbage").expect("write");
    let output = Command::new(binary())
        .args(["--headless", "--offline", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("identity key file") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("identity.key")).expect("read"),
        "garbage"
    );
}

#[test]
fn a_database_from_a_newer_version_stops_the_app_and_is_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut app = Headless::start(dir.path());
        app.ok("session.create", json!({"name": "Future"}));
        app.ok("quit", json!(null));
        assert!(app.wait_exit().success());
    }
    let db_path = dir.path().join("whatnext.redb");
    {
        let db = redb::Database::create(&db_path).expect("open");
        let txn = db.begin_write().expect("txn");
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta)
            .expect("meta")
            .insert("schema_version", 999)
            .expect("bump");
        txn.commit().expect("commit");
    }
    let before = std::fs::read(&db_path).expect("read");
    let output = Command::new(binary())
        .args(["--headless", "--offline", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("newer whatnext") && stderr.contains("999"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&db_path).expect("read"), before);
}

/// Kills the process with SIGKILL while a writer thread streams track adds at it as fast as
/// it can. Every track whose add was confirmed before the kill must be there after a restart.
#[test]
fn a_kill_mid_write_loses_nothing_that_was_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = Headless::start(dir.path());
    app.ok("session.create", json!({"name": "Crash"}));
    let mut stdin = app.take_stdin();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut sent = 0u64;
        // Bounded, and stops as soon as the pipe breaks at the kill.
        for i in 0..200_000u64 {
            let line = json!({"id": 1000 + i, "cmd": "track.add",
                "args": {"title": format!("T{i}"), "artist": "a", "duration_ms": 1000}});
            if writeln!(stdin, "{line}").is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut confirmed = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while confirmed.len() < 500 && Instant::now() < deadline {
        let reply = app.reply_to(&json!(1000 + confirmed.len()));
        assert_eq!(reply["ok"], json!(true), "{reply}");
        confirmed.push(reply["result"]["track_id"].as_str().expect("id").to_owned());
    }
    app.child.kill().expect("SIGKILL");
    let _ = app.child.wait();
    let sent = writer.join().expect("writer");
    drop(app);
    let mut again = Headless::start(dir.path());
    let state = again.ok("session.state", json!(null));
    let queue = state["queue"].as_array().expect("queue");
    let stored: std::collections::HashSet<&str> = queue
        .iter()
        .map(|t| t["track_id"].as_str().expect("id"))
        .collect();
    let missing: Vec<&String> = confirmed
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} confirmed tracks lost: {missing:?}",
        missing.len()
    );
    assert!(
        (stored.len() as u64) < sent,
        "the kill landed after every write; nothing was tested"
    );
    // Each frame commits whole, in order: what survived is exactly a prefix of what was sent.
    let order: Vec<&str> = queue
        .iter()
        .map(|t| t["title"].as_str().expect("title"))
        .collect();
    let expected: Vec<String> = (0..order.len()).map(|i| format!("T{i}")).collect();
    assert_eq!(order, expected);
}
