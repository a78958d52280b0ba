//! The title, artist and minutes fields that add a track, by hand, to the queue or the library.

use bevy_egui::egui;

use crate::Forms;

/// Title, artist and minutes fields with a button: the typed track once the button is
/// clicked with valid input (the title field is then cleared for the next one).
pub fn track_fields(
    ui: &mut egui::Ui,
    forms: &mut Forms,
    button: &str,
) -> Option<(String, String, u64)> {
    ui.label("Title");
    ui.add(egui::TextEdit::singleline(&mut forms.track_title).desired_width(180.0));
    ui.label("Artist");
    ui.add(egui::TextEdit::singleline(&mut forms.track_artist).desired_width(140.0));
    ui.label("Minutes");
    ui.add(egui::TextEdit::singleline(&mut forms.track_minutes).desired_width(40.0));
    let minutes = minutes(&forms.track_minutes);
    let ready = !forms.track_title.trim().is_empty() && minutes.is_some();
    if !ui.add_enabled(ready, egui::Button::new(button)).clicked() {
        return None;
    }
    let track = (
        forms.track_title.trim().to_owned(),
        forms.track_artist.trim().to_owned(),
        (minutes.unwrap_or(0.0) * 60_000.0) as u64,
    );
    forms.track_title.clear();
    Some(track)
}

/// A duration typed in minutes ("3.5"), if it is one.
pub fn minutes(text: &str) -> Option<f64> {
    text.trim()
        .parse()
        .ok()
        .filter(|m: &f64| m.is_finite() && *m > 0.0)
}
