//! The relay's command line. Every limit is a flag with its default here and in
//! docs/security.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use libp2p::Multiaddr;

/// The whatnext relay: circuit relay v2, identify, ping and the short-code registry
/// (`/whatnext/code/1`).
///
/// On start it prints each listen address with its /p2p/<peer id>, one per line, ready to
/// paste into whatnext's relay settings. "Per IP" means per network: one IPv4 address, or
/// one IPv6 /64.
#[derive(Parser, Debug)]
#[command(name = "whatnext-relay", version, about, long_about)]
pub struct Cli {
    /// The relay's ed25519 key file; created (mode 0600) if missing. Keep it: the peer id in
    /// every invite through this relay comes from it.
    #[arg(long, value_name = "PATH", default_value = "whatnext-relay.key")]
    pub key_file: PathBuf,

    /// An address to listen on (repeatable). Port 0 picks a free port.
    #[arg(long, value_name = "MULTIADDR", default_values = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"])]
    pub listen: Vec<Multiaddr>,

    /// An address to announce to peers as where this relay can be reached (repeatable),
    /// e.g. the public address of a port forward. Default: every address it listens on.
    #[arg(long, value_name = "MULTIADDR")]
    pub external: Vec<Multiaddr>,

    /// Most open connections, over all peers.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: u32,

    /// Most connections still handshaking, over all peers.
    #[arg(long, default_value_t = 128)]
    pub max_pending_connections: u32,

    /// Most open connections one peer id may have.
    #[arg(long, default_value_t = 4)]
    pub max_connections_per_peer: u32,

    /// Most open inbound connections from one IP (IPv6: one /64). A party behind one home
    /// router shares an address, so this is well above one household's guests.
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// Most inbound connections still handshaking from one IP (IPv6: one /64).
    #[arg(long, default_value_t = 16)]
    pub max_pending_connections_per_ip: usize,

    /// Most reservations held at once, over all peers.
    #[arg(long, default_value_t = 1024)]
    pub max_reservations: usize,

    /// Most reservations one peer may hold.
    #[arg(long, default_value_t = 4)]
    pub max_reservations_per_peer: usize,

    /// Most reservations the peers of one IP (IPv6: one /64) may hold at once. A peer
    /// already holding one may still renew it.
    #[arg(long, default_value_t = 32)]
    pub max_reservations_per_ip: usize,

    /// How long a reservation lasts before the peer must renew it, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub reservation_secs: u64,

    /// Most relayed circuits at once, over all peers.
    #[arg(long, default_value_t = 128)]
    pub max_circuits: usize,

    /// Most relayed circuits per peer.
    #[arg(long, default_value_t = 8)]
    pub max_circuits_per_peer: usize,

    /// Most relayed circuits from peers of one IP (IPv6: one /64) at once, so one address
    /// cannot take every slot.
    #[arg(long, default_value_t = 16)]
    pub max_circuits_per_ip: usize,

    /// Longest a relayed circuit lasts, in seconds; peers re-open it when it ends (libp2p's
    /// default, 2 minutes, is too short for a listening party).
    #[arg(long, default_value_t = 3600)]
    pub max_circuit_secs: u64,

    /// Most bytes one relayed circuit may carry: a party's control traffic (kilobytes a
    /// minute) and a few tracks' audio, not an open bandwidth relay. Hole punching usually
    /// moves a link off the relay long before.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_circuit_bytes: u64,

    /// New reservations accepted per IP (IPv6: per /64) per minute.
    #[arg(long, default_value_t = 30)]
    pub reservations_per_ip_per_minute: u32,

    /// New circuits accepted per source IP (IPv6: per /64) per minute.
    #[arg(long, default_value_t = 30)]
    pub circuits_per_ip_per_minute: u32,

    /// How long a short code stays registered unless its owner refreshes it, in seconds.
    #[arg(long, default_value_t = 300)]
    pub code_ttl_secs: u64,

    /// Most short codes registered at once, over all peers.
    #[arg(long, default_value_t = 4096)]
    pub max_codes: usize,

    /// Most short codes one peer may hold (a host needs one; two covers a change of code).
    #[arg(long, default_value_t = 2)]
    pub max_codes_per_peer: usize,

    /// Most short codes the peers of one IP (IPv6: one /64) may hold together.
    #[arg(long, default_value_t = 8)]
    pub max_codes_per_ip: usize,

    /// Short-code registers and lookups one peer may send per minute (also the burst).
    #[arg(long, default_value_t = 20)]
    pub code_queries_per_peer_per_minute: u32,

    /// Short-code registers and lookups one IP (IPv6: one /64) may send per minute (also
    /// the burst): a room of guests behind one router joining at once fits.
    #[arg(long, default_value_t = 60)]
    pub code_queries_per_ip_per_minute: u32,

    /// Serve Prometheus metrics over HTTP here, e.g. 127.0.0.1:9464. A client gets
    /// 5 seconds to send its request.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}
