//! The party screen hosts a party through a relay; a guest joins with the link the screen
//! announces and adds a track; the screen shows it in "up next" on its next frames. The
//! kiosk runs in a real window under Xvfb and reports what it shows in its log.

use std::time::Instant;

use serde_json::json;

use crate::harness::*;
use crate::relay::{RELAY_ONLY, Relay};

#[test]
fn a_guests_track_shows_in_up_next_on_the_kiosk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let data = dir.path().join("kiosk");
    // The screen's relay is set up beforehand, as its owner would in the window.
    let mut setup = Headless::start(&data);
    setup.ok("relay.add", json!({"addr": relay.addr()}));
    setup.ok("identity.set_name", json!({"name": "Party screen"}));
    setup.ok("quit", json!(null));
    assert!(setup.wait_exit().success());

    let kiosk = AppWindow::party_screen(&data, RELAY_ONLY, "warn,whatnext_kiosk=debug");
    // Above debug level the link's secret is hidden; the whole link is logged at debug.
    let announced = kiosk.wait_for("an invite link", |l| {
        l.contains("the invite link") && l.contains("whtnxt://") && l.contains("relay=")
    });
    let url = announced
        .split(['"', ' '])
        .find_map(|part| {
            part.strip_prefix("url=")
                .or(Some(part))
                .filter(|p| p.starts_with("whtnxt://"))
        })
        .expect("the link")
        .to_owned();

    let mut guest = Headless::start_with(&dir.path().join("guest"), RELAY_ONLY);
    guest.ok("identity.set_name", json!({"name": "Gus"}));
    guest.ok("session.join", json!({"invite": url}));
    let started = Instant::now();
    guest.ok(
        "track.add",
        json!({"title": "Harbour Lights", "artist": "The Quiet Tides", "duration_ms": 214000}),
    );
    guest.ok(
        "track.add",
        json!({"title": "Night Bus Home", "artist": "The Late Shift", "duration_ms": 198000}),
    );
    let shown = kiosk.wait_for("the guest's second track in up next", |l| {
        l.contains("up_next") && l.contains("Night Bus Home")
    });
    eprintln!(
        "the kiosk showed it {:?} after the add: {shown}",
        started.elapsed()
    );
}
