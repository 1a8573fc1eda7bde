//! A small blocking HTTP/1.1 client with keep-alive, shared by the benches that drive real
//! servers (`#[path]`-included: each bench is its own crate).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Conn {
    address: String,
    /// Bound on each read and write of the socket.
    io_timeout: Duration,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn open(address: &str, io_timeout: Duration) -> Result<Conn, String> {
        let mut conn = Conn {
            address: address.to_string(),
            io_timeout,
            reader: None,
        };
        conn.connect()?;
        Ok(conn)
    }

    pub fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(&self.address)
            .map_err(|e| format!("connect {}: {e}", self.address))?;
        stream
            .set_read_timeout(Some(self.io_timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.io_timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("socket options: {e}"))?;
        self.reader = Some(BufReader::with_capacity(64 * 1024, stream));
        Ok(())
    }

    /// Sends one request; on a connection the server has closed, reconnects and retries once.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        match self.try_request(method, path, body) {
            Ok(response) => Ok(response),
            Err(_) => {
                self.connect()?;
                self.try_request(method, path, body)
            }
        }
    }

    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        self.try_request_with(method, path, &[("Content-Type", "application/json")], body)
    }

    /// Like [`Conn::request`], with `headers` in place of the JSON `Content-Type` (for
    /// bodies that are not JSON, such as remote write's).
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        match self.try_request_with(method, path, headers, body) {
            Ok(response) => Ok(response),
            Err(_) => {
                self.connect()?;
                self.try_request_with(method, path, headers, body)
            }
        }
    }

    /// One request; `headers` are sent with a body (any method but GET), with its
    /// `Content-Length`.
    pub fn try_request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let reader = self.reader.as_mut().ok_or("not connected")?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: tocsin-bench\r\n",
            self.address
        );
        if method != "GET" {
            for (name, value) in headers {
                let _ = write!(head, "{name}: {value}\r\n");
            }
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        reader
            .get_mut()
            .write_all(&request)
            .map_err(|e| format!("write: {e}"))?;

        let mut line = String::new();
        read_line(reader, &mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut content_length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            read_line(reader, &mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                read_line(reader, &mut line)?;
                let size_text = line.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        read_line(reader, &mut line)?;
                        if line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                reader
                    .read_exact(&mut body[start..])
                    .map_err(|e| format!("read chunk: {e}"))?;
                read_line(reader, &mut line)?;
            }
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            // These never carry a body, whatever the headers say (RFC 9110 §6.4.1).
        } else if let Some(length) = content_length {
            body.resize(length, 0);
            reader
                .read_exact(&mut body)
                .map_err(|e| format!("read body: {e}"))?;
        } else {
            reader
                .read_to_end(&mut body)
                .map_err(|e| format!("read body: {e}"))?;
            close = true;
        }
        if close {
            self.connect()?;
        }
        Ok((status, body))
    }

    /// A request that must answer 200.
    pub fn expect_ok(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let (status, answer) = self.request(method, path, body)?;
        if status != 200 {
            return Err(format!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            ));
        }
        Ok(answer)
    }
}

pub fn read_line(reader: &mut BufReader<TcpStream>, line: &mut String) -> Result<(), String> {
    line.clear();
    match reader.read_line(line) {
        Ok(0) => Err("connection closed".to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Percent-encodes `text` for a URL query or form value: everything but unreserved ASCII.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
