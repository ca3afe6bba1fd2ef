//! The last file descriptor, kept in reserve: when the process runs out (accept fails with
//! `EMFILE`/`ENFILE`), the connection waiting at the head of the listen backlog would otherwise
//! wait there, unanswered, until the client gives up. Instead the spare is closed, that
//! connection accepted and closed at once (the client sees its connection end, and can try
//! another endpoint), and the spare taken again: libev's and HAProxy's answer to the same problem.
//!
//! The descriptor freed by closing the spare may be taken by someone else first (another
//! worker's accept on the same socket, an upstream connection). So every accepted connection
//! checks the spare is held ([`headroom`]): if it is missing and cannot be taken back while
//! that connection is open, the process is at its limit, and that connection is the one closed.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};

/// The spare descriptor, shared by every listener of the process.
static SPARE: Mutex<Option<File>> = Mutex::new(None);
/// Whether [`SPARE`] holds its descriptor: the accept path's check, without the lock.
static HELD: AtomicBool = AtomicBool::new(false);

/// Takes the spare back if it is missing; whether it is held now. Called with the lock held.
fn retake(spare: &mut Option<File>) -> bool {
    if spare.is_none() {
        *spare = File::open("/dev/null").ok();
    }
    HELD.store(spare.is_some(), Ordering::Release);
    spare.is_some()
}

/// Takes the spare if it is not held; called when a listener starts, while descriptors are
/// still free.
pub fn reserve() {
    retake(&mut SPARE.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Whether an accept error means the process or system has no descriptor left.
pub fn is_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == Errno::EMFILE as i32 || code == Errno::ENFILE as i32
    )
}

/// `stream`, just accepted, if the spare is held or can be taken back; else the process is at its limit: `stream` is closed so the spare
/// can take its place, and `None` says it was refused.
pub fn headroom(stream: TcpStream) -> Option<TcpStream> {
    if HELD.load(Ordering::Acquire) {
        return Some(stream);
    }
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if retake(&mut spare) {
        return Some(stream);
    }
    drop(stream);
    retake(&mut spare);
    None
}

/// With the spare released, accepts the connection waiting on `listener` and closes it; takes
/// the spare back. Returns whether a connection was closed (false when there was no spare to
/// release or no connection waiting, so the caller should back off instead).
pub fn refuse_one(listener: &TcpListener) -> bool {
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.take().is_none() {
        return false;
    }
    HELD.store(false, Ordering::Release);
    // The listening socket is non-blocking: this takes the waiting connection or says none is.
    // The accepted socket is dropped, so closed, at once.
    let closed = SockRef::from(listener).accept().is_ok();
    retake(&mut spare);
    closed
}
