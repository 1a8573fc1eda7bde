//! Every configuration under `examples/` passes `tocsin check config`, so none of them rots.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

fn example_configs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut configs = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let folder = entry.unwrap().path();
        for name in ["tocsin.yml", "prometheus.yml"] {
            let candidate = folder.join(name);
            if candidate.is_file() {
                configs.push(candidate);
            }
        }
    }
    configs.sort();
    configs
}

#[test]
fn every_example_config_is_valid() {
    let configs = example_configs();
    assert!(configs.len() >= 2, "examples not found: {configs:?}");
    let output = std::process::Command::new(common::TOCSIN)
        .args(["check", "config"])
        .args(&configs)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
