//! Shared music: a guest's track reaches the host's device, verified, through the relay.
//! The guest's file lives in a folder only its own process sees (a tmpfs mounted in its own
//! mount namespace), so nothing but the transfer can bring the bytes to the host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use whatnext_core::prelude::*;
use whatnext_media::tree;
use whatnext_media::wire::{MediaAnswer, MediaAsk};
use whatnext_network::transport::encode_frame;

use crate::harness::*;
use crate::relay::{RELAY_ONLY, Relay, peer_on};
use crate::rogue_client::Rogue;

/// A relay-only peer whose `folder` is a tmpfs in its own mount namespace, holding a copy of
/// `files`: no other process can open them.
fn peer_with_private_folder(
    relay: &Relay,
    data_dir: &Path,
    folder: &Path,
    files: &[&Path],
) -> Headless {
    std::fs::create_dir_all(folder).expect("folder");
    let mut script = format!("mount -t tmpfs tmpfs '{}'", folder.display());
    for file in files {
        script.push_str(&format!(
            " && cp '{}' '{}/'",
            file.display(),
            folder.display()
        ));
    }
    script.push_str(" && exec \"$@\"");
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(binary());
    let mut app = Headless::spawn_command(command, data_dir, RELAY_ONLY);
    app.ok("relay.add", json!({"addr": relay.addr()}));
    crate::relay::wait_relay_status(&mut app, relay.addr(), "reserved", TIMEOUT);
    app
}

/// Waits until `app` holds the track's file; returns the `track.media` answer.
fn wait_until_here(app: &mut Headless, track_id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let media = app.ok("track.media", json!({"track_id": track_id}));
        if media["state"] == json!("here") {
            return media;
        }
        assert!(
            Instant::now() < deadline,
            "the file did not arrive within {within:?}: {media}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    ContentHash::of_bytes(bytes).to_hex()
}

#[test]
fn a_guests_file_reaches_the_host_byte_for_byte_through_the_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Music"}));
    let url = host.relayed_invite_url();
    let source = dir.path().join("source.wav");
    let original = write_noise_wav(&source, 120_000, 7); // about 1.9 MB: 30 leaves
    let folder = dir.path().join("gus-music");
    let mut guest =
        peer_with_private_folder(&relay, &dir.path().join("guest"), &folder, &[&source]);
    std::fs::remove_file(&source).expect("only the guest has the file now");
    guest.ok("session.join", json!({"invite": url}));
    let private = folder.join("source.wav");
    assert!(
        !private.exists(),
        "the test itself cannot see the guest's folder"
    );
    let added = guest.ok(
        "track.add",
        json!({"title": "Noise", "artist": "Gus", "duration_ms": 120000,
               "path": private.to_str().expect("utf-8")}),
    );
    let track_id = added["track_id"].as_str().expect("track id").to_owned();

    let media = wait_until_here(&mut host, &track_id, Duration::from_secs(60));
    assert_eq!(media["hash"], json!(hash_hex(&original)), "{media}");
    assert_eq!(media["size"], json!(original.len()), "{media}");
    let copy = PathBuf::from(media["path"].as_str().expect("a verified copy's path"));
    assert!(
        copy.starts_with(dir.path().join("host")),
        "in the host's store: {copy:?}"
    );
    assert_eq!(
        std::fs::read(&copy).expect("the copy"),
        original,
        "byte for byte"
    );

    // Paths are local: none in the shared state, on either side.
    for app in [&mut host, &mut guest] {
        let state = app.ok("session.state", json!(null));
        let entry = &state["queue"][0];
        assert_eq!(
            entry["media"]["hash"],
            json!(hash_hex(&original)),
            "{state}"
        );
        assert!(!state.to_string().contains("source.wav"), "{state}");
    }
    let theirs = guest.ok("track.media", json!({"track_id": track_id}));
    assert_eq!(
        theirs["state"],
        json!("here"),
        "the adder holds its own file: {theirs}"
    );
}

#[test]
fn a_lying_peers_bytes_are_refused_and_the_file_comes_from_an_honest_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Lies"}));
    let url = host.relayed_invite_url();
    let source = dir.path().join("song.wav");
    let original = write_noise_wav(&source, 60_000, 11);
    let hash = ContentHash::of_bytes(&original);
    let media = Media {
        hash,
        size: original.len() as u64,
        format: AudioFormat::Wav,
    };
    // Mallory claims the song first, so the host asks Mallory first.
    let mut mallory = Rogue::aimed_at(&url);
    assert!(matches!(
        mallory.join(),
        whatnext_replication::protocol::SessionResponse::Welcome(_)
    ));
    mallory.intent(Action::Session(SessionAction::AddTrack {
        track_id: TrackId(0xBAD),
        title: "Song".into(),
        artist: "Mallory".into(),
        duration_ms: 60_000,
        media: Some(media),
    }));
    let folder = dir.path().join("gus-music");
    let mut gus = peer_with_private_folder(&relay, &dir.path().join("gus"), &folder, &[&source]);
    std::fs::remove_file(&source).expect("only Gus has the file now");
    gus.ok("session.join", json!({"invite": url}));
    gus.ok(
        "track.add",
        json!({"title": "Song", "artist": "Gus", "duration_ms": 60000,
               "path": folder.join("song.wav").to_str().expect("utf-8")}),
    );
    // Mallory answers with the true outboard but flips a byte in every range it sends.
    let outboard: Vec<u8> = tree::outboard_of(&original).into_iter().flatten().collect();
    let mut lies = 0;
    let track_id = TrackId(0xBAD).to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        lies += mallory.serve_media_for(Duration::from_millis(300), |ask| {
            let mut reply = encode_frame(&MediaAnswer::Sending).expect("encode");
            if ask.outboard {
                reply.extend_from_slice(&outboard);
            }
            for (first, end) in &ask.runs {
                let start = tree::leaf_range(media.size, *first).start as usize;
                let stop = tree::leaf_range(media.size, end - 1).end as usize;
                let mut bytes = original[start..stop].to_vec();
                bytes[0] ^= 0xFF;
                reply.extend_from_slice(&bytes);
            }
            reply
        });
        let now = host.ok("track.media", json!({"track_id": track_id}));
        if now["state"] == json!("here") {
            let copy = now["path"].as_str().expect("path").to_owned();
            assert_eq!(
                std::fs::read(copy).expect("copy"),
                original,
                "the honest bytes"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no honest copy arrived: {now}");
    }
    assert!(lies >= 1, "Mallory was asked first: {lies}");
}

/// What a modified peer can ask for on the media protocol, and what it gets: nothing for a
/// stranger, nothing outside the queue, no bytes outside the file, a clear refusal for
/// bytes that are no ask; and, as the control, the true bytes for a member's proper ask.
#[test]
fn the_media_protocol_serves_members_files_of_the_queue_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = Relay::start(&dir.path().join("relay.key"), 0, &[]);
    let mut host = peer_on(&relay, &dir.path().join("host"), "Hana");
    host.ok("session.create", json!({"name": "Guarded"}));
    let url = host.relayed_invite_url();
    let song = dir.path().join("song.wav");
    let original = write_noise_wav(&song, 10_000, 5);
    host.ok(
        "track.add",
        json!({"title": "Song", "artist": "Hana", "duration_ms": 10000,
               "path": song.to_str().expect("utf-8")}),
    );
    let hash = ContentHash::of_bytes(&original);
    let leaves = tree::leaves(original.len() as u64);
    let ask = |hash: ContentHash, runs: Vec<(u64, u64)>| {
        encode_frame(&MediaAsk {
            hash,
            outboard: false,
            runs,
        })
        .expect("encode")
    };
    let refusal = |answer: Result<(MediaAnswer, Vec<u8>), String>| match answer {
        Ok((MediaAnswer::Refused(why), _)) => why,
        other => panic!("not a refusal: {other:?}"),
    };
    let mut mallory = Rogue::aimed_at(&url);
    let stranger = refusal(mallory.ask_media(ask(hash, vec![(0, 1)]), 0));
    assert!(stranger.contains("members"), "{stranger}");
    assert!(matches!(
        mallory.join(),
        whatnext_replication::protocol::SessionResponse::Welcome(_)
    ));
    // Serving threads learn of the new member with the host's next frame.
    let deadline = Instant::now() + Duration::from_secs(10);
    let elsewhere = loop {
        let why = refusal(mallory.ask_media(ask(ContentHash([7; 32]), vec![(0, 1)]), 0));
        if !why.contains("members") || Instant::now() > deadline {
            break why;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(elsewhere.contains("queue"), "{elsewhere}");
    let beyond = refusal(mallory.ask_media(ask(hash, vec![(0, leaves + 1)]), 0));
    assert!(beyond.contains("within the file"), "{beyond}");
    let mut garbage = 40u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xFF; 40]);
    let malformed = refusal(mallory.ask_media(garbage, 0));
    assert!(malformed.contains("malformed"), "{malformed}");
    // A proper ask from a member gets the true bytes.
    let (answer, bytes) = mallory
        .ask_media(ask(hash, vec![(1, 2)]), tree::LEAF as usize)
        .expect("an answer");
    assert_eq!(answer, MediaAnswer::Sending);
    let leaf = tree::leaf_range(original.len() as u64, 1);
    assert_eq!(bytes, original[leaf.start as usize..leaf.end as usize]);
}

/// The adder's file and two more peers: the host (`host`), and whoever the test needs.
struct MusicParty {
    dir: tempfile::TempDir,
    relay: Relay,
    host: Headless,
    adder: Headless,
    url: String,
    folder: PathBuf,
}

impl MusicParty {
    /// A relayed party whose guest "Gus" holds `files` (name, length in ms, seed) in a
    /// private folder. `host_flags` are added to the host's.
    fn start(name: &str, files: &[(&str, u64, u64)], host_flags: &[&str]) -> (Self, Vec<Vec<u8>>) {
        Self::start_on_relay(&[], name, files, host_flags)
    }

    /// [`MusicParty::start`] on a relay started with `relay_flags`.
    fn start_on_relay(
        relay_flags: &[&str],
        name: &str,
        files: &[(&str, u64, u64)],
        host_flags: &[&str],
    ) -> (Self, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let relay = Relay::start(&dir.path().join("relay.key"), 0, relay_flags);
        let flags: Vec<&str> = RELAY_ONLY.iter().chain(host_flags).copied().collect();
        let mut host = Headless::start_with(&dir.path().join("host"), &flags);
        host.ok("identity.set_name", json!({"name": "Hana"}));
        host.ok("relay.add", json!({"addr": relay.addr()}));
        crate::relay::wait_relay_status(&mut host, relay.addr(), "reserved", TIMEOUT);
        host.ok("session.create", json!({"name": name}));
        let url = host.relayed_invite_url();
        let mut sources = Vec::new();
        let mut originals = Vec::new();
        for (file, ms, seed) in files {
            let path = dir.path().join(file);
            originals.push(write_noise_wav(&path, *ms, *seed));
            sources.push(path);
        }
        let folder = dir.path().join("gus-music");
        let refs: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
        let mut adder = peer_with_private_folder(&relay, &dir.path().join("gus"), &folder, &refs);
        for source in &sources {
            std::fs::remove_file(source).expect("only Gus has the files now");
        }
        adder.ok("session.join", json!({"invite": url}));
        let party = Self {
            dir,
            relay,
            host,
            adder,
            url,
            folder,
        };
        (party, originals)
    }

    /// Gus queues his file `file`; returns its track id.
    fn add(&mut self, file: &str) -> String {
        let path = self.folder.join(file);
        let added = self.adder.ok(
            "track.add",
            json!({"title": file, "artist": "Gus", "duration_ms": 60000,
                   "path": path.to_str().expect("utf-8")}),
        );
        added["track_id"].as_str().expect("track id").to_owned()
    }

    /// Another relay-only member, joined.
    fn member(&mut self, name: &str) -> Headless {
        let mut app = peer_on(&self.relay, &self.dir.path().join(name), name);
        app.ok("session.join", json!({"invite": self.url}));
        app
    }
}

fn copy_of(media: &Value) -> Vec<u8> {
    std::fs::read(media["path"].as_str().expect("a path when here")).expect("the copy")
}

#[test]
fn a_guest_listening_along_gets_the_same_verified_copy_and_plays_with_the_clock() {
    let (mut party, originals) = MusicParty::start("Listen", &[("a.wav", 90_000, 3)], &[]);
    let track = party.add("a.wav");
    let mut listener = party.member("Lou");
    // Without "Listen along" a guest fetches nothing and plays nothing.
    party.host.ok("playback.play", json!(null));
    std::thread::sleep(Duration::from_millis(1_000));
    let idle = listener.ok("track.media", json!({"track_id": track}));
    assert_eq!(idle["state"], json!("missing"), "{idle}");
    assert_eq!(
        listener.ok("audio.status", json!(null))["playing"],
        json!(false)
    );
    listener.ok("listen.set", json!({"on": true}));
    assert_eq!(
        listener.ok("session.state", json!(null))["listening"],
        json!(true)
    );
    let theirs = wait_until_here(&mut listener, &track, Duration::from_secs(60));
    let hosts = wait_until_here(&mut party.host, &track, Duration::from_secs(60));
    assert_eq!(
        copy_of(&theirs),
        originals[0],
        "the listener's copy, byte for byte"
    );
    assert_eq!(
        copy_of(&hosts),
        originals[0],
        "the host's copy, byte for byte"
    );
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        let status = listener.ok("audio.status", json!(null));
        // The offset is measured once the first block has left (null until then).
        if status["playing"] == json!(true) && status["offset_us"].is_i64() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the listener never played on its clock: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["track_id"], json!(track), "{status}");
    let offset = status["offset_us"]
        .as_i64()
        .expect("an offset while playing");
    assert!(offset.abs() < 10_000, "the sound is on its clock: {status}");
    let hosts = party.host.ok("session.state", json!(null));
    let lag = hosts["playback"]["position_ms"]
        .as_u64()
        .unwrap_or(0)
        .abs_diff(status["position_ms"].as_u64().unwrap_or(0));
    assert!(
        lag < 2_000,
        "the listener follows the shared clock: {status} vs {hosts}"
    );
    listener.ok("listen.set", json!({"on": false}));
    assert_eq!(
        listener.ok("audio.status", json!(null))["playing"],
        json!(false)
    );
}

#[test]
fn playback_handed_to_a_cohost_plays_the_file_it_fetched_ahead() {
    let (mut party, originals) = MusicParty::start("Handoff", &[("b.wav", 60_000, 5)], &[]);
    let track = party.add("b.wav");
    let mut cole = party.member("Cole");
    let cole_id = peer_id(&mut cole);
    party.host.ok("cohost.add", json!({"peer_id": cole_id}));
    party.host.ok("playback.play", json!(null));
    // A co-host may be handed playback at any time: it fetches the current track ahead.
    let ahead = wait_until_here(&mut cole, &track, Duration::from_secs(60));
    assert_eq!(copy_of(&ahead), originals[0]);
    let handed = Instant::now();
    party
        .host
        .ok("playback.handoff", json!({"peer_id": cole_id}));
    let deadline = handed + TIMEOUT;
    loop {
        let status = cole.ok("audio.status", json!(null));
        if status["playing"] == json!(true) && status["track_id"] == json!(track) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the co-host never played: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "the co-host played {:?} after the handoff",
        handed.elapsed()
    );
    let host_status = party.host.ok("audio.status", json!(null));
    assert_eq!(
        host_status["playing"],
        json!(false),
        "the old owner stops: {host_status}"
    );
}

#[test]
fn a_transfer_resumes_after_the_receiver_restarts_mid_file() {
    // 40 MB: long enough to stop the host part way.
    let (mut party, originals) = MusicParty::start("Resume", &[("big.wav", 2_500_000, 9)], &[]);
    let track = party.add("big.wav");
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        let media = party.host.ok("track.media", json!({"track_id": track}));
        let progress = media["progress"].as_f64().unwrap_or(0.0);
        if media["state"] == json!("fetching") && progress > 0.05 {
            break progress;
        }
        assert!(
            media["state"] != json!("here"),
            "finished before it could be stopped"
        );
        assert!(
            Instant::now() < deadline,
            "the transfer never started: {media}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    party.host.child.kill().expect("kill the host");
    let _ = party.host.child.wait();
    let flags: Vec<&str> = RELAY_ONLY.to_vec();
    party.host = Headless::start_with(&party.dir.path().join("host"), &flags);
    // The first progress seen after the restart starts from what was verified before.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first_after: Option<f64> = None;
    let media = loop {
        let media = party.host.call("track.media", json!({"track_id": track}));
        let media = media.get("result").cloned().unwrap_or(Value::Null);
        if media["state"] == json!("fetching") && first_after.is_none() {
            first_after = media["progress"].as_f64();
        }
        if media["state"] == json!("here") {
            break media;
        }
        assert!(
            Instant::now() < deadline,
            "the transfer did not finish: {media}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        copy_of(&media),
        originals[0],
        "byte for byte after the restart"
    );
    if let Some(after) = first_after {
        assert!(
            after + 0.01 >= before,
            "resumed at {after:.2}, though {before:.2} was verified before the restart"
        );
    }
    eprintln!("stopped at {before:.2}; first seen after the restart: {first_after:?}");
}

#[test]
fn the_content_store_evicts_old_copies_but_never_the_current_and_next_tracks() {
    // Four files of 1.2 MB in a store capped at 3 MiB.
    let files = [
        ("1.wav", 75_000, 21),
        ("2.wav", 75_000, 22),
        ("3.wav", 75_000, 23),
        ("4.wav", 75_000, 24),
    ];
    let (mut party, originals) = MusicParty::start("Evict", &files, &["--store-cap-mib", "3"]);
    let tracks: Vec<String> = files.iter().map(|(f, _, _)| party.add(f)).collect();
    // Nothing plays yet: the first three are "current and next", all kept though over the cap.
    for (track, original) in tracks.iter().zip(&originals).take(3) {
        let media = wait_until_here(&mut party.host, track, Duration::from_secs(60));
        assert_eq!(&copy_of(&media), original);
    }
    party.host.ok("playback.play", json!(null));
    party.host.ok("playback.next", json!(null));
    // Now 2, 3 and 4 are wanted: 4 comes, and the least recently used, 1, goes.
    let fourth = wait_until_here(&mut party.host, &tracks[3], Duration::from_secs(60));
    assert_eq!(copy_of(&fourth), originals[3]);
    let first = party.host.ok("track.media", json!({"track_id": tracks[0]}));
    assert_eq!(first["state"], json!("missing"), "evicted: {first}");
    for track in &tracks[1..] {
        let media = party.host.ok("track.media", json!({"track_id": track}));
        assert_eq!(media["state"], json!("here"), "kept: {media}");
    }
}

/// The relay cuts a circuit after 3 MB (its operator's choice; the default is 64 MiB): an
/// 8 MB file still arrives whole, over the circuits the peers open again, from the leaves
/// already verified.
#[test]
fn a_file_larger_than_the_relays_circuit_allowance_arrives_over_several_circuits() {
    let (mut party, originals) = MusicParty::start_on_relay(
        &["--max-circuit-bytes", "3000000"],
        "Circuits",
        &[("long.wav", 500_000, 13)], // 8 MB
        &[],
    );
    let track = party.add("long.wav");
    let media = wait_until_here(&mut party.host, &track, Duration::from_secs(120));
    assert_eq!(copy_of(&media), originals[0], "byte for byte");
}
