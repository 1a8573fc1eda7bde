use super::codec::{decode_silence, decode_snapshot, encode_silence, encode_snapshot};
use super::*;
use crate::config::alertmanager::MatchOp;
use proptest::prelude::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

fn matcher(text: &str) -> Matcher {
    Matcher::parse_one(text).unwrap()
}

fn spec(matchers: &[&str], starts: i64, ends: i64) -> SilenceSpec {
    SilenceSpec {
        matchers: matchers.iter().map(|text| matcher(text)).collect(),
        starts_at: at(starts),
        ends_at: at(ends),
        created_by: "alice".to_string(),
        comment: "maintenance".to_string(),
    }
}

fn random(seed: u128) -> [u8; 16] {
    seed.to_le_bytes()
}

fn store() -> Silences {
    Silences::new(SilenceLimits::default(), DEFAULT_RETENTION)
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let mut set = LabelSet::new();
    for (name, value) in pairs {
        set.insert(*name, *value);
    }
    set
}

#[test]
fn ids_are_uuid_v4_text() {
    let id = uuid_v4([0xff; 16]);
    assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    let id = uuid_v4([0; 16]);
    assert_eq!(id, "00000000-0000-4000-8000-000000000000");
}

#[test]
fn create_clamps_a_past_start_and_computes_state() {
    let mut silences = store();
    let now = at(1_000);
    let change = silences
        .create(spec(&["job=api"], 500, 2_000), now, random(1))
        .unwrap();
    let silence = silences.get(&change.id).unwrap();
    assert_eq!(change.persist, vec![silence.clone()]);
    assert_eq!(
        (silence.starts_at, silence.updated_at),
        (now, now),
        "a start in the past becomes now"
    );
    assert_eq!(silence.state_at(now), SilenceState::Active);
    assert_eq!(silence.state_at(at(2_000)), SilenceState::Expired);

    let pending = silences
        .create(spec(&["job=api"], 1_500, 2_000), now, random(2))
        .unwrap();
    let pending = silences.get(&pending.id).unwrap();
    assert_eq!(pending.starts_at, at(1_500));
    assert_eq!(pending.state_at(now), SilenceState::Pending);
    assert_eq!(pending.state_at(at(1_500)), SilenceState::Active);
}

#[test]
fn create_refuses_what_alertmanager_refuses() {
    let mut silences = store();
    let now = at(1_000);
    let error = |silences: &mut Silences, spec: SilenceSpec| {
        silences
            .create(spec, now, random(1))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(&mut silences, spec(&["a=1"], 2_000, 2_000)),
        "Failed to create silence: start time must be before end time"
    );
    assert_eq!(
        error(&mut silences, spec(&["a=1"], 500, 900)),
        "Failed to create silence: end time can't be in the past"
    );
    assert_eq!(
        error(&mut silences, spec(&[], 1_000, 2_000)),
        "silence invalid: at least one matcher required"
    );
    for everything in [&["foo=~\".*\""][..], &["foo=\"\"", "bar=~\"x*\""]] {
        assert_eq!(
            error(&mut silences, spec(everything, 1_000, 2_000)),
            "silence invalid: at least one matcher must not match the empty string",
            "{everything:?}"
        );
    }
    // Negative matchers never count as matching empty (Alertmanager's rule), so these are valid.
    for (seed, negative) in [&["foo!=\"x\""][..], &["foo=\"\"", "bar!~\"x+\""]]
        .iter()
        .enumerate()
    {
        let created = silences.create(spec(negative, 1_000, 2_000), at(1_000), [seed as u8; 16]);
        assert!(created.is_ok(), "{negative:?}: {created:?}");
    }
    silences = Silences::new(SilenceLimits::default(), SignedDuration::from_hours(120));
    assert_eq!(
        error(&mut silences, spec(&["\"service name\"=api"], 1_000, 2_000)),
        "silence invalid: invalid label matcher 0: invalid label name \"service name\""
    );
    assert!(silences.is_empty(), "nothing refused was stored");
    // Empty creator and comment: present in the API body, accepted as Alertmanager 0.25 does.
    let mut anonymous = spec(&["a=1"], 1_000, 2_000);
    anonymous.created_by.clear();
    anonymous.comment.clear();
    assert!(silences.create(anonymous, now, random(1)).is_ok());
}

#[test]
fn limits_name_what_was_exceeded() {
    let limits = SilenceLimits {
        max_silences: 2,
        max_matchers: 2,
        max_matcher_bytes: 10,
        max_comment_bytes: 5,
        max_created_by_bytes: 3,
        ..SilenceLimits::default()
    };
    let mut silences = Silences::new(limits, DEFAULT_RETENTION);
    let now = at(1_000);
    let error = |silences: &mut Silences, spec: SilenceSpec| {
        silences
            .create(spec, now, random(9))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(&mut silences, spec(&["a=1", "b=2", "c=3"], 1_000, 2_000)),
        "silence has 3 matchers (limit: 2)"
    );
    assert_eq!(
        error(&mut silences, spec(&["a=12345678910"], 1_000, 2_000)),
        "matcher 0 is 12 bytes (limit: 10 bytes)"
    );
    let mut long_comment = spec(&["a=1"], 1_000, 2_000);
    long_comment.comment = "123456".to_string();
    assert_eq!(
        error(&mut silences, long_comment),
        "comment is 6 bytes (limit: 5 bytes)"
    );
    let mut long_creator = spec(&["a=1"], 1_000, 2_000);
    long_creator.comment = "ok".to_string();
    assert_eq!(
        error(&mut silences, long_creator),
        "createdBy is 5 bytes (limit: 3 bytes)"
    );

    let small = |starts, ends| SilenceSpec {
        created_by: "bob".to_string(),
        comment: "x".to_string(),
        ..spec(&["a=1"], starts, ends)
    };
    let first = silences
        .create(small(1_000, 1_500), now, random(1))
        .unwrap();
    silences
        .create(small(1_000, 2_000), now, random(2))
        .unwrap();
    assert_eq!(
        silences
            .create(small(1_000, 2_000), now, random(3))
            .unwrap_err()
            .to_string(),
        "exceeded maximum number of silences: 2 (limit: 2)"
    );
    // Once one is expired, it makes room.
    let later = at(1_600);
    silences
        .create(small(1_600, 2_000), later, random(3))
        .unwrap();
    assert!(silences.get(&first.id).is_none());
    assert_eq!(silences.stats().evicted_expired, 1);
    assert_eq!(silences.stats().refused_by_limit, 5);

    let tiny_total = SilenceLimits {
        max_total_bytes: 100,
        ..SilenceLimits::default()
    };
    let mut silences = Silences::new(tiny_total, DEFAULT_RETENTION);
    silences
        .create(small(1_000, 2_000), now, random(1))
        .unwrap();
    let error = silences
        .create(small(1_000, 2_000), now, random(2))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("silences would take ") && error.ends_with("(limit: 100 bytes)"),
        "{error}"
    );

    let tiny_silence = SilenceLimits {
        max_silence_bytes: 60,
        ..SilenceLimits::default()
    };
    let mut silences = Silences::new(tiny_silence, DEFAULT_RETENTION);
    let error = silences
        .create(spec(&["a=1"], 1_000, 2_000), now, random(1))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("silence exceeded maximum size: "),
        "{error}"
    );
}

#[test]
fn update_in_place_when_history_is_kept() {
    let mut silences = store();
    let created = silences
        .create(spec(&["a=1", "b=2"], 1_000, 2_000), at(1_000), random(1))
        .unwrap();
    let original = silences.get(&created.id).unwrap().clone();

    // Active: same matchers (in any order), same start to the second, a later end.
    let mut extended = spec(&["b=2", "a=1"], 1_000, 3_000);
    extended.starts_at = original
        .starts_at
        .checked_add(SignedDuration::from_millis(400))
        .unwrap();
    let now = at(1_500);
    let change = silences
        .update(&created.id, extended, now, random(2))
        .unwrap();
    assert_eq!(change.id, created.id);
    let updated = silences.get(&created.id).unwrap();
    assert_eq!(change.persist, vec![updated.clone()]);
    assert_eq!(
        (updated.starts_at, updated.ends_at, updated.updated_at),
        (original.starts_at, at(3_000), now)
    );
    assert_eq!(silences.len(), 1);

    // Pending: a start that is not in the past may move.
    let pending = silences
        .create(spec(&["a=1"], 5_000, 6_000), now, random(3))
        .unwrap();
    let change = silences
        .update(&pending.id, spec(&["a=1"], 4_000, 7_000), now, random(4))
        .unwrap();
    assert_eq!(change.id, pending.id);
    assert_eq!(silences.get(&pending.id).unwrap().starts_at, at(4_000));
}

#[test]
fn update_expires_and_recreates_when_history_would_change() {
    let now = at(1_500);
    for (name, new_spec) in [
        ("new matchers", spec(&["a=2"], 1_000, 3_000)),
        (
            "new start of an active silence",
            spec(&["a=1"], 1_400, 3_000),
        ),
    ] {
        let mut silences = store();
        let created = silences
            .create(spec(&["a=1"], 1_000, 2_000), at(1_000), random(1))
            .unwrap();
        let change = silences
            .update(&created.id, new_spec, now, random(2))
            .unwrap();
        assert_ne!(change.id, created.id, "{name}");
        let old = silences.get(&created.id).unwrap();
        assert_eq!(old.ends_at, now, "{name}");
        assert_eq!(old.state_at(now), SilenceState::Expired, "{name}");
        let new = silences.get(&change.id).unwrap();
        assert_eq!(new.starts_at, now, "{name}: a past start becomes now");
        assert_eq!(change.persist, vec![old.clone(), new.clone()], "{name}");
    }

    // Pending with a start moved into the past: replaced, the old one expires at once.
    let mut silences = store();
    let pending = silences
        .create(spec(&["a=1"], 2_000, 3_000), at(1_000), random(1))
        .unwrap();
    let change = silences
        .update(&pending.id, spec(&["a=1"], 1_200, 3_000), now, random(2))
        .unwrap();
    assert_ne!(change.id, pending.id);
    let old = silences.get(&pending.id).unwrap();
    assert_eq!((old.starts_at, old.ends_at), (now, now));

    // Expired: a new silence; the old one is not rewritten.
    let mut silences = store();
    let short = silences
        .create(spec(&["a=1"], 1_000, 1_100), at(1_000), random(1))
        .unwrap();
    let change = silences
        .update(&short.id, spec(&["a=1"], 1_500, 3_000), now, random(2))
        .unwrap();
    assert_ne!(change.id, short.id);
    assert_eq!(change.persist.len(), 1);
}

#[test]
fn a_refused_update_changes_nothing() {
    let mut silences = store();
    let created = silences
        .create(spec(&["a=1"], 1_000, 2_000), at(1_000), random(1))
        .unwrap();
    let before = silences.get(&created.id).unwrap().clone();
    let error = silences
        .update(
            &created.id,
            spec(&["a=~\".*\""], 1_000, 3_000),
            at(1_500),
            random(2),
        )
        .unwrap_err();
    assert!(matches!(error, SilenceError::Invalid(_)));
    assert_eq!(silences.get(&created.id), Some(&before));
    assert_eq!(silences.len(), 1);
    assert_eq!(
        silences.update("nope", spec(&["a=1"], 1_000, 3_000), at(1_500), random(3)),
        Err(SilenceError::NotFound)
    );
    assert_eq!(
        silences.create(spec(&["a=1"], 1_000, 3_000), at(1_500), random(1)),
        Err(SilenceError::DuplicateId(created.id.clone())),
        "an id collision is reported, not overwritten"
    );
}

#[test]
fn expire_active_pending_and_expired() {
    let mut silences = store();
    let now = at(1_500);
    let active = silences
        .create(spec(&["a=1"], 1_000, 2_000), at(1_000), random(1))
        .unwrap();
    let pending = silences
        .create(spec(&["a=1"], 3_000, 4_000), at(1_000), random(2))
        .unwrap();

    let expired = silences.expire(&active.id, now).unwrap().unwrap();
    assert_eq!((expired.starts_at, expired.ends_at), (at(1_000), now));
    assert_eq!(expired.state_at(now), SilenceState::Expired);
    let expired = silences.expire(&pending.id, now).unwrap().unwrap();
    assert_eq!((expired.starts_at, expired.ends_at), (now, now));
    assert_eq!(expired.state_at(now), SilenceState::Expired);

    assert_eq!(silences.expire(&active.id, at(1_600)), Ok(None));
    assert_eq!(silences.expire("nope", now), Err(SilenceError::NotFound));
}

#[test]
fn query_filters_like_the_api() {
    let mut silences = store();
    let now = at(1_000);
    let a = silences
        .create(
            spec(&["job=api", "env=~\"prod|dev\""], 1_000, 2_000),
            now,
            random(1),
        )
        .unwrap()
        .id;
    let b = silences
        .create(spec(&["job=web"], 1_500, 2_000), now, random(2))
        .unwrap()
        .id;
    let ids = |found: Vec<&Silence>| found.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(ids(silences.query(&SilenceQuery::default(), now)), both);
    let query = SilenceQuery {
        states: vec![SilenceState::Pending],
        ..Default::default()
    };
    assert_eq!(ids(silences.query(&query, now)), vec![b.clone()]);
    let query = SilenceQuery {
        ids: vec![a.clone(), "missing".to_string()],
        ..Default::default()
    };
    assert_eq!(ids(silences.query(&query, now)), vec![a.clone()]);
    // The filter compares matchers, it does not match labels: `job=~"api"` is not `job="api"`.
    let filter = |texts: &[&str]| SilenceQuery {
        filter: texts.iter().map(|text| matcher(text)).collect(),
        ..Default::default()
    };
    assert_eq!(
        ids(silences.query(&filter(&["job=api"]), now)),
        vec![a.clone()]
    );
    assert_eq!(
        ids(silences.query(&filter(&["env=~\"prod|dev\"", "job=api"]), now)),
        vec![a.clone()]
    );
    assert!(silences.query(&filter(&["job=~api"]), now).is_empty());
    assert!(silences.query(&filter(&["env=prod"]), now).is_empty());

    let mut listed = silences.query(&SilenceQuery::default(), now);
    sort_for_api(&mut listed, now);
    assert_eq!(ids(listed), vec![a, b], "active first, then pending");
}

#[test]
fn mutes_follows_time_and_changes() {
    let mut silences = store();
    let now = at(1_000);
    let alert = labels(&[("alertname", "Down"), ("job", "api")]);
    let active = silences
        .create(spec(&["job=api"], 1_000, 2_000), now, random(1))
        .unwrap()
        .id;
    let pending = silences
        .create(spec(&["alertname=~\"Do.*\""], 1_500, 2_500), now, random(2))
        .unwrap()
        .id;
    silences
        .create(spec(&["job=web"], 1_000, 2_000), now, random(3))
        .unwrap();
    assert_eq!(silences.mutes(&alert, now), vec![active.clone()]);
    let mut both = vec![active.clone(), pending.clone()];
    both.sort();
    assert_eq!(
        silences.mutes(&alert, at(1_500)),
        both,
        "pending became active"
    );
    silences.expire(&active, at(1_600)).unwrap();
    assert_eq!(silences.mutes(&alert, at(1_600)), vec![pending.clone()]);
    assert!(silences.mutes(&alert, at(2_500)).is_empty());
    assert!(
        silences
            .mutes(&labels(&[("job", "db")]), at(1_600))
            .is_empty(),
        "a regex on a missing label matches nothing here"
    );
}

#[test]
fn gc_drops_silences_past_retention() {
    let mut silences = Silences::new(SilenceLimits::default(), SignedDuration::from_secs(100));
    let id = silences
        .create(spec(&["a=1"], 1_000, 2_000), at(1_000), random(1))
        .unwrap()
        .id;
    assert_eq!(
        silences.gc(at(2_100)),
        0,
        "kept until the retention has passed"
    );
    assert_eq!(silences.gc(at(2_101)), 1);
    assert!(silences.get(&id).is_none());
    assert_eq!(silences.total_bytes(), 0);
}

#[test]
fn merge_is_last_writer_wins_and_expiry_is_final() {
    let mut silences = store();
    let now = at(1_000);
    let id = silences
        .create(spec(&["a=1"], 1_000, 2_000), now, random(1))
        .unwrap()
        .id;
    let local = silences.get(&id).unwrap().clone();

    let newer = Silence {
        ends_at: at(5_000),
        updated_at: at(1_100),
        ..local.clone()
    };
    assert_eq!(silences.merge(newer.clone(), now), Ok(Some(newer.clone())));
    assert_eq!(silences.merge(local.clone(), now), Ok(None), "older loses");

    // A peer with a slow clock expires it "before" our update: the expiry still wins.
    let expired_by_slow_peer = Silence {
        ends_at: at(1_050),
        updated_at: at(1_050),
        ..local.clone()
    };
    assert!(
        silences
            .merge(expired_by_slow_peer.clone(), now)
            .unwrap()
            .is_some()
    );
    let revived = Silence {
        ends_at: at(9_000),
        updated_at: at(8_000),
        ..local.clone()
    };
    assert_eq!(silences.merge(revived, now), Ok(None));
    assert_eq!(silences.get(&id), Some(&expired_by_slow_peer));

    // An unknown silence expired beyond the retention is not taken in.
    let ancient = Silence {
        id: uuid_v4(random(7)),
        ..expired_by_slow_peer
    };
    let long_after = at(1_050 + 120 * 3_600 + 1);
    assert_eq!(silences.merge(ancient, long_after), Ok(None));
    // Nor is an invalid one.
    let invalid = Silence {
        id: uuid_v4(random(8)),
        matchers: vec![matcher("a=~\".*\"")],
        ..local
    };
    assert!(silences.merge(invalid, now).is_err());
}

#[test]
fn codec_rejects_garbage_without_panicking() {
    assert!(decode_silence(&[]).is_err());
    assert!(decode_silence(&[9, 1, 2]).is_err());
    assert!(decode_silence(&[1, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(decode_snapshot(&[1, 0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
}

// --- properties ---

fn arbitrary_matcher() -> impl Strategy<Value = Matcher> {
    let op = prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::Regex),
        Just(MatchOp::NotRegex),
    ];
    (
        prop::sample::select(vec!["a", "b", "c"]),
        op,
        prop::sample::select(vec!["", "1", "2", "1|2", "1.*", ".+"]),
    )
        .prop_map(|(name, op, value)| {
            let value = if op.is_regex() {
                value.to_string()
            } else {
                value.replace(['|', '.', '*', '+'], "")
            };
            Matcher::new(name, op, value).unwrap()
        })
}

fn arbitrary_labels() -> impl Strategy<Value = LabelSet> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c", "d"]),
        prop::sample::select(vec!["", "1", "2", "11"]),
        0..4,
    )
    .prop_map(|map| {
        let mut set = LabelSet::new();
        for (name, value) in map {
            if !value.is_empty() {
                set.insert(name, value);
            }
        }
        set
    })
}

/// Versions of one silence (same id), as peers could hold them.
fn arbitrary_version() -> impl Strategy<Value = Silence> {
    (
        prop::collection::vec(arbitrary_matcher(), 1..3),
        0i64..20,
        0i64..20,
        0i64..20,
        prop::sample::select(vec!["x", "y"]),
    )
        .prop_map(|(matchers, starts, length, updated, comment)| Silence {
            id: uuid_v4([1; 16]),
            matchers,
            starts_at: at(starts),
            ends_at: at(starts + length),
            updated_at: at(updated),
            created_by: "p".to_string(),
            comment: comment.to_string(),
        })
}

#[derive(Debug, Clone)]
enum Operation {
    Create {
        matchers: Vec<Matcher>,
        starts_in: i64,
        length: i64,
    },
    Update {
        target: usize,
        matchers: Option<Vec<Matcher>>,
        starts_in: i64,
        length: i64,
    },
    Expire {
        target: usize,
    },
    Wait(i64),
}

fn arbitrary_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (
            prop::collection::vec(arbitrary_matcher(), 1..3),
            -5i64..10,
            1i64..20
        )
            .prop_map(|(matchers, starts_in, length)| Operation::Create {
                matchers,
                starts_in,
                length
            }),
        (
            any::<usize>(),
            prop::option::of(prop::collection::vec(arbitrary_matcher(), 1..3)),
            -5i64..10,
            1i64..20
        )
            .prop_map(|(target, matchers, starts_in, length)| Operation::Update {
                target,
                matchers,
                starts_in,
                length
            }),
        any::<usize>().prop_map(|target| Operation::Expire { target }),
        (0i64..8).prop_map(Operation::Wait),
    ]
}

proptest! {
    #[test]
    fn merge_is_commutative_associative_idempotent(
        a in arbitrary_version(),
        b in arbitrary_version(),
        c in arbitrary_version(),
    ) {
        prop_assert_eq!(a.merged(&b), b.merged(&a));
        prop_assert_eq!(a.merged(&b).merged(&c), a.merged(b.merged(&c)));
        prop_assert_eq!(a.merged(&a), &a);
        // An expiry, once written, survives any merge.
        let winner = a.merged(&b);
        if a.expired_when_written() || b.expired_when_written() {
            prop_assert!(winner.expired_when_written());
        }
    }

    #[test]
    fn merging_in_any_order_converges(
        versions in prop::collection::vec(arbitrary_version(), 1..6),
        rotation in 0usize..6,
    ) {
        let now = at(0);
        let valid: Vec<Silence> = versions
            .into_iter()
            .filter(|v| validate::validate(v, &SilenceLimits::default()).is_ok())
            .collect();
        let mut forward = store();
        for version in &valid {
            forward.merge(version.clone(), now).unwrap();
        }
        let mut other_order = valid.clone();
        other_order.reverse();
        if !other_order.is_empty() {
            let rotation = rotation % other_order.len();
            other_order.rotate_left(rotation);
        }
        let mut backward = store();
        for version in &other_order {
            backward.merge(version.clone(), now).unwrap();
            // Merging again changes nothing.
            prop_assert_eq!(backward.merge(version.clone(), now).unwrap(), None);
        }
        prop_assert_eq!(
            forward.iter().collect::<Vec<_>>(),
            backward.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn operations_keep_states_consistent_and_mutes_agrees_with_brute_force(
        operations in prop::collection::vec(arbitrary_operation(), 1..40),
        probes in prop::collection::vec(arbitrary_labels(), 1..6),
    ) {
        let mut silences = store();
        let mut now = at(100);
        let mut ids: Vec<String> = Vec::new();
        for (step, operation) in operations.into_iter().enumerate() {
            let draw = random(step as u128 + 1);
            match operation {
                Operation::Create { matchers, starts_in, length } => {
                    let starts_at = at(now.as_second() + starts_in);
                    let spec = SilenceSpec {
                        matchers,
                        starts_at,
                        ends_at: at(starts_at.as_second().max(now.as_second()) + length),
                        created_by: "p".to_string(),
                        comment: "c".to_string(),
                    };
                    if let Ok(change) = silences.create(spec.clone(), now, draw) {
                        let silence = silences.get(&change.id).unwrap();
                        let expected = if spec.starts_at > now {
                            SilenceState::Pending
                        } else {
                            SilenceState::Active
                        };
                        prop_assert_eq!(silence.state_at(now), expected);
                        prop_assert_eq!(silence.starts_at, spec.starts_at.max(now));
                        ids.push(change.id);
                    }
                }
                Operation::Update { target, matchers, starts_in, length } if !ids.is_empty() => {
                    let id = ids[target % ids.len()].clone();
                    let previous = silences.get(&id).unwrap().clone();
                    let starts_at = at(now.as_second() + starts_in);
                    let spec = SilenceSpec {
                        matchers: matchers.unwrap_or_else(|| previous.matchers.clone()),
                        starts_at,
                        ends_at: at(starts_at.as_second().max(now.as_second()) + length),
                        created_by: "p".to_string(),
                        comment: "d".to_string(),
                    };
                    let in_place = can_update(&previous, &spec, now);
                    if let Ok(change) = silences.update(&id, spec, now, draw) {
                        prop_assert_eq!(change.id == id, in_place);
                        if !in_place {
                            // The old one is expired now, whatever it was before.
                            prop_assert_eq!(
                                silences.get(&id).unwrap().state_at(now),
                                SilenceState::Expired
                            );
                            prop_assert_eq!(
                                change.persist.len(),
                                if previous.state_at(now) == SilenceState::Expired { 1 } else { 2 }
                            );
                            ids.push(change.id.clone());
                        }
                        prop_assert!(change.persist.iter().all(|s| silences.get(&s.id) == Some(s)));
                    }
                }
                Operation::Expire { target } if !ids.is_empty() => {
                    let id = ids[target % ids.len()].clone();
                    silences.expire(&id, now).unwrap();
                    prop_assert_eq!(silences.get(&id).unwrap().state_at(now), SilenceState::Expired);
                }
                Operation::Wait(seconds) => now = at(now.as_second() + seconds),
                _ => {}
            }
            for probe in &probes {
                let mut expected: Vec<String> = silences
                    .iter()
                    .filter(|s| s.state_at(now) == SilenceState::Active)
                    .filter(|s| s.matchers.iter().all(|m| m.matches(probe.value(m.name()))))
                    .map(|s| s.id.clone())
                    .collect();
                expected.sort();
                prop_assert_eq!(silences.mutes(probe, now), expected);
            }
            let total: usize = silences.iter().map(Silence::size_bytes).sum();
            prop_assert_eq!(silences.total_bytes(), total);
        }
    }

    #[test]
    fn codec_round_trips(versions in prop::collection::vec(arbitrary_version(), 0..5)) {
        for version in &versions {
            let bytes = encode_silence(version).unwrap();
            prop_assert_eq!(&decode_silence(&bytes).unwrap(), version);
        }
        let snapshot = encode_snapshot(&versions).unwrap();
        prop_assert_eq!(decode_snapshot(&snapshot).unwrap(), versions);
    }

    #[test]
    fn codec_never_panics_on_damaged_bytes(
        version in arbitrary_version(),
        flip in any::<usize>(),
        cut in any::<usize>(),
    ) {
        let mut bytes = encode_silence(&version).unwrap();
        let at_byte = flip % bytes.len();
        bytes[at_byte] ^= 0x5a;
        let _ = decode_silence(&bytes);
        bytes.truncate(cut % bytes.len());
        let _ = decode_silence(&bytes);
        let _ = decode_snapshot(&bytes);
    }
}

#[test]
fn restore_from_records_rebuilds_the_same_state() {
    let mut silences = store();
    let mut log: Vec<Vec<u8>> = Vec::new();
    let now = at(1_000);
    let first = silences
        .create(spec(&["a=1"], 1_000, 2_000), now, random(1))
        .unwrap();
    log.extend(first.persist.iter().map(|s| encode_silence(s).unwrap()));
    let second = silences
        .update(
            &first.id,
            spec(&["a=2"], 1_000, 3_000),
            at(1_100),
            random(2),
        )
        .unwrap();
    log.extend(second.persist.iter().map(|s| encode_silence(s).unwrap()));
    let expired = silences.expire(&second.id, at(1_200)).unwrap().unwrap();
    log.push(encode_silence(&expired).unwrap());

    let mut restored = store();
    for record in &log {
        restored.restore_record(record, at(1_300)).unwrap();
    }
    assert_eq!(
        restored.iter().collect::<Vec<_>>(),
        silences.iter().collect::<Vec<_>>()
    );
    assert!(matches!(
        restored.restore_record(b"garbage", at(1_300)),
        Err(RestoreError::Codec(_))
    ));
}
