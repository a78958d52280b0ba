//! Reactions on the party screen: each new one floats up from the bottom and fades, with
//! who sent it; the current track's reactions are counted next to it (see `view`). They come
//! from the replicated `Reactions` component, so a screen that joined as a display member
//! shows them as the host does.

use bevy::prelude::*;
use bevy_egui::EguiContexts;
use bevy_egui::egui::{self, Align2, Color32, FontId};
use whatnext_core::prelude::*;

/// How long a reaction takes to float up and fade, in ms.
pub const FLOAT_MS: u64 = 4_000;

/// The glyph the screen draws: the bundled emoji font lacks 🤯 and 🥳, so those two are
/// drawn as 💥 and 🎉.
pub fn screen_glyph(emoji: Emoji) -> &'static str {
    match emoji {
        Emoji::Fire => "🔥",
        Emoji::Heart => "❤",
        Emoji::ThumbsDown => "👎",
        Emoji::MindBlown => "💥",
        Emoji::Sleeping => "😴",
        Emoji::Party => "🎉",
    }
}

/// One reaction on its way up.
#[derive(Clone, Debug, PartialEq)]
pub struct Floater {
    /// Which reaction.
    pub emoji: Emoji,
    /// Who sent it, by name.
    pub from: String,
    /// When it appeared on this screen (wall-clock ms).
    pub since_ms: u64,
    /// Where across the screen it rises, 0..1.
    pub x: f32,
}

/// The reactions floating now, and the newest id already shown.
#[derive(Resource, Default, Debug)]
pub struct Floating {
    /// On their way up.
    pub floaters: Vec<Floater>,
    seen: Option<u64>,
}

/// In `Update`: new reactions start floating (and are logged, for whoever set the screen
/// up and for tests); finished ones go.
pub fn follow_reactions(
    reactions: Query<Ref<Reactions>>,
    people: Query<&Participant>,
    wall: Res<WallClock>,
    mut floating: ResMut<Floating>,
) {
    let now = wall.now_ms;
    floating
        .floaters
        .retain(|f| now.saturating_sub(f.since_ms) < FLOAT_MS);
    let Some(reactions) = reactions.iter().next() else {
        floating.seen = None;
        return;
    };
    if !reactions.is_changed() {
        return;
    }
    let first_look = floating.seen.is_none();
    for r in reactions.after(floating.seen) {
        // What arrived with the screen's first view of the party is history, unless fresh.
        if first_look && r.at_ms.saturating_add(FLOAT_MS) < now {
            continue;
        }
        let from = people
            .iter()
            .find(|p| p.peer == r.from)
            .map_or_else(|| "someone".to_owned(), |p| p.display_name.clone());
        tracing::info!(emoji = r.emoji.as_str(), %from, "party screen: reaction");
        // Spread them out, the same way on every screen, left of the join card.
        let x = 0.08 + 0.52 * ((r.id.wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0);
        floating.floaters.push(Floater {
            emoji: r.emoji,
            from,
            since_ms: now,
            x,
        });
    }
    floating.seen = reactions.recent.last().map(|r| r.id).or(floating.seen);
}

/// The current track's reactions as counts, e.g. `🔥 3   ❤ 1`; empty when none.
pub fn counts_for(reactions: Option<&Reactions>, track: Option<TrackId>) -> String {
    let (Some(reactions), Some(track)) = (reactions, track) else {
        return String::new();
    };
    Emoji::ALL
        .into_iter()
        .filter_map(|emoji| {
            let n = reactions
                .recent
                .iter()
                .filter(|r| r.emoji == emoji && r.track_id == Some(track))
                .count();
            (n > 0).then(|| format!("{} {n}", screen_glyph(emoji)))
        })
        .collect::<Vec<_>>()
        .join("   ")
}

/// In `EguiPrimaryContextPass`: the floating reactions, over everything else.
pub fn draw_reactions(
    mut contexts: EguiContexts,
    floating: Res<Floating>,
    wall: Res<WallClock>,
) -> Result {
    if floating.floaters.is_empty() {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?;
    let screen = ctx.content_rect();
    let h = screen.height();
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::new("reactions"),
    ));
    for f in &floating.floaters {
        let t = (wall.now_ms.saturating_sub(f.since_ms) as f32 / FLOAT_MS as f32).clamp(0.0, 1.0);
        let alpha = ((1.0 - t) * 255.0) as u8;
        let at = egui::pos2(
            screen.left() + f.x * screen.width(),
            screen.bottom() - h * (0.08 + 0.6 * t),
        );
        painter.text(
            at,
            Align2::CENTER_CENTER,
            screen_glyph(f.emoji),
            FontId::proportional(h * 0.08),
            Color32::from_rgba_unmultiplied(255, 255, 255, alpha),
        );
        painter.text(
            at + egui::vec2(0.0, h * 0.055),
            Align2::CENTER_CENTER,
            &f.from,
            FontId::proportional(h * 0.02),
            Color32::from_rgba_unmultiplied(220, 220, 235, alpha),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_name_only_the_current_tracks_reactions() {
        let mut reactions = Reactions::default();
        let me = PeerId::new("p");
        reactions.push(Emoji::Fire, me.clone(), Some(TrackId(1)), 0);
        reactions.push(Emoji::Fire, me.clone(), Some(TrackId(1)), 0);
        reactions.push(Emoji::Party, me.clone(), Some(TrackId(1)), 0);
        reactions.push(Emoji::Heart, me, Some(TrackId(2)), 0);
        assert_eq!(
            counts_for(Some(&reactions), Some(TrackId(1))),
            "🔥 2   🎉 1"
        );
        assert_eq!(counts_for(Some(&reactions), Some(TrackId(3))), "");
        assert_eq!(counts_for(None, Some(TrackId(1))), "");
    }
}
