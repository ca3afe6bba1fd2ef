//! End-to-end harness: test applications, helpers to wait for events and to find the workspace's
//! binaries, and (from `sluice-netns`) pod-like network namespaces on one machine. Needs root (it
//! creates namespaces).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use sluice_e2e::{Node, apps, binary, eventually};
//! use std::time::Duration;
//!
//! let node = Node::new("my_test")?; // removed again on drop, also when the test panics
//! let (server, client) = (node.pod("server")?, node.pod("client")?);
//!
//! // In-process: sockets made by tasks of the pod's runtime live in the pod.
//! let rt = server.runtime()?;
//! let app = rt.block_on(rt.spawn(async {
//!     let listener = tokio::net::TcpListener::bind("[::]:8080").await?;
//!     apps::serve_http(listener, apps::AppId::new("reviews", "v1"))
//! }))??;
//!
//! // As a process: the guard kills it on drop.
//! let mut cmd = server.command(binary("sluice-testapp"));
//! cmd.args(["tcp-echo", "--listen", "[::]:9000"]);
//! let _echo = server.spawn(cmd)?;
//!
//! client.set_hosts(&[(server.ipv4.into(), "reviews")])?;
//! eventually("reviews to answer", Duration::from_secs(10), || {
//!     let status = client.command("curl").args(["-sf", "http://reviews:8080/"]).status()?;
//!     anyhow::ensure!(status.success(), "curl: {status}");
//!     Ok(())
//! })?;
//! assert_eq!(app.log().seen().len(), 1);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod apps;
pub mod bin;
pub mod wait;

pub use bin::binary;
pub use sluice_netns::{Node, Pod, Process};
pub use wait::{eventually, eventually_async};
