//! The middleware's archive store: `DATA_DIR/archives/<pair>/<vzdump name>`,
//! closed to other users. Transfers land on `.partial-<task>-<name>` first
//! and become archives only through `store`, which never replaces a file.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::domain::{ArchiveName, PairId, TaskId};

#[derive(Debug, Clone)]
pub struct ArchiveStore {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an archive named {0} is already stored for this pair")]
    Exists(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ArchiveStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn pair_dir(&self, pair: PairId) -> PathBuf {
        self.root.join(pair.to_string())
    }

    /// The pair's directory, created closed to others.
    pub fn prepare(&self, pair: PairId) -> std::io::Result<PathBuf> {
        let dir = self.pair_dir(pair);
        crate::files::own_dir(&dir)?;
        Ok(dir)
    }

    pub fn path(&self, pair: PairId, name: &ArchiveName) -> PathBuf {
        self.pair_dir(pair).join(name.as_str())
    }

    /// Where a transfer of `name` by `task` lands before it is verified.
    pub fn partial(&self, pair: PairId, task: TaskId, name: &ArchiveName) -> PathBuf {
        self.pair_dir(pair).join(format!(".partial-{task}-{name}"))
    }

    /// Turns a verified partial file into the archive. Linking, not
    /// renaming: an archive already stored under the name (vzdump names have
    /// one-second resolution) must never change under its recorded checksum.
    pub fn store(&self, partial: &Path, pair: PairId, name: &ArchiveName) -> Result<PathBuf, StoreError> {
        let path = self.path(pair, name);
        let linked = std::fs::hard_link(partial, &path);
        let _ = std::fs::remove_file(partial);
        match linked {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    pub fn remove(&self, pair: PairId, name: &ArchiveName) {
        let _ = std::fs::remove_file(self.path(pair, name));
    }

    /// Removes any partial files of this task (an earlier attempt's, or
    /// this one's after a failure).
    pub fn sweep_partials(&self, task: TaskId) {
        let marker = format!(".partial-{task}-");
        let Ok(dirs) = std::fs::read_dir(&self.root) else { return };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
            for f in files.flatten() {
                if f.file_name().to_string_lossy().starts_with(&marker) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }

    /// Tasks that have partial files in the store.
    pub fn partial_tasks(&self) -> Vec<TaskId> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&self.root) else { return out };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                // `.partial-<36-character task id>-<archive name>`
                if let Some(id) = name.strip_prefix(".partial-").and_then(|r| r.get(..36)).and_then(|r| r.parse().ok())
                {
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
        out
    }

    /// Free bytes on the file system of the pair's directory.
    pub async fn free_bytes(&self, pair: PairId) -> std::io::Result<u64> {
        free_bytes(&self.pair_dir(pair)).await
    }
}

/// SHA-256 (hex) of a local file, read off the async threads.
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Free bytes on the file system holding `dir`.
pub async fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().await?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other(format!("cannot read free space of {}", dir.display())))
}
