//! The TSDB's error type: every variant names the file, and corruption names the offset.

use super::encoding::DecodeError;
use std::path::{Path, PathBuf};

/// Something went wrong reading or writing the TSDB's files.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// An I/O call failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes are not what its format says (bad checksum, truncated, out of range).
    #[error("{} is corrupt {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: DecodeError,
    },
    /// A file is well-formed but unusable (wrong magic, unknown version, too large).
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The caller asked for something impossible (unsorted series for a block, …).
    #[error("{0}")]
    Usage(String),
}

impl TsdbError {
    /// A closure turning an I/O error into a [`TsdbError::Io`] on `path`, for `map_err`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TsdbError + '_ {
        move |source| TsdbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A closure turning a decode error into a [`TsdbError::Corrupt`] on `path`.
    pub(crate) fn corrupt(path: &Path) -> impl FnOnce(DecodeError) -> TsdbError + '_ {
        move |source| TsdbError::Corrupt {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`TsdbError::Invalid`] on `path`.
    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> TsdbError {
        TsdbError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
