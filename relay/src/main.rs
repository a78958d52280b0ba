//! `whatnext-relay`: the relay whatnext users run themselves.
//!
//! It runs circuit relay v2 (so peers behind NATs can reach each other), identify and ping
//! (so peers learn their observed addresses and notice dead links), and the short-code
//! registry `/whatnext/code/1` (so a host can register a short code that a joiner who knows
//! it resolves). Every resource has a limit per peer, per network and in total (see
//! [`cli::Cli`]). Its key lives in a file, so its peer id, which invites carry, survives
//! restarts.

mod cli;
mod codes;
mod gate;
mod held;
mod metrics;
mod prefix;
mod registry;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, connection_limits, identify, noise, ping, relay, tcp, yamux};
use tracing::{info, warn};
use whatnext_code_protocol::CodeCodec;

use cli::Cli;
use registry::{Registry, RegistryLimits};

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    // The gates come first: a connection they refuse never reaches the others.
    limits: connection_limits::Behaviour,
    per_network: gate::PrefixGate,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    codes: request_response::Behaviour<CodeCodec>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
    let reservations_held = held::HeldPerNetwork::new(cli.max_reservations_per_ip, true);
    let circuits_held = held::HeldPerNetwork::new(cli.max_circuits_per_ip, false);
    let relay_config = relay::Config {
        max_reservations: cli.max_reservations,
        max_reservations_per_peer: cli.max_reservations_per_peer,
        reservation_duration: Duration::from_secs(cli.reservation_secs),
        max_circuits: cli.max_circuits,
        max_circuits_per_peer: cli.max_circuits_per_peer,
        max_circuit_duration: Duration::from_secs(cli.max_circuit_secs),
        max_circuit_bytes: cli.max_circuit_bytes,
        // By network (IPv4 address, IPv6 /64), not libp2p's by exact address; what a
        // network holds is checked first, so a refusal spends no rate token.
        reservation_rate_limiters: vec![
            reservations_held.limiter(),
            prefix::relay_limiter(cli.reservations_per_ip_per_minute),
        ],
        circuit_src_rate_limiters: vec![
            circuits_held.limiter(),
            prefix::relay_limiter(cli.circuits_per_ip_per_minute),
        ],
    };
    let connection_limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(cli.max_connections))
        .with_max_pending_incoming(Some(cli.max_pending_connections))
        .with_max_established_per_peer(Some(cli.max_connections_per_peer));
    let per_network = gate::PrefixGate::new(
        cli.max_pending_connections_per_ip,
        cli.max_connections_per_ip,
    );
    let mut registry = Registry::new(RegistryLimits {
        ttl: Duration::from_secs(cli.code_ttl_secs.max(1)),
        per_peer: cli.max_codes_per_peer,
        per_prefix: cli.max_codes_per_ip,
        total: cli.max_codes,
        queries_per_peer_per_minute: cli.code_queries_per_peer_per_minute,
        queries_per_prefix_per_minute: cli.code_queries_per_ip_per_minute,
    });
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
            limits: connection_limits::Behaviour::new(connection_limits),
            per_network,
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config),
            identify: identify::Behaviour::new(identify::Config::new(
                "/whatnext/relay/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            codes: codes::behaviour(),
        })
        .map_err(|e| StartError::Behaviour(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(60))
                // Its circuit requests to the peer behind it leave with their protocol's name,
                // as the apps' do (`docs/decisions/lazy-stream-negotiation.md`).
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
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
    let mut purge = tokio::time::interval(codes::PURGE_EVERY);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(StartError::Signal)?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = purge.tick() => {
                registry.purge(Instant::now());
                stats.codes(registry.len());
            }
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
                SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                    stats.connection_closed();
                    if num_established == 0 {
                        // Nobody reaches a host through a relay it left.
                        registry.forget_peer(peer_id);
                        stats.codes(registry.len());
                    }
                }
                SwarmEvent::IncomingConnectionError { error: libp2p::swarm::ListenError::Denied { cause }, send_back_addr, .. } => {
                    stats.connection_denied();
                    tracing::debug!(%send_back_addr, %cause, "connection refused");
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Codes(event)) => {
                    let behaviour = swarm.behaviour_mut();
                    let gate = &behaviour.per_network;
                    if let Some(outcome) = codes::on_event(&mut registry, &mut behaviour.codes, |c| gate.prefix_of(c), event) {
                        stats.code_request(outcome, registry.len());
                    }
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => {
                    reservations_held.on_reservation_event(&event);
                    circuits_held.on_circuit_event(&event);
                    stats.relay_event(&event);
                }
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
