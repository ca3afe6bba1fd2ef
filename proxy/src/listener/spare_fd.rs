//! The last file descriptor, kept in reserve: when the process runs out (accept fails with
//! `EMFILE`/`ENFILE`), the connection waiting at the head of the listen backlog would otherwise
//! wait there, unanswered, until the client gives up. Instead the spare is closed, that
//! connection accepted and closed at once (the client sees its connection end, and can try
//! another endpoint), and the spare taken again: libev's and HAProxy's answer to the same problem.

use std::fs::File;
use std::io;
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use socket2::SockRef;
use tokio::net::TcpListener;

/// The spare descriptor, shared by every listener of the process.
static SPARE: Mutex<Option<File>> = Mutex::new(None);

/// Takes the spare descriptor if none is held; called when a listener starts, while
/// descriptors are still free.
pub fn reserve() {
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.is_none() {
        *spare = File::open("/dev/null").ok();
    }
}

/// Whether an accept error means the process or system has no descriptor left.
pub fn is_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == Errno::EMFILE as i32 || code == Errno::ENFILE as i32
    )
}

/// With the spare released, accepts the connection waiting on `listener` and closes it; takes
/// the spare back. Returns whether a connection was closed (false when there was no spare to
/// release or no connection waiting, so the caller should back off instead).
pub fn refuse_one(listener: &TcpListener) -> bool {
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.take().is_none() {
        return false;
    }
    // The listening socket is non-blocking: this takes the waiting connection or says none is.
    // The accepted socket is dropped, so closed, at once.
    let closed = SockRef::from(listener).accept().is_ok();
    *spare = File::open("/dev/null").ok();
    closed
}
