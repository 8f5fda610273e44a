//! The broadcaster's input, cut into signed chunks, and a viewer's outputs: a file or stdout,
//! and HTTP readers, each from the live edge.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use shoal_identity::Identity;
use shoal_live::Chunk;
use shoal_live::chunk::MAX_PAYLOAD;
use shoal_live::mesh::Seq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use crate::{BadInput, Failure};

use super::node::Cmd;
use super::{CUT_EVERY, now_ms};

/// The broadcaster's input.
pub(super) enum Input {
    File(tokio::fs::File),
    Stdin(tokio::io::Stdin),
    Http(Box<reqwest::Response>),
}

impl Input {
    pub(super) async fn open(source: &str) -> Result<Input, Failure> {
        if source == "-" {
            return Ok(Input::Stdin(tokio::io::stdin()));
        }
        if source.starts_with("http://") || source.starts_with("https://") {
            let response = reqwest::Client::new()
                .get(source)
                .send()
                .await
                .map_err(|e| Failure::Input(anyhow!("--input {source}: {}", e.without_url())))?;
            if !response.status().is_success() {
                return Err(Failure::Input(anyhow!("--input {source}: the server answered {}", response.status())));
            }
            return Ok(Input::Http(Box::new(response)));
        }
        let meta = tokio::fs::metadata(source).await.map_err(|e| Failure::Input(anyhow!("--input {source}: {e}")))?;
        if meta.is_dir() {
            return Err(Failure::Input(anyhow!("--input {source} is a folder, not a stream")));
        }
        let file = tokio::fs::File::open(source).await.map_err(|e| Failure::Input(anyhow!("--input {source}: {e}")))?;
        Ok(Input::File(file))
    }

    /// The next bytes (none at the end).
    async fn read(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
        let mut block = vec![0u8; 64 * 1024];
        let n = match self {
            Input::File(f) => f.read(&mut block).await?,
            Input::Stdin(s) => s.read(&mut block).await?,
            Input::Http(r) => match r.chunk().await.map_err(|e| anyhow!("reading the input: {}", e.without_url()))? {
                Some(bytes) => {
                    buf.extend_from_slice(&bytes);
                    return Ok(true);
                }
                None => 0,
            },
        };
        buf.extend_from_slice(&block[..n]);
        Ok(n > 0)
    }
}

/// MPEG-TS packets are this long and start with this byte.
const TS_PACKET: usize = 188;
const TS_SYNC: u8 = 0x47;

/// Cuts the input into signed chunks for the node, until it ends.
pub(super) async fn cut(
    mut input: Input,
    identity: Identity,
    tx: mpsc::Sender<Cmd>,
    quiet: bool,
) -> Result<(), Failure> {
    let mut pending: Vec<u8> = Vec::new();
    let mut ts: Option<bool> = None;
    let mut seq: Seq = 0;
    let mut eof = false;
    let mut every = tokio::time::interval(CUT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if ts.is_none() && (pending.len() >= 2 * TS_PACKET || eof && !pending.is_empty()) {
                    let looks = pending[0] == TS_SYNC && pending.get(TS_PACKET).is_none_or(|&b| b == TS_SYNC);
                    if !looks && !quiet {
                        eprintln!("the input does not look like MPEG-TS: it is sent as it is, but a player may not start mid-stream");
                    }
                    ts = Some(looks);
                }
                let mut take = pending.len().min(MAX_PAYLOAD);
                if ts == Some(true) && !(eof && take == pending.len()) {
                    take -= take % TS_PACKET;
                }
                if take > 0 && (ts.is_some() || eof) {
                    let payload: Vec<u8> = pending.drain(..take).collect();
                    let chunk = Chunk::sign(&identity, seq, now_ms(), payload).map_err(|e| Failure::Runtime(e.into()))?;
                    seq += 1;
                    if tx.send(Cmd::Cut(chunk)).await.is_err() {
                        return Ok(());
                    }
                } else if eof && pending.is_empty() {
                    if seq == 0 {
                        return Err(Failure::Input(anyhow!("the input ended before any data")));
                    }
                    let end = Chunk::sign(&identity, seq, now_ms(), Vec::new()).map_err(|e| Failure::Runtime(e.into()))?;
                    let _ = tx.send(Cmd::Cut(end)).await;
                    if !quiet {
                        eprintln!("the input ended after {seq} chunks; the broadcast ends when viewers have them");
                    }
                    return Ok(());
                }
            }
            r = input.read(&mut pending), if !eof && pending.len() < 2 * MAX_PAYLOAD => {
                match r {
                    Ok(more) => eof = !more,
                    Err(e) => return Err(Failure::Runtime(e.context("reading the input"))),
                }
            }
        }
    }
}

/// Writes the stream to a file or stdout.
pub(super) async fn write_output(
    path: &str,
    mut rx: broadcast::Receiver<Bytes>,
    ended: tokio::sync::watch::Receiver<bool>,
    quiet: bool,
) -> Result<(), Failure> {
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if path == "-" {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot write the stream to {path}"))
                .bad_input()?,
        )
    };
    loop {
        match next(&mut rx, &mut ended.clone()).await {
            Ok(bytes) => {
                if let Err(e) = out.write_all(&bytes).await {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(Failure::Runtime(anyhow!("writing the stream: {e}")));
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                if !quiet {
                    eprintln!("the output fell behind: jumped to the live edge ({n} chunks left out)");
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    out.flush().await.map_err(|e| Failure::Runtime(anyhow!("writing the stream: {e}")))?;
    Ok(())
}

/// The next bytes for an output; `Closed` once the broadcast ended and everything before the
/// end was taken.
async fn next(
    rx: &mut broadcast::Receiver<Bytes>,
    ended: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Bytes, broadcast::error::RecvError> {
    use broadcast::error::{RecvError, TryRecvError};
    tokio::select! {
        r = rx.recv() => r,
        _ = ended.wait_for(|e| *e) => match rx.try_recv() {
            Ok(bytes) => Ok(bytes),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(_) => Err(RecvError::Closed),
        },
    }
}

/// Serves the stream to any number of HTTP readers, each from the live edge; the server ends
/// with the broadcast.
pub(super) async fn serve_http(
    listener: tokio::net::TcpListener,
    out: broadcast::Sender<Bytes>,
    ended: tokio::sync::watch::Receiver<bool>,
    quiet: bool,
) -> Result<(), Failure> {
    use axum::body::Body;
    use axum::response::Response;
    use futures_util::StreamExt;
    let mut ended_rx = ended.clone();
    let handler = move || {
        let rx = out.subscribe();
        let ended = ended.clone();
        async move {
            let stream = futures_util::stream::unfold((rx, ended), move |(mut rx, mut ended)| async move {
                loop {
                    match next(&mut rx, &mut ended).await {
                        Ok(bytes) => return Some((Ok::<_, std::io::Error>(bytes), (rx, ended))),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            if !quiet {
                                eprintln!(
                                    "an HTTP reader fell behind: it jumps to the live edge ({n} chunks left out)"
                                );
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .boxed();
            Response::builder()
                .header("content-type", "video/mp2t")
                .header("cache-control", "no-store")
                .body(Body::from_stream(stream))
                .unwrap_or_default()
        }
    };
    let app = axum::Router::new().fallback(axum::routing::get(handler));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = ended_rx.wait_for(|e| *e).await;
        })
        .await
        .map_err(|e| Failure::Runtime(anyhow!("serving the stream: {e}")))
}
