//! Files on the middleware. Archives hold whole VM disks and the data dir
//! holds keys, so everything drswitch creates there is for its own user only
//! (directories 0700, files 0600), and files others may read concurrently
//! are replaced atomically.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates one directory, closed to others (fails if it exists).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

/// Creates the directory and any missing parents closed to others. An
/// existing directory is left as it is (it may be shared, like /tmp).
pub fn ensure_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Creates a directory that belongs to drswitch alone (the data dir, the
/// archive store) and closes it to others even if it existed before.
pub fn own_dir(path: &Path) -> std::io::Result<()> {
    ensure_private_dir(path)?;
    if std::fs::metadata(path)?.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Closes an existing file to others (e.g. one another program created).
pub fn make_private(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A new, empty 0600 file beside `path` with a unique name.
pub fn temp_beside(path: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    Ok((tmp, f))
}

/// Replaces `path` with `bytes` in one step: readers see the old or the new
/// content, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (tmp, mut f) = temp_beside(path)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates `path` with `bytes` only if it does not exist yet, complete or
/// not at all. Returns false when another process created it first.
pub fn create_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let (tmp, mut f) = temp_beside(path)?;
    let result = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the complete file `tmp` the name `path`, unless `path` exists
/// (then `Ok(false)`); `tmp` is gone either way.
pub fn publish_new(tmp: &Path, path: &Path) -> std::io::Result<bool> {
    let linked = std::fs::File::open(tmp).and_then(|f| f.sync_all()).and_then(|()| std::fs::hard_link(tmp, path));
    let _ = std::fs::remove_file(tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_modes() {
        let d = tempfile::tempdir().unwrap();
        let nested = d.path().join("a/b");
        own_dir(&nested).unwrap();
        assert_eq!(std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777, 0o700);
        let f = nested.join("f");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!create_atomic(&f, b"three").unwrap());
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert!(create_atomic(&nested.join("g"), b"x").unwrap());
        assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 2, "no temporary files left");
    }
}
