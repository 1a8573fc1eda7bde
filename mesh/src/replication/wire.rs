//! The wire format: a protocol version byte, then a bincode 2 body decoded under explicit limits.
//!
//! Everything here is input from a peer: a malformed or oversized message is refused with an
//! error the node counts and drops, never trusted and never a panic.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::{Decode, Encode};

use super::{RecordVersion, StateKind};

/// The protocol version this build speaks, sent as the first byte of every message. A later
/// version that changes the body bumps it, so an old node refuses new messages cleanly instead of
/// misreading them.
pub const PROTOCOL_VERSION: u8 = 1;

/// The largest encoded message, version byte included.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The most records (in a [`Delta`]) or entries (in a [`Summary`]) one message may hold.
pub const MAX_RECORDS_PER_MESSAGE: usize = 100_000;

/// The largest single record in a [`Delta`].
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// A sensible byte budget for [`split_into_deltas`]: small enough that one message does not hold
/// a stream for long, large enough that a burst of changes takes few messages.
pub const DEFAULT_DELTA_BUDGET: usize = 1024 * 1024;

/// The bincode allocation limit. bincode claims `len × size_of::<T>()` before it allocates a
/// container, so the limit bounds memory even when a peer lies about a length: the largest valid
/// message claims its own bytes plus the in-memory size of its record headers.
const DECODE_LIMIT: usize =
    MAX_MESSAGE_BYTES + MAX_RECORDS_PER_MESSAGE * std::mem::size_of::<Vec<u8>>();

/// Worst-case bytes a Delta adds around its records: version byte, variant tag, kind tag and the
/// records' length prefix (a bincode varint takes at most 9 bytes).
const DELTA_OVERHEAD: usize = 1 + 5 + 1 + 9;

/// Worst-case length prefix of one record.
const RECORD_PREFIX: usize = 9;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// A replication message between two nodes.
///
/// The variant order is the wire tag: append new variants, never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    /// Records that changed at the sender, or that the receiver lacks after a [`Summary`].
    Delta(Delta),
    /// What the sender holds in a key range (anti-entropy).
    Summary(Summary),
}

impl Message {
    /// The replicated state the message is about.
    pub fn kind(&self) -> StateKind {
        match self {
            Message::Delta(delta) => delta.kind,
            Message::Summary(summary) => summary.kind,
        }
    }
}

/// Records that changed at the sender: opaque bytes the node decodes and merges.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Delta {
    /// The state the records belong to.
    pub kind: StateKind,
    /// The encoded records, each at most [`MAX_RECORD_BYTES`].
    pub records: Vec<Vec<u8>>,
}

/// What the sender holds for the keys in `range`.
///
/// The receiver answers with a [`Delta`] of every record in `range` that the sender lacks or
/// holds with another version and, if `reply` is true, its own Summaries of `range` with `reply:
/// false` (see [`answer_summary`](super::answer_summary)). A state with more than
/// [`MAX_RECORDS_PER_MESSAGE`] records is described by several Summaries whose ranges tile the
/// key space (see [`summaries`](super::summaries)).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Summary {
    /// The state summarised.
    pub kind: StateKind,
    /// Whether the receiver should answer with its own Summary of `range`.
    pub reply: bool,
    /// The keys this Summary speaks for: a key in `range` but absent from `entries` is one the
    /// sender does not hold.
    pub range: KeyRange,
    /// The sender's records in `range`, sorted by key.
    pub entries: Vec<RecordVersion>,
}

/// An inclusive range of record keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct KeyRange {
    /// The first key in the range.
    pub first: u64,
    /// The last key in the range (inclusive).
    pub last: u64,
}

impl KeyRange {
    /// Every key.
    pub const FULL: KeyRange = KeyRange {
        first: 0,
        last: u64::MAX,
    };

    /// Whether `key` lies in the range.
    pub const fn contains(&self, key: u64) -> bool {
        self.first <= key && key <= self.last
    }

    /// Whether this range ends the key space, i.e. a Summary of it is the last of an exchange.
    pub const fn is_last(&self) -> bool {
        self.last == u64::MAX
    }
}

impl Encode for StateKind {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), bincode::error::EncodeError> {
        self.tag().encode(encoder)
    }
}

impl<Context> Decode<Context> for StateKind {
    fn decode<D: Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let tag = u8::decode(decoder)?;
        StateKind::from_tag(tag).ok_or(bincode::error::DecodeError::Other("unknown state kind tag"))
    }
}

bincode::impl_borrow_decode!(StateKind);

/// A message breaks one of the wire limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The whole message is too large.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The message's length, or a lower bound of it.
        len: usize,
        /// [`MAX_MESSAGE_BYTES`].
        max: usize,
    },
    /// Too many records or summary entries.
    #[error("message holds {count} records or entries, more than the limit of {max}")]
    TooManyRecords {
        /// How many the message holds.
        count: usize,
        /// [`MAX_RECORDS_PER_MESSAGE`].
        max: usize,
    },
    /// One record is too large.
    #[error("a record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: usize,
        /// [`MAX_RECORD_BYTES`].
        max: usize,
    },
    /// A Summary's range is inverted or an entry lies outside it, or entries are not sorted by
    /// distinct keys.
    #[error("summary range {first}..={last} is inverted or does not hold its sorted entries")]
    BadSummary {
        /// The range's first key.
        first: u64,
        /// The range's last key.
        last: u64,
    },
}

/// Why a received message was refused. The node drops it and counts [`DecodeError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty replication message")]
    Empty,
    /// The version byte names a protocol this build does not speak (likely a newer peer).
    #[error("replication protocol version {found} is not supported (this node speaks {supported})")]
    UnsupportedVersion {
        /// The version byte received.
        found: u8,
        /// [`PROTOCOL_VERSION`].
        supported: u8,
    },
    /// The message breaks a wire limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The input ended in the middle of the message.
    #[error("replication message is truncated")]
    Truncated,
    /// Bytes follow a complete message.
    #[error("{count} unexpected bytes after the replication message")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// The body is not a valid message (unknown tag, bad varint, ...).
    #[error("malformed replication message: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// A short stable label for the metric counting refused messages.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnsupportedVersion { .. } => "version",
            DecodeError::Limit(_) => "too_large",
            DecodeError::Truncated => "truncated",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::Malformed(_) => "malformed",
        }
    }
}

/// Why a message could not be encoded. Sending it would only get it refused by the peer, so the
/// sender learns now (use [`split_into_deltas`] and [`summaries`](super::summaries) to stay within
/// the limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message breaks a wire limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// bincode failed (not expected when writing to memory).
    #[error("cannot encode replication message: {0}")]
    Bincode(String),
}

/// Check the limits a receiver enforces, so that encode and decode agree on them.
fn check_limits(message: &Message) -> Result<(), LimitError> {
    match message {
        Message::Delta(delta) => {
            if delta.records.len() > MAX_RECORDS_PER_MESSAGE {
                return Err(LimitError::TooManyRecords {
                    count: delta.records.len(),
                    max: MAX_RECORDS_PER_MESSAGE,
                });
            }
            if let Some(record) = delta.records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
                return Err(LimitError::RecordTooLarge {
                    len: record.len(),
                    max: MAX_RECORD_BYTES,
                });
            }
        }
        Message::Summary(summary) => {
            if summary.entries.len() > MAX_RECORDS_PER_MESSAGE {
                return Err(LimitError::TooManyRecords {
                    count: summary.entries.len(),
                    max: MAX_RECORDS_PER_MESSAGE,
                });
            }
            let range = summary.range;
            let in_range = summary.entries.iter().all(|e| range.contains(e.key));
            // Sorted, distinct keys let the receiver compare in one pass and make a Summary
            // unambiguous: one version per key.
            let sorted = summary.entries.windows(2).all(|w| match w {
                [a, b] => a.key < b.key,
                _ => true,
            });
            if range.first > range.last || !in_range || !sorted {
                return Err(LimitError::BadSummary {
                    first: range.first,
                    last: range.last,
                });
            }
        }
    }
    Ok(())
}

/// Encode a message for the wire: [`PROTOCOL_VERSION`], then the bincode body.
///
/// Refuses a message that the receiver would refuse.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    check_limits(message)?;
    let mut out = vec![PROTOCOL_VERSION];
    bincode::encode_into_std_write(message, &mut out, config())
        .map_err(|e| EncodeError::Bincode(e.to_string()))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(LimitError::MessageTooLarge {
            len: out.len(),
            max: MAX_MESSAGE_BYTES,
        }
        .into());
    }
    Ok(out)
}

/// Decode a message received from a peer. The whole input must be one message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    // Refuse the version before the size: a newer peer's message is "unsupported", whatever its
    // size, which is the clearer error for an operator mid-upgrade.
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: PROTOCOL_VERSION,
        });
    }
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(LimitError::MessageTooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        }
        .into());
    }
    let (message, used): (Message, usize) =
        bincode::decode_from_slice(body, config()).map_err(map_bincode_error)?;
    if used != body.len() {
        return Err(DecodeError::TrailingBytes {
            count: body.len().saturating_sub(used),
        });
    }
    check_limits(&message)?;
    Ok(message)
}

fn map_bincode_error(error: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match error {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        // The input is at most MAX_MESSAGE_BYTES, so the allocation limit is hit only by a
        // length prefix that claims more than the message could hold.
        B::LimitExceeded => LimitError::MessageTooLarge {
            len: DECODE_LIMIT,
            max: MAX_MESSAGE_BYTES,
        }
        .into(),
        other => DecodeError::Malformed(other.to_string()),
    }
}

/// Records split into Deltas by [`split_into_deltas`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeltaBatches {
    /// Deltas, each within the byte budget (or holding one record larger than it) and within
    /// every wire limit.
    pub messages: Vec<Message>,
    /// Records left out because they exceed [`MAX_RECORD_BYTES`]: no peer would accept them. The
    /// node should count and log these; it is a bug or a pathological record upstream.
    pub oversized: usize,
}

/// Split `records` of `kind` into Deltas of at most `budget` bytes each (clamped to the wire
/// limit), in order, so that no message exceeds the limits. A record larger than the budget but
/// within [`MAX_RECORD_BYTES`] travels alone.
pub fn split_into_deltas(
    kind: StateKind,
    records: impl IntoIterator<Item = Vec<u8>>,
    budget: usize,
) -> DeltaBatches {
    let budget = budget.clamp(DELTA_OVERHEAD + RECORD_PREFIX + 1, MAX_MESSAGE_BYTES);
    let mut batches = DeltaBatches::default();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = DELTA_OVERHEAD;
    for record in records {
        if record.len() > MAX_RECORD_BYTES {
            batches.oversized += 1;
            continue;
        }
        let cost = record.len() + RECORD_PREFIX;
        if !current.is_empty() && (size + cost > budget || current.len() >= MAX_RECORDS_PER_MESSAGE)
        {
            batches.messages.push(Message::Delta(Delta {
                kind,
                records: std::mem::take(&mut current),
            }));
            size = DELTA_OVERHEAD;
        }
        size += cost;
        current.push(record);
    }
    if !current.is_empty() {
        batches.messages.push(Message::Delta(Delta {
            kind,
            records: current,
        }));
    }
    batches
}

#[cfg(test)]
mod unit {
    use super::*;

    fn summary(entries: Vec<RecordVersion>) -> Message {
        Message::Summary(Summary {
            kind: StateKind::Nflog,
            reply: true,
            range: KeyRange::FULL,
            entries,
        })
    }

    #[test]
    fn round_trip_both_variants() {
        let delta = Message::Delta(Delta {
            kind: StateKind::Silences,
            records: vec![b"a".to_vec(), Vec::new(), vec![0xff; 300]],
        });
        assert_eq!(decode(&encode(&delta).unwrap()).unwrap(), delta);
        let s = summary(vec![
            RecordVersion { key: 1, version: 9 },
            RecordVersion {
                key: u64::MAX,
                version: u64::MAX,
            },
        ]);
        assert_eq!(decode(&encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn version_byte_comes_first_and_future_versions_are_refused() {
        let mut bytes = encode(&summary(Vec::new())).unwrap();
        assert_eq!(bytes[0], PROTOCOL_VERSION);
        bytes[0] = PROTOCOL_VERSION + 1;
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion {
                found: PROTOCOL_VERSION + 1,
                supported: PROTOCOL_VERSION
            }
        );
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn empty_truncated_and_trailing_inputs_are_refused() {
        assert_eq!(decode(&[]).unwrap_err(), DecodeError::Empty);
        let bytes = encode(&summary(vec![RecordVersion { key: 5, version: 6 }])).unwrap();
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]).unwrap_err(),
            DecodeError::Truncated
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer).unwrap_err(),
            DecodeError::TrailingBytes { count: 1 }
        );
    }

    #[test]
    fn unknown_kind_tag_is_malformed() {
        let mut bytes = encode(&summary(Vec::new())).unwrap();
        // [version, variant, kind, ...]
        assert_eq!(bytes[2], StateKind::Nflog.tag());
        bytes[2] = 200;
        assert_eq!(decode(&bytes).unwrap_err().reason(), "malformed");
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let mut bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
        bytes[0] = PROTOCOL_VERSION;
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(err, DecodeError::Limit(LimitError::MessageTooLarge { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn lying_length_prefixes_are_refused_without_allocating() {
        // A Delta claiming u64::MAX records, and one claiming a record of ~4 GiB.
        // bincode varints: 0xFD introduces a u64, 0xFC a u32.
        let mut huge_count = vec![PROTOCOL_VERSION, 0, StateKind::Alerts.tag(), 0xFD];
        huge_count.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(&huge_count).unwrap_err().reason(), "too_large");
        let mut huge_record = vec![PROTOCOL_VERSION, 0, StateKind::Alerts.tag(), 1, 0xFC];
        huge_record.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge_record).unwrap_err().reason(), "too_large");
    }

    #[test]
    fn limits_are_enforced_on_both_sides() {
        let big = Message::Delta(Delta {
            kind: StateKind::Alerts,
            records: vec![vec![0; MAX_RECORD_BYTES + 1]],
        });
        assert!(matches!(
            encode(&big),
            Err(EncodeError::Limit(LimitError::RecordTooLarge { .. }))
        ));
        // Build the oversized record by hand: the receiver must refuse it too.
        let mut bytes = vec![PROTOCOL_VERSION];
        bincode::encode_into_std_write(&big, &mut bytes, bincode::config::standard()).unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Limit(LimitError::RecordTooLarge { .. }))
        ));

        let many = Message::Delta(Delta {
            kind: StateKind::Alerts,
            records: vec![Vec::new(); MAX_RECORDS_PER_MESSAGE + 1],
        });
        assert!(matches!(
            encode(&many),
            Err(EncodeError::Limit(LimitError::TooManyRecords { .. }))
        ));
        let mut bytes = vec![PROTOCOL_VERSION];
        bincode::encode_into_std_write(&many, &mut bytes, bincode::config::standard()).unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Limit(LimitError::TooManyRecords { .. }))
        ));
    }

    #[test]
    fn unsorted_or_out_of_range_summaries_are_refused() {
        let unsorted = summary(vec![
            RecordVersion { key: 2, version: 0 },
            RecordVersion { key: 1, version: 0 },
        ]);
        assert!(encode(&unsorted).is_err());
        let mut bytes = vec![PROTOCOL_VERSION];
        bincode::encode_into_std_write(&unsorted, &mut bytes, bincode::config::standard()).unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Limit(LimitError::BadSummary { .. }))
        ));
        let outside = Message::Summary(Summary {
            kind: StateKind::Claims,
            reply: false,
            range: KeyRange {
                first: 10,
                last: 20,
            },
            entries: vec![RecordVersion {
                key: 21,
                version: 0,
            }],
        });
        assert!(encode(&outside).is_err());
    }

    #[test]
    fn split_respects_budget_and_limits() {
        let records: Vec<Vec<u8>> = (0..1000u32).map(|i| vec![i as u8; 1000]).collect();
        let batches = split_into_deltas(StateKind::Silences, records.clone(), 10_000);
        assert_eq!(batches.oversized, 0);
        assert!(batches.messages.len() > 1);
        let mut seen = Vec::new();
        for m in &batches.messages {
            let bytes = encode(m).unwrap();
            assert!(bytes.len() <= 10_000, "{}", bytes.len());
            match decode(&bytes).unwrap() {
                Message::Delta(d) => seen.extend(d.records),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, records);
    }

    #[test]
    fn split_skips_oversized_and_caps_count() {
        let mut records = vec![Vec::new(); MAX_RECORDS_PER_MESSAGE + 5];
        records.push(vec![0; MAX_RECORD_BYTES + 1]);
        records.push(vec![1; MAX_RECORD_BYTES]);
        let batches = split_into_deltas(StateKind::Nflog, records, usize::MAX);
        assert_eq!(batches.oversized, 1);
        let total: usize = batches
            .messages
            .iter()
            .map(|m| match m {
                Message::Delta(d) => d.records.len(),
                Message::Summary(_) => 0,
            })
            .sum();
        assert_eq!(total, MAX_RECORDS_PER_MESSAGE + 6);
        for m in &batches.messages {
            assert_eq!(&decode(&encode(m).unwrap()).unwrap(), m);
        }
        assert!(
            split_into_deltas(StateKind::Nflog, Vec::new(), 1)
                .messages
                .is_empty()
        );
    }

    #[test]
    fn the_largest_valid_messages_decode() {
        // Fifteen 1 MiB records: just under the message limit.
        let delta = Message::Delta(Delta {
            kind: StateKind::Alerts,
            records: vec![vec![7; MAX_RECORD_BYTES]; 15],
        });
        assert_eq!(decode(&encode(&delta).unwrap()).unwrap(), delta);
        let full = summary(
            (0..MAX_RECORDS_PER_MESSAGE as u64)
                .map(|k| RecordVersion {
                    key: k << 40,
                    version: u64::MAX - k,
                })
                .collect(),
        );
        assert_eq!(decode(&encode(&full).unwrap()).unwrap(), full);
    }
}
