//! Serving a [`FileStream`] over HTTP/1.1 for players: `GET` and `HEAD`, single byte ranges
//! (RFC 9110 §14: `bytes=a-b`, `a-`, `-n`) answered `206 Partial Content` with
//! `Content-Range`, `416` with `Content-Range: bytes */LEN` for a range past the end,
//! `Accept-Ranges: bytes` and a `Content-Type` from the file's extension. The headers go out
//! with the first bytes when those are verified already, otherwise (for a torrent's file, see
//! [`Readable::headers_early`]) after [`HEADERS_WITHIN`] while the body waits for them: a player that seeks opens a new request and closes the old
//! one only once the new one's headers came, and until then the old request's reader keeps
//! deadlines on pieces nobody will watch (measured: for 0.7 s after each seek, half of the
//! download went there). A paused torrent gets a `503` naming why at once; one paused or
//! removed later ends the body early. A client that disconnects drops the body, and with it
//! the stream and its piece deadlines.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{FileStream, MAX_READ, StreamError};

/// How long a response waits for its first bytes before its headers go out without them.
pub const HEADERS_WITHIN: std::time::Duration = std::time::Duration::from_millis(2);

/// What [`respond`] serves: a file's length, and reads that wait until their bytes can be
/// served. [`FileStream`] is one; a reader that transforms a torrent's file (a sealed share's
/// decryption) is another.
pub trait Readable: Send + 'static {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// True for an empty file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Up to `max` bytes at `offset` (at least one unless `offset` is at or past the end).
    fn read(&mut self, offset: u64, max: usize)
    -> impl std::future::Future<Output = Result<Bytes, StreamError>> + Send;
    /// The headers may go out before the first bytes (after [`HEADERS_WITHIN`]): true when a
    /// read that waits can fail only as the torrent stops. A reader that checks what it read
    /// (a sealed share's decryption) keeps the default, so that a failure gets its status.
    fn headers_early(&self) -> bool {
        false
    }
}

impl Readable for FileStream {
    fn len(&self) -> u64 {
        FileStream::len(self)
    }

    fn read(
        &mut self,
        offset: u64,
        max: usize,
    ) -> impl std::future::Future<Output = Result<Bytes, StreamError>> + Send {
        FileStream::read(self, offset, max)
    }

    fn headers_early(&self) -> bool {
        true
    }
}

/// What a `Range` header asks for, against a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file (no range, or one this server ignores, as RFC 9110 allows).
    All,
    /// Bytes `start..end`.
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// No byte of the range is in the file.
    Unsatisfiable,
}

/// Reads a `Range` header value. Several ranges, other units and malformed values are ignored
/// (the whole file is sent), as RFC 9110 allows.
pub fn parse_range(value: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| if s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        // -n: the last n bytes.
        (true, false) => match num(b) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) if len > 0 => Wanted::Part { start: len.saturating_sub(n), end: len },
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::All,
        },
        (false, _) => {
            let Some(start) = num(a) else { return Wanted::All };
            let end = if b.is_empty() {
                len
            } else {
                match num(b) {
                    Some(last) if last >= start => last.saturating_add(1).min(len),
                    _ => return Wanted::All,
                }
            };
            if start >= len { Wanted::Unsatisfiable } else { Wanted::Part { start, end } }
        }
        (true, true) => Wanted::All,
    }
}

/// The media type players expect for a file name, from its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mov" => "video/quicktime",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "mpg" | "mpeg" => "video/mpeg",
        "ogv" => "video/ogg",
        "flv" => "video/x-flv",
        "wmv" => "video/x-ms-wmv",
        "mp3" => "audio/mpeg",
        "m4a" | "m4b" => "audio/mp4",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "srt" | "txt" | "nfo" => "text/plain; charset=utf-8",
        "vtt" => "text/vtt",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Answers one request for the file `stream` reads, named `name` (for its media type).
pub async fn respond<S: Readable>(mut stream: S, name: &str, method: &Method, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = (StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n").into_response();
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let len = stream.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match parse_range(range, len) {
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Wanted::Unsatisfiable => {
            let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, format!("the file has {len} bytes\n")).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(name))
        .header(header::CONTENT_LENGTH, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{len}", end - 1));
    }
    tracing::debug!("stream {name}: {method} bytes {start}-{end} of {len}");
    if method == Method::HEAD || start == end {
        return builder.body(Body::empty()).unwrap_or_else(|e| internal(&e.to_string()));
    }
    // The first bytes before the headers when they are there (an error can still be told
    // properly); otherwise the headers at once and the bytes when they come.
    let wait = if stream.headers_early() { HEADERS_WITHIN } else { std::time::Duration::MAX };
    let first = match tokio::time::timeout(wait, stream.read(start, MAX_READ.min((end - start) as usize))).await {
        Ok(Ok(b)) if !b.is_empty() => Some(b),
        Ok(Ok(_)) => return internal("no data where the file should have some"),
        Ok(Err(e)) => return unavailable(&e),
        Err(_) => None,
    };
    let next = start + first.as_ref().map_or(0, |b| b.len() as u64);
    let rest = futures_util::stream::unfold((stream, next), move |(mut stream, at)| async move {
        if at >= end {
            return None;
        }
        match stream.read(at, MAX_READ.min((end - at) as usize)).await {
            Ok(b) if !b.is_empty() => {
                let at = at + b.len() as u64;
                Some((Ok::<Bytes, StreamError>(b), (stream, at)))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::info!("stream ended early: {e}");
                Some((Err(e), (stream, end)))
            }
        }
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter(first.map(Ok)), rest);
    builder.body(Body::from_stream(body)).unwrap_or_else(|e| internal(&e.to_string()))
}

fn unavailable(e: &StreamError) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
}

fn internal(e: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| parse_range(Some(v), 1000);
        assert_eq!(parse_range(None, 1000), Wanted::All);
        assert_eq!(r("bytes=0-99"), Wanted::Part { start: 0, end: 100 });
        assert_eq!(r("bytes=900-"), Wanted::Part { start: 900, end: 1000 });
        assert_eq!(r("bytes=-100"), Wanted::Part { start: 900, end: 1000 });
        assert_eq!(r("bytes=-5000"), Wanted::Part { start: 0, end: 1000 });
        assert_eq!(r("bytes=990-5000"), Wanted::Part { start: 990, end: 1000 });
        assert_eq!(r("bytes=1000-"), Wanted::Unsatisfiable);
        assert_eq!(r("bytes=1000-1001"), Wanted::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-10"), 0), Wanted::Unsatisfiable);
        // Ignored: the whole file is sent.
        for v in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=-", "bytes=+1-2", "bytes=1"] {
            assert_eq!(r(v), Wanted::All, "{v}");
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(content_type("Film.MKV"), "video/x-matroska");
        assert_eq!(content_type("a/b/lecture.mp4"), "video/mp4");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
