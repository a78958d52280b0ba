//! What the party screen says, as a plain model (`party_screen`), and the egui overlay that
//! draws it over the visualizer, every size a share of the screen's height.

use bevy::prelude::*;
use bevy_egui::EguiContexts;
use bevy_egui::egui::{self, Align2, Color32, RichText};
use whatnext_core::prelude::*;
use whatnext_ui::words::format_ms;

/// How many upcoming tracks the screen lists.
pub const UP_NEXT: usize = 10;

/// One line of "now playing" or "up next".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The track's title.
    pub title: String,
    /// The track's artist.
    pub artist: String,
    /// The display name of whoever queued it ("someone" when they are unknown).
    pub added_by: String,
    /// While its file is not here: "Getting the song from Gus… 40%", or why it cannot come.
    pub file: Option<String>,
}

/// The screen's state, in the words it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartyScreen {
    /// Starting up, or joining a party.
    Loading(String),
    /// The host cannot be reached (this screen joined someone else's party).
    LostConnection,
    /// A party with nothing queued: how to join and add songs.
    Empty {
        /// The short join code, once there is one.
        code: Option<String>,
        /// The invite link (shown as a QR code), once there is one.
        url: Option<String>,
    },
    /// A party with a queue: what plays now, what comes next, and how to join.
    Party {
        /// The current track, its position and length in ms, and whether it is playing.
        now: Option<(Line, u64, u64, bool)>,
        /// Up to [`UP_NEXT`] tracks after the current one.
        next: Vec<Line>,
        /// The short join code, once there is one.
        code: Option<String>,
        /// The invite link (shown as a QR code), once there is one.
        url: Option<String>,
    },
}

/// What the screen shows, from the session (if any), its invite, the join's progress and
/// this device's peer (to tell whether the host is someone else, now away).
pub fn party_screen(
    snapshot: Option<SessionSnapshot>,
    invite: &SessionInvite,
    progress: JoinProgress,
    me: &LocalPeer,
) -> PartyScreen {
    let Some(s) = snapshot else {
        return PartyScreen::Loading(match progress {
            JoinProgress::Idle => "Starting the party…".into(),
            JoinProgress::LookingUpCode => "Looking up the party's code…".into(),
            JoinProgress::ConnectingToHost => "Connecting to the party…".into(),
            JoinProgress::WaitingForApproval => {
                "Waiting for the host to let this screen in…".into()
            }
        });
    };
    let host_away = s.host != me.peer
        && s.participants
            .iter()
            .any(|p| p.peer_id == s.host && !p.online);
    if host_away {
        return PartyScreen::LostConnection;
    }
    let (code, url) = (invite.short_code.clone(), invite.url.clone());
    if s.queue.is_empty() {
        return PartyScreen::Empty { code, url };
    }
    let name = |peer: &PeerId| {
        s.participants
            .iter()
            .find(|p| p.peer_id == *peer)
            .map_or_else(|| "someone".to_owned(), |p| p.display_name.clone())
    };
    let line = |t: &whatnext_core::view::TrackView| Line {
        title: t.title.clone(),
        artist: t.artist.clone(),
        added_by: name(&t.added_by),
        file: t.media.as_ref().and_then(|m| match m.state {
            "fetching" => Some(format!(
                "Getting the song from {}… {:.0}%",
                m.from.as_ref().map_or_else(|| "a friend".into(), &name),
                m.progress * 100.0
            )),
            "unavailable" => Some(format!(
                "The song is with {}, who is offline",
                m.holders.iter().map(&name).collect::<Vec<_>>().join(", ")
            )),
            _ => None,
        }),
    };
    let current = s
        .playback
        .track_id
        .and_then(|id| s.queue.iter().position(|t| t.track_id == id));
    let now = current.map(|i| {
        let t = &s.queue[i];
        (
            line(t),
            s.playback.position_ms,
            t.duration_ms,
            s.playback.state == PlayState::Playing,
        )
    });
    let from = current.map_or(0, |i| i + 1);
    let next = s.queue.iter().skip(from).take(UP_NEXT).map(line).collect();
    PartyScreen::Party {
        now,
        next,
        code,
        url,
    }
}

const DIM: Color32 = Color32::from_rgb(190, 190, 210);

/// The egui overlay over the visualizer: the [`party_screen`] model, drawn with sizes taken
/// from the screen's height. Runs in `EguiPrimaryContextPass`.
pub fn draw_overlay(
    mut contexts: EguiContexts,
    reader: SessionReader,
    invite: Res<SessionInvite>,
    progress: Option<Res<JoinProgress>>,
    phone: Option<Res<CompanionLink>>,
    reactions: Query<&Reactions>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    // The QR code takes phones to the phone page when this device serves one; the short
    // code stays for desktop users.
    let phone_url = phone.and_then(|p| p.url.clone());
    let now_counts = crate::reactions::counts_for(
        reactions.iter().next(),
        reader.playback().and_then(|p| p.track_id),
    );
    let screen = ctx.content_rect();
    let h = screen.height();
    let model = party_screen(
        reader.snapshot(),
        &invite,
        progress.map(|p| *p).unwrap_or_default(),
        reader.local_peer(),
    );
    let big = |text: &str, size: f32| RichText::new(text).size(h * size).color(Color32::WHITE);
    match model {
        PartyScreen::Loading(words) => centre(ctx, big(&words, 0.05)),
        PartyScreen::LostConnection => centre(
            ctx,
            big("Lost the connection to the host. Reconnecting…", 0.045),
        ),
        PartyScreen::Empty { code, url } => {
            centre(
                ctx,
                big("The queue is empty. Join the party and add a song!", 0.045),
            );
            join_corner(
                ctx,
                h,
                code.as_deref(),
                phone_url.as_deref().or(url.as_deref()),
            );
        }
        PartyScreen::Party {
            now,
            next,
            code,
            url,
        } => {
            area("now-playing")
                .anchor(Align2::LEFT_TOP, egui::vec2(h * 0.05, h * 0.05))
                .show(ctx, |ui| {
                    ui.set_max_width(screen.width() * 0.55);
                    ui.label(RichText::new("NOW PLAYING").size(h * 0.022).color(DIM));
                    match &now {
                        Some((line, position, duration, playing)) => {
                            ui.label(big(&line.title, 0.07).strong());
                            ui.label(RichText::new(&line.artist).size(h * 0.04).color(DIM));
                            ui.label(
                                RichText::new(format!("added by {}", line.added_by))
                                    .size(h * 0.025)
                                    .color(DIM),
                            );
                            if let Some(file) = &line.file {
                                ui.label(RichText::new(file).size(h * 0.03).color(Color32::WHITE));
                            }
                            if !now_counts.is_empty() {
                                ui.label(RichText::new(&now_counts).size(h * 0.035));
                            }
                            let fraction = if *duration == 0 {
                                0.0
                            } else {
                                *position as f32 / *duration as f32
                            };
                            ui.add(
                                egui::ProgressBar::new(fraction.clamp(0.0, 1.0))
                                    .desired_width(screen.width() * 0.45)
                                    .desired_height(h * 0.012),
                            );
                            let state = if *playing { "" } else { "  (paused)" };
                            ui.label(
                                RichText::new(format!(
                                    "{} / {}{state}",
                                    format_ms(*position),
                                    format_ms(*duration)
                                ))
                                .size(h * 0.022)
                                .color(DIM),
                            );
                        }
                        None => {
                            ui.label(big("Ready when you are", 0.06));
                        }
                    }
                });
            area("up-next")
                .anchor(Align2::RIGHT_TOP, egui::vec2(-h * 0.05, h * 0.05))
                .show(ctx, |ui| {
                    ui.set_max_width(screen.width() * 0.3);
                    ui.label(RichText::new("UP NEXT").size(h * 0.022).color(DIM));
                    if next.is_empty() {
                        ui.label(RichText::new("Nothing after this one yet").size(h * 0.026));
                    }
                    for line in &next {
                        ui.label(
                            RichText::new(format!("{} — {}", line.title, line.artist))
                                .size(h * 0.027)
                                .color(Color32::WHITE),
                        );
                        ui.label(
                            RichText::new(format!("added by {}", line.added_by))
                                .size(h * 0.018)
                                .color(DIM),
                        );
                    }
                });
            join_corner(
                ctx,
                h,
                code.as_deref(),
                phone_url.as_deref().or(url.as_deref()),
            );
        }
    }
    Ok(())
}

/// One of the overlay's areas. egui fades a new area in over 1/12 s; the party screen's areas
/// come back after each change of the screen's size (a full-screen window is resized at start),
/// and a fade there only dims the screen for a moment, and a screenshot with it.
fn area(id: &str) -> egui::Area {
    egui::Area::new(egui::Id::new(id)).fade_in(false)
}

fn centre(ctx: &egui::Context, text: RichText) {
    area("centre")
        .anchor(Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            ui.label(text);
        });
}

/// The join code, large, and the invite's QR code, bottom right.
fn join_corner(ctx: &egui::Context, h: f32, code: Option<&str>, url: Option<&str>) {
    area("join")
        .anchor(Align2::RIGHT_BOTTOM, egui::vec2(-h * 0.04, -h * 0.04))
        .show(ctx, |ui| {
            // A dark card, so the code reads over the moving bars.
            egui::Frame::new()
                .fill(Color32::from_rgba_unmultiplied(5, 5, 15, 230))
                .inner_margin(h * 0.02)
                .corner_radius(h * 0.015)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.vertical(|ui| {
                            ui.label(RichText::new("JOIN WITH CODE").size(h * 0.022).color(DIM));
                            let code = code.unwrap_or("······");
                            ui.label(
                                RichText::new(code)
                                    .size(h * 0.09)
                                    .monospace()
                                    .strong()
                                    .color(Color32::WHITE),
                            );
                            ui.label(
                                RichText::new("In whatnext: Join, then type the code")
                                    .size(h * 0.02)
                                    .color(DIM),
                            );
                        });
                        if let Some(url) = url {
                            whatnext_ui::qr::paint(ui, url, h * 0.22);
                        }
                    })
                });
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatnext_core::view::{ParticipantView, PlaybackView, TrackView};

    fn me() -> LocalPeer {
        LocalPeer {
            peer: PeerId::new("host"),
            display_name: "Screen".into(),
        }
    }

    fn party(queue: usize, host_online: bool) -> SessionSnapshot {
        SessionSnapshot {
            session_id: SessionId("S".into()),
            name: "P".into(),
            host: PeerId::new("host"),
            cohosts: vec![],
            playback_owner: PeerId::new("host"),
            participants: vec![ParticipantView {
                peer_id: PeerId::new("host"),
                display_name: "Hana".into(),
                role: Role::Host,
                online: host_online,
                connection: Connection::Myself,
            }],
            queue: (0..queue as u64)
                .map(|i| TrackView {
                    track_id: TrackId(i),
                    title: format!("T{i}"),
                    artist: "A".into(),
                    duration_ms: 1000,
                    added_by: PeerId::new("host"),
                    pending: false,
                    media: None,
                })
                .collect(),
            playback: PlaybackView {
                state: PlayState::Playing,
                track_id: (queue > 0).then_some(TrackId(0)),
                position_ms: 10,
            },
            listening: false,
        }
    }

    #[test]
    fn while_the_current_song_is_on_its_way_the_screen_says_from_whom_and_how_far() {
        let mut session = party(2, true);
        session.participants.push(ParticipantView {
            peer_id: PeerId::new("gus"),
            display_name: "Gus".into(),
            role: Role::Guest,
            online: true,
            connection: Connection::Relayed,
        });
        session.queue[0].media = Some(whatnext_core::view::MediaView {
            hash: ContentHash([1; 32]),
            size: 10,
            format: AudioFormat::Mp3,
            state: "fetching",
            progress: 0.4,
            from: Some(PeerId::new("gus")),
            holders: Vec::new(),
        });
        let screen = party_screen(
            Some(session),
            &SessionInvite::default(),
            JoinProgress::Idle,
            &me(),
        );
        let PartyScreen::Party { now, .. } = screen else {
            panic!("{screen:?}");
        };
        assert_eq!(
            now.and_then(|n| n.0.file).as_deref(),
            Some("Getting the song from Gus… 40%")
        );
    }

    #[test]
    fn up_next_lists_the_ten_tracks_after_the_current_one() {
        let screen = party_screen(
            Some(party(15, true)),
            &SessionInvite::default(),
            JoinProgress::Idle,
            &me(),
        );
        let PartyScreen::Party { now, next, .. } = screen else {
            panic!("{screen:?}");
        };
        assert_eq!(now.map(|n| n.0.title), Some("T0".to_owned()));
        let titles: Vec<String> = next.into_iter().map(|l| l.title).collect();
        assert_eq!(
            titles,
            (1..=10).map(|i| format!("T{i}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_screen_says_when_it_is_loading_empty_or_cut_off() {
        let invite = SessionInvite::default();
        assert!(matches!(
            party_screen(None, &invite, JoinProgress::WaitingForApproval, &me()),
            PartyScreen::Loading(words) if words.contains("let this screen in")
        ));
        assert!(matches!(
            party_screen(Some(party(0, true)), &invite, JoinProgress::Idle, &me()),
            PartyScreen::Empty { .. }
        ));
        let guest_screen = LocalPeer {
            peer: PeerId::new("screen"),
            display_name: "Screen".into(),
        };
        assert_eq!(
            party_screen(
                Some(party(3, false)),
                &invite,
                JoinProgress::Idle,
                &guest_screen
            ),
            PartyScreen::LostConnection
        );
    }
}
