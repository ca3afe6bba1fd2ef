//! Removal of namespaces: those of a dropped node, and leftovers of runs that crashed.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{ip, name};

/// Where `ip netns exec` finds per-namespace files such as `hosts`.
pub(crate) const ETC_NETNS: &str = "/etc/netns";

/// Kills the processes left in a namespace, removes its name and its /etc/netns directory.
pub(crate) fn delete(netns: &str) -> anyhow::Result<()> {
    let pids = ip::run(&["netns", "pids", netns])?;
    let own = std::process::id();
    for pid in pids
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
    {
        if u32::try_from(pid) != Ok(own) {
            // It may have exited since it was listed: nothing left to do then.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    ip::run(&["netns", "delete", netns])?;
    remove_etc_dir(netns)
}

/// Removes what earlier runs left behind: namespaces and /etc/netns directories whose creating
/// process is gone. Errors are ignored, since a concurrent run may be removing the same things.
pub(crate) fn remove_leftovers() {
    for netns in dead_names("/run/netns") {
        let _ = delete(&netns);
    }
    for netns in dead_names(ETC_NETNS) {
        let _ = remove_etc_dir(&netns);
    }
}

fn remove_etc_dir(netns: &str) -> anyhow::Result<()> {
    let dir = PathBuf::from(ETC_NETNS).join(netns);
    match std::fs::remove_dir_all(&dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::from(err).context(format!("removing {}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Harness-made names in `dir` whose creating process no longer runs.
fn dead_names(dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|netns| {
            name::owner_pid(netns)
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
        })
        .collect()
}
