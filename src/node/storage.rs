//! The node's data folder: created if missing and locked, so two processes never share it.

use anyhow::Context as _;
use std::fs::File;
use std::path::Path;

/// Holds the lock on the data folder until dropped (the OS releases it if the process dies).
pub struct StorageLock {
    _file: File,
}

pub fn open(path: &Path) -> anyhow::Result<StorageLock> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create storage path {}", path.display()))?;
    let lock_path = path.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    file.try_lock().map_err(|error| match error {
        std::fs::TryLockError::WouldBlock => {
            anyhow::anyhow!(
                "storage path {} is in use by another process (lock file {})",
                path.display(),
                lock_path.display()
            )
        }
        std::fs::TryLockError::Error(error) => {
            anyhow::anyhow!("cannot lock {}: {error}", lock_path.display())
        }
    })?;
    Ok(StorageLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).unwrap();
        let error = open(dir.path()).err().unwrap().to_string();
        assert!(error.contains("in use by another process"), "{error}");
        drop(first);
        open(dir.path()).unwrap();
    }
}
