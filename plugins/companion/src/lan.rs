//! Where the phone page listens: this machine's private IPv4 addresses (the local network),
//! never a public address or every interface.

use std::net::{IpAddr, Ipv4Addr};

/// The machine's private IPv4 addresses (10/8, 172.16/12, 192.168/16), in interface order.
pub fn private_ipv4_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = interfaces
        .into_iter()
        .filter_map(|i| match i.ip() {
            IpAddr::V4(v4) if is_lan(v4) => Some(IpAddr::V4(v4)),
            _ => None,
        })
        .collect();
    found.dedup();
    found
}

/// A private (RFC 1918) address: reachable on the local network, not from the internet.
pub fn is_lan(ip: Ipv4Addr) -> bool {
    ip.is_private()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_addresses_count_as_the_local_network() {
        assert!(is_lan(Ipv4Addr::new(192, 168, 1, 20)));
        assert!(is_lan(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(is_lan(Ipv4Addr::new(172, 20, 0, 1)));
        assert!(!is_lan(Ipv4Addr::new(8, 8, 8, 8)));
        assert!(!is_lan(Ipv4Addr::LOCALHOST));
        assert!(!is_lan(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn every_address_found_is_private() {
        for ip in private_ipv4_addresses() {
            let IpAddr::V4(v4) = ip else {
                panic!("{ip} is not IPv4")
            };
            assert!(v4.is_private(), "{ip}");
        }
    }
}
