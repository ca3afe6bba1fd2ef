//! Runs iproute2 and moves threads into named network namespaces.

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

/// Runs `ip ARGS` and returns its stdout; the error names the command and carries its stderr.
pub(crate) fn run(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (is iproute2 installed?)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip -n NETNS -batch -` with these commands, one per line; it stops at the first that fails.
pub(crate) fn batch(netns: &str, commands: &[String]) -> anyhow::Result<()> {
    let script = commands.join("\n");
    let failed = || format!("`ip -n {netns} -batch -` failed on:\n{script}");
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip` (is iproute2 installed?)")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .with_context(failed)?;
    let output = child.wait_with_output().with_context(failed)?;
    if !output.status.success() {
        return Err(anyhow::anyhow!(
            "{}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
        .with_context(failed);
    }
    Ok(())
}

/// Opens the handle of a named network namespace.
pub(crate) fn open(netns: &str) -> anyhow::Result<File> {
    let path = PathBuf::from("/run/netns").join(netns);
    File::open(&path).with_context(|| format!("opening network namespace {}", path.display()))
}

/// Moves the calling thread (only it) into the network namespace behind `handle`.
pub(crate) fn enter(handle: &File) -> nix::Result<()> {
    setns(handle, CloneFlags::CLONE_NEWNET)
}

/// Runs `f` on a fresh thread that has entered the named network namespace, and returns its
/// result; a panic in `f` goes on in the caller.
pub(crate) fn run_in<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let handle = open(netns)?;
    let name = netns.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("netns {netns}"))
        .spawn(move || {
            enter(&handle).with_context(|| format!("entering network namespace {name}"))?;
            Ok(f())
        })
        .context("spawning a thread")?;
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Writes sysctls (paths below /proc/sys) inside a network namespace. Settings the kernel lacks
/// (the bridge ones exist only while br_netfilter is loaded) are skipped.
pub(crate) fn sysctls(
    netns: &str,
    settings: &'static [(&'static str, &'static str)],
) -> anyhow::Result<()> {
    run_in(netns, move || {
        for (key, value) in settings {
            let path = PathBuf::from("/proc/sys").join(key);
            match std::fs::write(&path, value) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                result => {
                    result.with_context(|| format!("writing {value} to {}", path.display()))?
                }
            }
        }
        anyhow::Ok(())
    })?
    .with_context(|| format!("setting sysctls in network namespace {netns}"))
}
