//! Property tests of the protocol as a whole: the codec, the digest, and a model of replicas
//! exchanging Summaries and Deltas until they agree.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::digest::summaries_chunked;
use super::*;

fn arb_kind() -> impl Strategy<Value = StateKind> {
    prop::sample::select(StateKind::ALL.to_vec())
}

fn arb_message() -> impl Strategy<Value = Message> {
    let delta = (
        arb_kind(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..32),
    )
        .prop_map(|(kind, records)| Message::Delta(Delta { kind, records }));
    let summary = (
        arb_kind(),
        any::<bool>(),
        prop::collection::btree_map(any::<u64>(), any::<u64>(), 0..64),
    )
        .prop_map(|(kind, reply, map)| {
            Message::Summary(Summary {
                kind,
                reply,
                range: KeyRange::FULL,
                entries: map
                    .into_iter()
                    .map(|(key, version)| RecordVersion { key, version })
                    .collect(),
            })
        });
    prop_oneof![delta, summary]
}

proptest! {
    #[test]
    fn codec_round_trips(message in arb_message()) {
        let bytes = encode(&message).unwrap();
        prop_assert_eq!(bytes[0], PROTOCOL_VERSION);
        prop_assert_eq!(decode(&bytes).unwrap(), message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let mut versioned = vec![PROTOCOL_VERSION];
        versioned.extend_from_slice(&bytes);
        if let Ok(message) = decode(&versioned) {
            // Whatever decodes re-encodes to a message that decodes the same.
            prop_assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        }
    }

    #[test]
    fn mutated_messages_never_panic(message in arb_message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&message).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = decode(&bytes);
        bytes.truncate(i);
        let _ = decode(&bytes);
    }

    #[test]
    fn digest_is_order_independent(
        map in prop::collection::btree_map(any::<u64>(), any::<u64>(), 0..64),
        seed in any::<u64>(),
    ) {
        let entries: Vec<RecordVersion> =
            map.iter().map(|(&key, &version)| RecordVersion { key, version }).collect();
        let mut shuffled = entries.clone();
        // A deterministic shuffle from the seed (no RNG in a sans-IO crate).
        shuffled.sort_by_key(|e| hash64(&[e.key.to_le_bytes(), seed.to_le_bytes()].concat()));
        prop_assert_eq!(digest(entries.iter().copied()), digest(shuffled));
    }

    #[test]
    fn digest_changes_when_a_version_changes(
        map in prop::collection::btree_map(any::<u64>(), any::<u64>(), 1..64),
        at in any::<prop::sample::Index>(),
        delta in 1..u64::MAX,
    ) {
        let mut entries: Vec<RecordVersion> =
            map.iter().map(|(&key, &version)| RecordVersion { key, version }).collect();
        let before = digest(entries.iter().copied());
        let i = at.index(entries.len());
        entries[i].version = entries[i].version.wrapping_add(delta);
        prop_assert_ne!(before, digest(entries));
    }

    #[test]
    fn records_to_send_matches_a_naive_model(
        local in prop::collection::btree_map(0..32u64, 0..4u64, 0..32),
        remote in prop::collection::btree_map(0..32u64, 0..4u64, 0..32),
    ) {
        let l: Vec<_> = local.iter().map(|(&key, &version)| RecordVersion { key, version }).collect();
        let r: Vec<_> = remote.iter().map(|(&key, &version)| RecordVersion { key, version }).collect();
        let expected: Vec<u64> = local
            .iter()
            .filter(|(k, v)| remote.get(k) != Some(v))
            .map(|(&k, _)| k)
            .collect();
        prop_assert_eq!(records_to_send(&l, &r), expected);
    }
}

// ---- The model: replicas holding key → (version, value) with a last-writer-wins merge. ----

/// A replica's record: LWW by (version, value), so ties break deterministically.
type Replica = BTreeMap<u64, (u64, u64)>;

fn record_bytes(key: u64, version: u64, value: u64) -> Vec<u8> {
    [
        key.to_le_bytes(),
        version.to_le_bytes(),
        value.to_le_bytes(),
    ]
    .concat()
}

fn parse_record(bytes: &[u8]) -> Option<(u64, u64, u64)> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    Some((word(0)?, word(1)?, word(2)?))
}

/// What the protocol sees of a replica: the version is a hash of the whole record, as the node
/// does it, so that different contents never share a version.
fn entries(replica: &Replica) -> Vec<RecordVersion> {
    replica
        .iter()
        .map(|(&key, &(version, value))| RecordVersion {
            key,
            version: hash64(&record_bytes(key, version, value)),
        })
        .collect()
}

fn merge(replica: &mut Replica, bytes: &[u8]) {
    let (key, version, value) = parse_record(bytes).unwrap();
    let slot = replica.entry(key).or_insert((version, value));
    if (version, value) > *slot {
        *slot = (version, value);
    }
}

/// Deliver `message` from replica `from` to replica `to` (through the codec) and return the
/// messages `to` sends back, and whether `to` considers its exchange complete.
fn deliver(replicas: &mut [Replica], to: usize, message: &Message) -> (Vec<Message>, bool) {
    let message = decode(&encode(message).unwrap()).unwrap();
    match message {
        Message::Delta(delta) => {
            for record in &delta.records {
                merge(&mut replicas[to], record);
            }
            (Vec::new(), false)
        }
        Message::Summary(summary) => {
            let local = &replicas[to];
            let answer = answer_summary(&summary, &entries(local));
            let records: Vec<Vec<u8>> = answer
                .send_keys
                .iter()
                .map(|key| {
                    let (version, value) = local[key];
                    record_bytes(*key, version, value)
                })
                .collect();
            // Small budget so that multi-message Deltas are exercised.
            let batches = split_into_deltas(summary.kind, records, 200);
            assert_eq!(batches.oversized, 0);
            let mut out = batches.messages;
            out.extend(answer.reply_summaries);
            (out, answer.completes_exchange)
        }
    }
}

/// Run one exchange initiated by `a` with `b`, with Summaries split into chunks of `chunk`
/// entries. Messages are processed in order, as on one stream per direction.
fn exchange(replicas: &mut [Replica], a: usize, b: usize, chunk: usize) {
    let mut queue: std::collections::VecDeque<(usize, Message)> = summaries_chunked(
        StateKind::Silences,
        true,
        &entries(&replicas[a]),
        KeyRange::FULL,
        chunk,
    )
    .into_iter()
    .map(|m| (b, m))
    .collect();
    let mut completed = false;
    while let Some((to, message)) = queue.pop_front() {
        let (out, done) = deliver(replicas, to, &message);
        if done {
            assert_eq!(to, a, "only the initiator completes");
            completed = true;
        }
        let back = if to == a { b } else { a };
        queue.extend(out.into_iter().map(|m| (back, m)));
    }
    assert!(completed, "the initiator saw the final reply Summary");
}

fn arb_replica() -> impl Strategy<Value = Replica> {
    // Few keys and versions so that replicas overlap, conflict and tie.
    prop::collection::btree_map(0..40u64, (0..4u64, 0..3u64), 0..30)
}

proptest! {
    #[test]
    fn two_replicas_converge_in_one_exchange(
        a in arb_replica(),
        b in arb_replica(),
        chunk in 1..8usize,
    ) {
        let mut expected = a.clone();
        for (&key, &(version, value)) in &b {
            merge(&mut expected, &record_bytes(key, version, value));
        }
        let mut replicas = vec![a, b];
        exchange(&mut replicas, 0, 1, chunk);
        prop_assert_eq!(&replicas[0], &expected);
        prop_assert_eq!(&replicas[1], &expected);
        prop_assert_eq!(digest(entries(&replicas[0])), digest(entries(&replicas[1])));
    }

    #[test]
    fn three_replicas_converge(
        initial in prop::collection::vec(arb_replica(), 3),
        chunk in 1..8usize,
    ) {
        let mut replicas = initial;
        // A chain 0↔1, 1↔2, then 0↔1 again spreads everything to everyone.
        exchange(&mut replicas, 0, 1, chunk);
        exchange(&mut replicas, 2, 1, chunk);
        exchange(&mut replicas, 1, 0, chunk);
        prop_assert_eq!(&replicas[0], &replicas[1]);
        prop_assert_eq!(&replicas[1], &replicas[2]);
        let d: Vec<u64> = replicas.iter().map(|r| digest(entries(r))).collect();
        prop_assert!(d.iter().all(|x| *x == d[0]));
        // A further exchange has nothing to send.
        let summary = Summary {
            kind: StateKind::Silences,
            reply: false,
            range: KeyRange::FULL,
            entries: entries(&replicas[0]),
        };
        prop_assert!(answer_summary(&summary, &entries(&replicas[2])).send_keys.is_empty());
    }
}
