//! A small durable log of records for the alerting state (silences, later the notification log).
//!
//! A directory holds one generation `g` of two files:
//! - `snapshot-g`: every record that was live at the last compaction, written to a temporary
//!   file, fsynced, renamed into place and made durable by an fsync of the directory;
//! - `log-g`: records appended since, each batch fsynced before [`StateLog::append`] returns, so
//!   a record acknowledged to a user survives `kill -9` and power loss.
//!
//! Both files are a magic header followed by frames `[length u32 LE][crc32 u32 LE][payload]`;
//! the CRC covers the length bytes and the payload, and a length of zero is invalid, so a tail of
//! zeroes (as a file system may leave after a crash) is never a record. Opening replays the
//! snapshot, then the log, and stops at the first frame that is torn or fails its CRC; the log is
//! truncated there. Anything after a damaged frame is lost with it: the log cannot tell a torn
//! tail from damage in the middle, and only the last batch can be torn by a crash.
//!
//! Records are opaque bytes; the caller decides what they mean. Compaction replaces the whole
//! state with the records it is given, so replay never sees a record twice.

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// No record is ever larger than this, whatever the options say: a frame claiming more is
/// damage, not data.
pub const HARD_MAX_RECORD_BYTES: usize = 64 << 20;

const LOG_MAGIC: &[u8; 8] = b"TOCSLOG1";
const SNAPSHOT_MAGIC: &[u8; 8] = b"TOCSSNP1";
const FRAME_HEADER_BYTES: u64 = 8;
const LOG_PREFIX: &str = "log-";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const TEMPORARY_SUFFIX: &str = ".tmp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLogOptions {
    /// Appending a larger record is refused. At most [`HARD_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
}

impl Default for StateLogOptions {
    fn default() -> Self {
        StateLogOptions {
            max_record_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateLogError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("empty records cannot be stored")]
    EmptyRecord,
    #[error("{path} is not a Tocsin state log (unknown header)")]
    NotALog { path: PathBuf },
    /// An earlier write or fsync failed, so what reached the disk is unknown; reopen the log to
    /// recover from what is durable.
    #[error("state log {path} failed earlier and must be reopened")]
    Poisoned { path: PathBuf },
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub snapshot_records: u64,
    pub log_records: u64,
    /// Bytes cut from the end of the log: a torn or damaged tail.
    pub discarded_log_bytes: u64,
    /// The snapshot had a damaged frame; records after it are lost. Snapshots are written whole
    /// and renamed, so this means the disk corrupted data, and deserves a loud log line.
    pub snapshot_damaged: bool,
}

/// An open state log, positioned for appending.
#[derive(Debug)]
pub struct StateLog {
    directory: PathBuf,
    generation: u64,
    log_path: PathBuf,
    log: File,
    log_bytes: u64,
    max_record_bytes: usize,
    poisoned: bool,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateLogError {
    let path = path.to_path_buf();
    move |source| StateLogError::Io {
        action,
        path,
        source,
    }
}

fn file_name(prefix: &str, generation: u64) -> String {
    format!("{prefix}{generation:020}")
}

/// Makes renames and new files in `directory` durable.
fn sync_directory(directory: &Path) -> Result<(), StateLogError> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error("syncing directory", directory))
}

/// Appends the frame of `payload` to `buffer`.
fn push_frame(buffer: &mut Vec<u8>, payload: &[u8]) {
    // Callers check the size against HARD_MAX_RECORD_BYTES, which fits in a u32.
    let length = (payload.len() as u32).to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length);
    hasher.update(payload);
    buffer.extend_from_slice(&length);
    buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
    buffer.extend_from_slice(payload);
}

fn check_record(payload: &[u8], limit: usize) -> Result<(), StateLogError> {
    if payload.is_empty() {
        return Err(StateLogError::EmptyRecord);
    }
    if payload.len() > limit {
        return Err(StateLogError::RecordTooLarge {
            size: payload.len(),
            limit,
        });
    }
    Ok(())
}

/// The outcome of reading one file of frames.
struct Scan {
    records: u64,
    /// Bytes up to the end of the last good frame.
    valid_bytes: u64,
    damaged: bool,
}

/// Reads the frames of `path` (which starts with `magic`) and hands each payload to `visit`.
/// Stops at the first damaged frame. `Ok(None)` if the file is shorter than its header, which
/// only a crash while creating it leaves behind.
fn scan(
    path: &Path,
    magic: &[u8; 8],
    visit: &mut dyn FnMut(&[u8]),
) -> Result<Option<Scan>, StateLogError> {
    let file = File::open(path).map_err(io_error("opening", path))?;
    let file_bytes = file
        .metadata()
        .map_err(io_error("reading metadata of", path))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let header_bytes = magic.len() as u64;
    if file_bytes < header_bytes {
        return Ok(None);
    }
    let mut header = [0u8; 8];
    reader
        .read_exact(&mut header)
        .map_err(io_error("reading", path))?;
    if header == [0u8; 8] {
        // Zeroes where the header should be: the file's size reached the disk, its bytes did not.
        return Ok(None);
    }
    if &header != magic {
        return Err(StateLogError::NotALog {
            path: path.to_path_buf(),
        });
    }
    let mut scan = Scan {
        records: 0,
        valid_bytes: header_bytes,
        damaged: false,
    };
    let mut payload = Vec::new();
    loop {
        let remaining = file_bytes - scan.valid_bytes;
        if remaining == 0 {
            break;
        }
        if remaining < FRAME_HEADER_BYTES {
            scan.damaged = true;
            break;
        }
        let mut frame_header = [0u8; 8];
        reader
            .read_exact(&mut frame_header)
            .map_err(io_error("reading", path))?;
        let (length_bytes, crc_bytes) = frame_header.split_at(4);
        let length_bytes: [u8; 4] = length_bytes.try_into().unwrap_or_default();
        let crc_bytes: [u8; 4] = crc_bytes.try_into().unwrap_or_default();
        let length = u64::from(u32::from_le_bytes(length_bytes));
        if length == 0
            || length > HARD_MAX_RECORD_BYTES as u64
            || length > remaining - FRAME_HEADER_BYTES
        {
            scan.damaged = true;
            break;
        }
        // `length` is bounded by HARD_MAX_RECORD_BYTES and by the file's size.
        payload.resize(length as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(io_error("reading", path))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&length_bytes);
        hasher.update(&payload);
        if hasher.finalize() != u32::from_le_bytes(crc_bytes) {
            scan.damaged = true;
            break;
        }
        visit(&payload);
        scan.records += 1;
        scan.valid_bytes += FRAME_HEADER_BYTES + length;
    }
    Ok(Some(scan))
}

/// The generations of the snapshots and logs in `directory`; removes temporary files left by an
/// interrupted compaction.
fn list_generations(directory: &Path) -> Result<(Vec<u64>, Vec<u64>), StateLogError> {
    let mut snapshots = Vec::new();
    let mut logs = Vec::new();
    let entries = fs::read_dir(directory).map_err(io_error("listing", directory))?;
    for entry in entries {
        let entry = entry.map_err(io_error("listing", directory))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMPORARY_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_error("removing", &path))?;
        } else if let Some(generation) = name.strip_prefix(SNAPSHOT_PREFIX) {
            snapshots.extend(generation.parse::<u64>().ok());
        } else if let Some(generation) = name.strip_prefix(LOG_PREFIX) {
            logs.extend(generation.parse::<u64>().ok());
        }
    }
    Ok((snapshots, logs))
}

/// Creates (or resets) a log file holding only its header, durably.
fn create_log(path: &Path) -> Result<File, StateLogError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_error("creating", path))?;
    file.write_all(LOG_MAGIC)
        .and_then(|()| file.sync_all())
        .map_err(io_error("writing", path))?;
    Ok(file)
}

impl StateLog {
    /// Opens (creating if needed) the log in `directory`, handing every durable record to
    /// `visit` in the order written: the snapshot's, then the log's.
    pub fn open(
        directory: &Path,
        options: &StateLogOptions,
        mut visit: impl FnMut(&[u8]),
    ) -> Result<(StateLog, Recovery), StateLogError> {
        fs::create_dir_all(directory).map_err(io_error("creating directory", directory))?;
        let (snapshots, logs) = list_generations(directory)?;
        // A log of generation g exists only once snapshot g is durable (see `compact`), so the
        // newest snapshot names the current generation; with none yet, the newest log does.
        let generation = snapshots
            .iter()
            .max()
            .or_else(|| logs.iter().max())
            .copied()
            .unwrap_or(0);
        let mut recovery = Recovery::default();

        let snapshot_path = directory.join(file_name(SNAPSHOT_PREFIX, generation));
        if snapshots.contains(&generation) {
            let scanned = scan(&snapshot_path, SNAPSHOT_MAGIC, &mut visit)?;
            let scanned = scanned.unwrap_or(Scan {
                records: 0,
                valid_bytes: 0,
                damaged: true,
            });
            recovery.snapshot_records = scanned.records;
            recovery.snapshot_damaged = scanned.damaged;
        }

        let log_path = directory.join(file_name(LOG_PREFIX, generation));
        let log = if logs.contains(&generation) {
            match scan(&log_path, LOG_MAGIC, &mut visit)? {
                None => create_log(&log_path)?,
                Some(scanned) => {
                    recovery.log_records = scanned.records;
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&log_path)
                        .map_err(io_error("opening", &log_path))?;
                    let file_bytes = file
                        .metadata()
                        .map_err(io_error("reading metadata of", &log_path))?
                        .len();
                    if scanned.valid_bytes < file_bytes {
                        recovery.discarded_log_bytes = file_bytes - scanned.valid_bytes;
                        file.set_len(scanned.valid_bytes)
                            .and_then(|()| file.sync_all())
                            .map_err(io_error("truncating the damaged tail of", &log_path))?;
                    }
                    file
                }
            }
        } else {
            let file = create_log(&log_path)?;
            sync_directory(directory)?;
            file
        };

        let mut state_log = StateLog {
            directory: directory.to_path_buf(),
            generation,
            log_path,
            log,
            log_bytes: 0,
            max_record_bytes: options.max_record_bytes.min(HARD_MAX_RECORD_BYTES),
            poisoned: false,
        };
        state_log.log_bytes = state_log
            .log
            .seek(SeekFrom::End(0))
            .map_err(io_error("seeking", &state_log.log_path))?;
        state_log.remove_older_generations(&snapshots, &logs)?;
        Ok((state_log, recovery))
    }

    /// Bytes in the current log file, for deciding when to compact.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends `records` as one batch and fsyncs it. When this returns `Ok`, every record of the
    /// batch survives a crash. On an error none of them is acknowledged, and if the disk was
    /// touched the log is poisoned until reopened.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StateLogError> {
        if self.poisoned {
            return Err(StateLogError::Poisoned {
                path: self.log_path.clone(),
            });
        }
        let mut batch = Vec::new();
        for record in records {
            check_record(record, self.max_record_bytes)?;
            push_frame(&mut batch, record);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let written = self
            .log
            .write_all(&batch)
            .and_then(|()| self.log.sync_data());
        if let Err(source) = written {
            // After a failed write or fsync the page cache and the disk may disagree; cut the
            // partial batch if possible, and refuse more appends either way.
            self.poisoned = true;
            let _ = self.log.set_len(self.log_bytes);
            return Err(StateLogError::Io {
                action: "appending to",
                path: self.log_path.clone(),
                source,
            });
        }
        self.log_bytes += batch.len() as u64;
        Ok(())
    }

    /// Replaces the whole state by `records` (typically everything live now): writes them as the
    /// next generation's snapshot and starts an empty log. A crash at any point leaves either the
    /// old generation or the new one complete.
    pub fn compact<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StateLogError> {
        if self.poisoned {
            return Err(StateLogError::Poisoned {
                path: self.log_path.clone(),
            });
        }
        let next = self.generation + 1;
        let snapshot_path = self.directory.join(file_name(SNAPSHOT_PREFIX, next));
        let temporary_path = self.directory.join(format!(
            "{}{TEMPORARY_SUFFIX}",
            file_name(SNAPSHOT_PREFIX, next)
        ));
        let written = self.write_snapshot(&temporary_path, records);
        if written.is_err() {
            let _ = fs::remove_file(&temporary_path);
            return written;
        }
        fs::rename(&temporary_path, &snapshot_path)
            .map_err(io_error("renaming", &snapshot_path))?;
        // From here on the new snapshot may be on disk, and `open` would prefer it to the current
        // log: after a failure, appending to the current log could acknowledge records a reopen
        // ignores, so the log is poisoned until reopened.
        let switched = self.start_generation(next);
        if switched.is_err() {
            self.poisoned = true;
        }
        switched
    }

    /// Makes snapshot `next` durable, starts its empty log and switches appends to it.
    fn start_generation(&mut self, next: u64) -> Result<(), StateLogError> {
        // The snapshot must be durable before a log of its generation exists: `open` trusts the
        // newest snapshot to name the generation.
        sync_directory(&self.directory)?;
        let log_path = self.directory.join(file_name(LOG_PREFIX, next));
        let mut log = create_log(&log_path)?;
        sync_directory(&self.directory)?;
        let log_bytes = log
            .seek(SeekFrom::End(0))
            .map_err(io_error("seeking", &log_path))?;

        let previous_generation = self.generation;
        self.generation = next;
        self.log = log;
        self.log_path = log_path;
        self.log_bytes = log_bytes;
        self.remove_older_generations(&[previous_generation], &[previous_generation])
    }

    fn write_snapshot<'a>(
        &self,
        path: &Path,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StateLogError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_error("creating", path))?;
        let mut writer = io::BufWriter::with_capacity(1 << 16, file);
        writer
            .write_all(SNAPSHOT_MAGIC)
            .map_err(io_error("writing", path))?;
        let mut frame = Vec::new();
        for record in records {
            check_record(record, self.max_record_bytes)?;
            frame.clear();
            push_frame(&mut frame, record);
            writer
                .write_all(&frame)
                .map_err(io_error("writing", path))?;
        }
        let file = writer.into_inner().map_err(|error| StateLogError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source: error.into_error(),
        })?;
        file.sync_all().map_err(io_error("syncing", path))
    }

    /// Deletes the files of generations before the current one: a completed compaction covers
    /// them.
    fn remove_older_generations(
        &self,
        snapshots: &[u64],
        logs: &[u64],
    ) -> Result<(), StateLogError> {
        let mut removed = false;
        let older = |generation: &&u64| **generation < self.generation;
        for (prefix, generations) in [(SNAPSHOT_PREFIX, snapshots), (LOG_PREFIX, logs)] {
            for generation in generations.iter().filter(older) {
                let path = self.directory.join(file_name(prefix, *generation));
                match fs::remove_file(&path) {
                    Ok(()) => removed = true,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error("removing", &path)(error)),
                }
            }
        }
        if removed {
            sync_directory(&self.directory)?;
        }
        Ok(())
    }
}
