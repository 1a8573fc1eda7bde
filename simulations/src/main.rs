//! `tocsin-simulate`: sweeps seeds through the simulations and reports any property violation
//! with the seed that reproduces it.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use tocsin_simulations::single_node::{self, Settings};

const USAGE: &str = "usage: tocsin-simulate [--seeds N] [--first-seed S] [--failure-percent P]

Runs the single-node alerting simulation for N seeds (default 50) starting at S (default 1),
with P percent of deliveries failing (default: every seed runs once healthy (0) and once with
20). Exits 1 and prints the seed of any run that violates a property.";

fn main() -> ExitCode {
    let mut seeds = 50u64;
    let mut first_seed = 1u64;
    let mut failure_percents = vec![0u64, 20];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        let parsed = match arg.as_str() {
            "--seeds" => value("--seeds").map(|v| seeds = v),
            "--first-seed" => value("--first-seed").map(|v| first_seed = v),
            "--failure-percent" => {
                value("--failure-percent").map(|v| failure_percents = vec![v.min(100)])
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(message) = parsed {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let mut runs = 0;
    let mut failed_runs = 0;
    let mut delivered = 0;
    for seed in first_seed..first_seed.saturating_add(seeds) {
        for &failure_percent in &failure_percents {
            let settings = Settings {
                failure_percent,
                ..Settings::default()
            };
            let report = single_node::run(seed, &settings);
            runs += 1;
            delivered += report.delivered;
            if !report.violations.is_empty() {
                failed_runs += 1;
                println!(
                    "seed {seed} (failure {failure_percent}%): {} violations",
                    report.violations.len()
                );
                for violation in report.violations.iter().take(5) {
                    println!(
                        "  {} at {}: {}",
                        violation.property, violation.at, violation.detail
                    );
                }
                println!(
                    "  reproduce: tocsin-simulate --first-seed {seed} --seeds 1 --failure-percent {failure_percent}"
                );
            }
        }
    }
    println!(
        "simulation: {} passed, {failed_runs} failed ({delivered} notifications delivered)",
        runs - failed_runs
    );
    if failed_runs == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
