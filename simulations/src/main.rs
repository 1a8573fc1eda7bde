//! `tocsin-simulate`: sweeps seeds through the simulations and reports any property violation
//! with the command that reproduces it.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tocsin_simulations::cluster::{self, Bugs};
use tocsin_simulations::single_node;

const USAGE: &str = "usage: tocsin-simulate [OPTIONS]

Runs Tocsin's deterministic simulations: the production alerting and replication cores in
virtual time, with one u64 seed driving every random choice. Exits 1 if any run violates a
property, printing the command that replays it.

Seeds:
  --seeds N            N seeds, from --first-seed (default: 50)
  --seeds A..B         seeds A to B-1
  --first-seed S       first seed for --seeds N (default 1)
  --seed S             one seed (shorthand for --seeds S..S+1)

Modes:
  --mode M             single | cluster | both (default both: each seed runs the single-node
                       simulation, and the cluster simulation)

Single-node simulation:
  --failure-percent P  percent of deliveries that fail (default: each seed runs with 0 and 20)

Cluster simulation:
  --nodes N            nodes at the start (default: 3 to 5, chosen by the seed)
  --chaos-minutes M    virtual minutes of the chaos phase (default 15)
  --healing-minutes M  virtual minutes of the healing phase (default 6)
  --no-faults          no faults at all (a healthy cluster)
  --peer-timeout-ms T  the cluster's peer timeout (default 5000)
  --bug NAME           turn on a deliberate bug (repeatable): skip-ownership-wait,
                       merge-silences-by-arrival, forget-nflog-fsync
  --trace              print the readable event trace of each run (ending at its first
                       violation); use with --seed
  --check-determinism K
                       run the first K cluster seeds a second time and compare trace hashes

Execution:
  --threads T          worker threads (default: all cores); each run is single-threaded and
                       deterministic whatever T is
  -h, --help           this text

Examples:
  tocsin-simulate --seeds 100                       # CI's historical sweep
  tocsin-simulate --mode cluster --seeds 0..10000   # a long sweep (use --release)
  tocsin-simulate --mode cluster --seed 42 --trace  # replay and read one seed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    Cluster,
    Both,
}

struct Options {
    seeds: std::ops::Range<u64>,
    mode: Mode,
    failure_percents: Vec<u64>,
    cluster: cluster::Settings,
    threads: usize,
    check_determinism: u64,
}

fn parse() -> Result<Option<Options>, String> {
    let mut count: Option<u64> = None;
    let mut range: Option<std::ops::Range<u64>> = None;
    let mut first_seed = 1u64;
    let mut options = Options {
        seeds: 0..0,
        mode: Mode::Both,
        failure_percents: vec![0, 20],
        cluster: cluster::Settings::default(),
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        check_determinism: 0,
    };
    let mut bugs = Bugs::default();
    let mut args = std::env::args().skip(1);
    let number = |name: &str, value: Option<String>| -> Result<u64, String> {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(format!("{name} needs a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seeds" => {
                let value = args.next().ok_or("--seeds needs N or A..B")?;
                if let Some((a, b)) = value.split_once("..") {
                    let a = a.parse::<u64>().map_err(|_| "--seeds A..B needs numbers")?;
                    let b = b.parse::<u64>().map_err(|_| "--seeds A..B needs numbers")?;
                    range = Some(a..b.max(a));
                } else {
                    count = Some(value.parse().map_err(|_| "--seeds needs N or A..B")?);
                }
            }
            "--first-seed" => first_seed = number("--first-seed", args.next())?,
            "--seed" => {
                let seed = number("--seed", args.next())?;
                range = Some(seed..seed.saturating_add(1));
            }
            "--mode" => {
                options.mode = match args.next().as_deref() {
                    Some("single") => Mode::Single,
                    Some("cluster") => Mode::Cluster,
                    Some("both") => Mode::Both,
                    _ => return Err("--mode needs single, cluster or both".into()),
                }
            }
            "--failure-percent" => {
                options.failure_percents = vec![number("--failure-percent", args.next())?.min(100)]
            }
            "--nodes" => {
                options.cluster.nodes = Some(number("--nodes", args.next())?.clamp(1, 16) as usize)
            }
            "--chaos-minutes" => {
                options.cluster.chaos = number("--chaos-minutes", args.next())? * 60_000
            }
            "--healing-minutes" => {
                options.cluster.healing = number("--healing-minutes", args.next())? * 60_000
            }
            "--no-faults" => options.cluster.faults = false,
            "--peer-timeout-ms" => {
                options.cluster.peer_timeout = number("--peer-timeout-ms", args.next())?.max(100)
            }
            "--bug" => bugs.enable(&args.next().ok_or("--bug needs a name")?)?,
            "--trace" => options.cluster.keep_trace = true,
            "--check-determinism" => {
                options.check_determinism = number("--check-determinism", args.next())?
            }
            "--threads" => options.threads = number("--threads", args.next())?.max(1) as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.cluster.bugs = bugs;
    options.seeds = match (range, count) {
        (Some(range), _) => range,
        (None, Some(count)) => first_seed..first_seed.saturating_add(count),
        (None, None) => first_seed..first_seed.saturating_add(50),
    };
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    if options.mode != Mode::Cluster {
        failed |= !run_single(&options);
    }
    if options.mode != Mode::Single {
        failed |= !run_cluster(&options);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_single(options: &Options) -> bool {
    let started = Instant::now();
    let mut runs = 0;
    let mut failed_runs = 0;
    let mut delivered = 0;
    for seed in options.seeds.clone() {
        for &failure_percent in &options.failure_percents {
            let settings = single_node::Settings {
                failure_percent,
                ..single_node::Settings::default()
            };
            let report = single_node::run(seed, &settings);
            runs += 1;
            delivered += report.delivered;
            if !report.violations.is_empty() {
                failed_runs += 1;
                println!(
                    "single-node seed {seed} (failure {failure_percent}%): {} violations",
                    report.violations.len()
                );
                for violation in report.violations.iter().take(5) {
                    println!(
                        "  {} at {}: {}",
                        violation.property, violation.at, violation.detail
                    );
                }
                println!(
                    "  reproduce: cargo run -p tocsin-simulations -- --mode single --first-seed {seed} --seeds 1 --failure-percent {failure_percent}"
                );
            }
        }
    }
    println!(
        "single-node simulation: {} passed, {failed_runs} failed ({delivered} notifications delivered) in {:.1} s",
        runs - failed_runs,
        started.elapsed().as_secs_f64()
    );
    failed_runs == 0
}

/// The flags that reproduce a cluster run, for the replay command.
fn replay_flags(settings: &cluster::Settings) -> String {
    let defaults = cluster::Settings::default();
    let mut flags = String::new();
    if let Some(nodes) = settings.nodes {
        flags.push_str(&format!(" --nodes {nodes}"));
    }
    if settings.chaos != defaults.chaos {
        flags.push_str(&format!(" --chaos-minutes {}", settings.chaos / 60_000));
    }
    if settings.healing != defaults.healing {
        flags.push_str(&format!(" --healing-minutes {}", settings.healing / 60_000));
    }
    if !settings.faults {
        flags.push_str(" --no-faults");
    }
    if settings.peer_timeout != defaults.peer_timeout {
        flags.push_str(&format!(" --peer-timeout-ms {}", settings.peer_timeout));
    }
    let bugs = settings.bugs;
    for (on, name) in [
        (bugs.skip_ownership_wait, "skip-ownership-wait"),
        (bugs.merge_silences_by_arrival, "merge-silences-by-arrival"),
        (bugs.forget_nflog_fsync, "forget-nflog-fsync"),
    ] {
        if on {
            flags.push_str(&format!(" --bug {name}"));
        }
    }
    flags
}

fn run_cluster(options: &Options) -> bool {
    let started = Instant::now();
    let seeds: Vec<u64> = options.seeds.clone().collect();
    let next = Arc::new(AtomicU64::new(0));
    let reports: Arc<Mutex<Vec<cluster::Report>>> = Arc::new(Mutex::new(Vec::new()));
    let threads = options.threads.min(seeds.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let next = Arc::clone(&next);
            let reports = Arc::clone(&reports);
            let seeds = &seeds;
            let settings = &options.cluster;
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&seed) = seeds.get(index) else {
                        return;
                    };
                    let report = cluster::run(seed, settings);
                    if settings.keep_trace {
                        let mut out = String::new();
                        for line in &report.trace {
                            out.push_str(line);
                            out.push('\n');
                        }
                        print!("{out}");
                    }
                    reports
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut reports = std::mem::take(
        &mut *reports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    reports.sort_by_key(|report| report.seed);
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let flags = replay_flags(&options.cluster);
    let mut failed = 0;
    let mut simulated_ms = 0u64;
    let (mut events, mut notifications, mut deliveries, mut faults) = (0u64, 0u64, 0u64, 0u64);
    for report in &reports {
        simulated_ms += report.simulated_ms;
        events += report.events;
        notifications += report.notifications;
        deliveries += report.deliveries;
        faults += report.faults;
        if report.violations.is_empty() {
            continue;
        }
        failed += 1;
        println!(
            "cluster seed {} ({} nodes): {} violations",
            report.seed,
            report.nodes,
            report.violations.len()
        );
        for violation in report.violations.iter().take(5) {
            println!(
                "  {} at {}: {}",
                violation.property,
                cluster::trace::clock(violation.at),
                violation.detail
            );
        }
        println!(
            "  reproduce: cargo run --release -p tocsin-simulations -- --mode cluster --seed {}{flags} --trace",
            report.seed
        );
    }
    let mut deterministic = true;
    if options.check_determinism > 0 {
        for report in reports.iter().take(options.check_determinism as usize) {
            let again = cluster::run(report.seed, &options.cluster);
            if again.trace_hash != report.trace_hash {
                deterministic = false;
                println!(
                    "cluster seed {}: NOT DETERMINISTIC (trace hash {:016x} then {:016x})",
                    report.seed, report.trace_hash, again.trace_hash
                );
            }
        }
        println!(
            "determinism: {} seeds re-run, {}",
            options.check_determinism.min(reports.len() as u64),
            if deterministic {
                "identical traces"
            } else {
                "TRACES DIFFER"
            }
        );
    }
    let simulated_s = simulated_ms as f64 / 1000.0;
    println!(
        "cluster simulation: {} passed, {failed} failed; {} threads, {:.1} s wall; \
         {:.0} simulated s per wall s; {:.0} seeds per minute; {events} events, {faults} faults, \
         {notifications} notifications, {deliveries} deliveries",
        reports.len() - failed,
        threads,
        elapsed,
        simulated_s / elapsed,
        reports.len() as f64 * 60.0 / elapsed,
    );
    failed == 0 && deterministic
}
