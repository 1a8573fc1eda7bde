//! The single-node simulation holds its properties over a sweep of seeds, and is deterministic.

use tocsin_simulations::single_node::{Settings, run};

#[test]
fn properties_hold_for_healthy_and_failing_deliveries() {
    for seed in 1..=12 {
        for failure_percent in [0, 25] {
            let report = run(
                seed,
                &Settings {
                    failure_percent,
                    ..Settings::default()
                },
            );
            assert!(report.delivered > 0, "seed {seed}: nothing was delivered");
            assert!(
                report.violations.is_empty(),
                "seed {seed}, {failure_percent}% failures: {:#?}",
                report.violations
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let settings = Settings {
        failure_percent: 10,
        ..Settings::default()
    };
    let first = run(42, &settings);
    let second = run(42, &settings);
    assert_eq!(
        (first.delivered, first.failed, first.silences_created),
        (second.delivered, second.failed, second.silences_created)
    );
    let other = run(43, &settings);
    assert_ne!(
        (first.delivered, first.failed),
        (other.delivered, other.failed),
        "seeds must matter"
    );
}
