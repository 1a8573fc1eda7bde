//! Configuration errors that say what is wrong and where.

use std::fmt;

/// A place in a YAML file. Line and column count from 1; 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    pub const UNKNOWN: Position = Position { line: 0, column: 0 };

    pub fn of<T>(spanned: &serde_saphyr::Spanned<T>) -> Position {
        Position::from(spanned.referenced)
    }
}

impl From<serde_saphyr::Location> for Position {
    fn from(location: serde_saphyr::Location) -> Self {
        Position {
            line: location.line(),
            column: location.column(),
        }
    }
}

/// A validation failure inside one document, before the file it came from is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub at: Position,
    pub message: String,
}

impl Invalid {
    pub fn at(at: Position, message: impl Into<String>) -> Invalid {
        Invalid {
            at,
            message: message.into(),
        }
    }

    /// For a spanned value: the error points at that value.
    pub fn on<T>(spanned: &serde_saphyr::Spanned<T>, message: impl Into<String>) -> Invalid {
        Invalid::at(Position::of(spanned), message)
    }

    pub fn in_file(self, file: &str) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            at: self.at,
            message: self.message,
        }
    }
}

/// An error in a configuration file: `file:line:column: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub at: Position,
    pub message: String,
}

impl ConfigError {
    /// An error about a whole file (unreadable, too large), with no position inside it.
    pub fn whole_file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            at: Position::UNKNOWN,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.at.line, self.at.column, self.message
            )
        }
    }
}
