//! Finding the API server as kubectl does: `--kubeconfig FILE`, else `KUBECONFIG` (or
//! `~/.kube/config`), else the in-cluster service account.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Why no API server could be found.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// The kubeconfig given with `--kubeconfig`.
    #[error("kubeconfig {}: {error}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: KubeconfigError,
    },
    /// Neither `KUBECONFIG`, `~/.kube/config` nor an in-cluster service account.
    #[error(
        "no Kubernetes API server found (give --kubeconfig, set KUBECONFIG, or run in a pod with a service account): {0}"
    )]
    Infer(#[from] InferConfigError),
}

/// The client config for `kubeconfig` when given, else as kube-rs infers it (the
/// `KUBECONFIG` files or `~/.kube/config`, else the in-cluster service account). Reads
/// files only: nothing here contacts the API server.
pub async fn client_config(kubeconfig: Option<&Path>) -> Result<kube::Config, ClientConfigError> {
    let Some(path) = kubeconfig else {
        return Ok(kube::Config::infer().await?);
    };
    let error = |error| ClientConfigError::Kubeconfig {
        path: path.to_path_buf(),
        error,
    };
    let file = Kubeconfig::read_from(path).map_err(error)?;
    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kubeconfig_that_cannot_be_read_is_an_error_naming_the_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        for path in [dir.join("no-such.kubeconfig"), dir.join("Cargo.toml")] {
            let error = client_config(Some(&path)).await.unwrap_err();
            let prefix = format!("kubeconfig {}: ", path.display());
            assert!(error.to_string().starts_with(&prefix), "{error}");
        }
    }
}
