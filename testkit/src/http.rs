//! A tiny blocking HTTP/1.1 client over `TcpStream` (one request per connection, to
//! 127.0.0.1), enough to test a server byte for byte, including oversize and chunked bodies.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("status {}: body is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
}

/// How the request body goes on the wire.
pub enum Body<'a> {
    None,
    /// With `Content-Length`.
    Sized(&'a [u8]),
    /// With `Transfer-Encoding: chunked`, in chunks of at most 64 KiB.
    Chunked(&'a [u8]),
}

pub fn get(port: u16, path: &str, key: Option<&str>) -> Response {
    send(port, "GET", path, &auth(key), Body::None).expect("GET")
}

pub fn post_json(port: u16, path: &str, key: Option<&str>, body: &[u8]) -> Response {
    let mut headers = auth(key);
    headers.push(("Content-Type".into(), "application/json".into()));
    send(port, "POST", path, &headers, Body::Sized(body)).expect("POST")
}

pub fn auth(key: Option<&str>) -> Vec<(String, String)> {
    key.map(|k| vec![("Authorization".to_owned(), format!("Bearer {k}"))]).unwrap_or_default()
}

pub fn send(port: u16, method: &str, path: &str, headers: &[(String, String)], body: Body<'_>) -> io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Body::None => {}
        Body::Sized(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;

    // A server may answer (e.g. 413) and close before reading the whole body: a failed write
    // is then expected, and the response is still there to read.
    let _ = match body {
        Body::None => Ok(()),
        Body::Sized(b) => stream.write_all(b),
        Body::Chunked(b) => write_chunked(&mut stream, b),
    };

    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the server's answer (unread request body) still leaves the answer.
            Err(e) if !raw.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    parse(&raw)
}

fn write_chunked(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    for chunk in body.chunks(64 * 1024) {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        stream.write_all(chunk)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let bad = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    let rest = &raw[end + 4..];
    let chunked =
        headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(Response { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or_else(bad)?);
        data = data.get(size + 2..).ok_or_else(bad)?;
    }
}
