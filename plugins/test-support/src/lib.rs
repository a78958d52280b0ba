//! Test support for whatnext's session and replication tests and benches: ready-made host
//! and member apps (`apps`), and a simulated network between a host and a member with a
//! link conditioner (`network`): loss, duplication, delay and reordering, all from a seed,
//! so a failing schedule replays exactly; and a party of several devices with real storage
//! that crash, restart and are cut off (`party`).
//!
//! ```
//! use whatnext_test_support::{HOST, MEMBER, Network, replicating_app, tick};
//!
//! let mut host = replicating_app(HOST);
//! let mut member = replicating_app(MEMBER);
//! let mut net = Network::new(7);
//! net.drop_chance = 0.1;
//! net.max_delay = 3;
//! tick(&mut host, &mut member, &mut net);
//! ```

mod apps;
mod network;
mod party;

pub use apps::{
    Author, FRAME, host_plays_a_track_from, replicating_app, session_app, session_state,
    single_threaded, test_media,
};
pub use network::{
    HOST, MEMBER, Network, SIMULATED_SECRET, STRANGER, Side, WELCOME_REPLY, member_joins, net_id,
    tick,
};
pub use party::{Device, PARTY_FRAME, PARTY_RELAY, PARTY_TAKEOVER_AFTER, Party};
