//! Storage under a full disk, end to end: a small tmpfs the test mounts itself (skipped, with
//! a message, where mounting is not permitted).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A tmpfs of `size` mounted on a fresh temporary directory; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (after saying why) when this machine does not let the test mount one.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self { dir }),
            other => {
                eprintln!("SKIPPED: cannot mount a {size} tmpfs (needs root): {other:?}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file; removing it frees the space again.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        for chunk in [64 * 1024, 4096, 512] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn add(app: &mut Headless, title: &str) -> Value {
    app.call(
        "track.add",
        json!({"title": title, "artist": "Artist", "duration_ms": 1000}),
    )
}

fn queue_ids(app: &mut Headless) -> Vec<String> {
    let state = app.ok("session.state", json!(null));
    state["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .map(|t| t["track_id"].as_str().expect("id").to_owned())
        .collect()
}

/// Adds tracks until one is refused; returns the confirmed ids and the refusal.
fn add_until_refused(app: &mut Headless) -> (Vec<String>, Value) {
    let mut confirmed = Vec::new();
    for i in 0..5000 {
        let reply = add(app, &format!("Track {i} {}", "x".repeat(150)));
        if reply["ok"] != json!(true) {
            return (confirmed, reply);
        }
        confirmed.push(reply["result"]["track_id"].as_str().expect("id").to_owned());
    }
    panic!("5000 adds on a full disk and none refused");
}

/// Adds until one is confirmed again (the app retries the disk at most once a second).
fn add_until_confirmed(app: &mut Headless, title: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = add(app, title);
        if reply["ok"] == json!(true) {
            return reply["result"]["track_id"].as_str().expect("id").to_owned();
        }
        assert_eq!(reply["error"]["code"], json!("storage"), "{reply}");
        assert!(
            Instant::now() < deadline,
            "writes never worked again: {reply}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_refuses_changes_with_storage_loses_nothing_confirmed_and_recovers() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let data = disk.path().join("data");
    let mut app = Headless::start(&data);
    app.ok("session.create", json!({"name": "Full"}));
    let filler = disk.fill();
    let (mut confirmed, refusal) = add_until_refused(&mut app);
    assert_eq!(refusal["error"]["code"], json!("storage"), "{refusal}");
    // The app runs on, and its world is what the disk has: every confirmed track, no other.
    assert_eq!(
        queue_ids(&mut app),
        confirmed,
        "the queue after the refusal"
    );
    let again = add(&mut app, "Still full");
    assert_eq!(again["error"]["code"], json!("storage"), "{again}");
    assert_eq!(queue_ids(&mut app), confirmed);
    assert_eq!(app.ok("quit", json!(null)), json!({}));
    assert!(app.wait_exit().success(), "a clean exit on a full disk");

    // Restarted on the still-full disk: everything confirmed is there; changes are refused.
    let mut app = Headless::start(&data);
    assert_eq!(
        queue_ids(&mut app),
        confirmed,
        "after a restart on the full disk"
    );
    let (more, refusal) = add_until_refused(&mut app);
    assert_eq!(refusal["error"]["code"], json!("storage"), "{refusal}");
    confirmed.extend(more);
    assert_eq!(queue_ids(&mut app), confirmed);

    // Space comes back: writes work again without a restart.
    std::fs::remove_file(&filler).expect("free the space");
    confirmed.push(add_until_confirmed(&mut app, "Space again"));
    assert_eq!(queue_ids(&mut app), confirmed);
    app.ok("quit", json!(null));
    assert!(app.wait_exit().success());
    let mut app = Headless::start(&data);
    assert_eq!(queue_ids(&mut app), confirmed, "after a restart with space");
}

#[test]
fn the_data_dir_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let mut app = Headless::start(&data);
    app.ok("identity", json!(null));
    app.ok("quit", json!(null));
    assert!(app.wait_exit().success());
    assert_eq!(mode(&data), 0o700, "the data dir");
    assert_eq!(mode(&data.join("identity.key")), 0o600, "the key");
    assert_eq!(mode(&data.join("whatnext.redb")), 0o600, "the database");
    // Modes loosened by hand are fixed on the next start.
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(&data, open.clone()).expect("chmod");
    std::fs::set_permissions(
        data.join("whatnext.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::set_permissions(
        data.join("identity.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let mut app = Headless::start(&data);
    app.ok("identity", json!(null));
    assert_eq!(mode(&data), 0o700, "the data dir, fixed");
    assert_eq!(mode(&data.join("identity.key")), 0o600, "the key, fixed");
    assert_eq!(
        mode(&data.join("whatnext.redb")),
        0o600,
        "the database, fixed"
    );
}

/// The host's disk is full: a guest's addition is refused with `storage` (the host answers
/// only what it saved), nobody shows the track, and once the host has space again the
/// guest's next addition arrives everywhere.
#[test]
fn a_guests_change_on_a_host_with_a_full_disk_is_refused_with_storage() {
    use crate::relay::{Relay, wait_relay_status};
    const RELAY_ONLY: &[&str] = &["--no-mdns", "--no-direct", "--no-hole-punch"];
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = Headless::start_with(&disk.path().join("host"), RELAY_ONLY);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": "Full host"}));
    let url = host.relayed_invite_url();
    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("session.join", json!({"invite": url}));
    let titles = |app: &mut Headless| -> Vec<String> {
        let state = app.ok("session.state", json!(null));
        state["queue"]
            .as_array()
            .expect("queue")
            .iter()
            .map(|t| t["title"].as_str().expect("title").to_owned())
            .collect()
    };
    let filler = disk.fill();
    // The host's own adds find the point where its disk refuses.
    let (confirmed, refusal) = add_until_refused(&mut host);
    assert_eq!(refusal["error"]["code"], json!("storage"), "{refusal}");
    let before = titles(&mut host);
    assert_eq!(before.len(), confirmed.len());
    let reply = add(&mut guest, "Guest's on a full host");
    assert_eq!(reply["ok"], json!(false), "{reply}");
    assert_eq!(reply["error"]["code"], json!("storage"), "{reply}");
    assert_eq!(titles(&mut host), before, "the host undid it");
    wait_state(&mut guest, "the guest's copy without it", |s| {
        s["queue"].as_array().is_some_and(|q| {
            q.len() == before.len() && q.iter().all(|t| t["pending"] == json!(false))
        })
    });

    std::fs::remove_file(&filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = add(&mut guest, "Guest's with space");
        if reply["ok"] == json!(true) {
            break;
        }
        assert_eq!(reply["error"]["code"], json!("storage"), "{reply}");
        assert!(
            Instant::now() < deadline,
            "the host never saved again: {reply}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut want = before.clone();
    want.push("Guest's with space".into());
    wait_state(&mut guest, "the guest's track, confirmed", |s| {
        s["queue"].as_array().is_some_and(|q| {
            q.len() == want.len() && q.iter().all(|t| t["pending"] == json!(false))
        })
    });
    assert_eq!(titles(&mut host), want);
    assert_eq!(titles(&mut guest), want);
}
