//! Records the git revision, branch and compiler version for `--version`, `tocsin_build_info`
//! and `/api/v1/status/buildinfo`.

use std::process::Command;

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    let revision =
        command_output("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let branch = command_output("git", &["rev-parse", "--abbrev-ref", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    // The commit's date, not the wall clock, so that rebuilding the same commit gives the same binary.
    let build_date = command_output("git", &["show", "-s", "--format=%cI", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = command_output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TOCSIN_REVISION={revision}");
    println!("cargo:rustc-env=TOCSIN_BRANCH={branch}");
    println!("cargo:rustc-env=TOCSIN_BUILD_DATE={build_date}");
    println!("cargo:rustc-env=TOCSIN_RUSTC_VERSION={rustc_version}");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
