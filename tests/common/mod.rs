//! Starts real `tocsin` processes on 127.0.0.1 for end-to-end tests.
// Test support: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used)]

pub mod prometheus;
pub mod scrape;
pub mod smtp;
pub mod target;
pub mod webhook;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOCSIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// A running node; killed when dropped.
pub struct RunningNode {
    child: Child,
    pub address: String,
    pub log: Arc<Mutex<String>>,
    pub storage: PathBuf,
}

impl RunningNode {
    /// Starts `tocsin` with `args` plus a fresh listen address (port 0) and, unless `args` name
    /// one, a storage path under `dir`. Waits until it logs that it is ready.
    pub fn start(dir: &Path, args: &[&str]) -> RunningNode {
        Self::try_start(dir, args)
            .unwrap_or_else(|log| panic!("tocsin did not become ready:\n{log}"))
    }

    /// Like `start`, but returns the log if the process exits or never gets ready.
    pub fn try_start(dir: &Path, args: &[&str]) -> Result<RunningNode, String> {
        let storage = dir.join("data");
        let mut command = Command::new(TOCSIN);
        command.args(["--web.listen-address", "127.0.0.1:0"]);
        if !args.iter().any(|arg| arg.starts_with("--storage.path")) {
            command.arg("--storage.path").arg(&storage);
        }
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tocsin");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Tocsin is ready")
                    && let Some(address) = field(&line, "address")
                {
                    let _ = address_sender.send(address);
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(address) = address_receiver.recv_timeout(Duration::from_millis(50)) {
                return Ok(RunningNode {
                    child,
                    address,
                    log,
                    storage,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(log.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(log.lock().unwrap().clone());
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once `done` holds for it, waiting up to 10 s: stderr reaches the log through a
    /// reader thread, so a line written before an HTTP answer may arrive after it.
    pub fn log_when(&self, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=value` (or `key="value"`) in a logfmt line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = rest.split(' ').next()?;
    Some(value.trim_matches('"').to_string())
}

pub fn get(url: &str) -> (u16, String) {
    request("GET", url)
}

pub fn post(url: &str) -> (u16, String) {
    request("POST", url)
}

/// A tiny HTTP/1.1 client over a real socket: enough for status endpoints, and keeps the tests
/// free of an async runtime.
pub fn request(method: &str, url: &str) -> (u16, String) {
    request_with_body(method, url, "")
}

/// POSTs a JSON body; returns the status and body.
pub fn post_json(url: &str, body: &str) -> (u16, String) {
    request_with_body("POST", url, body)
}

fn request_with_body(method: &str, url: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

/// A chunked HTTP/1.1 body's data.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Waits up to `limit` for `done`, checking every 20 ms; returns whether it happened.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
