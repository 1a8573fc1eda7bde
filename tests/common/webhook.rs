//! A webhook receiver for the tests: a minimal HTTP/1.1 server on plain threads that records
//! every request, so a test needs no async runtime.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// The status it was answered with.
    pub status: u16,
    pub body: String,
    /// The body as JSON; `Null` when it is not JSON.
    pub json: Value,
}

impl Received {
    /// The notification's `groupKey`.
    pub fn group_key(&self) -> String {
        self.json["groupKey"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The HTTP port of the node that sent it, from the `externalURL` it carries
    /// (`http://<host>:<port>/` by default).
    pub fn sender_port(&self) -> Option<u16> {
        let url = self.json["externalURL"].as_str()?;
        url.trim_end_matches('/').rsplit(':').next()?.parse().ok()
    }
}

/// Records every request and answers 500 to the first `fail_first` of them, 200 to the rest,
/// closing each connection. The threads end with the test process.
pub struct HookServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HookServer {
    /// On a free port, answering 200 to everything.
    pub fn start() -> HookServer {
        HookServer::failing_first(0)
    }

    /// On a free port, answering 500 to the first `fail_first` requests.
    pub fn failing_first(fail_first: usize) -> HookServer {
        HookServer::serve(TcpListener::bind("127.0.0.1:0").unwrap(), fail_first)
    }

    /// On `port` (a configuration names it), answering 200 to everything.
    pub fn on_port(port: u16) -> HookServer {
        HookServer::serve(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0)
    }

    fn serve(listener: TcpListener, fail_first: usize) -> HookServer {
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let record = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let record = Arc::clone(&record);
                let answered = Arc::clone(&answered);
                std::thread::spawn(move || {
                    let Some((path, body)) = read_request(&stream) else {
                        return;
                    };
                    let failing = answered.fetch_add(1, Ordering::SeqCst) < fail_first;
                    let (status, reason) = if failing {
                        (500, "Internal Server Error")
                    } else {
                        (200, "OK")
                    };
                    record.lock().unwrap().push(Received {
                        at: Instant::now(),
                        path,
                        status,
                        json: serde_json::from_str(&body).unwrap_or(Value::Null),
                        body,
                    });
                    respond(stream, &format!("{status} {reason}"), "text/plain", "");
                });
            }
        });
        HookServer { port, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Forgets what it received so far.
    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }

    /// The JSON bodies of the requests answered with 200.
    pub fn delivered(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|request| request.status == 200)
            .map(|request| request.json)
            .collect()
    }

    /// How many notifications each group key got.
    pub fn per_group(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for received in self.received() {
            *counts.entry(received.group_key()).or_insert(0) += 1;
        }
        counts
    }
}

/// Reads one request's head and its `Content-Length` body (both bounded); returns the path
/// and the body, or `None` when the connection ends first.
pub fn read_request(stream: &TcpStream) -> Option<(String, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line),
        }
        assert!(head.len() < 64 * 1024, "request head too long");
    }
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    assert!(length < 16 * 1024 * 1024, "request body too long");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, String::from_utf8_lossy(&body).into_owned()))
}

/// Answers with `status` (e.g. `200 OK`) and `body`, and closes.
pub fn respond(mut stream: TcpStream, status: &str, content_type: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
