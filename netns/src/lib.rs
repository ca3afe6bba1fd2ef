//! Pod-like network namespaces on a bridge: create them, run processes and tokio runtimes inside
//! them, and clean up on drop and after crashed runs. A node (a bridge in its own namespace) has
//! pods attached to it by veth pairs. Needs root and iproute2.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use sluice_netns::Node;
//!
//! let node = Node::new("my_test")?; // removed again on drop, also when the caller panics
//! let (server, client) = (node.pod("server")?, node.pod("client")?);
//!
//! // In-process: sockets made by tasks of the pod's runtime live in the pod.
//! let rt = server.runtime()?;
//! let listener = rt.block_on(rt.spawn(tokio::net::TcpListener::bind("[::]:8080")))??;
//!
//! // As a process: the guard kills it on drop.
//! client.set_hosts(&[(server.ipv4.into(), "server")])?;
//! let mut curl = client.command("curl");
//! curl.args(["-s", "http://server:8080/"]);
//! let curl = client.spawn(curl)?;
//! # drop((listener, curl));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod cleanup;
mod ip;
mod name;
mod pod;
mod process;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;

pub use pod::Pod;
pub use process::Process;

/// The bridge in the node's namespace that every pod's veth is enslaved to.
const BRIDGE: &str = "br0";
/// The bridge's IPv4 address: the pods' default gateway on 10.44.0.0/24.
const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(10, 44, 0, 1);
/// The bridge's IPv6 address: the pods' default gateway on fd44::/64.
const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd44, 0, 0, 0, 0, 0, 0, 1);

/// IPv6 on, whatever the machine's defaults (set before interfaces exist, so they inherit it).
const IPV6_ON: &[(&str, &str)] = &[
    ("net/ipv6/conf/default/disable_ipv6", "0"),
    ("net/ipv6/conf/all/disable_ipv6", "0"),
];

/// Bridged frames kept away from iptables (when br_netfilter is loaded), so the pods' own rules
/// are the only ones that see their traffic.
const BRIDGE_NF_OFF: &[(&str, &str)] = &[
    ("net/bridge/bridge-nf-call-iptables", "0"),
    ("net/bridge/bridge-nf-call-ip6tables", "0"),
    ("net/bridge/bridge-nf-call-arptables", "0"),
];

/// A bridge living in its own "node" network namespace; pods attach to it. Dropping the node
/// (also while unwinding from a panic) deletes every pod namespace, their veths, the bridge and
/// the namespaces' /etc/netns directories, and kills processes left inside them.
#[derive(Debug)]
pub struct Node {
    netns: String,
    /// Namespace names of the pods, in creation order: a pod's index gives its veth and address.
    pods: Mutex<Vec<String>>,
}

impl Node {
    /// Creates a node for `owner` (a test, the demo): the node's name is a short hash of it, the
    /// pid and a counter, so several can run in parallel. First removes leftovers of earlier
    /// crashed runs (namespaces and /etc/netns directories whose embedded pid is no longer alive).
    pub fn new(owner: &str) -> anyhow::Result<Node> {
        cleanup::remove_leftovers();
        let netns = name::node(owner);
        ip::run(&["netns", "add", &netns])?;
        // From here on, dropping `node` removes whatever part of it was made.
        let node = Node {
            netns,
            pods: Mutex::default(),
        };
        node.set_up_bridge()
            .with_context(|| format!("setting up node {} for {owner}", node.netns))?;
        Ok(node)
    }

    /// Creates a pod: its own netns, a veth whose peer is enslaved to the node's bridge, lo up,
    /// 10.44.0.N/24 and fd44::N/64 (usable at once: no duplicate address detection), default
    /// routes via the bridge (10.44.0.1, fd44::1). N is 2 for the first pod, then 3, and so on.
    pub fn pod(&self, name: &str) -> anyhow::Result<Pod> {
        let netns = name::pod(&self.netns, name)?;
        // Held until the pod is complete, so concurrent calls get distinct indices.
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let index = pods.len();
        let host = u8::try_from(index + 2)
            .ok()
            .filter(|host| *host < 255)
            .context("a node has room for 253 pods")?;
        ip::run(&["netns", "add", &netns])?;
        pods.push(netns.clone());
        let pod = Pod {
            name: name.to_owned(),
            netns,
            ipv4: Ipv4Addr::new(10, 44, 0, host),
            ipv6: Ipv6Addr::new(0xfd44, 0, 0, 0, 0, 0, 0, host.into()),
        };
        self.attach(&pod, index)
            .with_context(|| format!("setting up pod {name} on node {}", self.netns))?;
        Ok(pod)
    }

    /// Name of the node's own netns (where the bridge lives).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn set_up_bridge(&self) -> anyhow::Result<()> {
        ip::sysctls(&self.netns, IPV6_ON)?;
        ip::sysctls(&self.netns, BRIDGE_NF_OFF)?;
        ip::batch(
            &self.netns,
            &[
                "link set lo up".into(),
                format!("link add {BRIDGE} type bridge forward_delay 0 mcast_snooping 0"),
                format!("addr add {GATEWAY_V4}/24 dev {BRIDGE}"),
                format!("addr add {GATEWAY_V6}/64 dev {BRIDGE} nodad"),
                format!("link set {BRIDGE} up"),
            ],
        )
    }

    /// Connects a fresh pod namespace to the bridge and gives it its addresses and routes.
    fn attach(&self, pod: &Pod, index: usize) -> anyhow::Result<()> {
        ip::sysctls(&pod.netns, IPV6_ON)?;
        let veth = format!("veth{index}");
        ip::batch(
            &self.netns,
            &[
                format!(
                    "link add {veth} type veth peer name eth0 netns {}",
                    pod.netns
                ),
                format!("link set {veth} master {BRIDGE} up"),
            ],
        )?;
        ip::batch(
            &pod.netns,
            &[
                "link set lo up".into(),
                format!("addr add {}/24 dev eth0", pod.ipv4),
                format!("addr add {}/64 dev eth0 nodad", pod.ipv6),
                "link set eth0 up".into(),
                format!("route add default via {GATEWAY_V4}"),
                format!("route add ::/0 via {GATEWAY_V6}"),
            ],
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let pods = std::mem::take(self.pods.get_mut().unwrap_or_else(PoisonError::into_inner));
        // Deleting the node's namespace last frees the bridge and the veths once nothing holds it.
        for netns in pods.iter().rev().chain([&self.netns]) {
            if let Err(err) = cleanup::delete(netns) {
                eprintln!("sluice-netns: removing network namespace {netns}: {err:#}");
            }
        }
    }
}
