//! The middleware's own SSH key pair under `DATA_DIR/ssh/`. Created once
//! with ssh-keygen; the private key never leaves that directory.

use std::path::{Path, PathBuf};

use tokio::process::Command;

pub struct KeyPair {
    pub private: PathBuf,
    pub public_line: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot prepare {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("ssh-keygen failed: {0}")]
    Keygen(String),
}

/// Returns the key pair, generating an ed25519 key on first use.
pub async fn ensure(dir: &Path) -> Result<KeyPair, KeyError> {
    let private = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    let io = |source| KeyError::Io { path: dir.display().to_string(), source };
    if !private.exists() {
        crate::files::own_dir(dir).map_err(io)?;
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "drswitch", "-f"])
            .arg(&private)
            .output()
            .await
            .map_err(|e| KeyError::Keygen(e.to_string()))?;
        if !out.status.success() {
            return Err(KeyError::Keygen(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
    }
    let public_line = std::fs::read_to_string(&public).map_err(io)?.trim().to_string();
    Ok(KeyPair { private, public_line })
}
