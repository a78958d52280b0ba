//! `whatnext-relay`: the relay whatnext users run themselves.
//!
//! It runs circuit relay v2 (so peers behind NATs can reach each other), identify and ping
//! (so peers learn their observed addresses and notice dead links), and a rendezvous server
//! (so a host can register a short code that a joiner resolves). Its key lives in a file, so
//! its peer id, which invites carry, survives restarts.

mod metrics;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, identify, noise, ping, relay, rendezvous, tcp, yamux};
use tracing::{info, warn};

/// The whatnext relay: circuit relay v2, identify, ping and rendezvous (for short codes).
///
/// On start it prints each listen address with its /p2p/<peer id>, one per line, ready to
/// paste into whatnext's relay settings.
#[derive(Parser, Debug)]
#[command(name = "whatnext-relay", version, about, long_about)]
struct Cli {
    /// The relay's ed25519 key file; created (mode 0600) if missing. Keep it: the peer id in
    /// every invite through this relay comes from it.
    #[arg(long, value_name = "PATH", default_value = "whatnext-relay.key")]
    key_file: PathBuf,

    /// An address to listen on (repeatable). Port 0 picks a free port.
    #[arg(long, value_name = "MULTIADDR", default_values = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"])]
    listen: Vec<Multiaddr>,

    /// An address to announce to peers as where this relay can be reached (repeatable),
    /// e.g. the public address of a port forward. Default: every address it listens on.
    #[arg(long, value_name = "MULTIADDR")]
    external: Vec<Multiaddr>,

    /// Most reservations held at once, over all peers.
    #[arg(long, default_value_t = 1024)]
    max_reservations: usize,

    /// Most reservations one peer may hold.
    #[arg(long, default_value_t = 4)]
    max_reservations_per_peer: usize,

    /// How long a reservation lasts before the peer must renew it, in seconds.
    #[arg(long, default_value_t = 3600)]
    reservation_secs: u64,

    /// Most relayed circuits at once, over all peers.
    #[arg(long, default_value_t = 256)]
    max_circuits: usize,

    /// Most relayed circuits per peer.
    #[arg(long, default_value_t = 16)]
    max_circuits_per_peer: usize,

    /// Longest a relayed circuit lasts, in seconds. Peers re-open it when it ends; libp2p's
    /// default (2 minutes) is too short for a listening session.
    #[arg(long, default_value_t = 6 * 3600)]
    max_circuit_secs: u64,

    /// Most bytes one relayed circuit may carry. libp2p's default (128 KiB) would cut a session.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_circuit_bytes: u64,

    /// New reservations accepted per source IP address per minute.
    #[arg(long, default_value_t = 60)]
    reservations_per_ip_per_minute: u32,

    /// New circuits accepted per source IP address per minute.
    #[arg(long, default_value_t = 120)]
    circuits_per_ip_per_minute: u32,

    /// Shortest lifetime, in seconds, a short code may be registered for.
    #[arg(long, default_value_t = 60)]
    code_min_ttl_secs: u64,

    /// Serve Prometheus metrics (connections, reservations, circuits, bytes) over HTTP here,
    /// e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    rendezvous: rendezvous::server::Behaviour,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("whatnext-relay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whatnext-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Key(#[from] whatnext_identity::IdentityError),
    #[error("cannot set up TCP: {0}")]
    Tcp(String),
    #[error("cannot set up the relay: {0}")]
    Behaviour(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: Multiaddr,
        source: libp2p::TransportError<std::io::Error>,
    },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch for SIGTERM: {0}")]
    Signal(std::io::Error),
}

async fn run(cli: Cli) -> Result<(), StartError> {
    let identity = whatnext_identity::load_or_create(&cli.key_file)?;
    let keypair = identity.libp2p_keypair();
    let relay_config = relay::Config {
        max_reservations: cli.max_reservations,
        max_reservations_per_peer: cli.max_reservations_per_peer,
        reservation_duration: Duration::from_secs(cli.reservation_secs),
        max_circuits: cli.max_circuits,
        max_circuits_per_peer: cli.max_circuits_per_peer,
        max_circuit_duration: Duration::from_secs(cli.max_circuit_secs),
        max_circuit_bytes: cli.max_circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_ip(
        per_minute(cli.reservations_per_ip_per_minute),
        Duration::from_secs(60),
    )
    .circuit_src_per_ip(
        per_minute(cli.circuits_per_ip_per_minute),
        Duration::from_secs(60),
    );
    let code_min_ttl = cli.code_min_ttl_secs;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| StartError::Tcp(e.to_string()))?
        .with_quic()
        .with_behaviour(|key| RelayBehaviour {
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config),
            identify: identify::Behaviour::new(identify::Config::new(
                "/whatnext/relay/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            rendezvous: rendezvous::server::Behaviour::new(
                rendezvous::server::Config::default().with_min_ttl(code_min_ttl),
            ),
        })
        .map_err(|e| StartError::Behaviour(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for addr in &cli.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|source| StartError::Listen {
                addr: addr.clone(),
                source,
            })?;
    }
    // A reservation tells peers where the relay is; it must have at least one address.
    for addr in &cli.external {
        swarm.add_external_address(addr.clone());
    }
    let announce_listen_addrs = cli.external.is_empty();
    let peer_id = *swarm.local_peer_id();
    info!(%peer_id, "relay starting");
    let stats = metrics::Stats::default();
    if let Some(addr) = cli.metrics {
        metrics::serve(addr, stats.clone())
            .await
            .map_err(|source| StartError::Metrics { addr, source })?;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Signal)?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if announce_listen_addrs {
                        swarm.add_external_address(address.clone());
                    }
                    let full = address.with(Protocol::P2p(peer_id));
                    // stdout carries only these lines, so scripts can read them.
                    println!("{full}");
                }
                SwarmEvent::ConnectionEstablished { .. } => stats.connection_opened(),
                SwarmEvent::ConnectionClosed { .. } => stats.connection_closed(),
                SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => stats.relay_event(&event),
                SwarmEvent::Behaviour(RelayBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                    // Peers tell us where they listen; keep nothing, but log for operators.
                    tracing::debug!(%peer_id, observed = %info.observed_addr, "identified");
                }
                SwarmEvent::ListenerError { error, .. } => warn!(%error, "listener error"),
                _ => {}
            }
        }
    }
    info!("shutting down");
    Ok(())
}
