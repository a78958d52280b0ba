//! Reactions: any member but a display may react; the host records them in the replicated
//! `Reactions` list and reports each once as a `SessionEvent::Reaction`.

use bevy::prelude::*;
use whatnext_core::prelude::*;

use crate::*;

fn reactions(app: &mut App) -> Vec<Reaction> {
    app.world_mut()
        .query::<&Reactions>()
        .iter(app.world())
        .next()
        .map(|r| r.recent.clone())
        .unwrap_or_default()
}

fn reaction_events(app: &mut App) -> Vec<SessionEvent> {
    app.world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .drain()
        .filter(|e| matches!(e, SessionEvent::Reaction { .. }))
        .collect()
}

fn react(emoji: Emoji, track_id: Option<TrackId>) -> SessionAction {
    SessionAction::React { emoji, track_id }
}

#[test]
fn a_guests_reaction_is_about_the_track_playing_and_is_reported_once() {
    let mut app = party();
    add_track(&mut app, HOST, 1, "One").expect("add");
    act(&mut app, HOST, SessionAction::Play).expect("play");
    app.update();
    reaction_events(&mut app);

    act(&mut app, GUEST, react(Emoji::Fire, None)).expect("a guest reacts");
    app.update();
    let recorded = reactions(&mut app);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].from, PeerId::new(GUEST));
    assert_eq!(recorded[0].track_id, Some(TrackId(1)));
    assert_eq!(
        reaction_events(&mut app),
        vec![SessionEvent::Reaction {
            emoji: Emoji::Fire,
            from: PeerId::new(GUEST),
            track_id: Some(TrackId(1)),
        }]
    );
    app.update();
    assert!(reaction_events(&mut app).is_empty(), "reported once");

    act(&mut app, COHOST, react(Emoji::Heart, Some(TrackId(1)))).expect("a co-host reacts");
    app.update();
    assert_eq!(reactions(&mut app).len(), 2);
    assert_eq!(reaction_events(&mut app).len(), 1, "only the new one");
}

#[test]
fn a_display_cannot_react_and_an_unknown_track_is_not_found() {
    let mut app = party();
    let refused = act(&mut app, SCREEN, react(Emoji::Party, None)).expect_err("display");
    assert_eq!(refused.code, ErrorCode::NotPermitted);
    let missing = act(&mut app, GUEST, react(Emoji::Party, Some(TrackId(99)))).expect_err("track");
    assert_eq!(missing.code, ErrorCode::NotFound);
    let stranger = act(&mut app, "stranger", react(Emoji::Party, None)).expect_err("stranger");
    assert_eq!(stranger.code, ErrorCode::NotPermitted);
    assert!(reactions(&mut app).is_empty());
}
