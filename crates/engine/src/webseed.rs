//! Web seeds (BEP 19, `url-list`): plain HTTP servers holding the torrent's files, used
//! alongside peers.
//!
//! A web seed joins its torrent as one more peer: an in-process connection (a tokio duplex
//! stream) whose far end is a task speaking the peer wire protocol (BEP 3 with the fast
//! extension, BEP 6) on the server's behalf. It says `have all`, unchokes whoever is
//! interested, and answers each `request` from the piece it fetches over HTTP — a range
//! request per file the piece touches (`Range: bytes=a-b`; a server that answers 200 with the
//! whole file is read up to the range and no further), the last few pieces kept for the
//! blocks that follow. So the swarm logic picks pieces for it like for any peer, and the
//! torrent checks what it sends like anything else: a web seed whose bytes fail a piece's hash
//! is banned and dropped like a lying peer. A request that fails is rejected (`reject
//! request`, so the picker asks elsewhere at once); after [`MAX_FAILURES`] failures in a row
//! the web seed is dropped with a warning naming the URL and the error.
//!
//! URLs (BEP 19): one ending in `/` is a folder: the torrent's name is appended, then for a
//! multi-file torrent each file's path; a single-file torrent's URL not ending in `/` is the
//! file itself. Padding files (BEP 47) are zeros, never fetched.
//!
//! Each web seed shows in the torrent's peers as an address from 240.0.0.0/4 (reserved, never
//! dialled and never passed on by peer exchange, since the connection counts as incoming with
//! no listen port); the log line that starts it names the URL.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use shoal_proto::wire::decode_message;
use shoal_proto::{Handshake, Message, Metainfo, PeerId, PieceIndex};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Failed requests in a row after which a web seed is dropped.
pub(crate) const MAX_FAILURES: u32 = 8;
/// Pieces kept for the blocks that follow the first.
const CACHED_PIECES: usize = 4;
/// One HTTP request may take this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the in-process connection's buffer.
const PIPE: usize = 1 << 20;

/// Characters escaped in a path component of a web seed URL.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/');

/// The address web seed number `index` shows as.
pub(crate) fn address(index: usize) -> SocketAddr {
    SocketAddr::from(([240, 0, (index >> 8) as u8, (index & 0xff) as u8 + 1], 80))
}

/// The handshake a web seed "sent": fast extension on, nothing else.
pub(crate) fn handshake(meta: &Metainfo, index: usize) -> Handshake {
    let mut id = *b"-SW0001-webseed-0000";
    let digits = format!("{:04}", index % 10_000);
    id[16..].copy_from_slice(digits.as_bytes());
    Handshake { reserved: [0, 0, 0, 0, 0, 0, 0, 0x04], info_hash: meta.info_hash, peer_id: PeerId(id) }
}

/// The pieces of URL `base` for each file of `meta`: `(offset, length, url or None for a
/// padding file)`.
fn file_urls(meta: &Metainfo, base: &str) -> Vec<(u64, u64, Option<String>)> {
    let info = &meta.info;
    let folder = base.ends_with('/');
    meta.info
        .files
        .iter()
        .map(|f| {
            let url = (!f.padding).then(|| {
                if !folder && info.files.len() == 1 {
                    base.to_owned()
                } else {
                    let mut url = base.to_owned();
                    if !folder {
                        url.push('/');
                    }
                    let parts: Vec<String> =
                        info.file_components(f).iter().map(|c| utf8_percent_encode(c, PATH).to_string()).collect();
                    url.push_str(&parts.join("/"));
                    url
                }
            });
            (f.offset, f.length, url)
        })
        .collect()
}

/// Starts web seed `index` at `url` for `meta`: returns the torrent's end of the connection.
pub(crate) fn start(meta: Arc<Metainfo>, url: String, index: usize) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(PIPE);
    tracing::info!(%url, addr = %address(index), "web seed");
    tokio::spawn(async move {
        if let Err(e) = serve(meta, &url, theirs).await {
            tracing::warn!(%url, "web seed dropped: {e}");
        }
    });
    ours
}

async fn serve(meta: Arc<Metainfo>, url: &str, stream: DuplexStream) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let files = file_urls(&meta, url);
    let (mut read, mut write) = tokio::io::split(stream);
    // The reader passes requests on; the fetcher answers them in order.
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            match decode_message(&mut buf, 1 << 20) {
                Ok(Some(msg)) => {
                    if tx.send(msg).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => return,
            }
            let mut chunk = [0u8; 16 * 1024];
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let send = |msg: Message| {
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        out.freeze()
    };
    write.write_all(&send(Message::HaveAll)).await.map_err(|e| e.to_string())?;
    let mut cache: VecDeque<(u32, Bytes)> = VecDeque::new();
    let mut failures = 0u32;
    while let Some(msg) = rx.recv().await {
        let reply = match msg {
            Message::Interested => vec![Message::Unchoke],
            Message::Request { index, begin, length } => {
                let Some(piece_index) = PieceIndex::checked(index, meta.info.layout.piece_count()) else {
                    continue;
                };
                let piece = match cache.iter().find(|(i, _)| *i == index) {
                    Some((_, data)) => Ok(data.clone()),
                    None => fetch_piece(&client, &meta, &files, piece_index).await.inspect(|data| {
                        cache.push_back((index, data.clone()));
                        if cache.len() > CACHED_PIECES {
                            cache.pop_front();
                        }
                    }),
                };
                let reject = Message::RejectRequest { index, begin, length };
                let (from, to) = (begin as usize, begin as usize + length as usize);
                match piece {
                    Ok(data) if to <= data.len() => {
                        failures = 0;
                        vec![Message::Piece { index, begin, data: data.slice(from..to) }]
                    }
                    Ok(_) => vec![reject],
                    Err(e) => {
                        failures += 1;
                        tracing::debug!(%url, index, "web seed request failed: {e}");
                        if failures >= MAX_FAILURES {
                            reader.abort();
                            return Err(format!("{failures} requests failed in a row, the last: {e}"));
                        }
                        vec![reject]
                    }
                }
            }
            _ => Vec::new(),
        };
        for m in reply {
            write.write_all(&send(m)).await.map_err(|e| e.to_string())?;
        }
    }
    reader.abort();
    Ok(())
}

/// The bytes of piece `piece` from the web seed.
async fn fetch_piece(
    client: &reqwest::Client,
    meta: &Metainfo,
    files: &[(u64, u64, Option<String>)],
    piece: PieceIndex,
) -> Result<Bytes, String> {
    let start = meta.info.layout.piece_offset(piece);
    let end = start + u64::from(meta.info.layout.piece_size(piece));
    let mut out = BytesMut::with_capacity((end - start) as usize);
    for (offset, length, url) in files {
        let (a, b) = (start.max(*offset), end.min(offset + length));
        if a >= b {
            continue;
        }
        let (from, to) = (a - offset, b - offset); // within the file, `to` exclusive
        let Some(url) = url else {
            out.resize(out.len() + (to - from) as usize, 0);
            continue;
        };
        let response = client
            .get(url)
            .header("Range", format!("bytes={from}-{}", to - 1))
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        let status = response.status();
        let skip = match status.as_u16() {
            206 => 0,
            // The whole file: read up to the range, no further.
            200 => from,
            _ => return Err(format!("{url}: the server answered {status}")),
        };
        let mut response = response;
        let mut seen = 0u64;
        let want = to - from;
        let mut got = 0u64;
        while got < want {
            let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {}", e.without_url()))? else {
                return Err(format!("{url}: the body ended {} bytes short", want - got));
            };
            let chunk_start = seen;
            seen += chunk.len() as u64;
            if seen <= skip {
                continue;
            }
            let lo = skip.saturating_sub(chunk_start) as usize;
            let hi = chunk.len().min((lo as u64 + want - got) as usize);
            out.extend_from_slice(&chunk[lo..hi]);
            got += (hi - lo) as u64;
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_bep_19() {
        let single = shoal_proto::CreateSpec {
            name: "a b.bin".into(),
            piece_length: 16384,
            content: shoal_proto::CreateContent::SingleFile { length: 5 },
            trackers: Vec::new(),
            comment: None,
            creation_date: None,
            private: false,
            web_seeds: Vec::new(),
            ssl_cert: None,
            sealed: None,
        };
        let bytes = shoal_proto::build_torrent(&single, &[[0; 20]]);
        let meta = Metainfo::from_bytes(&bytes).expect("torrent");
        assert_eq!(file_urls(&meta, "http://h/x.bin")[0].2.as_deref(), Some("http://h/x.bin"));
        assert_eq!(file_urls(&meta, "http://h/d/")[0].2.as_deref(), Some("http://h/d/a%20b.bin"));
        assert_ne!(address(0), address(1));
    }
}
