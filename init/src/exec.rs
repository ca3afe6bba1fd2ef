//! Runs the external programs sluice-init drives (iptables-*-save/-restore, `ip`), mapping their
//! failures to errors that say what to do.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Finds `program` in PATH, as a shell would.
pub fn find(program: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| Error::MissingProgram {
            program: program.to_owned(),
            path: path_display(path),
            fix: fix(program),
        })
}

/// Whether `program` is in PATH.
pub fn installed(program: &str) -> bool {
    find(program).is_ok()
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn path_display(path: OsString) -> String {
    let path = path.to_string_lossy().into_owned();
    if path.is_empty() {
        "empty".to_owned()
    } else {
        path
    }
}

fn fix(program: &str) -> &'static str {
    if program == "ip" {
        "install iproute2 in the image"
    } else if program.contains("-legacy-") {
        "install iptables in the image, or use --backend nft"
    } else if program.contains("-nft-") {
        "install iptables in the image, or use --backend legacy"
    } else {
        "install iptables in the image"
    }
}

/// Runs `program args...` with `stdin` as its input; returns its stdout. A non-zero exit is an
/// error carrying its stderr; a refusal for lack of privileges is [`Error::Permission`].
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let path = find(program)?;
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(&path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| Error::io(format!("starting `{command}`"), err))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A program that exits early closes the pipe; its exit status tells why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|err| Error::io(format!("running `{command}`"), err))?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    if is_permission_problem(&stderr) {
        return Err(Error::Permission {
            what: format!("`{command}` said: {stderr}"),
        });
    }
    Err(Error::Command {
        command,
        status: output.status.to_string(),
        stderr,
    })
}

fn is_permission_problem(stderr: &str) -> bool {
    [
        "Permission denied",
        "Operation not permitted",
        "you must be root",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}
