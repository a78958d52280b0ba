//! The user's relays: their status, removing one, adding one.

use bevy_egui::egui::{self, Color32, RichText};
use whatnext_core::prelude::*;
use whatnext_core::relay::validate_relay_addr;

use crate::Forms;
use crate::theme::{ACCENT, BAD, GOOD, WARN, dot};

/// The relay list and the field that adds one.
pub(super) fn show(
    ui: &mut egui::Ui,
    relays: &[RelayEntry],
    forms: &mut Forms,
    actions: &mut Vec<Action>,
) {
    ui.heading("Relays");
    if relays.is_empty() {
        ui.weak("None yet. Add the address your relay printed (it ends in /p2p/…).");
    }
    for relay in relays {
        ui.horizontal(|ui| {
            let colour = match relay.status {
                RelayStatus::Reserved => GOOD,
                RelayStatus::Connecting => WARN,
                RelayStatus::Failed { .. } => BAD,
                RelayStatus::Disconnected => Color32::GRAY,
            };
            let hover = match &relay.status {
                RelayStatus::Failed { reason } => reason.clone(),
                other => other.as_str().to_owned(),
            };
            dot(ui, colour).on_hover_text(&hover);
            let status = ui.label(RichText::new(relay.status.as_str()).small());
            if let RelayStatus::Failed { reason } = &relay.status {
                status.on_hover_text(reason);
            }
            // The manager reserves a slot on its active relay only.
            if relay.status == RelayStatus::Reserved {
                ui.label(RichText::new("in use").small().color(ACCENT));
            }
            if ui
                .small_button("Remove")
                .on_hover_text("Stop using this relay")
                .clicked()
            {
                actions.push(Action::Local(LocalAction::RemoveRelay {
                    addr: relay.addr.clone(),
                }));
            }
        });
        ui.label(RichText::new(&relay.addr).small().weak());
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut forms.relay).hint_text("/ip4/…/tcp/4001/p2p/12D3Koo…"),
        );
        let typed = forms.relay.trim();
        let check = (!typed.is_empty()).then(|| validate_relay_addr(typed));
        if ui
            .add_enabled(matches!(check, Some(Ok(_))), egui::Button::new("Add"))
            .clicked()
            && let Some(Ok(addr)) = check.as_ref()
        {
            actions.push(Action::Local(LocalAction::AddRelay { addr: addr.clone() }));
            forms.relay.clear();
        } else if let Some(Err(bad)) = check {
            ui.colored_label(BAD, "!").on_hover_text(bad.to_string());
        }
    });
}
