//! Name resolution for ServiceEntry endpoints with `resolution: DNS`: the
//! system's resolver configuration and hosts file, answers cached for as long
//! as their TTL says (hickory's cache), addresses used in turn.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};

use crate::error::ProxyError;

/// Longest wait for one DNS query.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves endpoint host names.
#[derive(Debug)]
pub struct Resolver {
    resolver: Option<TokioResolver>,
    next: AtomicUsize,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::system()
    }
}

impl Resolver {
    /// A resolver with the system's configuration (`/etc/resolv.conf`,
    /// `/etc/hosts`); without one, the C library's resolver (no TTLs known).
    pub fn system() -> Resolver {
        let resolver = TokioResolver::builder_tokio().and_then(|mut b| {
            let options = b.options_mut();
            options.use_hosts_file = ResolveHosts::Always;
            // An IPv4 answer (from the hosts file too) ends the lookup; asking
            // for both would wait on DNS for the AAAA a hosts file lacks.
            options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
            options.timeout = LOOKUP_TIMEOUT;
            b.build()
        });
        let resolver = match resolver {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("no DNS configuration ({e}); resolving with the system library");
                None
            }
        };
        Resolver {
            resolver,
            next: AtomicUsize::new(0),
        }
    }

    /// One address of `host`; successive calls take the addresses in turn.
    pub async fn resolve(&self, host: &str) -> Result<IpAddr, ProxyError> {
        let fail = |reason: String| ProxyError::Resolve {
            host: host.to_string(),
            reason,
        };
        let addrs: Vec<IpAddr> = match &self.resolver {
            Some(r) => r
                .lookup_ip(host)
                .await
                .map_err(|e| fail(e.to_string()))?
                .iter()
                .collect(),
            None => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| fail(e.to_string()))?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.is_empty() {
            return Err(fail("no addresses".into()));
        }
        Ok(addrs[self.next.fetch_add(1, Ordering::Relaxed) % addrs.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_names_from_the_hosts_file() {
        let ip = Resolver::system().resolve("localhost").await.unwrap();
        assert!(ip.is_loopback(), "{ip}");
    }

    #[tokio::test]
    async fn unknown_names_fail_with_the_name() {
        let err = Resolver::system()
            .resolve("no-such-host.invalid")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    }
}
