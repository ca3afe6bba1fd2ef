//! A pod: one network namespace on a node's bridge, and ways to run code and programs inside it.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use anyhow::Context as _;

use crate::{Process, cleanup, ip};

/// A pod-like network namespace attached to a [`crate::Node`]'s bridge. It lives until its node
/// is dropped.
#[derive(Clone, Debug)]
pub struct Pod {
    /// The name given to [`crate::Node::pod`].
    pub name: String,
    /// Name of the pod's network namespace (as `ip netns` knows it).
    pub netns: String,
    /// The pod's IPv4 address on the bridge (10.44.0.N/24).
    pub ipv4: Ipv4Addr,
    /// The pod's IPv6 address on the bridge (fd44::N/64).
    pub ipv6: Ipv6Addr,
}

impl Pod {
    /// A Command that runs `program` inside the pod's netns (via `ip netns exec`, so
    /// `/etc/netns/<netns>/hosts` applies).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// Same as [`Pod::command`], but the program runs as the given uid/gid (e.g. 1337, the
    /// proxy's), with no supplementary groups.
    pub fn command_as(&self, uid: u32, gid: u32, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.command("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--"])
            .arg(program);
        cmd
    }

    /// Spawns a command (typically from [`Pod::command`]) with its stdout and stderr captured; the
    /// returned guard kills and reaps it on drop.
    pub fn spawn(&self, cmd: Command) -> anyhow::Result<Process> {
        Process::spawn(cmd).with_context(|| format!("in pod {}", self.name))
    }

    /// A multi-thread tokio runtime (2 worker threads) whose every thread (workers and blocking
    /// pool) has entered the pod's netns, so sockets created by its tasks live in the pod.
    ///
    /// The future given to `block_on` runs on the calling thread, outside the pod: create sockets
    /// in spawned tasks, e.g. `rt.block_on(rt.spawn(async { TcpListener::bind(addr).await }))`.
    /// Name lookups in-process use the machine's /etc/hosts, not [`Pod::set_hosts`].
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let handle = Arc::new(ip::open(&self.netns)?);
        let netns = self.netns.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name(format!("pod {}", self.name))
            .on_thread_start(move || {
                if let Err(err) = ip::enter(&handle) {
                    panic!("entering network namespace {netns}: {err}");
                }
            })
            .build()
            .with_context(|| format!("building the tokio runtime of pod {}", self.name))
    }

    /// Runs a closure on a fresh thread that has entered the pod's netns and returns its result.
    ///
    /// Panics if the namespace cannot be entered; a panic in `f` goes on in the caller.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        ip::run_in(&self.netns, f).unwrap_or_else(|err| panic!("pod {}: {err:#}", self.name))
    }

    /// Writes `/etc/netns/<netns>/hosts` with these entries (plus localhost lines), which programs
    /// started with [`Pod::command`] see as /etc/hosts.
    pub fn set_hosts(&self, entries: &[(IpAddr, &str)]) -> anyhow::Result<()> {
        let dir = PathBuf::from(cleanup::ETC_NETNS).join(&self.netns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
        for (addr, name) in entries {
            hosts.push_str(&format!("{addr}\t{name}\n"));
        }
        let path = dir.join("hosts");
        std::fs::write(&path, hosts).with_context(|| format!("writing {}", path.display()))
    }
}
