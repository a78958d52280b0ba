//! A link handed over by the desktop (`whtnxt://` opens the app) is a web page's say, not the
//! user's: the window asks before joining, naming the host by its key's fingerprint.

use bevy_egui::egui;
use whatnext_core::invite::Invite;
use whatnext_core::prelude::*;

use crate::Forms;
use crate::words::Problem;

/// The question for an invite, in words.
fn question(invite: &Invite) -> String {
    match invite {
        Invite::Url(url) => format!(
            "Join the party “{}” hosted by key {}?",
            url.session.0,
            url.host.fingerprint()
        ),
        Invite::Code(code) => format!("Join the party with the code {code}?"),
    }
}

/// Asks about `forms.opened_with`, if any: Join sends the join, Cancel forgets the link. An
/// invite that does not parse becomes the usual sentence instead.
pub(super) fn show(ui: &mut egui::Ui, forms: &mut Forms, actions: &mut Vec<Action>) {
    let Some(link) = forms.opened_with.clone() else {
        return;
    };
    let invite = match link.parse::<Invite>() {
        Ok(invite) => invite,
        Err(bad) => {
            forms.problem = Some(Problem::bad_invite(bad.to_string()));
            forms.opened_with = None;
            return;
        }
    };
    let mut answer = None;
    egui::Modal::new(egui::Id::new("confirm-join")).show(ui.ctx(), |ui| {
        ui.heading("A link wants you to join a party");
        ui.label(question(&invite));
        ui.weak("Only join parties you expect: the host sees your name and key.");
        ui.horizontal(|ui| {
            if ui.button("Join").clicked() {
                answer = Some(true);
            }
            if ui.button("Cancel").clicked() {
                answer = Some(false);
            }
        });
    });
    match answer {
        Some(true) => {
            forms.opened_with = None;
            forms.invite = link.clone();
            forms.problem = None;
            actions.push(Action::Local(LocalAction::JoinSession { invite: link }));
        }
        Some(false) => forms.opened_with = None,
        None => {}
    }
}
