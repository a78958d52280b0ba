//! The `whatnext` binary: whatnext with no extensions.

fn main() -> std::process::ExitCode {
    whatnext::run_with(|_| {})
}
