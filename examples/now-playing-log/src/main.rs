//! whatnext with the now-playing log: `cargo run -p whatnext-now-playing-log -- [whatnext flags]`.
//! The log goes to `$WHATNEXT_NOW_PLAYING_LOG`, or `now-playing.log` in the current folder.

fn main() -> std::process::ExitCode {
    whatnext::run_with(|app| {
        let path = std::env::var_os("WHATNEXT_NOW_PLAYING_LOG")
            .map(Into::into)
            .unwrap_or_else(|| "now-playing.log".into());
        app.add_plugins(whatnext_now_playing_log::NowPlayingLog { path });
    })
}
