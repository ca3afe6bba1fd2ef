//! Bounded waiting for an event, so tests poll for what they need instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// First pause between two tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Polls `f` until it returns Ok or the timeout passes (short backoff between tries); returns the
/// last error on timeout, mentioning what was awaited. Tests use this instead of sleeps.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut backoff = Backoff::new(timeout);
    loop {
        match f() {
            Ok(value) => return Ok(value),
            Err(err) => match backoff.next_pause() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(err).context(timed_out(what, timeout)),
            },
        }
    }
}

/// Async twin of [`eventually`]: awaits `f()` until it returns Ok or the timeout passes.
pub async fn eventually_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut backoff = Backoff::new(timeout);
    loop {
        match f().await {
            Ok(value) => return Ok(value),
            Err(err) => match backoff.next_pause() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(err).context(timed_out(what, timeout)),
            },
        }
    }
}

fn timed_out(what: &str, timeout: Duration) -> String {
    format!("timed out after {timeout:?} waiting for {what}")
}

/// Doubling pauses, cut short at the deadline.
struct Backoff {
    deadline: Instant,
    pause: Duration,
}

impl Backoff {
    fn new(timeout: Duration) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            pause: FIRST_PAUSE,
        }
    }

    /// The pause before the next try, or None once the deadline has passed.
    fn next_pause(&mut self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let pause = self.pause.min(left);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success() {
        let mut tries = 0;
        let value = eventually("the third try", Duration::from_secs(5), || {
            tries += 1;
            anyhow::ensure!(tries == 3, "try {tries}");
            Ok(tries)
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn timeout_names_what_was_awaited_and_keeps_the_last_error() {
        let err = eventually::<()>("the impossible", Duration::from_millis(30), || {
            anyhow::bail!("still not there")
        })
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("waiting for the impossible"), "{message}");
        assert!(message.contains("still not there"), "{message}");
    }

    #[tokio::test]
    async fn async_twin_polls_until_success() {
        let mut tries = 0;
        let value = eventually_async("the second try", Duration::from_secs(5), || {
            tries += 1;
            let result = if tries == 2 {
                Ok(tries)
            } else {
                Err(anyhow::anyhow!("try {tries}"))
            };
            async move { result }
        })
        .await
        .unwrap();
        assert_eq!(value, 2);
    }
}
