//! Bytes for silences: one silence per durable record (the state log) and a whole-state snapshot
//! (full sync with a peer). bincode 2 with explicit decode limits, behind a format version byte.
//! Decoding rebuilds matchers with [`Matcher::new`], so a regex is compiled (and size-bounded)
//! exactly as when it was first posted.

use super::Silence;
use crate::config::alertmanager::{MatchOp, Matcher};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The largest encoded silence record; [`super::MAX_SILENCE_BYTES_CAP`] keeps every valid
/// silence well below it.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The largest snapshot decoded in one piece.
pub const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty silence record")]
    Empty,
    #[error("unknown silence format version {0}")]
    Version(u8),
    #[error("silence encoding is {size} bytes (limit: {limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed silence encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the silence encoding")]
    Trailing(usize),
}

#[derive(Serialize, Deserialize)]
struct MatcherRecord {
    name: String,
    op: u8,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct SilenceRecord {
    id: String,
    matchers: Vec<MatcherRecord>,
    starts_at_ns: i128,
    ends_at_ns: i128,
    updated_at_ns: i128,
    created_by: String,
    comment: String,
}

fn op_code(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    }
}

fn op_from_code(code: u8) -> Result<MatchOp, CodecError> {
    match code {
        0 => Ok(MatchOp::Equal),
        1 => Ok(MatchOp::NotEqual),
        2 => Ok(MatchOp::Regex),
        3 => Ok(MatchOp::NotRegex),
        other => Err(CodecError::Malformed(format!(
            "unknown matcher operator {other}"
        ))),
    }
}

fn to_record(silence: &Silence) -> SilenceRecord {
    SilenceRecord {
        id: silence.id.clone(),
        matchers: silence
            .matchers
            .iter()
            .map(|matcher| MatcherRecord {
                name: matcher.name().to_string(),
                op: op_code(matcher.op()),
                value: matcher.value().to_string(),
            })
            .collect(),
        starts_at_ns: silence.starts_at.as_nanosecond(),
        ends_at_ns: silence.ends_at.as_nanosecond(),
        updated_at_ns: silence.updated_at.as_nanosecond(),
        created_by: silence.created_by.clone(),
        comment: silence.comment.clone(),
    }
}

fn timestamp(nanoseconds: i128) -> Result<Timestamp, CodecError> {
    Timestamp::from_nanosecond(nanoseconds)
        .map_err(|error| CodecError::Malformed(format!("timestamp out of range: {error}")))
}

fn from_record(record: SilenceRecord) -> Result<Silence, CodecError> {
    let matchers = record
        .matchers
        .into_iter()
        .map(|matcher| {
            Matcher::new(matcher.name, op_from_code(matcher.op)?, matcher.value)
                .map_err(CodecError::Malformed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Silence {
        id: record.id,
        matchers,
        starts_at: timestamp(record.starts_at_ns)?,
        ends_at: timestamp(record.ends_at_ns)?,
        updated_at: timestamp(record.updated_at_ns)?,
        created_by: record.created_by,
        comment: record.comment,
    })
}

fn encode<T: Serialize>(value: &T, limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_VERSION];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    bytes.extend_from_slice(&body);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

fn decode<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<T, CodecError> {
    if bytes.len() > LIMIT {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit: LIMIT,
        });
    }
    let (version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if *version != FORMAT_VERSION {
        return Err(CodecError::Version(*version));
    }
    // The limit stops a forged length prefix from allocating more than the input could hold.
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(body, config)
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    if read != body.len() {
        return Err(CodecError::Trailing(body.len() - read));
    }
    Ok(value)
}

/// One silence as a durable record.
pub fn encode_silence(silence: &Silence) -> Result<Vec<u8>, CodecError> {
    encode(&to_record(silence), MAX_RECORD_BYTES)
}

pub fn decode_silence(bytes: &[u8]) -> Result<Silence, CodecError> {
    from_record(decode::<SilenceRecord, MAX_RECORD_BYTES>(bytes)?)
}

/// All given silences in one snapshot.
pub fn encode_snapshot<'a>(
    silences: impl IntoIterator<Item = &'a Silence>,
) -> Result<Vec<u8>, CodecError> {
    let records: Vec<SilenceRecord> = silences.into_iter().map(to_record).collect();
    encode(&records, MAX_SNAPSHOT_BYTES)
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<Silence>, CodecError> {
    decode::<Vec<SilenceRecord>, MAX_SNAPSHOT_BYTES>(bytes)?
        .into_iter()
        .map(from_record)
        .collect()
}
