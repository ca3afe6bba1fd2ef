//! A step's config applied live: written atomically into the proxy's watched folder, then
//! awaited until the proxy's admin status shows a newer version (or names the rejection).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::Value;

use super::report;

/// How long a proxy may take to start or to apply a change.
pub const WAIT: Duration = Duration::from_secs(20);

/// Writes `yaml` as `dir/file` (by rename, so the proxy never reads half a file) and waits
/// until `status` (the `status` object of the proxy's `/config_dump`) shows a newer
/// version; fails with the proxy's own error when it rejects the config. `who` names the
/// proxy in messages.
pub fn apply(
    dir: &Path,
    file: &str,
    yaml: &str,
    who: &str,
    status: impl Fn() -> anyhow::Result<Value>,
) -> anyhow::Result<()> {
    let before = status()?;
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, yaml)?;
    std::fs::rename(&tmp, dir.join(file))?;
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status()?;
        if now["version"].as_u64() > before["version"].as_u64() {
            report::applied(now["version"].as_u64().unwrap_or(0));
            return Ok(());
        }
        if now["last_error"] != before["last_error"] && !now["last_error"].is_null() {
            bail!("{who} rejected the config: {}", now["last_error"]);
        }
        ensure!(
            Instant::now() < deadline,
            "{who} did not apply the config within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
