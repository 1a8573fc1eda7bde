//! The cluster simulation: its properties hold over a sweep of seeds, a seed reproduces its run
//! byte for byte, and each deliberate bug is found within a small budget of seeds.

use tocsin_simulations::cluster::{Bugs, Settings, run};

/// Shorter runs than the CLI's default, so that `cargo test` stays quick in debug builds.
fn quick() -> Settings {
    Settings {
        chaos: 8 * 60_000,
        healing: 5 * 60_000,
        ..Settings::default()
    }
}

#[test]
fn properties_hold_over_seeds() {
    for seed in 0..12 {
        let report = run(seed, &quick());
        assert!(
            report.notifications > 0,
            "seed {seed}: nothing was notified"
        );
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}",
            report.violations
        );
    }
}

#[test]
fn a_healthy_cluster_notifies() {
    let settings = Settings {
        faults: false,
        ..quick()
    };
    for seed in 0..4 {
        let report = run(seed, &settings);
        assert!(report.deliveries > 0, "seed {seed}");
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}",
            report.violations
        );
    }
}

/// The meta-test: the same seed gives the same trace (hash), with or without keeping the
/// readable lines; another seed gives another.
#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [3, 17, 40] {
        let first = run(seed, &quick());
        let second = run(seed, &quick());
        let traced = run(
            seed,
            &Settings {
                keep_trace: true,
                ..quick()
            },
        );
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!(
            first.trace_hash, traced.trace_hash,
            "seed {seed}: tracing changed the run"
        );
        assert_eq!(first.events, second.events, "seed {seed}");
        assert!(!traced.trace.is_empty());
    }
    assert_ne!(run(1, &quick()).trace_hash, run(2, &quick()).trace_hash);
}

/// Seeds tried until one violates `property`; panics past `budget`.
fn finds(bug: &str, property: &str, budget: u64) -> u64 {
    let mut bugs = Bugs::default();
    bugs.enable(bug).unwrap_or_else(|error| panic!("{error}"));
    let settings = Settings { bugs, ..quick() };
    for seed in 0..budget {
        let report = run(seed, &settings);
        if report.violations.iter().any(|v| v.property == property) {
            return seed;
        }
    }
    panic!("{bug}: no seed out of {budget} violated {property:?}");
}

#[test]
fn finds_a_node_that_skips_the_ownership_wait() {
    finds("skip-ownership-wait", "exactly once while healthy", 30);
}

#[test]
fn finds_silences_merged_by_arrival_order() {
    finds(
        "merge-silences-by-arrival",
        "no expired silence resurrects",
        30,
    );
}

#[test]
fn finds_a_forgotten_nflog_fsync() {
    finds("forget-nflog-fsync", "durable notification log", 30);
}
