//! `MIDDLEWARE_API_KEYS_FILE`: a mounted Secret that Kubernetes updates by
//! swapping a symlink. The file is re-read on a short period and compared by
//! content, which sees symlink swaps, in-place edits and re-creations alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::{Authenticator, KeySet, parse_key_list};

/// How often the file is checked; a removed key is refused within this.
pub const RELOAD_PERIOD: Duration = Duration::from_secs(1);

/// The inline keys plus those of the file.
pub fn combined_keys(inline: &[String], file_text: Option<&str>) -> KeySet {
    let mut keys = inline.to_vec();
    keys.extend(file_text.map(parse_key_list).unwrap_or_default());
    KeySet::new(keys)
}

pub fn read_keys_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// Watches the file until shutdown, giving `auth` the inline keys plus the
/// file's. A file that cannot be read keeps the previous keys (a Secret update
/// is never a moment of open access).
pub async fn watch_keys_file(
    auth: Arc<Authenticator>,
    inline_keys: Vec<String>,
    path: PathBuf,
    mut last_text: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_PERIOD) => {}
            _ = shutdown.changed() => return,
        }
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_keys_file(&path)).await
        };
        match read {
            Ok(Ok(text)) => {
                failing = false;
                if text != last_text {
                    let keys = combined_keys(&inline_keys, Some(&text));
                    tracing::info!(keys = keys.len(), path = %path.display(), "client API keys reloaded");
                    auth.replace_keys(keys);
                    last_text = text;
                }
            }
            Ok(Err(error)) if !failing => {
                failing = true;
                tracing::warn!(%error, path = %path.display(), "cannot read the API keys file; keeping the previous keys");
            }
            _ => {}
        }
    }
}
