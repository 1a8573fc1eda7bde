//! A real SMTP server for the tests: the receivers crate's receivers/tests/smtp_server.py on
//! Debian's python3-aiosmtpd, recording each message as a JSON line.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The system Python, where Debian's python3-aiosmtpd is installed (a pyenv or venv `python3`
/// earlier on PATH would hide it); `TOCSIN_TEST_PYTHON` overrides.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("TOCSIN_TEST_PYTHON") {
        return python.into();
    }
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        system
    } else {
        PathBuf::from("python3")
    }
}

/// The running server; stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    record: PathBuf,
}

impl SmtpServer {
    /// Starts the server on a free port, recording into `dir/messages.jsonl`.
    pub fn start(dir: &Path) -> SmtpServer {
        let record = dir.join("messages.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("receivers/tests/smtp_server.py");
        // Its stdin stays open while the test runs: the server stops when it closes.
        let mut child = Command::new(python())
            .arg(script)
            .arg("--record")
            .arg(&record)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server did not start in time");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server said {line:?}; is python3-aiosmtpd installed?"));
        SmtpServer {
            child,
            port,
            record,
        }
    }

    /// The messages it accepted so far (not those it refused), in order.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .filter(|record| record.get("refused").is_none())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
