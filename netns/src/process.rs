//! A child process owned by a guard: its output is captured, and it dies with its guard.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::Context as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A spawned process (in its own process group) whose stdout and stderr are captured. Dropping it
/// kills the whole group and reaps the process; if the thread is panicking, what the process
/// printed is shown to help explain the failure.
#[derive(Debug)]
pub struct Process {
    command: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: Capture,
    stderr: Capture,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr captured (whatever `cmd` said about them).
    pub(crate) fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let command = format!("{cmd:?}");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {command}"))?;
        let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
        Ok(Self {
            command,
            child,
            status: None,
            stdout,
            stderr,
        })
    }

    /// The process id (that of the program itself: `ip netns exec` and `setpriv` exec into it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("checking on {}", self.command))?;
        }
        Ok(self.status)
    }

    /// Kills the process group, reaps the process and returns everything it printed.
    pub fn kill(mut self) -> anyhow::Result<Output> {
        let status = self.stop()?;
        Ok(Output {
            status,
            stdout: self.stdout.finish(),
            stderr: self.stderr.finish(),
        })
    }

    fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        // Not reaped yet, so the group id cannot have been reused. ESRCH only means it is gone.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let status = self
            .child
            .wait()
            .with_context(|| format!("reaping {}", self.command))?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("sluice-netns: {err:#}");
        }
        if std::thread::panicking() {
            eprintln!(
                "sluice-netns: {} (pid {}) printed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.command,
                self.pid(),
                self.stdout(),
                self.stderr()
            );
        }
    }
}

/// One output pipe, drained into a buffer by a thread so the process never blocks on it.
#[derive(Debug)]
struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]),
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Self {
            buffer,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Waits for the pipe to close and returns all that came through it.
    fn finish(&mut self) -> Vec<u8> {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        std::mem::take(&mut self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
