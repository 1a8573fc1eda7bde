//! Digests, stable hashes and the comparison at the heart of anti-entropy.
//!
//! Everything here must give the same answer on every node, build and platform: digests are
//! compared across the cluster, so `std`'s randomly seeded hashers are out.

use super::wire::{KeyRange, MAX_RECORDS_PER_MESSAGE, Message, Summary};
use super::{RecordVersion, StateKind};

/// splitmix64's finaliser: a bijective, well-mixed 64-bit permutation.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One entry's contribution to a digest. For a fixed key it is a bijection of the version, so
/// changing one version always changes the digest.
const fn entry_hash(entry: RecordVersion) -> u64 {
    mix64(mix64(entry.key ^ 0x9e37_79b9_7f4a_7c15).wrapping_add(entry.version))
}

/// An order-independent digest of a state: equal sets of entries give equal digests on every
/// node and platform. Nodes advertise it through membership gossip; a difference starts
/// anti-entropy.
///
/// The entries are combined with a wrapping sum, so the node can also maintain the digest
/// incrementally: add an entry's contribution when a record appears, subtract when it changes
/// (`digest([new]) - digest([old])` with wrapping arithmetic).
pub fn digest(entries: impl IntoIterator<Item = RecordVersion>) -> u64 {
    entries
        .into_iter()
        .fold(0u64, |acc, entry| acc.wrapping_add(entry_hash(entry)))
}

/// A stable 64-bit hash of bytes (FNV-1a, then a splitmix finaliser so that every output bit
/// depends on every input bit). The node uses it to derive keys and versions from records.
pub fn hash64(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    mix64(fnv)
}

/// The keys whose local version is absent from `remote` or differs there: the records to send a
/// peer that sent `remote` as its Summary. Sorted, without duplicates.
///
/// O((n + m) log m) for n local and m remote entries.
pub fn records_to_send(local: &[RecordVersion], remote: &[RecordVersion]) -> Vec<u64> {
    records_to_send_in_range(local, remote, KeyRange::FULL)
}

/// [`records_to_send`] restricted to the local entries whose key is in `range` (the range of the
/// Summary being answered: a partial Summary says nothing about keys outside it).
pub fn records_to_send_in_range(
    local: &[RecordVersion],
    remote: &[RecordVersion],
    range: KeyRange,
) -> Vec<u64> {
    let mut remote: Vec<RecordVersion> = remote.to_vec();
    remote.sort_unstable();
    let mut keys: Vec<u64> = local
        .iter()
        .filter(|entry| range.contains(entry.key) && remote.binary_search(entry).is_err())
        .map(|entry| entry.key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Summaries of the local `entries` whose key is in `range`, split so each holds at most
/// [`MAX_RECORDS_PER_MESSAGE`] entries. Their ranges tile `range` exactly, so the receiver knows
/// which keys the sender lacks; there is always at least one (an empty state still says "I hold
/// nothing"). Send them in order: the one ending at `range.last` comes last.
///
/// Start an exchange with `summaries(kind, true, &local, KeyRange::FULL)`.
pub fn summaries(
    kind: StateKind,
    reply: bool,
    entries: &[RecordVersion],
    range: KeyRange,
) -> Vec<Message> {
    summaries_chunked(kind, reply, entries, range, MAX_RECORDS_PER_MESSAGE)
}

pub(crate) fn summaries_chunked(
    kind: StateKind,
    reply: bool,
    entries: &[RecordVersion],
    range: KeyRange,
    chunk: usize,
) -> Vec<Message> {
    let chunk = chunk.max(1);
    let mut sorted: Vec<RecordVersion> = entries
        .iter()
        .copied()
        .filter(|e| range.contains(e.key))
        .collect();
    sorted.sort_unstable();
    // A state holds one version per key; should the node pass duplicates, keep one so the
    // Summary stays valid (the other gets exchanged on a later round).
    sorted.dedup_by_key(|e| e.key);
    if sorted.is_empty() || range.first > range.last {
        return vec![Message::Summary(Summary {
            kind,
            reply,
            range,
            entries: sorted,
        })];
    }
    let pieces: Vec<&[RecordVersion]> = sorted.chunks(chunk).collect();
    let count = pieces.len();
    let mut first = range.first;
    let mut out = Vec::with_capacity(count);
    for (i, piece) in pieces.into_iter().enumerate() {
        let last = if i + 1 == count {
            range.last
        } else {
            piece.last().map_or(range.last, |e| e.key)
        };
        out.push(Message::Summary(Summary {
            kind,
            reply,
            range: KeyRange { first, last },
            entries: piece.to_vec(),
        }));
        // Keys are distinct and sorted, so `last` is below the next chunk's first key: no
        // overflow.
        first = last.saturating_add(1);
    }
    out
}

/// How to answer a received [`Summary`], given what the node holds for its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryAnswer {
    /// Keys of the records to send the peer as Deltas (split with
    /// [`split_into_deltas`](super::split_into_deltas)). Send them **before** `reply_summaries`,
    /// so the peer has merged them when it treats our Summary as the end of the exchange.
    pub send_keys: Vec<u64>,
    /// Our own Summaries of the same range with `reply: false` (empty unless the peer asked).
    pub reply_summaries: Vec<Message>,
    /// Whether this Summary ends an exchange we started: it is a reply covering the end of the
    /// key space. Once its Deltas are merged, call
    /// [`AntiEntropy::exchange_completed`](super::AntiEntropy::exchange_completed).
    pub completes_exchange: bool,
}

/// Answer a peer's Summary: what the peer lacks, and our Summary if it asked for one.
pub fn answer_summary(summary: &Summary, local: &[RecordVersion]) -> SummaryAnswer {
    SummaryAnswer {
        send_keys: records_to_send_in_range(local, &summary.entries, summary.range),
        reply_summaries: if summary.reply {
            summaries(summary.kind, false, local, summary.range)
        } else {
            Vec::new()
        },
        completes_exchange: !summary.reply && summary.range.is_last(),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn rv(key: u64, version: u64) -> RecordVersion {
        RecordVersion { key, version }
    }

    #[test]
    fn digest_is_stable_across_builds() {
        // Pinned values: a change here breaks digest comparison with older nodes.
        assert_eq!(digest([]), 0);
        assert_eq!(digest([rv(1, 2)]), entry_hash(rv(1, 2)));
        assert_eq!(hash64(b""), mix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        assert_eq!(digest([rv(1, 2), rv(3, 4)]), 0x689c_5308_616f_d86d);
        assert_eq!(hash64(b"tocsin"), 0xe6e8_7f93_3928_7fe9);
    }

    #[test]
    fn digest_is_incremental() {
        let a = rv(7, 1);
        let b = rv(7, 2);
        let c = rv(9, 3);
        let old = digest([a, c]);
        let new = old.wrapping_sub(digest([a])).wrapping_add(digest([b]));
        assert_eq!(new, digest([c, b]));
    }

    #[test]
    fn records_to_send_handles_large_states() {
        let local: Vec<_> = (0..100_000u64).map(|k| rv(k, k)).collect();
        let mut remote: Vec<_> = (0..100_000u64)
            .rev()
            .filter(|k| k % 3 != 0)
            .map(|k| rv(k, k))
            .collect();
        remote[0].version += 1; // key 99_998 differs
        let keys = records_to_send(&local, &remote);
        let expected: Vec<u64> = (0..100_000u64)
            .filter(|k| k % 3 == 0 || *k == 99_998)
            .collect();
        assert_eq!(keys.len(), expected.len());
        assert!(keys == expected);
    }

    #[test]
    fn summaries_tile_the_range() {
        let entries: Vec<_> = [5u64, 1, 9, 3, 7].iter().map(|&k| rv(k, 0)).collect();
        let messages = summaries_chunked(StateKind::Alerts, true, &entries, KeyRange::FULL, 2);
        let ranges: Vec<KeyRange> = messages
            .iter()
            .map(|m| match m {
                Message::Summary(s) => s.range,
                Message::Delta(_) => panic!(),
            })
            .collect();
        assert_eq!(
            ranges,
            vec![
                KeyRange { first: 0, last: 3 },
                KeyRange { first: 4, last: 7 },
                KeyRange {
                    first: 8,
                    last: u64::MAX
                },
            ]
        );
        for m in &messages {
            super::super::encode(m).unwrap();
        }
        let empty = summaries(StateKind::Alerts, false, &[], KeyRange::FULL);
        assert_eq!(empty.len(), 1);
    }
}
