//! whatnext's app assembly: command line, modes (desktop window, kiosk, headless), and the
//! extension point. The `whatnext` binary is `run_with(|_| {})`; an extension is a crate with
//! its own `main` that calls `run_with` and adds its Bevy plugin (see docs/extensions.md).

mod demo;
mod headless;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use whatnext_companion::{CompanionConfig, CompanionPlugin};
use whatnext_core::prelude::SessionPlugin;
use whatnext_network::{NetConfig, NetworkPlugin};
use whatnext_replication::ReplicationPlugin;
use whatnext_storage::StoragePlugin;

/// whatnext: a local-first, peer-to-peer listening party.
///
/// Without flags it opens the desktop window. With --headless it speaks the JSON-lines
/// control protocol (docs/control-protocol.md) on stdin and stdout, and logs to stderr.
#[derive(Parser, Debug)]
#[command(name = "whatnext", version, about, long_about)]
struct Cli {
    /// An invite link (whtnxt://… or whatnext://…) or short code, as the desktop's link
    /// handler passes it (see packaging/whatnext.desktop). The window asks "Join …?" first;
    /// the party screen (--kiosk) joins it at once.
    #[arg(value_name = "INVITE")]
    invite: Option<String>,

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

    /// An address to accept direct connections on (repeatable) [default: a free TCP and a
    /// free QUIC port on all interfaces].
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<libp2p::Multiaddr>,

    /// Accept no direct connections: be reachable only through the relay.
    #[arg(long, conflicts_with = "listen")]
    no_direct: bool,

    /// Do not look for peers on the local network (mDNS).
    #[arg(long)]
    no_mdns: bool,

    /// Do not try to upgrade relayed connections to direct ones (DCUtR hole punching).
    #[arg(long)]
    no_hole_punch: bool,

    /// Work offline: no network thread at all.
    #[arg(long)]
    offline: bool,

    /// Show a made-up party (a dozen tracks, three people, a co-host playing), offline and
    /// in a throwaway data directory, so nothing of yours is touched.
    #[arg(long, conflicts_with = "data_dir")]
    demo: bool,

    /// The party screen: full screen, no cursor, an animated visualizer with now playing,
    /// up next and the join code. Hosts a party, or joins INVITE as a read-only screen.
    #[arg(long, conflicts_with = "headless")]
    kiosk: bool,

    /// Calmer motion and no flashes (with --kiosk).
    #[arg(long)]
    reduce_motion: bool,

    /// Where the phone page listens while you host (repeatable) [default: this machine's
    /// private IPv4 addresses, the local network only].
    #[arg(long, value_name = "IP")]
    companion_listen: Vec<std::net::IpAddr>,

    /// The phone page's port [default: 47800, or a free one when it is taken].
    #[arg(long, value_name = "PORT")]
    companion_port: Option<u16>,

    /// Serve no phone page.
    #[arg(long)]
    no_companion: bool,

    /// How long the host of a party you co-host may be out of reach before you take over,
    /// in seconds (the next co-host in line waits twice as long, and so on).
    #[arg(long, value_name = "SECONDS", default_value_t = whatnext_replication::TAKEOVER_AFTER.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    takeover_after: u64,

    /// The largest audio file you can add to a queue, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = whatnext_media::DEFAULT_MAX_FILE_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_file_mib: u64,

    /// How much of other people's music this device keeps (the content store), in MiB; the
    /// least recently played goes first, never the current and next tracks.
    #[arg(long, value_name = "MIB", default_value_t = whatnext_media::DEFAULT_STORE_CAP_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    store_cap_mib: u64,
}

impl Cli {
    fn net_config(&self, storage: &StoragePlugin) -> Option<NetConfig> {
        if self.offline || self.demo {
            return None;
        }
        let identity = storage.identity()?;
        let mut config = NetConfig::new(identity.libp2p_keypair());
        if !self.listen.is_empty() {
            config.listen = self.listen.clone();
        }
        if self.no_direct {
            config.listen.clear();
        }
        config.mdns = !self.no_mdns;
        config.hole_punch = !self.no_hole_punch;
        Some(config)
    }
}

/// The phone page's settings from the command line, read when the plugins are added.
static COMPANION: std::sync::OnceLock<CompanionConfig> = std::sync::OnceLock::new();
/// `--takeover-after`, read when the plugins are added.
static TAKEOVER_AFTER: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
/// `--max-file-mib` and `--store-cap-mib`, for the media plugin.
static MEDIA: std::sync::OnceLock<whatnext_media::MediaSettings> = std::sync::OnceLock::new();

impl Cli {
    fn companion_config(&self) -> CompanionConfig {
        let mut config = CompanionConfig::default();
        if !self.companion_listen.is_empty() {
            config.listen = Some(self.companion_listen.clone());
        }
        if let Some(port) = self.companion_port {
            config.port = port;
        }
        config.disabled = self.no_companion;
        config
    }
}

/// Adds an extension's plugins to the app, after whatnext's own core plugins.
pub type Extend = fn(&mut bevy::app::App);

/// What an extension needs: whatnext's components, messages and events, the replication
/// extension trait, and the party screen's visualizer frame.
pub mod prelude {
    pub use bevy::prelude::*;
    pub use whatnext_core::prelude::*;
    pub use whatnext_kiosk::VisualizerFrame;
    pub use whatnext_replication::AppReplicationExt;
}

/// Parses the command line and runs whatnext, with `extend` adding an extension's plugins.
pub fn run_with(extend: Extend) -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    let _ = COMPANION.set(cli.companion_config());
    let _ = TAKEOVER_AFTER.set(std::time::Duration::from_secs(cli.takeover_after));
    let _ = MEDIA.set(whatnext_media::MediaSettings {
        max_file_bytes: cli.max_file_mib << 20,
        store_cap_bytes: cli.store_cap_mib << 20,
    });
    let demo_dir = cli
        .demo
        .then(|| std::env::temp_dir().join(format!("whatnext-demo-{}", std::process::id())));
    let Some(data_dir) = demo_dir
        .clone()
        .or_else(|| cli.data_dir.clone())
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
    let network = cli.net_config(&storage);
    let exit = if cli.headless {
        headless::run(storage, network, cli.demo, extend)
    } else {
        window::run(
            storage,
            network,
            window::Options {
                screenshot: cli.screenshot,
                demo: cli.demo,
                invite: cli.invite,
                kiosk: cli.kiosk.then_some(cli.reduce_motion),
                extend,
            },
        )
    };
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
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

/// The plugins every mode shares, in dependency order. Call after any `AppWaker` is set.
pub(crate) fn add_core_plugins(
    app: &mut bevy::app::App,
    storage: StoragePlugin,
    network: Option<NetConfig>,
    demo: bool,
    extend: Extend,
) {
    let media = whatnext_media::MediaPlugin {
        store_dir: storage.dir().map(|dir| dir.join("media")),
        settings: MEDIA.get().cloned().unwrap_or_default(),
    };
    app.add_plugins(SessionPlugin)
        .add_plugins(storage)
        .add_plugins(whatnext_library::LibraryPlugin)
        .add_plugins(media)
        .add_plugins(whatnext_playback::PlaybackPlugin);
    if let Some(config) = network {
        app.add_plugins(NetworkPlugin::new(config))
            .add_plugins(ReplicationPlugin);
        if let Some(after) = TAKEOVER_AFTER.get() {
            app.insert_resource(whatnext_replication::TakeoverAfter(*after));
        }
    }
    if demo {
        app.add_plugins(demo::DemoPlugin);
    } else {
        let config = COMPANION.get().cloned().unwrap_or_default();
        app.add_plugins(CompanionPlugin::new(config));
    }
    extend(app);
}
