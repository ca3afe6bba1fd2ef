//! Network addresses as config writes them: IP addresses and CIDRs.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an IP address or CIDR into a network (an address alone is a /32 or /128).
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr("10.1.2.3").is_some());
        assert!(parse_cidr("fd00::/64").is_some());
        assert_eq!(parse_cidr("2001:db8::").map(|n| n.prefix_len()), Some(128));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("example.com").is_none());
    }
}
