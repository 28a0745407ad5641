//! A lean keep-alive HTTP/1.1 client for the load generator: one TCP connection per
//! server, TCP_NODELAY, a read timeout set once, each request sent in one write, the
//! answer read through a buffer the connection keeps. A general client (ureq) spends
//! about 50 us of CPU per request here, much of it setting socket options per request;
//! that is the load generator's cost, and it shares the 2 cores with the servers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a request may wait for its answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// One server's keep-alive connection, opened on first use and again after an error.
pub struct Http1 {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read and not yet used (the start of the next answer never arrives early
    /// here, as one request is in flight at a time, but nothing read is thrown away).
    buf: Vec<u8>,
    req: Vec<u8>,
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Http1 {
    pub fn new(addr: SocketAddr) -> Http1 {
        Http1 {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
            req: Vec::with_capacity(512),
        }
    }

    /// Sends one request and reads its answer. Any error closes the connection (the
    /// next request opens a new one).
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> io::Result<Answer> {
        let result = self.exchange(method, target, body);
        if result.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        result
    }

    /// POSTs `body` to `target`; an error unless the status is 2xx.
    pub fn post_ok(&mut self, target: &str, body: &[u8]) -> io::Result<Answer> {
        let a = self.request("POST", target, body)?;
        if !(200..300).contains(&a.status) {
            return Err(io::Error::other(format!(
                "POST {target}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )));
        }
        Ok(a)
    }

    fn exchange(&mut self, method: &str, target: &str, body: &[u8]) -> io::Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.stream = Some(s);
        }
        self.req.clear();
        write!(
            self.req,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.req.extend_from_slice(body);
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        stream.write_all(&self.req)?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::other("answer head too long"));
            }
            fill(stream, &mut self.buf)?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| io::Error::other("answer head is not UTF-8"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let mut length = 0usize;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("bad Content-Length {value:?}")))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(io::Error::other("chunked answers are not supported"));
            }
        }
        while self.buf.len() < head_end + length {
            fill(stream, &mut self.buf)?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok(Answer { status, body })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads what is there (at least one byte) onto the end of `buf`.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that reads one request head at a time and sends `answers` in turn.
    fn serve(answers: Vec<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for a in answers {
                let mut got = Vec::new();
                while find(&got, b"\r\n\r\n").is_none() {
                    let mut b = [0u8; 256];
                    let n = s.read(&mut b).unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&b[..n]);
                }
                s.write_all(a).unwrap();
            }
        });
        addr
    }

    #[test]
    fn reads_answers_in_turn_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ]);
        let mut c = Http1::new(addr);
        let a = c.post_ok("/znodes/a", b"x").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (201, &b"hello"[..]));
        let b = c.request("GET", "/znodes/b", b"").unwrap();
        assert_eq!((b.status, b.body.len()), (404, 0));
    }

    #[test]
    fn a_non_2xx_answer_to_a_post_is_an_error() {
        let addr = serve(vec![
            b"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}",
        ]);
        let err = Http1::new(addr).post_ok("/znodes/a", b"").unwrap_err();
        assert!(err.to_string().contains("409"), "{err}");
    }
}
