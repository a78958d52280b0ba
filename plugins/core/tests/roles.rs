//! Every role against every intent, as the role table of REFERENCE.md states it.

use rstest::rstest;
use whatnext_core::prelude::*;

use Role::{CoHost, Display, Guest, Host};

fn action(kind: &str) -> SessionAction {
    let index = [
        "add",
        "remove",
        "move",
        "play",
        "pause",
        "next",
        "seek",
        "take",
        "handoff",
        "add_cohost",
        "remove_cohost",
        "approve",
        "deny",
        "kick",
        "react",
        "transfer_host",
    ]
    .iter()
    .position(|k| *k == kind)
    .expect("known kind");
    SessionAction::all_kinds().swap_remove(index)
}

#[test]
fn the_table_names_every_kind_of_session_action() {
    assert_eq!(SessionAction::all_kinds().len(), 16);
}

/// `owner`: the author owns playback. `own`: the author added the track being removed.
/// `target`: the role of the peer a hand-off goes to.
#[rstest]
// add track: everyone but a display
#[case::host_adds("add", Host, false, false, None, Ok(()))]
#[case::cohost_adds("add", CoHost, false, false, None, Ok(()))]
#[case::guest_adds("add", Guest, false, false, None, Ok(()))]
#[case::display_cannot_add("add", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// react: everyone but a display (phones are guests)
#[case::host_reacts("react", Host, false, false, None, Ok(()))]
#[case::cohost_reacts("react", CoHost, false, false, None, Ok(()))]
#[case::guest_reacts("react", Guest, false, false, None, Ok(()))]
#[case::display_cannot_react("react", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// remove a track they added
#[case::host_removes_own("remove", Host, false, true, None, Ok(()))]
#[case::cohost_removes_own("remove", CoHost, false, true, None, Ok(()))]
#[case::guest_removes_own("remove", Guest, false, true, None, Ok(()))]
#[case::display_cannot_remove_own(
    "remove",
    Display,
    false,
    true,
    None,
    Err(Rule::DisplayIsReadOnly)
)]
// remove any track
#[case::host_removes_any("remove", Host, false, false, None, Ok(()))]
#[case::cohost_removes_any("remove", CoHost, false, false, None, Ok(()))]
#[case::guest_cannot_remove_others(
    "remove",
    Guest,
    false,
    false,
    None,
    Err(Rule::GuestsRemoveOnlyTheirOwnTracks)
)]
#[case::display_cannot_remove_any(
    "remove",
    Display,
    false,
    false,
    None,
    Err(Rule::DisplayIsReadOnly)
)]
// move tracks
#[case::host_moves("move", Host, false, false, None, Ok(()))]
#[case::cohost_moves("move", CoHost, false, false, None, Ok(()))]
#[case::guest_cannot_move(
    "move",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostOrCohostMovesTracks)
)]
#[case::display_cannot_move("move", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// play / pause / seek / next: only the current owner, whatever the role
#[case::owner_host_plays("play", Host, true, false, None, Ok(()))]
#[case::owner_cohost_pauses("pause", CoHost, true, false, None, Ok(()))]
#[case::owner_guest_seeks("seek", Guest, true, false, None, Ok(()))]
#[case::owner_host_skips("next", Host, true, false, None, Ok(()))]
#[case::host_not_owner_cannot_play(
    "play",
    Host,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::host_not_owner_cannot_pause(
    "pause",
    Host,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::cohost_not_owner_cannot_seek(
    "seek",
    CoHost,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::cohost_not_owner_cannot_skip(
    "next",
    CoHost,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::guest_cannot_play(
    "play",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::guest_cannot_pause(
    "pause",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::guest_cannot_seek(
    "seek",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::guest_cannot_skip(
    "next",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyPlaybackOwnerControlsPlayback)
)]
#[case::display_cannot_play("play", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
#[case::display_cannot_pause("pause", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
#[case::display_cannot_seek("seek", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
#[case::display_cannot_skip("next", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// take playback
#[case::host_takes("take", Host, false, false, None, Ok(()))]
#[case::cohost_takes("take", CoHost, false, false, None, Ok(()))]
#[case::guest_cannot_take(
    "take",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostOrCohostTakesPlayback)
)]
#[case::display_cannot_take("take", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// hand off: the owner, to the host or a co-host
#[case::owner_host_hands_to_cohost("handoff", Host, true, false, Some(CoHost), Ok(()))]
#[case::owner_cohost_hands_to_host("handoff", CoHost, true, false, Some(Host), Ok(()))]
#[case::owner_cohost_hands_to_cohost("handoff", CoHost, true, false, Some(CoHost), Ok(()))]
#[case::owner_cannot_hand_to_guest(
    "handoff",
    Host,
    true,
    false,
    Some(Guest),
    Err(Rule::HandOffOnlyToHostOrCohost)
)]
#[case::owner_cannot_hand_to_display(
    "handoff",
    Host,
    true,
    false,
    Some(Display),
    Err(Rule::HandOffOnlyToHostOrCohost)
)]
#[case::owner_cannot_hand_to_stranger(
    "handoff",
    Host,
    true,
    false,
    None,
    Err(Rule::HandOffOnlyToHostOrCohost)
)]
#[case::host_not_owner_cannot_hand_off(
    "handoff",
    Host,
    false,
    false,
    Some(CoHost),
    Err(Rule::OnlyPlaybackOwnerHandsOff)
)]
#[case::cohost_not_owner_cannot_hand_off(
    "handoff",
    CoHost,
    false,
    false,
    Some(Host),
    Err(Rule::OnlyPlaybackOwnerHandsOff)
)]
#[case::guest_cannot_hand_off(
    "handoff",
    Guest,
    false,
    false,
    Some(Host),
    Err(Rule::OnlyPlaybackOwnerHandsOff)
)]
#[case::display_cannot_hand_off(
    "handoff",
    Display,
    false,
    false,
    Some(Host),
    Err(Rule::DisplayIsReadOnly)
)]
// add / remove co-host: host only
#[case::host_adds_cohost("add_cohost", Host, false, false, None, Ok(()))]
#[case::host_removes_cohost("remove_cohost", Host, false, false, None, Ok(()))]
#[case::cohost_cannot_add_cohost(
    "add_cohost",
    CoHost,
    false,
    false,
    None,
    Err(Rule::OnlyHostManagesCohosts)
)]
#[case::cohost_cannot_remove_cohost(
    "remove_cohost",
    CoHost,
    false,
    false,
    None,
    Err(Rule::OnlyHostManagesCohosts)
)]
#[case::guest_cannot_add_cohost(
    "add_cohost",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostManagesCohosts)
)]
#[case::guest_cannot_remove_cohost(
    "remove_cohost",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostManagesCohosts)
)]
#[case::display_cannot_add_cohost(
    "add_cohost",
    Display,
    false,
    false,
    None,
    Err(Rule::DisplayIsReadOnly)
)]
#[case::display_cannot_remove_cohost(
    "remove_cohost",
    Display,
    false,
    false,
    None,
    Err(Rule::DisplayIsReadOnly)
)]
// approve / deny a knock
#[case::host_approves("approve", Host, false, false, None, Ok(()))]
#[case::host_denies("deny", Host, false, false, None, Ok(()))]
#[case::cohost_approves("approve", CoHost, false, false, None, Ok(()))]
#[case::cohost_denies("deny", CoHost, false, false, None, Ok(()))]
#[case::guest_cannot_approve(
    "approve",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostOrCohostAnswersKnocks)
)]
#[case::guest_cannot_deny(
    "deny",
    Guest,
    false,
    false,
    None,
    Err(Rule::OnlyHostOrCohostAnswersKnocks)
)]
#[case::display_cannot_approve(
    "approve",
    Display,
    false,
    false,
    None,
    Err(Rule::DisplayIsReadOnly)
)]
#[case::display_cannot_deny("deny", Display, false, false, None, Err(Rule::DisplayIsReadOnly))]
// remove someone from the party (kick, ban): host and co-hosts; nobody removes the host,
// and a co-host removes only guests and party screens
#[case::host_kicks_guest("kick", Host, false, false, Some(Guest), Ok(()))]
#[case::host_kicks_cohost("kick", Host, false, false, Some(CoHost), Ok(()))]
#[case::host_kicks_display("kick", Host, false, false, Some(Display), Ok(()))]
#[case::cohost_kicks_guest("kick", CoHost, false, false, Some(Guest), Ok(()))]
#[case::cohost_kicks_display("kick", CoHost, false, false, Some(Display), Ok(()))]
#[case::cohost_cannot_kick_cohost(
    "kick",
    CoHost,
    false,
    false,
    Some(CoHost),
    Err(Rule::CohostsRemoveOnlyGuests)
)]
#[case::cohost_cannot_kick_host(
    "kick",
    CoHost,
    false,
    false,
    Some(Host),
    Err(Rule::TheHostCannotBeRemoved)
)]
#[case::guest_cannot_kick(
    "kick",
    Guest,
    false,
    false,
    Some(Guest),
    Err(Rule::OnlyHostOrCohostRemovesMembers)
)]
#[case::display_cannot_kick(
    "kick",
    Display,
    false,
    false,
    Some(Guest),
    Err(Rule::DisplayIsReadOnly)
)]
// hand the host role over: the host only, to a co-host only
#[case::host_transfers_to_cohost("transfer_host", Host, false, false, Some(CoHost), Ok(()))]
#[case::host_cannot_transfer_to_guest(
    "transfer_host",
    Host,
    false,
    false,
    Some(Guest),
    Err(Rule::HostingGoesOnlyToACohost)
)]
#[case::host_cannot_transfer_to_display(
    "transfer_host",
    Host,
    false,
    false,
    Some(Display),
    Err(Rule::HostingGoesOnlyToACohost)
)]
#[case::cohost_cannot_transfer(
    "transfer_host",
    CoHost,
    true,
    false,
    Some(CoHost),
    Err(Rule::OnlyTheHostTransfersHosting)
)]
#[case::guest_cannot_transfer(
    "transfer_host",
    Guest,
    false,
    false,
    Some(CoHost),
    Err(Rule::OnlyTheHostTransfersHosting)
)]
fn role_table(
    #[case] kind: &str,
    #[case] role: Role,
    #[case] owner: bool,
    #[case] own: bool,
    #[case] target: Option<Role>,
    #[case] expected: Result<(), Rule>,
) {
    let facts = Facts {
        role,
        is_playback_owner: owner,
        added_the_track: own,
        target_role: target,
    };
    assert_eq!(authorize(&action(kind), &facts), expected);
}

/// A display is refused everything, even if it were somehow made playback owner.
#[rstest]
fn a_display_is_refused_every_intent(#[values(false, true)] owner: bool) {
    for action in SessionAction::all_kinds() {
        let facts = Facts {
            role: Display,
            is_playback_owner: owner,
            added_the_track: true,
            target_role: Some(Host),
        };
        assert_eq!(
            authorize(&action, &facts),
            Err(Rule::DisplayIsReadOnly),
            "{action:?}"
        );
    }
}

#[test]
fn every_rule_explains_itself() {
    let rules = [
        Rule::DisplayIsReadOnly,
        Rule::GuestsRemoveOnlyTheirOwnTracks,
        Rule::OnlyHostOrCohostMovesTracks,
        Rule::OnlyPlaybackOwnerControlsPlayback,
        Rule::OnlyHostOrCohostTakesPlayback,
        Rule::OnlyPlaybackOwnerHandsOff,
        Rule::HandOffOnlyToHostOrCohost,
        Rule::OnlyHostManagesCohosts,
        Rule::OnlyHostOrCohostAnswersKnocks,
        Rule::OnlyHostOrCohostRemovesMembers,
        Rule::CohostsRemoveOnlyGuests,
        Rule::TheHostCannotBeRemoved,
        Rule::OnlyTheHostTransfersHosting,
        Rule::HostingGoesOnlyToACohost,
    ];
    let messages: std::collections::HashSet<&str> = rules.iter().map(|r| r.message()).collect();
    assert_eq!(messages.len(), rules.len(), "each rule has its own message");
    assert!(
        messages
            .iter()
            .all(|m| m.contains("only") || m.contains("cannot"))
    );
}

/// The read model answers the rules' questions as the authority's entities would.
#[test]
fn facts_come_from_the_read_model() {
    use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};
    let person = |name: &str, role: Role| ParticipantView {
        peer_id: PeerId::new(name),
        display_name: name.into(),
        role,
        online: true,
        connection: Connection::Relayed,
    };
    let session = SessionSnapshot {
        session_id: SessionId("S".into()),
        name: "Party".into(),
        host: PeerId::new("hana"),
        cohosts: vec![PeerId::new("cole")],
        playback_owner: PeerId::new("hana"),
        participants: vec![person("cole", CoHost), person("gus", Guest)],
        queue: vec![TrackView {
            track_id: TrackId(7),
            title: "Song".into(),
            artist: String::new(),
            duration_ms: 1_000,
            added_by: PeerId::new("gus"),
            pending: false,
            media: None,
        }],
        playback: PlaybackView {
            state: PlayState::Stopped,
            track_id: None,
            position_ms: 0,
        },
        listening: false,
    };
    let remove = SessionAction::RemoveTrack {
        track_id: TrackId(7),
    };
    let gus = facts_for(&session, &PeerId::new("gus"), &remove).expect("gus is a member");
    assert_eq!(gus.role, Guest);
    assert!(gus.added_the_track && !gus.is_playback_owner);
    // The host counts as a member even when the participant list lacks it.
    let hand_off = SessionAction::HandOff {
        to: PeerId::new("cole"),
    };
    let hana = facts_for(&session, &PeerId::new("hana"), &hand_off).expect("the host");
    assert_eq!((hana.role, hana.target_role), (Host, Some(CoHost)));
    assert!(hana.is_playback_owner && !hana.added_the_track);
    assert_eq!(facts_for(&session, &PeerId::new("stranger"), &remove), None);
}
