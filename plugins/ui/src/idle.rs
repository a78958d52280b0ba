//! Lets the desktop window idle between its timed redraws.
//!
//! bevy_egui 0.42 writes a `ModifiersChanged` event into egui's input on every frame, whether
//! Shift, Ctrl or Alt changed or not. egui takes any input event as a reason to paint again at
//! once, and bevy_egui turns that into a `RequestRedraw`: so the window drew every frame the
//! renderer could make (about 30 a second in a debug build, a whole core), reactive update mode
//! or not. Dropping the events that change nothing leaves egui's state exactly as it was.

use bevy::prelude::*;
use bevy_egui::egui::{Event, Modifiers};
use bevy_egui::{EguiContext, EguiInput, EguiPreUpdateSet};

/// Adds [`drop_unchanged_modifiers`] between bevy_egui's input and its pass, where bevy_egui
/// says input may be changed.
pub(crate) fn build(app: &mut App) {
    app.add_systems(
        PreUpdate,
        drop_unchanged_modifiers
            .after(EguiPreUpdateSet::ProcessInput)
            .before(EguiPreUpdateSet::BeginPass),
    );
}

/// Removes from each egui context's input the modifier events that set what egui already has.
fn drop_unchanged_modifiers(mut contexts: Query<(&mut EguiContext, &mut EguiInput)>) {
    for (mut context, mut input) in &mut contexts {
        let held = context.get_mut().input(|input| input.modifiers);
        keep_modifier_changes(held, &mut input.events);
    }
}

/// Keeps, of the `ModifiersChanged` events in `events`, those that change the modifiers held,
/// read the way egui reads them: such an event sets the modifiers, and losing focus clears them.
fn keep_modifier_changes(mut held: Modifiers, events: &mut Vec<Event>) {
    events.retain(|event| match event {
        Event::ModifiersChanged(new) => {
            let changes = *new != held;
            held = *new;
            changes
        }
        Event::WindowFocused(false) => {
            held = Modifiers::default();
            true
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_of_the_modifiers_held_is_dropped_and_a_change_is_kept() {
        let mut events = vec![
            Event::ModifiersChanged(Modifiers::NONE),
            Event::ModifiersChanged(Modifiers::SHIFT),
            Event::ModifiersChanged(Modifiers::SHIFT),
        ];
        keep_modifier_changes(Modifiers::NONE, &mut events);
        assert_eq!(events, vec![Event::ModifiersChanged(Modifiers::SHIFT)]);
    }

    #[test]
    fn after_focus_is_lost_the_held_modifiers_are_set_again() {
        // egui clears the modifiers when the window loses focus, so Shift still held must be
        // said again, although it is what was held before.
        let mut events = vec![
            Event::WindowFocused(false),
            Event::ModifiersChanged(Modifiers::SHIFT),
        ];
        keep_modifier_changes(Modifiers::SHIFT, &mut events);
        assert_eq!(events.len(), 2, "{events:?}");
    }
}
