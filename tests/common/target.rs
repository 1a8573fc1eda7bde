//! Scrape targets served by the tests themselves.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A free address on 127.0.0.1 (bound, then released).
pub fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Serves `/metrics` (any path, in fact) on a free port from plain threads, one per connection,
/// so a test needs no async runtime: `body(n)` is the text exposition of the n-th scrape,
/// counting from 1. Returns the address.
pub fn serve_metrics(body: impl Fn(u64) -> String + Send + Sync + 'static) -> String {
    serve_exposition("text/plain; version=0.0.4", body)
}

/// [`serve_metrics`] with another `Content-Type`, e.g. OpenMetrics'.
pub fn serve_exposition(
    content_type: &'static str,
    body: impl Fn(u64) -> String + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let scrapes = Arc::new(AtomicU64::new(0));
    let body = Arc::new(body);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let scrapes = Arc::clone(&scrapes);
            let body = Arc::clone(&body);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                // The request head; the body (there is none for GET) is not read.
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let text = body(scrapes.fetch_add(1, Ordering::SeqCst) + 1);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    address
}

/// Serves `app` on a free port from the test's tokio runtime. Returns the address.
pub async fn serve_router(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}
