//! Watching the config files: inotify events (through notify), with a slow
//! poll as a safety net for file systems that do not report changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use sluice_api::model::Workload;
use tokio::sync::mpsc;

use super::Store;

/// How long to let a burst of file events settle before reloading.
const SETTLE: Duration = Duration::from_millis(50);
/// Reload check when no event came (unchanged files are skipped cheaply).
const POLL: Duration = Duration::from_secs(5);

/// Reloads `path` into `store` whenever its files change; runs until dropped.
pub async fn watch(path: PathBuf, workload: Workload, store: Arc<Store>) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let _watcher = start(&path, tx);
    loop {
        let event = tokio::time::timeout(POLL, rx.recv()).await;
        if matches!(event, Ok(None)) {
            // The watcher is gone; keep polling.
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(SETTLE).await;
        while rx.try_recv().is_ok() {}
        let (path, workload, store) = (path.clone(), workload.clone(), store.clone());
        // Reading and compiling is blocking work: keep it off the request path's threads.
        let _ = tokio::task::spawn_blocking(move || store.reload(&path, &workload)).await;
    }
}

/// Starts watching the path (a directory recursively; a file through its
/// directory, so editors that replace the file are seen).
fn start(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.try_send(());
        }
    };
    let watched = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let result = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&watched, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match result {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(path = %watched.display(), "cannot watch config files ({e}); polling every {POLL:?}");
            None
        }
    }
}
