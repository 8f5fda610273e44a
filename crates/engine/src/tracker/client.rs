//! The announce loop of one torrent (see the parent module for the policy).

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::tracker::{AnnounceRequest, AnnounceResponse, Event};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::torrent::Control;
use crate::{TorrentState, TorrentStatus};

/// Longest wait for one tracker's answer.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest tracker reply read.
const MAX_REPLY: usize = 2 * 1024 * 1024;
/// Wait after every tracker failed, doubled on each further failure up to the interval.
const RETRY: Duration = Duration::from_secs(10);

/// What the announce loop needs.
pub(crate) struct Announcer {
    pub(crate) tiers: Vec<Vec<String>>,
    pub(crate) info_hash: InfoHash,
    pub(crate) peer_id: PeerId,
    pub(crate) port: u16,
    pub(crate) status: Arc<watch::Sender<TorrentStatus>>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) stop: oneshot::Receiver<()>,
}

/// Announces until told to stop, then sends `stopped`.
pub(crate) async fn announce_loop(mut a: Announcer) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot start the tracker client: {e}");
            return;
        }
    };
    let mut status_rx = a.status.subscribe();
    let mut complete = matches!(status_rx.borrow().state, TorrentState::Seeding);
    let mut event = Some(Event::Started);
    let mut failures = 0u32;
    loop {
        let wait = match announce(&client, &mut a, event).await {
            Ok(reply) => {
                failures = 0;
                event = None;
                a.status.send_modify(|s| s.tracker_error = None);
                let _ = a.control.send(Control::Peers { addrs: reply.peers.clone(), manual: false });
                Duration::from_secs(reply.interval.max(reply.min_interval.unwrap_or(1)).max(1) as u64)
            }
            Err(e) => {
                failures += 1;
                tracing::info!("announce failed: {e}");
                a.status.send_modify(|s| s.tracker_error = Some(e));
                RETRY * 2u32.pow(failures.min(6) - 1)
            }
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut a.stop => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), announce(&client, &mut a, Some(Event::Stopped))).await;
                    return;
                }
                _ = &mut sleep => break,
                changed = status_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now_complete = matches!(status_rx.borrow().state, TorrentState::Seeding);
                    if now_complete && !complete {
                        complete = true;
                        event = Some(Event::Completed);
                        break;
                    }
                }
            }
        }
    }
}

/// Announces to the first tracker that answers, tier by tier.
async fn announce(
    client: &reqwest::Client,
    a: &mut Announcer,
    event: Option<Event>,
) -> Result<AnnounceResponse, String> {
    let (uploaded, downloaded, left) = {
        let s = a.status.borrow();
        (s.stats.uploaded, s.stats.downloaded, s.total_length.saturating_sub(s.stats.bytes_have))
    };
    let request = AnnounceRequest {
        info_hash: a.info_hash,
        peer_id: a.peer_id,
        port: a.port,
        uploaded,
        downloaded,
        left,
        event,
        compact: true,
        numwant: Some(80),
        key: None,
        ip: None,
    };
    let mut last_error = "the torrent lists no HTTP tracker".to_string();
    for tier in a.tiers.iter_mut() {
        for i in 0..tier.len() {
            let url = &tier[i];
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                continue;
            }
            match fetch(client, &request.announce_url(url))
                .await
                .and_then(|body| AnnounceResponse::parse(&body).map_err(|e| e.to_string()))
            {
                Ok(reply) => {
                    tracing::debug!(tracker = %url, peers = reply.peers.len(), "announced");
                    let good = tier.remove(i);
                    tier.insert(0, good);
                    return Ok(reply);
                }
                Err(e) => last_error = format!("tracker {url}: {e}"),
            }
        }
    }
    Err(last_error)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client.get(url).send().await.map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY {
            return Err(format!("reply larger than {MAX_REPLY} bytes"));
        }
    }
    Ok(body)
}
