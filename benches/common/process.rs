//! Real server processes for the benches (`#[path]`-included): started on a free 127.0.0.1
//! port with a temporary directory, waited for on `/-/ready`, measured through `/proc`, and
//! killed when dropped (also on panic).
#![allow(dead_code)]

use super::http::Conn;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CPU time (user + system) process `pid` has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc stat: {e}"))?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    match (ticks(14), ticks(15)) {
        // Linux reports these in USER_HZ, which is 100 on every mainstream platform.
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => Err("cannot parse /proc stat".to_string()),
    }
}

/// A field of /proc/PID/status given in kB (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resident set size of process `pid` now.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident set size of process `pid` so far.
pub fn peak_rss_bytes(pid: u32) -> Result<u64, String> {
    status_bytes(pid, "VmHWM")
}

/// The 1, 5 and 15 minute load averages, for progress lines: other load on the machine moves
/// every figure.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Prometheus: `$PROMETHEUS_BIN`, else Debian's 2.42 (`apt-get install prometheus`), else
/// `/usr/local/bin/prometheus`.
pub fn prometheus_binary() -> Option<PathBuf> {
    reference_binary(
        "PROMETHEUS_BIN",
        &["/usr/bin/prometheus", "/usr/local/bin/prometheus"],
    )
}

/// Alertmanager: `$ALERTMANAGER_BIN`, else Debian's 0.25 (`apt-get install
/// prometheus-alertmanager`), else `/usr/local/bin/alertmanager`.
pub fn alertmanager_binary() -> Option<PathBuf> {
    reference_binary(
        "ALERTMANAGER_BIN",
        &[
            "/usr/bin/prometheus-alertmanager",
            "/usr/local/bin/alertmanager",
        ],
    )
}

/// The reference system's binary: `$env_var` if set, else the first of `candidates` that
/// exists.
fn reference_binary(env_var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env_var) {
        return Some(PathBuf::from(path));
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// Copies the files of `from` into `to` (created), recursively.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", from.display()))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| format!("stat: {e}"))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("copy to {}: {e}", target.display()))?;
        }
    }
    Ok(())
}

pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    Ok(port)
}

/// The first line `binary --version` prints, and how long ago the binary was built (a stale
/// binary would measure old code).
pub fn version(binary: &Path) -> String {
    match Command::new(binary).arg("--version").output() {
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let first = text.lines().next().unwrap_or("").trim().to_string();
            let age = std::fs::metadata(binary)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .map(|age| format!(", built {}s ago", age.as_secs()))
                .unwrap_or_default();
            format!("{} ({first}{age})", binary.display())
        }
        Err(error) => format!("{} (cannot run: {error})", binary.display()),
    }
}

/// Starts an alerting system with `alertmanager_yml` on a free port with fresh storage:
/// Tocsin with the document inline under `alertmanager:` in a minimal prometheus.yml, or
/// Alertmanager with `--cluster.listen-address=` so that it does not cluster.
pub fn start_alerting(
    binary: &Path,
    tocsin: bool,
    alertmanager_yml: &str,
    ready_timeout: Duration,
) -> Result<Server, String> {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let storage = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port()?);
    let config = dir.path().join("config.yml");
    let mut command = Command::new(binary);
    if tocsin {
        let mut text = String::from("global:\n  evaluation_interval: 1m\nalertmanager:\n");
        for line in alertmanager_yml.lines() {
            let _ = writeln!(text, "  {line}");
        }
        std::fs::write(&config, text).map_err(|e| format!("write config: {e}"))?;
        command
            .arg("--config.file")
            .arg(&config)
            .arg("--storage.path")
            .arg(&storage)
            .args(["--web.listen-address", &listen, "--log.level", "warn"]);
    } else {
        std::fs::write(&config, alertmanager_yml).map_err(|e| format!("write config: {e}"))?;
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address={listen}"))
            .args(["--cluster.listen-address=", "--log.level=warn"]);
    }
    Server::spawn(command, listen, dir, ready_timeout)
        .map_err(|e| format!("{}: {e}", binary.display()))
}

/// A running server; killed (and its temp directory removed) when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    log_path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Spawns `command` (already given its arguments, listening on `address`) with its output
    /// in `dir/server.log`, and waits until `/-/ready` answers 200.
    pub fn spawn(
        mut command: Command,
        address: String,
        dir: tempfile::TempDir,
        ready_timeout: Duration,
    ) -> Result<Server, String> {
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let mut server = Server {
            child,
            address,
            log_path,
            dir,
        };
        server.wait_ready(ready_timeout)?;
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log_tail()));
            }
            if let Ok(mut conn) = Conn::open(&self.address, Duration::from_secs(5))
                && let Ok((200, _)) = conn.request("GET", "/-/ready", b"")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("not ready after {timeout:?}:\n{}", self.log_tail()))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        cpu_time(self.child.id())
    }

    /// The server's resident set size now.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        rss_bytes(self.child.id())
    }

    pub fn conn(&self, io_timeout: Duration) -> Result<Conn, String> {
        Conn::open(&self.address, io_timeout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
