//! The colours the screens share, the dark theme, and the status dot.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::EguiContexts;
use bevy_egui::egui::{self, Color32};

/// The highlight colour: the current track, the playback owner, selections and links.
pub const ACCENT: Color32 = Color32::from_rgb(120, 140, 250);
/// Online, reserved: all is well.
pub const GOOD: Color32 = Color32::from_rgb(90, 200, 120);
/// Waiting, connecting, pending: it may sort itself out.
pub const WARN: Color32 = Color32::from_rgb(230, 190, 90);
/// Failed or refused: the user has to act.
pub const BAD: Color32 = Color32::from_rgb(240, 110, 100);

/// A small filled circle in `colour`, for statuses.
pub fn dot(ui: &mut egui::Ui, colour: Color32) -> egui::Response {
    // Painted, not a glyph: the bundled fonts have no bullet character.
    let (rect, response) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.0, colour);
    response
}

/// The dark theme.
pub fn visuals() -> egui::Visuals {
    let mut visuals = egui::Visuals::dark();
    visuals.selection.bg_fill = ACCENT;
    visuals.hyperlink_color = ACCENT;
    // A steady text cursor: bevy_egui redraws at once for any repaint egui asks for, even one
    // due later, so a blinking cursor would draw the window every frame while a field is focused
    // (`desktop-window-idles.md`).
    visuals.text_cursor.blink = false;
    visuals
}

/// The dark theme ([`visuals`]), and text sized for the window: 1280×720 is the base, a 1080p screen gets
/// everything half as large again.
pub(crate) fn apply_theme(
    mut contexts: EguiContexts,
    window: Single<&Window, With<PrimaryWindow>>,
    mut styled: Local<bool>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    if !*styled {
        ctx.set_visuals(visuals());
        *styled = true;
    }
    let zoom = (window.resolution.height() / 720.0).clamp(1.0, 2.0);
    if (ctx.zoom_factor() - zoom).abs() > 0.01 {
        ctx.set_zoom_factor(zoom);
    }
    Ok(())
}
