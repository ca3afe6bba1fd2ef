//! Graceful shutdown: one trigger tells listeners to stop accepting and
//! connections to finish, then waits for them up to a deadline.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Makes a drain trigger and the watch that listeners and connections hold.
pub fn channel() -> (Signal, Watch) {
    let (signal, draining) = watch::channel(false);
    let (alive, done) = mpsc::channel(1);
    (
        Signal { signal, done },
        Watch {
            draining,
            _alive: alive,
        },
    )
}

/// The trigger, held by whoever decides to shut down.
#[derive(Debug)]
pub struct Signal {
    signal: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl Signal {
    /// A handle that tells whether draining has started, without holding it up.
    pub fn observe(&self) -> Draining {
        Draining(self.signal.subscribe())
    }

    /// Starts draining and waits until every [`Watch`] is dropped or the
    /// deadline passes; true when everything finished in time.
    pub async fn drain(mut self, deadline: Duration) -> bool {
        self.signal.send_replace(true);
        tokio::time::timeout(deadline, self.done.recv())
            .await
            .is_ok()
    }
}

/// Held by each listener and connection while it works; clone it for each.
#[derive(Clone, Debug)]
pub struct Watch {
    draining: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Watch {
    /// Resolves when draining starts.
    pub async fn signaled(&self) {
        let mut rx = self.draining.clone();
        // An error means the signal is gone, which only happens at shutdown too.
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// Tells whether draining has started (readiness reads it); unlike a
/// [`Watch`] it does not keep the drain waiting.
#[derive(Clone, Debug)]
pub struct Draining(watch::Receiver<bool>);

impl Draining {
    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_watches_until_the_deadline() {
        let (signal, watch) = channel();
        let worker = watch.clone();
        drop(watch);
        let task = tokio::spawn(async move {
            worker.signaled().await;
        });
        assert!(signal.drain(Duration::from_secs(5)).await);
        task.await.unwrap();

        let (signal, watch) = channel();
        let draining = signal.observe();
        assert!(!draining.is_draining());
        assert!(
            !signal.drain(Duration::from_millis(20)).await,
            "a held watch outlasts the deadline"
        );
        assert!(draining.is_draining(), "observed, never waited for");
        drop(watch);
    }
}
