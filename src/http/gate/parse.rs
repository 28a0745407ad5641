//! Reading an HTTP/1.1 request head and body from bytes as they arrive, under limits
//! (pure: no IO). [`scan_head`] finds a head's end while checking line and head sizes;
//! [`parse_head`] turns it into a [`Head`]; [`check_body`] refuses a declared length over
//! the cap before any of the body is read; [`Chunked`] decodes a chunked body
//! incrementally, stopping at the cap.

use std::str::FromStr;

use tiny_http::{HTTPVersion, Header, Method};

use crate::http::api::ApiError;

/// Longest request line or header line, line end included.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Largest request head: the request line and every header line.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines in one head (trailers of a chunked body count too).
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line of a chunked body (extensions included).
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// How far the head in `rbuf` has been scanned for line ends.
#[derive(Default)]
pub(super) struct HeadScan {
    /// The head's first byte arrived (the header deadline runs).
    pub(super) started: bool,
    /// Next byte to look at.
    pos: usize,
    /// Where the current line began.
    line_start: usize,
    /// Complete lines so far (the request line included).
    lines: usize,
}

/// A parsed head waiting for its body.
pub(super) struct Pending {
    pub(super) head: Head,
    pub(super) body: BodyRead,
}

pub(super) enum BodyRead {
    /// This many bytes, all to arrive in `rbuf`.
    Length(usize),
    Chunked(Chunked),
}

/// Scans `rbuf` for the end of a head, checking line and head limits as bytes arrive:
/// `Ok(Some(end))` when `rbuf[..end]` is a whole head (its empty line included).
/// Empty lines before a request line are dropped from `rbuf`.
///
/// # Errors
/// 414 for a request line over [`MAX_LINE_BYTES`]; 431 for a header line over it, a head
/// over [`MAX_HEAD_BYTES`], or more than [`MAX_HEADERS`] lines.
pub(super) fn scan_head(
    rbuf: &mut Vec<u8>,
    scan: &mut HeadScan,
) -> Result<Option<usize>, ApiError> {
    loop {
        let Some(nl) = rbuf[scan.pos..].iter().position(|&b| b == b'\n') else {
            scan.pos = rbuf.len();
            break;
        };
        let end = scan.pos + nl + 1;
        let line = &rbuf[scan.line_start..end];
        if line.len() > MAX_LINE_BYTES {
            return Err(line_too_long(scan.lines == 0));
        }
        let empty = line == b"\n" || line == b"\r\n";
        if empty && scan.lines == 0 {
            // A stray line end between requests (RFC 9112 section 2.2).
            rbuf.drain(..end);
            *scan = HeadScan {
                started: scan.started,
                ..HeadScan::default()
            };
            continue;
        }
        if empty {
            return Ok(Some(end));
        }
        scan.lines += 1;
        if scan.lines > MAX_HEADERS + 1 {
            return Err(ApiError::new(
                431,
                "headers_too_large",
                format!("the request has more than {MAX_HEADERS} header lines"),
            ));
        }
        scan.line_start = end;
        scan.pos = end;
    }
    if rbuf.len() - scan.line_start > MAX_LINE_BYTES {
        return Err(line_too_long(scan.lines == 0));
    }
    if rbuf.len() > MAX_HEAD_BYTES {
        return Err(ApiError::new(
            431,
            "headers_too_large",
            format!("the request head is over the limit of {MAX_HEAD_BYTES} bytes"),
        ));
    }
    Ok(None)
}

fn line_too_long(request_line: bool) -> ApiError {
    if request_line {
        ApiError::new(
            414,
            "uri_too_long",
            format!("the request line is over the limit of {MAX_LINE_BYTES} bytes"),
        )
    } else {
        ApiError::new(
            431,
            "headers_too_large",
            format!("a header line is over the limit of {MAX_LINE_BYTES} bytes"),
        )
    }
}

/// A parsed request head.
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) version: HTTPVersion,
    pub(super) headers: Vec<Header>,
    /// The connection closes after this request's answer.
    pub(super) close: bool,
    /// It declared a body (`Content-Length` or chunked).
    pub(super) has_body: bool,
    content_length: Option<u64>,
    chunked: bool,
    pub(super) expect_continue: bool,
}

/// Parses a whole head (request line, header lines, empty line).
///
/// # Errors
/// 400 for a malformed line or conflicting framing headers, 417 for an `Expect` other
/// than `100-continue`, 501 for a transfer coding other than chunked, 505 for an HTTP
/// version other than 1.0 and 1.1.
pub(super) fn parse_head(raw: &[u8]) -> Result<Head, ApiError> {
    let bad = |what: &str| ApiError::bad_request(format!("malformed request head: {what}"));
    if !raw.is_ascii() {
        return Err(bad("bytes outside ASCII"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| bad("bytes outside ASCII"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    let request_line = lines.next().ok_or_else(|| bad("no request line"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad("the method is not a token"));
    }
    let method = Method::from_str(method).map_err(|()| bad("the method is not a token"))?;
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("the request target is empty or has control bytes"));
    }
    let version = match version {
        "HTTP/1.1" => HTTPVersion(1, 1),
        "HTTP/1.0" => HTTPVersion(1, 0),
        v if v.starts_with("HTTP/") => {
            return Err(ApiError::new(
                505,
                "http_version_not_supported",
                format!("{v} is not served; use HTTP/1.1 or HTTP/1.0"),
            ))
        }
        _ => return Err(bad("the version is not HTTP/x.y")),
    };
    let mut head = Head {
        method,
        target: target.to_string(),
        version,
        headers: Vec::new(),
        close: false,
        has_body: false,
        content_length: None,
        chunked: false,
        expect_continue: false,
    };
    let (mut keep_alive, mut close) = (false, false);
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(bad("folded header lines are not accepted"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a header has no ':'"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(bad("a header name is not a token"));
        }
        let value = value.trim_matches([' ', '\t']);
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "content-length" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("Content-Length is not a number"));
                }
                // Longer than u64: a length no cap admits.
                let n = value.parse::<u64>().unwrap_or(u64::MAX);
                if head.content_length.is_some_and(|m| m != n) {
                    return Err(bad("two different Content-Length headers"));
                }
                head.content_length = Some(n);
            }
            "transfer-encoding" => {
                let last = value.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(ApiError::new(
                        501,
                        "not_implemented",
                        format!("transfer coding {value:?} is not served; send chunked or a Content-Length"),
                    ));
                }
                head.chunked = true;
            }
            "expect" => {
                if !value.eq_ignore_ascii_case("100-continue") {
                    return Err(ApiError::new(
                        417,
                        "expectation_failed",
                        format!("Expect: {value:?} is not served"),
                    ));
                }
                head.expect_continue = true;
            }
            "connection" => {
                for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                    match token.as_str() {
                        "close" | "upgrade" => close = true,
                        "keep-alive" => keep_alive = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        let header = Header::from_bytes(name, value).map_err(|()| bad("a header is not ASCII"))?;
        head.headers.push(header);
    }
    if head.chunked && head.content_length.is_some() {
        return Err(bad("both Transfer-Encoding and Content-Length"));
    }
    head.close = close || (head.version == HTTPVersion(1, 0) && !keep_alive);
    head.has_body = head.chunked || head.content_length.is_some();
    Ok(head)
}

/// Checks the declared body against the cap before any of it is read.
///
/// # Errors
/// 413 `too_large` for a declared length over `max_body_bytes`.
pub(super) fn check_body(head: Head, max_body_bytes: usize) -> Result<Pending, ApiError> {
    let body = if head.chunked {
        BodyRead::Chunked(Chunked::default())
    } else {
        let n = head.content_length.unwrap_or(0);
        let declared = usize::try_from(n).unwrap_or(usize::MAX);
        crate::http::route::check_declared_length(Some(declared), max_body_bytes)?;
        BodyRead::Length(declared)
    };
    Ok(Pending { head, body })
}

/// RFC 9110 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An incremental decoder of a chunked body.
#[derive(Default)]
pub(super) struct Chunked {
    state: ChunkState,
    pub(super) body: Vec<u8>,
    trailers: usize,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes to go.
    Data(usize),
    /// The line end after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailer,
}

impl Chunked {
    /// Decodes what `rbuf` holds (removing it); `Ok(true)` once the body is complete
    /// (bytes after it stay in `rbuf`).
    ///
    /// # Errors
    /// 400 for bad framing, 413 once the decoded body passes `max`, 431 for trailers over
    /// the header limits.
    pub(super) fn feed(&mut self, rbuf: &mut Vec<u8>, max: usize) -> Result<bool, ApiError> {
        let bad = |what: &str| ApiError::bad_request(format!("malformed chunked body: {what}"));
        let mut pos = 0;
        let done = loop {
            let rest = &rbuf[pos..];
            match self.state {
                ChunkState::Size => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_CHUNK_LINE_BYTES {
                            break Err(bad("a chunk-size line is too long"));
                        }
                        break Ok(false);
                    };
                    if nl > MAX_CHUNK_LINE_BYTES {
                        break Err(bad("a chunk-size line is too long"));
                    }
                    let line = String::from_utf8_lossy(&rest[..nl]);
                    let size = line.trim_end_matches('\r');
                    let size = size.split(';').next().unwrap_or("").trim();
                    let Ok(size) = usize::from_str_radix(size, 16) else {
                        break Err(bad("a chunk size is not a hex number"));
                    };
                    if size > max.saturating_sub(self.body.len()) {
                        break Err(ApiError::too_large(
                            "the request body",
                            self.body.len().saturating_add(size),
                            max,
                        ));
                    }
                    pos += nl + 1;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(n) => {
                    if rest.is_empty() {
                        break Ok(false);
                    }
                    let take = n.min(rest.len());
                    self.body.extend_from_slice(&rest[..take]);
                    pos += take;
                    self.state = if take == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - take)
                    };
                }
                ChunkState::DataEnd => match rest {
                    [] | [b'\r'] => break Ok(false),
                    [b'\n', ..] => {
                        pos += 1;
                        self.state = ChunkState::Size;
                    }
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = ChunkState::Size;
                    }
                    _ => break Err(bad("a chunk's data is longer than its size")),
                },
                ChunkState::Trailer => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_LINE_BYTES {
                            break Err(line_too_long(false));
                        }
                        break Ok(false);
                    };
                    if nl + 1 > MAX_LINE_BYTES {
                        break Err(line_too_long(false));
                    }
                    let empty = nl == 0 || (nl == 1 && rest[0] == b'\r');
                    pos += nl + 1;
                    if empty {
                        break Ok(true);
                    }
                    self.trailers += 1;
                    if self.trailers > MAX_HEADERS {
                        break Err(ApiError::new(
                            431,
                            "headers_too_large",
                            format!("the request has more than {MAX_HEADERS} trailer lines"),
                        ));
                    }
                }
            }
        };
        rbuf.drain(..pos.min(rbuf.len()));
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(bytes: &[u8]) -> Result<Option<usize>, ApiError> {
        let mut rbuf = bytes.to_vec();
        scan_head(&mut rbuf, &mut HeadScan::default())
    }

    #[test]
    fn a_head_is_complete_at_its_empty_line_whatever_the_chunking() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nnext";
        assert_eq!(scan_all(head).unwrap(), Some(head.len() - 4));
        // Fed one byte at a time, the same end is found once, and not before.
        let mut rbuf = Vec::new();
        let mut scan = HeadScan::default();
        let mut found = None;
        for (i, &b) in head.iter().enumerate() {
            rbuf.push(b);
            if let Some(end) = scan_head(&mut rbuf, &mut scan).unwrap() {
                found = Some((i, end));
                break;
            }
        }
        assert_eq!(found, Some((head.len() - 5, head.len() - 4)));
    }

    #[test]
    fn over_long_lines_and_heads_are_refused_before_their_end_arrives() {
        let mut line = b"GET /".to_vec();
        line.resize(MAX_LINE_BYTES + 1, b'a');
        assert_eq!(scan_all(&line).unwrap_err().status, 414);
        let mut header = b"GET / HTTP/1.1\r\nX: ".to_vec();
        header.resize(header.len() + MAX_LINE_BYTES, b'a');
        assert_eq!(scan_all(&header).unwrap_err().status, 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        while many.len() <= MAX_HEAD_BYTES {
            many.extend_from_slice(format!("X-{}: {}\r\n", many.len(), "v".repeat(500)).as_bytes());
        }
        assert_eq!(scan_all(&many).unwrap_err().status, 431);
        let mut lines = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            lines.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        assert_eq!(scan_all(&lines).unwrap_err().status, 431);
    }

    #[test]
    fn heads_parse_with_their_framing_and_connection_semantics() {
        let h = parse_head(b"POST /znodes/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(
            (h.content_length, h.close, h.has_body),
            (Some(3), false, true)
        );
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(h.close, "HTTP/1.0 closes unless keep-alive");
        let h = parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(!h.close);
        let h = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(h.close);
        let h = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(h.chunked && h.has_body);
        for (head, status) in [
            (&b"GET / HTTP/2.0\r\n\r\n"[..], 505),
            (b"GET /\r\n\r\n", 400),
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
            (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400),
        ] {
            let e = parse_head(head).err().map(|e| e.status);
            assert_eq!(e, Some(status), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_huge_declared_length_is_413_without_reading() {
        let head =
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
                .unwrap();
        let e = check_body(head, 1000).err().unwrap();
        assert_eq!((e.status, e.code), (413, "too_large"));
    }

    #[test]
    fn chunked_bodies_decode_in_any_split_and_stop_at_the_cap() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 1..wire.len() {
            let mut c = Chunked::default();
            let mut rbuf = wire[..split].to_vec();
            let mut done = c.feed(&mut rbuf, 100).unwrap();
            rbuf.extend_from_slice(&wire[split..]);
            if !done {
                done = c.feed(&mut rbuf, 100).unwrap();
            }
            assert!(done, "split at {split}");
            assert_eq!(c.body, b"hello world");
            assert_eq!(rbuf, b"NEXT");
        }
        let mut c = Chunked::default();
        let e = c
            .feed(&mut b"ffffffffffffffffff\r\n".to_vec(), 100)
            .unwrap_err();
        assert_eq!(e.status, 400, "{}", e.message);
        let e = c.feed(&mut b"65\r\n".to_vec(), 100).unwrap_err();
        assert_eq!(e.status, 413);
        let mut c = Chunked::default();
        let e = c.feed(&mut b"2\r\nabc\r\n".to_vec(), 100).unwrap_err();
        assert_eq!(e.status, 400);
    }
}
