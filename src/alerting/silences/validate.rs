//! Alertmanager's silence validation, and the size limits Tocsin adds so that no client (or peer)
//! can grow the silence store without bound.

use super::{Silence, SilenceError};
use crate::config::alertmanager::{Matcher, is_classic_label_name};
use jiff::Timestamp;

/// Bounds on silences. Every one is checked on create, update and merge; the error names the
/// limit that was hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceLimits {
    /// Silences held, expired ones included (they are evicted, oldest first, to make room).
    pub max_silences: usize,
    /// Sum of [`Silence::size_bytes`] over all held silences.
    pub max_total_bytes: usize,
    /// [`Silence::size_bytes`] of one silence. Capped at [`MAX_SILENCE_BYTES_CAP`] so that every
    /// accepted silence also fits in one durable record.
    pub max_silence_bytes: usize,
    pub max_matchers: usize,
    /// Name plus value of one matcher.
    pub max_matcher_bytes: usize,
    pub max_comment_bytes: usize,
    pub max_created_by_bytes: usize,
    /// Label sets whose muting silences are cached; the cache is reset when it is full.
    pub max_cache_entries: usize,
}

/// The largest silence any configuration may allow: a quarter of the record codec's limit, which
/// leaves room for the encoding's own overhead.
pub const MAX_SILENCE_BYTES_CAP: usize = super::codec::MAX_RECORD_BYTES / 4;

/// Ids are UUIDs (36 bytes); peers' ids are accepted up to this length.
pub const MAX_ID_BYTES: usize = 64;

impl Default for SilenceLimits {
    fn default() -> Self {
        SilenceLimits {
            max_silences: 10_000,
            max_total_bytes: 64 << 20,
            max_silence_bytes: 128 << 10,
            max_matchers: 64,
            max_matcher_bytes: 8 << 10,
            max_comment_bytes: 64 << 10,
            max_created_by_bytes: 1 << 10,
            max_cache_entries: 200_000,
        }
    }
}

/// The checks Alertmanager's `POST /api/v2/silences` makes before it stores anything, with its
/// messages.
pub(super) fn check_posted_times(
    starts_at: Timestamp,
    ends_at: Timestamp,
    now: Timestamp,
) -> Result<(), SilenceError> {
    if starts_at >= ends_at {
        return Err(SilenceError::StartNotBeforeEnd);
    }
    if ends_at < now {
        return Err(SilenceError::EndInPast);
    }
    Ok(())
}

/// Alertmanager's `validateSilence` plus Tocsin's size limits. Applies to every silence the store
/// takes in, whether from the API, a peer or the disk.
pub(super) fn validate(silence: &Silence, limits: &SilenceLimits) -> Result<(), SilenceError> {
    if silence.id.is_empty() {
        return Err(SilenceError::Invalid("ID missing".to_string()));
    }
    if silence.id.len() > MAX_ID_BYTES {
        return Err(SilenceError::Limit(format!(
            "silence id is {} bytes (limit: {MAX_ID_BYTES} bytes)",
            silence.id.len()
        )));
    }
    validate_matchers(&silence.matchers, limits)?;
    if silence.ends_at < silence.starts_at {
        return Err(SilenceError::Invalid(
            "end time must not be before start time".to_string(),
        ));
    }
    if silence.comment.len() > limits.max_comment_bytes {
        return Err(SilenceError::Limit(format!(
            "comment is {} bytes (limit: {} bytes)",
            silence.comment.len(),
            limits.max_comment_bytes
        )));
    }
    if silence.created_by.len() > limits.max_created_by_bytes {
        return Err(SilenceError::Limit(format!(
            "createdBy is {} bytes (limit: {} bytes)",
            silence.created_by.len(),
            limits.max_created_by_bytes
        )));
    }
    let max_silence_bytes = limits.max_silence_bytes.min(MAX_SILENCE_BYTES_CAP);
    let size = silence.size_bytes();
    if size > max_silence_bytes {
        return Err(SilenceError::Limit(format!(
            "silence exceeded maximum size: {size} bytes (limit: {max_silence_bytes} bytes)"
        )));
    }
    Ok(())
}

fn validate_matchers(matchers: &[Matcher], limits: &SilenceLimits) -> Result<(), SilenceError> {
    if matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".to_string(),
        ));
    }
    if matchers.len() > limits.max_matchers {
        return Err(SilenceError::Limit(format!(
            "silence has {} matchers (limit: {})",
            matchers.len(),
            limits.max_matchers
        )));
    }
    for (index, matcher) in matchers.iter().enumerate() {
        // Alertmanager 0.25 accepts only Prometheus label names in silences; alerts cannot carry
        // any other name, so a matcher on one could only ever match the empty string.
        if !is_classic_label_name(matcher.name()) {
            return Err(SilenceError::Invalid(format!(
                "invalid label matcher {index}: invalid label name {:?}",
                matcher.name()
            )));
        }
        let bytes = matcher.name().len() + matcher.value().len();
        if bytes > limits.max_matcher_bytes {
            return Err(SilenceError::Limit(format!(
                "matcher {index} is {bytes} bytes (limit: {} bytes)",
                limits.max_matcher_bytes
            )));
        }
    }
    // A silence whose every positive matcher accepts the empty string mutes every alert that
    // lacks those labels, which in practice is all of them. Negative matchers (`!=`, `!~`) do not
    // count as matching empty, exactly as in Alertmanager: `foo!="x"` alone is a valid silence
    // there, and amtool users rely on that.
    let matches_empty = |matcher: &Matcher| !matcher.op().is_negative() && matcher.matches("");
    if matchers.iter().all(matches_empty) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".to_string(),
        ));
    }
    Ok(())
}
