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

pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    Ok(port)
}

/// The first line `binary --version` prints.
pub fn version(binary: &Path) -> String {
    match Command::new(binary).arg("--version").output() {
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let first = text.lines().next().unwrap_or("").trim().to_string();
            format!("{} ({first})", binary.display())
        }
        Err(error) => format!("{} (cannot run: {error})", binary.display()),
    }
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
            std::thread::sleep(Duration::from_millis(50));
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
