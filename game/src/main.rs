//! The `whatnext` binary: command line, modes (desktop window, headless), app assembly.

mod headless;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use whatnext_core::prelude::SessionPlugin;
use whatnext_storage::StoragePlugin;

/// whatnext: a local-first, peer-to-peer listening party.
///
/// Without flags it opens the desktop window. With --headless it speaks the JSON-lines
/// control protocol (docs/control-protocol.md) on stdin and stdout, and logs to stderr.
#[derive(Parser, Debug)]
#[command(name = "whatnext", version, about, long_about)]
struct Cli {
    /// Run without a window; read JSON requests on stdin, write replies and events on stdout.
    #[arg(long)]
    headless: bool,

    /// Where the identity key and the database live [default: the platform's data
    /// directory, e.g. ~/.local/share/whatnext].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Render the window, save a PNG of it to PATH, and exit.
    #[arg(long, value_name = "PATH", conflicts_with = "headless")]
    screenshot: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let Some(data_dir) = cli
        .data_dir
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("whatnext")))
    else {
        eprintln!("whatnext: this platform has no data directory; pass --data-dir DIR");
        return ExitCode::FAILURE;
    };
    let storage = match StoragePlugin::open(&data_dir) {
        Ok(storage) => storage,
        Err(error) => {
            eprintln!("whatnext: {error}");
            return ExitCode::FAILURE;
        }
    };
    let exit = if cli.headless {
        headless::run(storage)
    } else {
        window::run(storage, cli.screenshot)
    };
    match exit {
        bevy::app::AppExit::Success => ExitCode::SUCCESS,
        bevy::app::AppExit::Error(code) => ExitCode::from(code.get()),
    }
}

/// Logs go to stderr (stdout belongs to the control protocol); RUST_LOG filters them.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wgpu=error,naga=warn,bevy_render=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The plugins every mode shares, in dependency order.
fn add_core_plugins(app: &mut bevy::app::App, storage: StoragePlugin) {
    app.add_plugins(SessionPlugin).add_plugins(storage);
}
