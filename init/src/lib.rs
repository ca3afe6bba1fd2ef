//! sluice-init: programs a pod's network namespace (iptables, and policy routing in tproxy mode)
//! so that its TCP traffic goes through sluice-proxy.
//!
//! [`config`] turns flags into a [`CaptureConfig`], [`rules`] (and [`tproxy`]) turn that into
//! the rules wanted, [`backend`] picks iptables-legacy or iptables-nft and reads what is there,
//! [`apply`] works out and makes the changes, [`validate`] checks the result. [`orig_dst()`] is
//! the proxy's side: where a captured connection was going.
#![forbid(unsafe_code)]

pub mod apply;
pub mod backend;
pub mod config;
pub mod error;
mod exec;
pub mod orig_dst;
pub mod rules;
pub mod tproxy;
pub mod validate;

use std::io::Write;

pub use config::{Args, CaptureConfig, Invocation};
pub use error::{Error, Result};
pub use orig_dst::orig_dst;

use config::{Action, Ipv6};
use rules::Family;

/// Does what `invocation` asks; `--dry-run` output goes to `out`, logs to tracing.
pub fn run(invocation: &Invocation, out: &mut dyn Write) -> Result<()> {
    let (families, ipv6_reason) = families(invocation.config.ipv6);
    let plan = apply::prepare(invocation, &families)?;
    tracing::info!("backend {}: {}; {ipv6_reason}", plan.backend, plan.reason);
    if invocation.dry_run {
        return out
            .write_all(plan.render().as_bytes())
            .map_err(|err| Error::io("writing the dry-run output", err));
    }
    plan.execute()?;
    let done = match invocation.action {
        Action::Apply => "applied",
        Action::Cleanup => "removed",
    };
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    tracing::info!("{done} sluice's rules for {}", names.join(" and "));
    if invocation.validate {
        validate::check(&invocation.config, &families)?;
    }
    Ok(())
}

/// The address families to program, and why.
pub fn families(ipv6: Ipv6) -> (Vec<Family>, String) {
    let (on, reason) = match ipv6 {
        Ipv6::On => (true, "IPv6 on (--ipv6 on)"),
        Ipv6::Off => (false, "IPv6 off (--ipv6 off)"),
        Ipv6::Auto => match std::fs::read_to_string("/proc/net/if_inet6") {
            Ok(addresses) if has_routable_ipv6(&addresses) => {
                (true, "IPv6 on (the namespace has an IPv6 address)")
            }
            Ok(_) => (
                false,
                "IPv6 off (no IPv6 address beyond loopback and link-local)",
            ),
            Err(_) => (false, "IPv6 off (the kernel has no IPv6)"),
        },
    };
    let families = if on {
        vec![Family::V4, Family::V6]
    } else {
        vec![Family::V4]
    };
    (families, reason.to_owned())
}

/// Whether /proc/net/if_inet6 lists an address other than loopback (scope 10) and link-local
/// (scope 20): ::1 alone is in every namespace with IPv6 enabled, IPv4-only pods included.
fn has_routable_ipv6(if_inet6: &str) -> bool {
    if_inet6
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .any(|scope| scope != "10" && scope != "20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_auto_needs_more_than_loopback_and_link_local() {
        let lo = "00000000000000000000000000000001 01 80 10 80       lo\n";
        let link = "fe800000000000000000000000000002 02 40 20 80     eth0\n";
        let global = "fd440000000000000000000000000002 02 40 00 80     eth0\n";
        assert!(!has_routable_ipv6(""));
        assert!(!has_routable_ipv6(&format!("{lo}{link}")));
        assert!(has_routable_ipv6(&format!("{lo}{link}{global}")));
    }
}
