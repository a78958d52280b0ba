//! End-to-end tests: the real `whatnext` binary in real processes, with real data
//! directories. They find the binary next to this test executable in the target directory,
//! so build it first (`cargo build --workspace --bins`), as the README's test command does.

mod companion;
mod companion_browser;
mod harness;
mod headless;
mod http_client;
mod join;
mod kiosk;
mod lan;
mod library;
mod members;
mod music;
mod nat;
mod natlab;
mod outbox;
mod playback;
mod relay;
mod replication;
mod rogue;
mod rogue_client;
mod storage;
mod succession;
mod window;
