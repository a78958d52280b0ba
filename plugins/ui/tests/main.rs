//! The panels without a window: egui_kittest drives `draw` through its accessibility tree,
//! the way a user would (find by label, click, hover), and checks what it asks for.

use bevy_egui::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use whatnext_core::prelude::*;
use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};
use whatnext_ui::{Forms, Screen, draw};

struct State {
    screen: Screen,
    forms: Forms,
    actions: Vec<Action>,
}

fn peer(name: &str) -> PeerId {
    PeerId::new(format!("12D3KooW{name}"))
}

fn person(name: &str, role: Role) -> ParticipantView {
    ParticipantView {
        peer_id: peer(name),
        display_name: name.into(),
        role,
        online: true,
        connection: Connection::Relayed,
    }
}

/// `name`'s screen, in no party yet.
fn no_party(name: &str) -> Screen {
    Screen::new(LocalPeer {
        peer: peer(name),
        display_name: name.into(),
    })
}

/// Hana hosts and plays; Cole is a co-host; Gus a guest. Seen by `me`.
fn party(me: &str) -> Screen {
    let session = SessionSnapshot {
        session_id: SessionId("S".into()),
        name: "Friday".into(),
        host: peer("Hana"),
        cohosts: vec![peer("Cole")],
        playback_owner: peer("Hana"),
        participants: vec![
            person("Hana", Role::Host),
            person("Cole", Role::CoHost),
            person("Gus", Role::Guest),
        ],
        queue: (1..=3)
            .map(|i| TrackView {
                track_id: TrackId(i),
                title: format!("Song {i}"),
                artist: "Band".into(),
                duration_ms: 180_000,
                added_by: peer("Gus"),
                pending: false,
                media: None,
            })
            .collect(),
        playback: PlaybackView {
            state: PlayState::Playing,
            track_id: Some(TrackId(1)),
            position_ms: 30_000,
        },
        listening: false,
    };
    let role = session
        .participants
        .iter()
        .find(|p| p.display_name == me)
        .map(|p| p.role);
    let mut screen = no_party(me);
    screen.my_role = role;
    screen.session = Some(session);
    screen.invite = SessionInvite {
        url: Some("whtnxt://connect/12D3KooWHana?session=S&key=00".into()),
        short_code: Some("ABC234".into()),
        problem: None,
    };
    screen
}

fn harness(screen: Screen) -> Harness<'static, State> {
    let state = State {
        screen,
        forms: Forms::default(),
        actions: Vec::new(),
    };
    Harness::builder()
        .with_size([1280.0, 720.0])
        .build_ui_state(
            |ui, state: &mut State| {
                let actions = draw(ui, &state.screen, &mut state.forms);
                state.actions.extend(actions);
            },
            state,
        )
}

fn is_disabled(harness: &Harness<'_, State>, label: &str) -> bool {
    harness.get_by_label(label).accesskit_node().is_disabled()
}

#[test]
fn take_playback_is_enabled_for_a_cohost_and_disabled_for_a_guest() {
    let cole = harness(party("Cole"));
    assert!(!is_disabled(&cole, "Take playback"));
    let gus = harness(party("Gus"));
    assert!(is_disabled(&gus, "Take playback"));
}

#[test]
fn clicking_take_playback_emits_the_take_intent() {
    let mut cole = harness(party("Cole"));
    cole.get_by_label("Take playback").click();
    cole.run();
    assert_eq!(
        cole.state().actions,
        [Action::Session(SessionAction::TakePlayback)]
    );
}

#[test]
fn playback_controls_are_disabled_for_others_and_name_the_owner() {
    let mut gus = harness(party("Gus"));
    assert!(is_disabled(&gus, "Pause"));
    assert!(is_disabled(&gus, "Next"));
    let owner_named = |h: &Harness<'_, State>| {
        h.query_all_by_label_contains("Hana controls playback")
            .count()
    };
    let before = owner_named(&gus);
    gus.get_by_label("Pause").hover();
    gus.run();
    assert_eq!(owner_named(&gus), before + 1, "a tooltip names the owner");
    let hana = harness(party("Hana"));
    assert!(!is_disabled(&hana, "Pause"));
}

#[test]
fn the_owner_hands_off_to_a_cohost_only() {
    let mut hana = harness(party("Hana"));
    hana.get_by_label("Hand off to…").click();
    hana.run();
    assert!(hana.query_by_label_contains("Gus (guest)").is_none());
    hana.get_by_label("Cole (co-host)").click();
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::HandOff { to: peer("Cole") })]
    );
}

#[test]
fn only_the_host_promotes_and_demotes_cohosts() {
    let mut hana = harness(party("Hana"));
    hana.get_by_label("Make co-host").click();
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::AddCohost {
            peer: peer("Gus")
        })]
    );
    assert!(hana.query_by_label("Remove co-host").is_some());
    let cole = harness(party("Cole"));
    assert!(cole.query_by_label("Make co-host").is_none());
}

#[test]
fn a_knock_is_a_prompt_with_approve_and_deny() {
    let mut screen = party("Cole");
    screen.knocks = vec![Knock {
        peer: peer("Dee"),
        display_name: "Dee".into(),
        display: false,
        decision: None,
    }];
    let mut cole = harness(screen.clone());
    assert!(cole.query_by_label("Dee wants to join").is_some());
    let key = format!("key {}", peer("Dee").fingerprint());
    assert!(
        cole.query_by_label(&key).is_some(),
        "the prompt shows the knocker's key fingerprint next to the name"
    );
    cole.get_by_label("Let in").click();
    cole.run();
    assert_eq!(
        cole.state().actions,
        [Action::Session(SessionAction::ApproveKnock {
            peer: peer("Dee")
        })]
    );
    let gus = harness({
        let mut s = party("Gus");
        s.knocks = screen.knocks;
        s
    });
    assert!(
        gus.query_by_label("Let in").is_none(),
        "guests don't answer knocks"
    );
}

#[test]
fn the_join_panel_shows_a_sentence_for_an_invalid_code_and_sends_nothing() {
    let me = LocalPeer {
        peer: peer("Gus"),
        display_name: "Gus".into(),
    };
    let mut join = harness(Screen::new(me));
    join.state_mut().forms.invite = "OOPS1".into();
    join.run();
    join.get_by_label("Join").click();
    join.run();
    assert!(join.state().actions.is_empty());
    assert!(
        join.query_by_label_contains("That invite doesn't work")
            .is_some()
    );
    // The technical detail is one click away.
    join.get_by_label("Details").click();
    join.run();
    assert!(
        join.query_by_label_contains("neither an invite link nor a short code")
            .is_some()
    );
}

#[test]
fn the_relay_list_shows_failed_with_its_reason() {
    let mut screen = party("Hana");
    screen.relays = vec![
        RelayEntry {
            addr: "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWRelayA".into(),
            status: RelayStatus::Failed {
                reason: "cannot connect: connection refused".into(),
            },
        },
        RelayEntry {
            addr: "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWRelayB".into(),
            status: RelayStatus::Reserved,
        },
    ];
    let mut hana = harness(screen);
    assert!(
        hana.query_by_label("in use").is_some(),
        "the active relay is marked"
    );
    hana.get_by_label("failed").hover();
    hana.run();
    assert!(
        hana.query_by_label_contains("cannot connect: connection refused")
            .is_some()
    );
}

#[test]
fn the_share_panel_shows_the_code_and_a_qr_code_of_the_link() {
    let hana = harness(party("Hana"));
    assert!(hana.query_by_label("ABC234").is_some());
    assert!(hana.query_by_label("Copy invite link").is_some());
    let url = party("Hana").invite.url.expect("url");
    let modules = whatnext_ui::qr::modules(&url).expect("a QR code");
    assert!(
        modules.len() >= 21 && modules.len() % 4 == 1,
        "a QR version's size"
    );
    assert!(modules.iter().flatten().any(|dark| *dark));
}

#[test]
fn on_first_run_the_app_asks_for_a_name() {
    let mut screen = Screen::new(LocalPeer {
        peer: peer("New"),
        display_name: "Listener abcd".into(),
    });
    screen.ask_name = true;
    let mut first = harness(screen);
    assert!(
        first
            .query_by_label("What should people call you?")
            .is_some()
    );
    first.state_mut().forms.display_name = "Robin".into();
    first.run();
    first.get_by_label("Save").click();
    first.run();
    assert_eq!(
        first.state().actions,
        [Action::Local(LocalAction::SetDisplayName {
            name: "Robin".into()
        })]
    );
    assert!(
        first
            .query_by_label("What should people call you?")
            .is_none()
    );
}

#[test]
fn a_guest_removes_only_its_own_tracks_and_cannot_drag() {
    let mut screen = party("Cole");
    if let Some(s) = screen.session.as_mut() {
        s.queue[0].added_by = peer("Hana");
    }
    let cole = harness(screen.clone());
    assert_eq!(cole.query_all_by_label("Remove").count(), 3);
    assert!(
        cole.query_by_label("Drag a track by its handle to move it.")
            .is_some()
    );
    let gus = harness({
        let mut s = party("Gus");
        s.session = screen.session;
        s
    });
    assert_eq!(gus.query_all_by_label("Remove").count(), 2);
    assert!(
        gus.query_by_label("Drag a track by its handle to move it.")
            .is_none()
    );
}

fn library_tracks() -> Vec<LibraryTrack> {
    ["Harbour Lights", "Night Bus Home"]
        .iter()
        .enumerate()
        .map(|(i, title)| LibraryTrack {
            id: TrackId(100 + i as u64),
            title: (*title).into(),
            artist: "Band".into(),
            duration_ms: 200_000,
            path: Some(format!("/music/{i}.flac")),
        })
        .collect()
}

#[test]
fn a_library_track_goes_to_the_queue_with_its_file() {
    let mut screen = party("Gus");
    screen.library = library_tracks();
    screen.library_size = 2;
    let mut gus = harness(screen);
    gus.state_mut().forms.page = whatnext_ui::Page::Library;
    gus.run();
    let buttons: Vec<_> = gus.get_all_by_label("Add to queue").collect();
    assert_eq!(buttons.len(), 2);
    buttons[1].click();
    gus.run();
    match gus.state().actions.as_slice() {
        [Action::Local(LocalAction::AddFile { title, path, .. })] => {
            assert_eq!(title, "Night Bus Home");
            assert_eq!(path, "/music/1.flac");
        }
        other => panic!("expected one AddFile, got {other:?}"),
    }
}

#[test]
fn without_a_party_the_library_can_import_but_not_queue() {
    let mut screen = no_party("Gus");
    screen.library = library_tracks();
    screen.library_size = 2;
    let mut alone = harness(screen);
    alone.state_mut().forms.page = whatnext_ui::Page::Library;
    alone.run();
    assert!(
        alone
            .get_all_by_label("Add to queue")
            .all(|b| b.accesskit_node().is_disabled())
    );
    alone.state_mut().forms.import_folder = "/home/gus/Music".into();
    alone.run();
    alone.get_by_label("Import").click();
    alone.run();
    assert_eq!(
        alone.state().actions,
        [Action::Local(LocalAction::ImportFolder {
            path: "/home/gus/Music".into()
        })]
    );
}

#[test]
fn dragging_a_track_onto_another_moves_it_there() {
    let mut hana = harness(party("Hana"));
    let handle = hana
        .get_all_by_label("=")
        .next()
        .expect("a handle")
        .rect()
        .center();
    let target = hana.get_by_label("Song 3").rect().center();
    hana.hover_at(handle);
    hana.run();
    hana.drag_at(handle);
    hana.run();
    for step in 1..=5 {
        hana.hover_at(handle + (target - handle) * (step as f32 / 5.0));
        hana.run();
    }
    hana.drop_at(target);
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::MoveTrack {
            track_id: TrackId(1),
            after: Some(TrackId(3)),
        })]
    );
}

#[test]
fn the_host_removes_and_bans_from_the_people_list_and_guests_cannot() {
    let mut hana = harness(party("Hana"));
    // Cole and Gus each have a "Remove…" menu; Hana's own row has none.
    assert_eq!(hana.query_all_by_label("Remove…").count(), 2);
    hana.query_all_by_label("Remove…")
        .last()
        .expect("Gus's menu")
        .click();
    hana.run();
    hana.get_by_label("Remove and ban").click();
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::RemoveMember {
            peer: peer("Gus"),
            ban: true,
        })]
    );
    // A co-host removes guests, not other co-hosts or the host.
    let cole = harness(party("Cole"));
    assert_eq!(cole.query_all_by_label("Remove…").count(), 1);
    let gus = harness(party("Gus"));
    assert!(gus.query_by_label("Remove…").is_none());
}

#[test]
fn the_host_can_make_a_new_link_and_code() {
    let mut hana = harness(party("Hana"));
    hana.get_by_label("New link and code").click();
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Local(LocalAction::RotateInvite)]
    );
    let gus = harness(party("Gus"));
    assert!(gus.query_by_label("New link and code").is_none());
}

#[test]
fn a_storage_problem_shows_a_banner_until_writes_work_again() {
    let banner = "Can't save: the disk is full or failing";
    let fine = harness(party("Hana"));
    assert!(fine.query_by_label_contains(banner).is_none());
    let mut full = party("Hana");
    full.storage_problem = Some("cannot save to /data: No space left on device".into());
    let full = harness(full);
    assert!(full.query_by_label_contains(banner).is_some());
}

#[test]
fn an_outbox_intent_refused_later_is_shown_with_its_reason() {
    let refused = IntentRefused {
        intent: Intent {
            id: IntentId {
                author: peer("Gus"),
                counter: 7,
            },
            action: Action::Session(SessionAction::RemoveTrack {
                track_id: TrackId(1),
            }),
        },
        error: IntentError::refused(Rule::GuestsRemoveOnlyTheirOwnTracks),
    };
    let mut gus = harness(party("Gus"));
    gus.state_mut().forms.problem = Some(whatnext_ui::Problem::refused_later(&refused));
    gus.run();
    assert!(
        gus.query_by_label_contains("The host refused a change you made while it was away")
            .is_some()
    );
}
/// Drags the handle of the row titled `from` and drops it on the row titled `onto`, with
/// `between` run while the drag is under way (another peer changing the queue, say).
fn drag_and_drop(
    harness: &mut Harness<'_, State>,
    from: usize,
    onto: &str,
    between: impl FnOnce(&mut State),
) {
    let handle = harness
        .get_all_by_label("=")
        .nth(from)
        .expect("a handle")
        .rect()
        .center();
    harness.hover_at(handle);
    harness.run();
    harness.drag_at(handle);
    harness.run();
    harness.hover_at(handle + egui::vec2(0.0, 4.0));
    harness.run();
    between(harness.state_mut());
    harness.run();
    let target = harness.get_by_label(onto).rect().center();
    for step in 1..=5 {
        harness.hover_at(handle + (target - handle) * (step as f32 / 5.0));
        harness.run();
    }
    harness.drop_at(target);
    harness.run();
}

fn remove_from_queue(state: &mut State, track: TrackId) {
    if let Some(session) = &mut state.screen.session {
        session.queue.retain(|t| t.track_id != track);
    }
}

/// The dragged row was the last of three; the first is removed mid-drag, so the row it
/// started from is past the end of the queue when it is dropped.
#[test]
fn a_drag_survives_the_queue_shrinking_under_it() {
    let mut hana = harness(party("Hana"));
    drag_and_drop(&mut hana, 2, "Song 2", |state| {
        remove_from_queue(state, TrackId(1))
    });
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::MoveTrack {
            track_id: TrackId(3),
            after: None,
        })]
    );
}

/// The dragged track itself goes away mid-drag: dropping it moves nothing, neither past
/// the end (it was last) nor the track that took its row (it was in the middle).
#[test]
fn a_dragged_track_removed_mid_drag_moves_nothing() {
    for (row, gone) in [(2, TrackId(3)), (1, TrackId(2))] {
        let mut hana = harness(party("Hana"));
        drag_and_drop(&mut hana, row, "Song 1", |state| {
            remove_from_queue(state, gone)
        });
        assert_eq!(hana.state().actions, [], "dragging row {row}");
    }
}

/// A screen outside any party, as the app starts when the desktop opens a link.
fn not_in_a_party() -> Harness<'static, State> {
    harness(no_party("Mia"))
}

const HANA_LINK: &str =
    "whtnxt://connect/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA?session=Friday&key=abc";

/// The Join button of the prompt (the join form's own is disabled while its field is empty).
fn prompt_button<'a>(harness: &'a Harness<'_, State>, label: &'a str) -> egui_kittest::Node<'a> {
    harness
        .get_all_by_label(label)
        .find(|node| !node.accesskit_node().is_disabled())
        .expect("an enabled button")
}

#[test]
fn a_link_from_the_desktop_asks_before_joining() {
    let host = PeerId::new("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    let mut mia = not_in_a_party();
    mia.state_mut().forms.opened_with = Some(HANA_LINK.into());
    mia.run();
    assert_eq!(
        mia.state().actions,
        [],
        "nothing is sent before the user says yes"
    );
    mia.get_by_label_contains(&format!("hosted by key {}", host.fingerprint()));
    // Still asking, frames later.
    mia.run();
    assert_eq!(mia.state().actions, []);
    prompt_button(&mia, "Join").click();
    mia.run();
    assert_eq!(
        mia.state().actions,
        [Action::Local(LocalAction::JoinSession {
            invite: HANA_LINK.into()
        })]
    );
    assert!(
        mia.query_by_label_contains("hosted by key").is_none(),
        "the prompt closes"
    );
}

#[test]
fn cancelling_a_link_from_the_desktop_joins_nothing() {
    let mut mia = not_in_a_party();
    mia.state_mut().forms.opened_with = Some(HANA_LINK.into());
    mia.run();
    prompt_button(&mia, "Cancel").click();
    mia.run();
    mia.run();
    assert_eq!(mia.state().actions, []);
    assert!(mia.query_by_label_contains("hosted by key").is_none());
}

#[test]
fn a_short_code_from_the_command_line_asks_too_and_a_bad_link_is_a_sentence() {
    let mut mia = not_in_a_party();
    mia.state_mut().forms.opened_with = Some("ABC234".into());
    mia.run();
    mia.get_by_label_contains("with the code ABC234");
    assert_eq!(mia.state().actions, []);

    let mut mia = not_in_a_party();
    mia.state_mut().forms.opened_with = Some("whtnxt://nonsense".into());
    mia.run();
    mia.run();
    assert_eq!(mia.state().actions, []);
    assert!(mia.query_by_label_contains("hosted by key").is_none());
    mia.get_by_label_contains("That invite doesn");
}

#[test]
fn the_share_panel_offers_the_phone_page_only_when_there_is_one() {
    let mut with_page = party("Hana");
    with_page.phone_link =
        Some("http://192.168.1.20:47800/c/0123456789abcdef0123456789abcdef/".into());
    let hana = harness(with_page);
    assert!(hana.query_by_label("Copy phone link").is_some());
    assert!(
        hana.query_by_label_contains("/c/0123456789abcdef")
            .is_some()
    );
    let without = harness(party("Hana"));
    assert!(without.query_by_label("Copy phone link").is_none());
}

#[test]
fn the_host_can_make_a_cohost_the_host_and_nobody_else_can() {
    let mut hana = harness(party("Hana"));
    hana.get_by_label("Make host").click();
    hana.run();
    assert_eq!(
        hana.state().actions,
        [Action::Session(SessionAction::TransferHost {
            to: peer("Cole")
        })]
    );
    let cole = harness(party("Cole"));
    assert!(cole.query_by_label("Make host").is_none());
    let gus = harness(party("Gus"));
    assert!(gus.query_by_label("Make host").is_none());
}

#[test]
fn a_new_host_is_said_under_the_top_bar() {
    let text = whatnext_ui::words::host_changed("Cole", "Hana", HostChange::Takeover);
    assert_eq!(
        text,
        "Cole is now the host: Hana could not be reached, so the first co-host in line took over."
    );
    let mut gus = harness(party("Gus"));
    assert!(gus.query_by_label(&text).is_none());
    gus.state_mut().forms.host_notice = Some((
        text.clone(),
        std::time::Instant::now() + std::time::Duration::from_secs(30),
    ));
    gus.run();
    assert!(gus.query_by_label(&text).is_some(), "the notice shows");
}

/// Gus's second track is coming from Gus at 40%; his third is unavailable (Gus offline).
fn party_with_media(me: &str) -> Screen {
    let mut screen = party(me);
    let session = screen.session.as_mut().expect("session");
    let media = |state: &'static str, progress: f32| whatnext_core::view::MediaView {
        hash: ContentHash([7; 32]),
        size: 1_000,
        format: AudioFormat::Flac,
        state,
        progress,
        from: (state == "fetching").then(|| peer("Gus")),
        holders: if state == "unavailable" {
            vec![peer("Gus")]
        } else {
            Vec::new()
        },
    };
    session.queue[0].media = Some(media("here", 1.0));
    session.queue[1].media = Some(media("fetching", 0.4));
    session.queue[2].media = Some(media("unavailable", 0.0));
    screen
}

#[test]
fn the_queue_shows_where_each_tracks_file_is() {
    let hana = harness(party_with_media("Hana"));
    assert!(
        hana.query_by_label("getting it from Gus… 40%").is_some(),
        "a transfer and its progress"
    );
    assert!(
        hana.query_by_label("unavailable: Gus has it and is offline")
            .is_some(),
        "who has a file nobody online holds"
    );
}

#[test]
fn a_guest_switches_listen_along_on_and_the_owner_has_no_such_toggle() {
    let mut gus = harness(party("Gus"));
    gus.get_by_label("Listen along").click();
    gus.run();
    assert_eq!(
        gus.state().actions,
        [Action::Local(LocalAction::SetListening { on: true })]
    );
    let hana = harness(party("Hana"));
    assert!(
        hana.query_by_label("Listen along").is_none(),
        "the owner's device plays anyway"
    );
}

#[test]
fn listening_along_says_how_far_the_sound_is_from_the_clock() {
    let mut screen = party("Gus");
    if let Some(session) = screen.session.as_mut() {
        session.listening = true;
    }
    screen.audio = AudioStatus {
        track_id: Some(TrackId(1)),
        position_ms: 30_000,
        output: AudioOutput::Silent,
        playing: true,
        offset_us: Some(240),
    };
    let gus = harness(screen);
    assert!(
        gus.query_by_label("in step · 0.2 ms off the clock")
            .is_some()
    );
}

/// A text field with the keyboard in a focused window asks egui for no repaint at all: bevy_egui
/// redraws at once for any repaint egui asks for, even one due later (a cursor's next blink), so
/// the window would draw every frame for as long as someone leaves a field focused.
#[test]
fn a_focused_text_field_asks_for_no_repaint() {
    let mut start = harness(no_party("Robin"));
    start.ctx.set_visuals(whatnext_ui::theme::visuals());
    start.input_mut().focused = true;
    start.state_mut().forms.focus_join = true;
    start.run();
    assert!(
        start.ctx.memory(|m| m.focused().is_some()),
        "the join field has the keyboard"
    );
    start.step();
    let delay = start.output().viewport_output[&egui::ViewportId::ROOT].repaint_delay;
    assert_eq!(
        delay,
        std::time::Duration::MAX,
        "a repaint asked for in {delay:?}"
    );
}
