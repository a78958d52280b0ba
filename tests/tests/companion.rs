//! The phone page against a real headless host, over plain HTTP: served only with its token,
//! live over Server-Sent Events, phones join as guests, add tracks and react, the token
//! changes with the invite, the page goes with the session, and phones are rate-limited.
//! The host listens on 127.0.0.1 (`--companion-listen`), never the real network.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::http_client::*;
use crate::relay::{RELAY_ONLY, Relay, wait_relay_status};

/// The page on loopback only, on any free port.
pub const PHONE_PAGE_ON_LOOPBACK: &[&str] =
    &["--companion-listen", "127.0.0.1", "--companion-port", "0"];

/// A host with a session, two library tracks and one queued track; returns its page link.
pub fn host_with_a_party(dir: &std::path::Path) -> (Headless, String) {
    let mut flags = vec!["--offline"];
    flags.extend_from_slice(PHONE_PAGE_ON_LOOPBACK);
    let mut host = Headless::start_with(dir, &flags);
    host.ok("identity.set_name", json!({"name": "Hana"}));
    host.ok("session.create", json!({"name": "Rooftop"}));
    for (title, artist) in [("Heroes", "David Bowie"), ("Blue Monday", "New Order")] {
        host.ok(
            "library.add",
            json!({"title": title, "artist": artist, "duration_ms": 200_000}),
        );
    }
    host.ok(
        "track.add",
        json!({"title": "Opening", "artist": "Hana's pick", "duration_ms": 180_000}),
    );
    host.ok("playback.play", json!(null));
    let url = host.ok("session.companion", json!(null))["url"]
        .as_str()
        .expect("a link")
        .to_owned();
    (host, url)
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|t| t["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_page_is_served_only_with_its_token_on_the_address_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_host, url) = host_with_a_party(&dir.path().join("host"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let token = url.trim_end_matches('/').rsplit('/').next().expect("token");
    assert_eq!(token.len(), 32, "128 bits as hex: {url}");

    let page = get(&url);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<script src=\"app.js\">"),
        "{}",
        page.body
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(get(&format!("{url}app.js")).status, 200);

    let (addr, _) = split_url(&url);
    let wrong = "0".repeat(32);
    for path in [
        "/".to_owned(),
        "/c/".to_owned(),
        format!("/c/{wrong}/"),
        format!("/c/{wrong}/events"),
        format!("/c/{wrong}/app.js"),
        format!("/c/{}/", &token[..31]),
        "/favicon.ico".to_owned(),
    ] {
        let answer = get(&format!("http://{addr}{path}"));
        assert_eq!(answer.status, 404, "{path}");
        assert!(
            answer.body.is_empty(),
            "{path} gave a hint: {}",
            answer.body
        );
    }
    let answer = post(
        &format!("http://{addr}/c/{wrong}/hello"),
        &json!({"name": "Eve"}),
    );
    assert_eq!((answer.status, answer.body.as_str()), (404, ""));
    let events = open_events(&format!("http://{addr}/c/{wrong}/events"));
    assert_eq!(events.status, 404);
}

#[test]
fn a_phone_sees_the_party_live_and_adds_a_track_and_reacts_as_a_guest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, url) = host_with_a_party(&dir.path().join("host"));
    let events = open_events(&format!("{url}events"));
    assert_eq!(events.status, 200);
    let first = events.wait_for("now playing", TIMEOUT, |s| {
        s["now"]["title"] == json!("Opening")
    });
    assert_eq!(first["session"], "Rooftop");
    assert_eq!(first["now"]["added_by"], "Hana");
    assert_eq!(first["playback"]["state"], "playing");

    // The host adds a track: the open page shows it without asking.
    let sent = Instant::now();
    host.ok(
        "track.add",
        json!({"title": "Second", "artist": "", "duration_ms": 1000}),
    );
    let shown = events.wait_for("the host's new track", TIMEOUT, |s| {
        titles(&s["up_next"]).contains(&"Second".to_owned())
    });
    let latency = sent.elapsed();
    eprintln!("a track the host added reached the open page in {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    assert_eq!(shown["up_next"][0]["added_by"], "Hana");

    // A phone says its name, searches the host's library and adds a track.
    let hello = post(&format!("{url}hello"), &json!({"name": "  Ana  "}));
    assert_eq!(hello.status, 200, "{}", hello.body);
    let hello = hello.json();
    let phone = hello["phone"].as_str().expect("a key").to_owned();
    let phone_peer = hello["peer_id"].as_str().expect("a peer id").to_owned();
    assert!(phone_peer.starts_with("phone-"), "{phone_peer}");
    let found = post(&format!("{url}search"), &json!({"q": "bowie"})).json();
    assert_eq!(titles(&found["tracks"]), vec!["Heroes".to_owned()]);
    let library_id = found["tracks"][0]["track_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let added = post(
        &format!("{url}add"),
        &json!({"phone": phone, "track_id": library_id}),
    );
    assert_eq!(added.status, 200, "{}", added.body);

    let (state, _) = wait_state(&mut host, "the phone's track in the queue", |s| {
        titles(&s["queue"]).contains(&"Heroes".to_owned())
    });
    let heroes = state["queue"]
        .as_array()
        .and_then(|q| q.iter().find(|t| t["title"] == "Heroes"))
        .expect("queued");
    assert_eq!(heroes["added_by"], json!(phone_peer));
    let ana = state["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["peer_id"] == json!(phone_peer)))
        .expect("the phone is a participant");
    assert_eq!(ana["display_name"], "Ana (phone)");
    assert_eq!(ana["role"], "guest", "a phone is never more than a guest");
    let page = events.wait_for("the phone's track", TIMEOUT, |s| {
        titles(&s["up_next"]).contains(&"Heroes".to_owned())
    });
    let on_page = page["up_next"]
        .as_array()
        .and_then(|q| q.iter().find(|t| t["title"] == "Heroes"))
        .expect("listed");
    assert_eq!(on_page["added_by"], "Ana (phone)");

    // A reaction reaches the host's control protocol, about the track playing.
    let opening = state["queue"][0]["track_id"].clone();
    let reacted = post(
        &format!("{url}react"),
        &json!({"phone": phone, "emoji": "fire"}),
    );
    assert_eq!(reacted.status, 200, "{}", reacted.body);
    let reaction = wait_event(&mut host, "reaction", |d| d["emoji"] == "fire");
    assert_eq!(reaction["from"], json!(phone_peer));
    assert_eq!(reaction["track_id"], opening);
    events.wait_for("the reaction", TIMEOUT, |s| {
        s["reactions"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["from"] == "Ana (phone)"))
    });

    // Bad input gets a clear refusal; a forged or missing phone key gets nothing done.
    let bad = post(
        &format!("{url}react"),
        &json!({"phone": phone, "emoji": "poop"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let forged = post(
        &format!("{url}add"),
        &json!({"phone": "0".repeat(32), "track_id": library_id}),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let long = post(&format!("{url}hello"), &json!({"name": "x".repeat(300)}));
    assert_eq!(long.status, 400, "{}", long.body);
}

#[test]
fn a_rotated_invite_changes_the_token_and_an_ended_session_stops_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, url) = host_with_a_party(&dir.path().join("host"));
    let old_events = open_events(&format!("{url}events"));
    old_events.wait_for("the party", TIMEOUT, |s| s["session"] == "Rooftop");

    // Offline, rotating makes no new relay link, but the page's token changes all the same.
    let _ = host.call("session.invite.rotate", json!(null));
    let new_url = host.ok("session.companion", json!(null))["url"]
        .as_str()
        .expect("a link")
        .to_owned();
    assert_ne!(new_url, url);
    assert_eq!(
        split_url(&new_url).0,
        split_url(&url).0,
        "same address, new token"
    );
    assert_eq!(get(&url).status, 404, "the old link stops working");
    assert_eq!(get(&new_url).status, 200);
    // The old page's stream ends (EventSource then finds the link gone).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match old_events
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(_) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the old link's stream stayed open: {e}"),
        }
    }

    host.ok("session.leave", json!(null));
    assert_eq!(
        host.error_code("session.companion", json!(null)),
        "not_in_session"
    );
    let (addr, path) = split_url(&new_url);
    let deadline = Instant::now() + TIMEOUT;
    while request("GET", &addr, &path, None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the page is still served after the session ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A new session gets a new token.
    host.ok("session.create", json!({"name": "Again"}));
    let next_url = host.ok("session.companion", json!(null))["url"]
        .as_str()
        .expect("a link")
        .to_owned();
    assert_ne!(next_url, new_url);
}

#[test]
fn a_phone_that_sends_too_much_is_slowed_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_host, url) = host_with_a_party(&dir.path().join("host"));
    let phone = post(&format!("{url}hello"), &json!({"name": "Busy"})).json()["phone"]
        .as_str()
        .expect("key")
        .to_owned();
    let statuses: Vec<u16> = (0..30)
        .map(|_| {
            post(
                &format!("{url}react"),
                &json!({"phone": phone, "emoji": "party"}),
            )
            .status
        })
        .collect();
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.contains(&429), "{statuses:?}");
    // The burst (10 actions, the hello among them) and at most a few refilled ones.
    assert!((8..=12).contains(&accepted), "{statuses:?}");
}

/// A relay-only host with its phone page on loopback, hosting `name` with a track playing:
/// the host, its relayed invite link and its phone link.
fn relayed_host_playing(
    dir: &std::path::Path,
    relay: &Relay,
    name: &str,
) -> (Headless, String, String) {
    let mut flags = RELAY_ONLY.to_vec();
    flags.extend_from_slice(PHONE_PAGE_ON_LOOPBACK);
    let mut host = Headless::start_with(&dir.join("host"), &flags);
    host.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
    host.ok("session.create", json!({"name": name}));
    host.ok(
        "track.add",
        json!({"title": "Now", "artist": "", "duration_ms": 300_000}),
    );
    host.ok("playback.play", json!(null));
    let invite = host.relayed_invite_url();
    let page = host.ok("session.companion", json!(null))["url"]
        .as_str()
        .expect("a link")
        .to_owned();
    (host, invite, page)
}

#[test]
fn a_reaction_from_a_phone_reaches_a_member_device_as_replicated_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let (_host, invite, page) = relayed_host_playing(dir.path(), &relay, "Linked");

    let mut member = Headless::start_with(&dir.path().join("member"), RELAY_ONLY);
    member.ok("relay.add", json!({"addr": relay.addr()}));
    wait_relay_status(&mut member, relay.addr(), "reserved", TIMEOUT);
    member.ok("session.join", json!({"invite": invite}));
    assert_eq!(
        member.error_code("session.companion", json!(null)),
        "unreachable",
        "only the host serves the page"
    );

    let phone = post(&format!("{page}hello"), &json!({"name": "Remy"})).json();
    let key = phone["phone"].as_str().expect("key");
    wait_state(&mut member, "the phone among the participants", |s| {
        s["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["display_name"] == "Remy (phone)"))
    });
    let reacted = post(
        &format!("{page}react"),
        &json!({"phone": key, "emoji": "mind_blown"}),
    );
    assert_eq!(reacted.status, 200, "{}", reacted.body);
    let seen = wait_event(&mut member, "reaction", |d| d["emoji"] == "mind_blown");
    assert_eq!(seen["from"], phone["peer_id"]);
    assert!(
        seen["track_id"].is_string(),
        "about the track playing: {seen}"
    );
}

/// A party screen that joined someone else's party as a display member shows a phone's
/// reaction: the kiosk runs in a real window under Xvfb and logs each reaction it floats up.
#[test]
fn a_phones_reaction_floats_up_on_a_party_screen_that_joined_as_a_display() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let (mut host, invite, page) = relayed_host_playing(dir.path(), &relay, "Screens");

    let screen_data = dir.path().join("screen");
    let mut setup = Headless::start(&screen_data);
    setup.ok("relay.add", json!({"addr": relay.addr()}));
    setup.ok("identity.set_name", json!({"name": "Wall"}));
    setup.ok("quit", json!(null));
    assert!(setup.wait_exit().success());
    let kiosk = AppWindow::party_screen(
        &screen_data,
        &[RELAY_ONLY, &[invite.as_str()]].concat(),
        "warn,whatnext_kiosk=info",
    );
    kiosk.wait_for("the host's party", |l| {
        l.contains("party screen") && l.contains("\"Now\"")
    });
    wait_state(&mut host, "the screen as a display member", |s| {
        s["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["role"] == "display"))
    });

    let phone = post(&format!("{page}hello"), &json!({"name": "Zoe"})).json();
    let reacted = post(
        &format!("{page}react"),
        &json!({"phone": phone["phone"], "emoji": "party"}),
    );
    assert_eq!(reacted.status, 200, "{}", reacted.body);
    let shown = kiosk.wait_for("the phone's reaction", |l| {
        l.contains("party screen: reaction") && l.contains("emoji=\"party\"")
    });
    assert!(shown.contains("Zoe (phone)"), "{shown}");
}
