//! The announce loop of one torrent (see the parent module for the policy). HTTP(S) trackers
//! are asked with `reqwest`, UDP trackers through [`UdpTrackers`]; both kinds share the tiers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::tracker::{AnnounceRequest, AnnounceResponse, Event};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use super::udp::{Schedule, UdpTrackers};
use crate::torrent::Control;
use crate::{TorrentState, TorrentStatus, TrackerStatus};

/// Longest wait for one HTTP tracker's answer (UDP trackers follow [`Schedule::BEP15`]).
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest tracker reply read.
const MAX_REPLY: usize = 2 * 1024 * 1024;
/// Longest time spent telling the trackers about a stop.
const STOPPED_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait after every tracker failed, doubled on each further failure up to 32 times as long
/// (320 s).
const RETRY: Duration = Duration::from_secs(10);

/// What the announce loop needs.
pub(crate) struct Announcer {
    pub(crate) tiers: Vec<Vec<String>>,
    pub(crate) info_hash: InfoHash,
    /// A hybrid torrent's v2 swarm hash, announced after `info_hash` each time.
    pub(crate) also: Option<InfoHash>,
    pub(crate) peer_id: PeerId,
    pub(crate) port: u16,
    pub(crate) status: Arc<watch::Sender<TorrentStatus>>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) stop: oneshot::Receiver<()>,
    /// Asks for an announce now (the user's "reannounce").
    pub(crate) now: Arc<tokio::sync::Notify>,
}

/// Announces until told to stop, then sends `stopped`. A stop also cuts short an announce in
/// progress (a dead UDP tracker may take [`Schedule::total`] to give up).
pub(crate) async fn announce_loop(mut a: Announcer) {
    let mut clients = match Clients::new(Schedule::BEP15) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot start the tracker client: {e}");
            return;
        }
    };
    let listed: Vec<TrackerStatus> = a
        .tiers
        .iter()
        .enumerate()
        .flat_map(|(tier, urls)| {
            urls.iter().map(move |url| TrackerStatus {
                url: url.clone(),
                tier,
                last_announce: None,
                last_result: None,
                next_announce: Some(SystemTime::now()),
            })
        })
        .collect();
    a.status.send_modify(|s| s.trackers = listed);
    let mut status_rx = a.status.subscribe();
    let mut complete = matches!(status_rx.borrow().state, TorrentState::Seeding);
    let mut event = Some(Event::Started);
    let mut failures = 0u32;
    loop {
        let request = a.request(event);
        let result = tokio::select! {
            biased;
            _ = &mut a.stop => break,
            result = clients.announce(&mut a.tiers, &request) => result,
        };
        let finished = SystemTime::now();
        a.status.send_modify(|s| {
            for (url, outcome) in clients.attempts.drain(..) {
                if let Some(t) = s.trackers.iter_mut().find(|t| t.url == url) {
                    t.last_announce = Some(finished);
                    t.last_result = Some(outcome);
                }
            }
        });
        let wait = match result {
            Ok(reply) => {
                failures = 0;
                a.status.send_modify(|s| s.tracker_error = None);
                let _ = a.control.send(Control::Peers { addrs: reply.peers.clone(), manual: false });
                // A hybrid's v2 swarm, at the same trackers; its failure changes nothing.
                if let Some(also) = a.also {
                    let request = AnnounceRequest { info_hash: also, ..a.request(event) };
                    let second = tokio::select! {
                        biased;
                        _ = &mut a.stop => break,
                        result = clients.announce(&mut a.tiers, &request) => result,
                    };
                    clients.attempts.clear();
                    match second {
                        Ok(r) => drop(a.control.send(Control::Peers { addrs: r.peers, manual: false })),
                        Err(e) => tracing::debug!("announce of the v2 swarm failed: {e}"),
                    }
                }
                event = None;
                Duration::from_secs(reply.interval.max(reply.min_interval.unwrap_or(1)).max(1) as u64)
            }
            Err(e) => {
                failures += 1;
                tracing::info!("announce failed: {e}");
                a.status.send_modify(|s| s.tracker_error = Some(e));
                RETRY * 2u32.pow(failures.min(6) - 1)
            }
        };
        a.status.send_modify(|s| s.trackers.iter_mut().for_each(|t| t.next_announce = Some(finished + wait)));
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        let stop = loop {
            tokio::select! {
                _ = &mut a.stop => break true,
                _ = &mut sleep => break false,
                () = a.now.notified() => break false,
                changed = status_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now_complete = matches!(status_rx.borrow().state, TorrentState::Seeding);
                    if now_complete && !complete {
                        complete = true;
                        event = Some(Event::Completed);
                        break false;
                    }
                }
            }
        };
        if stop {
            break;
        }
    }
    for hash in std::iter::once(a.info_hash).chain(a.also) {
        let request = AnnounceRequest { info_hash: hash, ..a.request(Some(Event::Stopped)) };
        let _ = tokio::time::timeout(STOPPED_TIMEOUT, clients.announce(&mut a.tiers, &request)).await;
    }
}

/// Announces a torrent whose metadata we do not have yet (a magnet link), only to learn
/// peers: `started` with one byte left, then again at each interval, until `sink` closes; then
/// `stopped`.
pub(crate) async fn find_peers(
    mut tiers: Vec<Vec<String>>,
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    sink: mpsc::UnboundedSender<Vec<std::net::SocketAddr>>,
) {
    let Ok(mut clients) = Clients::new(Schedule::BEP15) else {
        return;
    };
    let request = |event| announce_request(info_hash, peer_id, port, (0, 0, 1), event);
    let mut event = Some(Event::Started);
    let mut failures = 0u32;
    loop {
        let announce = request(event);
        let result = tokio::select! {
            _ = sink.closed() => break,
            result = clients.announce(&mut tiers, &announce) => result,
        };
        let wait = match result {
            Ok(reply) => {
                event = None;
                failures = 0;
                if sink.send(reply.peers).is_err() {
                    break;
                }
                Duration::from_secs(reply.interval.max(reply.min_interval.unwrap_or(1)).max(1) as u64)
            }
            Err(e) => {
                failures += 1;
                tracing::info!("announce failed: {e}");
                RETRY * 2u32.pow(failures.min(6) - 1)
            }
        };
        tokio::select! {
            _ = sink.closed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if event.is_none() {
        let _ =
            tokio::time::timeout(STOPPED_TIMEOUT, clients.announce(&mut tiers, &request(Some(Event::Stopped)))).await;
    }
}

impl Announcer {
    /// The announce of `event` with the current counters.
    fn request(&self, event: Option<Event>) -> AnnounceRequest {
        let s = self.status.borrow();
        let counters = (s.stats.uploaded, s.stats.downloaded, s.total_length.saturating_sub(s.stats.bytes_have));
        announce_request(self.info_hash, self.peer_id, self.port, counters, event)
    }
}

/// An announce asking for compact peer lists; `counters` are uploaded, downloaded and left.
fn announce_request(
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    (uploaded, downloaded, left): (u64, u64, u64),
    event: Option<Event>,
) -> AnnounceRequest {
    AnnounceRequest {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event,
        compact: true,
        numwant: Some(80),
        key: None,
        ip: None,
    }
}

/// The clients of both tracker kinds, owned by one announce loop.
pub(super) struct Clients {
    http: reqwest::Client,
    udp: UdpTrackers,
    /// Each tracker asked since the caller last drained this, and what it answered: the
    /// number of peers, or why it failed.
    pub(super) attempts: Vec<(String, Result<usize, String>)>,
}

impl Clients {
    /// An HTTP client with Shoal's user agent and timeout, and UDP trackers following `schedule`.
    pub(super) fn new(schedule: Schedule) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, udp: UdpTrackers::new(schedule), attempts: Vec::new() })
    }

    /// Announces to the first tracker that answers, tier by tier (BEP 12), HTTP and UDP
    /// alike; the tracker that answered moves to the front of its tier. URLs of other schemes
    /// are skipped. The error is that of the last tracker tried.
    pub(super) async fn announce(
        &mut self,
        tiers: &mut [Vec<String>],
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, String> {
        let mut last_error = "the torrent lists no HTTP or UDP tracker".to_string();
        for tier in tiers.iter_mut() {
            for i in 0..tier.len() {
                let url = &tier[i];
                let result = if url.starts_with("http://") || url.starts_with("https://") {
                    fetch(&self.http, &request.announce_url(url))
                        .await
                        .and_then(|body| AnnounceResponse::parse(&body).map_err(|e| e.to_string()))
                } else if url.starts_with("udp://") {
                    self.udp.announce(url, request).await.map_err(|e| e.to_string())
                } else {
                    continue;
                };
                self.attempts.push((url.clone(), result.as_ref().map(|r| r.peers.len()).map_err(Clone::clone)));
                if self.attempts.len() > 64 {
                    let _ = self.attempts.remove(0);
                }
                match result {
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
}

/// An HTTP error with its innermost cause ("error sending request: Connection refused").
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut innermost: &dyn std::error::Error = &e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let (top, inner) = (e.to_string(), innermost.to_string());
    if inner == top { top } else { format!("{top}: {inner}") }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client.get(url).send().await.map_err(describe)?;
    if !response.status().is_success() {
        return Err(format!("HTTP status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY {
            return Err(format!("reply larger than {MAX_REPLY} bytes"));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
