//! What this device may do now. The answer comes from core's `facts_for` and `authorize`,
//! the same rules the host enforces, so the window never offers what would be refused.

use whatnext_core::prelude::*;

use crate::Screen;

/// Whether the rules let this device do `action` now (what the host would check).
pub fn allowed(screen: &Screen, session: &SessionSnapshot, action: &SessionAction) -> bool {
    let seen = AsSeenHere { screen, session };
    facts_for(&seen, &screen.me.peer, action).is_some_and(|facts| authorize(action, &facts).is_ok())
}

/// The session as this device sees it: its own role is the one the screen was given, the
/// others' come from the read model.
struct AsSeenHere<'a> {
    screen: &'a Screen,
    session: &'a SessionSnapshot,
}

impl SessionRoles for AsSeenHere<'_> {
    fn role_of(&self, peer: &PeerId) -> Option<Role> {
        if *peer == self.screen.me.peer {
            self.screen.my_role
        } else {
            self.session.role_of(peer)
        }
    }

    fn playback_owner(&self) -> &PeerId {
        self.session.playback_owner()
    }

    fn added_by(&self, track: TrackId) -> Option<&PeerId> {
        self.session.added_by(track)
    }
}
