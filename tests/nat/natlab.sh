#!/usr/bin/env bash
# A two-NAT lab in network namespaces: a "public" segment with a relay host, and two home
# networks, each behind its own masquerading router. Everything lives in namespaces this
# script creates; nothing touches the machine's own interfaces. Needs root, iproute2, nftables.
#
#   natlab.sh up [cone|symmetric]   create it          natlab.sh down   remove it
#   natlab.sh exec HOST CMD...      run in a host: relay, a, b (or the routers nat-a, nat-b)
#   NATLAB=prefix natlab.sh ...     namespaces are named PREFIX-HOST (default prefix: wn), so
#                                   several labs can run side by side.
#
# Addresses: wan 198.18.0.0/24 (relay .10, nat-a .20, nat-b .30); home A 10.77.1.0/24 (a at
# .2); home B 10.77.2.0/24 (b at .2).
#
# Derived from ../shared/lab/natlab.sh, with one change: each router also drops unsolicited
# packets addressed to itself. Without that, the router's own TCP stack answers a SYN that
# arrives a moment before the local peer's SYN has left with a RST, which kills a TCP
# simultaneous open unless both SYNs cross exactly; home routers drop such packets instead.
# See docs/decisions/nat-lab.md.
set -euo pipefail
P=${NATLAB:-wn}
ns() { ip netns exec "$P-$1" "${@:2}"; }
link() { # link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
  ip link add "$2" netns "$P-$1" type veth peer name "$5" netns "$P-$4"
  ns "$1" ip addr add "$3" dev "$2"; ns "$1" ip link set "$2" up
  ns "$4" ip addr add "$6" dev "$5"; ns "$4" ip link set "$5" up
}
up() {
  local kind=${1:-cone} flags=""
  case "$kind" in
    cone) ;;
    symmetric) flags="random" ;;
    *) echo "unknown variant: $kind (cone or symmetric)" >&2; exit 2 ;;
  esac
  for n in wan relay nat-a nat-b a b; do ip netns add "$P-$n"; ns "$n" ip link set lo up; done
  ns wan ip link add br0 type bridge; ns wan ip link set br0 up
  for h in relay:10 nat-a:20 nat-b:30; do
    name=${h%%:*}; octet=${h##*:}
    ip link add "w-$name" netns "$P-wan" type veth peer name wan0 netns "$P-$name"
    ns wan ip link set "w-$name" master br0; ns wan ip link set "w-$name" up
    ns "$name" ip addr add "198.18.0.$octet/24" dev wan0; ns "$name" ip link set wan0 up
  done
  link nat-a lan0 10.77.1.1/24 a eth0 10.77.1.2/24
  link nat-b lan0 10.77.2.1/24 b eth0 10.77.2.2/24
  for side in a b; do
    ns "nat-$side" sysctl -qw net.ipv4.ip_forward=1
    ns "$side" ip route add default via "10.77.$([ $side = a ] && echo 1 || echo 2).1"
    ns "nat-$side" nft -f - <<NFT
table ip nat {
  chain postrouting_nat {
    type nat hook postrouting priority 100;
    oifname "wan0" masquerade $flags
  }
}
table ip filter {
  chain forward_filter {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
  }
  chain input_filter {
    type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
}
NFT
  done
  echo "natlab $P up ($kind): relay 198.18.0.10, a 10.77.1.2 behind 198.18.0.20, b 10.77.2.2 behind 198.18.0.30"
}
down() { for n in wan relay nat-a nat-b a b; do ip netns del "$P-$n" 2>/dev/null || true; done; }
case "${1:-}" in
  up) down; up "${2:-cone}" ;;
  down) down ;;
  exec) shift; n=$1; shift; ip netns exec "$P-${n#"$P"-}" "$@" ;;
  *) echo "usage: natlab.sh up [cone|symmetric] | down | exec HOST CMD..." >&2; exit 2 ;;
esac
