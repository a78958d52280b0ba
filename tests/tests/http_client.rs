//! A tiny HTTP/1.1 client over `std::net::TcpStream`, for the phone page's tests: plain
//! requests, and a Server-Sent Events reader on its own thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;

use crate::harness::TIMEOUT;

/// `http://host:port/path…` split into the address and the path.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// link");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    (addr.to_owned(), format!("/{path}"))
}

/// One answer: status, headers (lowercase names) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Sends one request and reads its answer: by its length, its chunks, or to the end.
pub fn request(
    method: &str,
    addr: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<Answer> {
    let mut stream = connect(addr)?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut raw = Vec::new();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        raw.resize(length, 0);
        reader.read_exact(&mut raw)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = raw.len();
            raw.resize(start + size, 0);
            reader.read_exact(&mut raw[start..])?;
            line.clear();
            reader.read_line(&mut line)?; // the chunk's CRLF
        }
    } else {
        reader.read_to_end(&mut raw)?;
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    })
}

pub fn get(url: &str) -> Answer {
    let (addr, path) = split_url(url);
    request("GET", &addr, &path, None).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub fn post(url: &str, body: &Value) -> Answer {
    let (addr, path) = split_url(url);
    request("POST", &addr, &path, Some(body)).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// An open event stream: each `state` event's JSON arrives on `events`; the channel closes
/// when the server ends the stream. `status` is the answer's status.
pub struct EventStream {
    pub status: u16,
    pub events: Receiver<Value>,
}

pub fn open_events(url: &str) -> EventStream {
    let (addr, path) = split_url(url);
    let mut stream = connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // Chunk sizes and blank lines pass through; only `data:` lines matter.
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.trim() == "0" {
                return; // the last chunk: the server ended the stream
            }
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                let Ok(value) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                if tx.send(value).is_err() {
                    return;
                }
            }
        }
    });
    EventStream { status, events: rx }
}

impl EventStream {
    /// The next state for which `check` holds, within `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if check(&event["state"]) => return event["state"].clone(),
                Ok(_) => {}
                Err(e) => panic!("the page never showed {what}: {e}"),
            }
        }
    }
}
