//! How Shoal's [`TorrentInfo`], [`PeerInfo`], [`SessionSettings`] and [`SessionStats`] look in
//! the Transmission RPC (spec sections 3.3, 4.1 and 4.2): field names, units (speeds in kB/s
//! of 1000 bytes, dates in Unix seconds) and the numeric codes for status, errors and
//! priorities. Fields Shoal has no notion of get the value Transmission uses for "none" (0,
//! empty string, empty list); `desiredAvailable` and `pieces` are not offered.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::api::{
    FileInfo, Goal, PeerInfo, Priority, SessionSettings, SessionStats, TorrentInfo, TorrentState, TransferTotals,
};

/// The RPC version Shoal speaks (Transmission 3.00).
pub const RPC_VERSION: u64 = 16;

/// `tr_torrent_activity` codes for `status`.
fn status(t: &TorrentInfo) -> u64 {
    match t.state {
        // A torrent is stopped while its files move.
        TorrentState::Paused | TorrentState::Error | TorrentState::Moving => 0,
        TorrentState::Checking => 2,
        TorrentState::Queued if t.left_bytes > 0 => 3,
        TorrentState::Queued => 5,
        // Transmission shows a magnet link fetching its metadata as downloading.
        TorrentState::Downloading | TorrentState::Metadata => 4,
        TorrentState::Seeding => 6,
    }
}

/// `error` code (0 none, 2 tracker error, 3 local error) and `errorString`.
fn error(t: &TorrentInfo) -> (u64, String) {
    if let Some(e) = &t.error {
        return (3, e.clone());
    }
    if t.state == TorrentState::Error {
        return (3, "error".to_owned());
    }
    match t.trackers.iter().find_map(|tr| tr.last_error.as_ref()) {
        Some(e) => (2, e.clone()),
        None => (0, String::new()),
    }
}

/// `eta`: seconds, -1 when not applicable (done), -2 when unknown.
fn eta(t: &TorrentInfo) -> i64 {
    match t.eta {
        Some(s) => i64::try_from(s).unwrap_or(i64::MAX),
        None if t.left_bytes == 0 => -1,
        None => -2,
    }
}

/// Transmission's `tr_getRatio` over what was uploaded and downloaded (or verified, for data
/// that was already there): -1 not available, -2 infinite.
fn ratio(t: &TorrentInfo) -> f64 {
    let down = if t.downloaded > 0 { t.downloaded } else { t.have_bytes };
    if down > 0 {
        t.uploaded as f64 / down as f64
    } else if t.uploaded > 0 {
        -2.0
    } else {
        -1.0
    }
}

/// Bytes per second to Transmission's kB/s (1000 bytes).
pub(crate) fn to_kbps(bytes: u64) -> u64 {
    bytes.div_ceil(1000)
}

fn file_priority(p: Priority) -> i64 {
    if p == Priority::High { 1 } else { 0 }
}

/// What a magnet link escapes: everything but RFC 3986's unreserved characters.
const MAGNET_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn magnet_link(t: &TorrentInfo) -> String {
    let xt = if t.info_hash.len() == 64 {
        format!("urn:btmh:1220{}", t.info_hash)
    } else {
        format!("urn:btih:{}", t.info_hash)
    };
    let mut link = format!("magnet:?xt={xt}&dn={}", utf8_percent_encode(&t.name, MAGNET_ESCAPE));
    for tracker in &t.trackers {
        link.push_str("&tr=");
        link.extend(utf8_percent_encode(&tracker.url, MAGNET_ESCAPE));
    }
    link
}

/// `scheme://host:port` of a tracker URL, as Transmission shows it.
fn tracker_host(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

fn flag_str(p: &PeerInfo) -> String {
    let mut flags = String::new();
    if p.am_interested {
        flags.push(if p.peer_choking { 'd' } else { 'D' });
    } else if !p.peer_choking {
        flags.push('K');
    }
    if p.peer_interested {
        flags.push(if p.am_choking { 'u' } else { 'U' });
    } else if !p.am_choking {
        flags.push('?');
    }
    if p.encrypted {
        flags.push('E');
    }
    if p.incoming {
        flags.push('I');
    }
    flags
}

fn peer(p: &PeerInfo) -> Value {
    json!({
        "address": p.address.ip().to_string(),
        "port": p.address.port(),
        "clientName": p.client,
        "clientIsChoked": p.peer_choking,
        "clientIsInterested": p.am_interested,
        "flagStr": flag_str(p),
        "isDownloadingFrom": p.am_interested && !p.peer_choking,
        "isEncrypted": p.encrypted,
        "isIncoming": p.incoming,
        "isUploadingTo": p.peer_interested && !p.am_choking,
        "isUTP": false,
        "peerIsChoked": p.am_choking,
        "peerIsInterested": p.peer_interested,
        "progress": p.progress,
        "rateToClient": p.download_rate,
        "rateToPeer": p.upload_rate,
    })
}

fn tracker_stats(t: &TorrentInfo) -> Value {
    let stats: Vec<Value> = t
        .trackers
        .iter()
        .enumerate()
        .map(|(i, tr)| {
            json!({
                "announce": tr.url,
                "announceState": if tr.next_announce.is_some() { 1 } else { 0 },
                "downloadCount": -1,
                "hasAnnounced": tr.last_announce.is_some() || tr.last_error.is_some(),
                "hasScraped": false,
                "host": tracker_host(&tr.url),
                "id": i,
                "isBackup": false,
                "lastAnnouncePeerCount": tr.last_peers.unwrap_or(0),
                "lastAnnounceResult": tr.last_error.clone().unwrap_or_else(|| "Success".to_owned()),
                "lastAnnounceStartTime": tr.last_announce.unwrap_or(0),
                "lastAnnounceSucceeded": tr.last_error.is_none() && tr.last_announce.is_some(),
                "lastAnnounceTime": tr.last_announce.unwrap_or(0),
                "lastAnnounceTimedOut": false,
                "lastScrapeResult": "",
                "lastScrapeStartTime": 0,
                "lastScrapeSucceeded": false,
                "lastScrapeTime": 0,
                "lastScrapeTimedOut": false,
                "leecherCount": -1,
                "nextAnnounceTime": tr.next_announce.unwrap_or(0),
                "nextScrapeTime": 0,
                "scrape": "",
                "scrapeState": 0,
                "seederCount": -1,
                "tier": tr.tier,
            })
        })
        .collect();
    Value::Array(stats)
}

/// The `torrent-get` fields Shoal offers.
pub const TORRENT_GET_FIELDS: &[&str] = &[
    "activityDate",
    "addedDate",
    "bandwidthPriority",
    "comment",
    "corruptEver",
    "creator",
    "dateCreated",
    "doneDate",
    "downloadDir",
    "downloadedEver",
    "downloadLimit",
    "downloadLimited",
    "editDate",
    "error",
    "errorString",
    "eta",
    "etaIdle",
    "files",
    "fileStats",
    "hashString",
    "haveUnchecked",
    "haveValid",
    "honorsSessionLimits",
    "id",
    "isFinished",
    "isPrivate",
    "isStalled",
    "labels",
    "leftUntilDone",
    "magnetLink",
    "manualAnnounceTime",
    "maxConnectedPeers",
    "metadataPercentComplete",
    "name",
    "peer-limit",
    "peers",
    "peersConnected",
    "peersFrom",
    "peersGettingFromUs",
    "peersSendingToUs",
    "percentDone",
    "pieceCount",
    "pieceSize",
    "priorities",
    "queuePosition",
    "rateDownload",
    "rateUpload",
    "recheckProgress",
    "secondsDownloading",
    "secondsSeeding",
    "seedIdleLimit",
    "seedIdleMode",
    "seedRatioLimit",
    "seedRatioMode",
    "sequential_download",
    "sizeWhenDone",
    "startDate",
    "status",
    "trackers",
    "trackerStats",
    "totalSize",
    "torrentFile",
    "uploadedEver",
    "uploadLimit",
    "uploadLimited",
    "uploadRatio",
    "wanted",
    "webseeds",
    "webseedsSendingToUs",
];

/// What some `torrent-get` fields need besides the torrent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Extra<'a> {
    /// The torrent's peers (fetched only when `peers` is asked for).
    pub(crate) peers: &'a [PeerInfo],
    /// The session's per-torrent connection limit, for torrents without their own.
    pub(crate) peer_limit: u32,
    /// The session's seeding ratio goal, for torrents without their own.
    pub(crate) session_ratio: Option<f64>,
    /// The session's idle seeding goal in seconds, for torrents without their own.
    pub(crate) session_idle: Option<u64>,
}

/// `tr_ratiolimit` / `tr_idlelimit`: 0 the session's goal, 1 the torrent's own, 2 none.
fn goal_mode<T>(goal: &Goal<T>) -> u64 {
    match goal {
        Goal::Session => 0,
        Goal::Limit(_) => 1,
        Goal::Unlimited => 2,
    }
}

/// Seconds to Transmission's whole minutes, rounded up.
pub(crate) fn to_minutes(seconds: u64) -> u64 {
    seconds.div_ceil(60)
}

/// The value of `torrent-get` field `name` for `t`; `None` for a field not in
/// [`TORRENT_GET_FIELDS`].
pub(crate) fn torrent_field(name: &str, t: &TorrentInfo, extra: Extra<'_>) -> Option<Value> {
    let not_skipped = |p: Priority| p != Priority::Skip;
    Some(match name {
        "id" => json!(t.id.0),
        "name" => json!(t.name),
        "hashString" => json!(t.info_hash),
        "status" => json!(status(t)),
        "error" => json!(error(t).0),
        "errorString" => json!(error(t).1),
        "percentDone" => json!(t.progress),
        "metadataPercentComplete" => json!(if t.piece_count > 0 { 1.0 } else { 0.0 }),
        "recheckProgress" => json!(if t.state == TorrentState::Checking { t.progress } else { 0.0 }),
        "totalSize" => json!(t.total_bytes),
        "sizeWhenDone" => json!(t.wanted_bytes),
        "leftUntilDone" => json!(t.left_bytes),
        "haveValid" => json!(t.have_bytes),
        "haveUnchecked" | "corruptEver" => json!(0),
        "eta" | "etaIdle" => json!(if name == "eta" { eta(t) } else { -1 }),
        "rateDownload" => json!(t.download_rate),
        "rateUpload" => json!(t.upload_rate),
        "downloadedEver" => json!(t.downloaded),
        "uploadedEver" => json!(t.uploaded),
        "uploadRatio" => json!(ratio(t)),
        "peersConnected" => json!(t.peers),
        "peersSendingToUs" => json!(t.peers_sending),
        "peersGettingFromUs" => json!(t.peers_receiving),
        "webseedsSendingToUs"
        | "bandwidthPriority"
        | "queuePosition"
        | "secondsDownloading"
        | "secondsSeeding"
        | "activityDate"
        | "doneDate"
        | "startDate"
        | "editDate"
        | "dateCreated"
        | "manualAnnounceTime" => json!(0),
        "peersFrom" => json!({
            "fromCache": 0, "fromDht": 0, "fromIncoming": 0, "fromLpd": 0, "fromLtep": 0, "fromPex": 0, "fromTracker": 0
        }),
        "downloadDir" => json!(t.download_dir),
        "addedDate" => json!(t.added_at),
        "isFinished" | "isStalled" | "isPrivate" => json!(false),
        "honorsSessionLimits" => json!(true),
        "comment" | "creator" | "torrentFile" => json!(""),
        "webseeds" => json!([]),
        "labels" => json!(t.labels),
        "sequential_download" => json!(t.sequential),
        "magnetLink" => json!(magnet_link(t)),
        "pieceCount" => json!(t.piece_count),
        "pieceSize" => json!(t.piece_length),
        "downloadLimit" => json!(to_kbps(t.download_limit.unwrap_or(0))),
        "downloadLimited" => json!(t.download_limit.is_some()),
        "uploadLimit" => json!(to_kbps(t.upload_limit.unwrap_or(0))),
        "uploadLimited" => json!(t.upload_limit.is_some()),
        "peer-limit" | "maxConnectedPeers" => json!(t.max_connections.unwrap_or(extra.peer_limit)),
        "seedRatioMode" => json!(goal_mode(&t.seed_ratio_limit)),
        "seedRatioLimit" => json!(t.seed_ratio_limit.limit().or(extra.session_ratio).unwrap_or(0.0)),
        "seedIdleMode" => json!(goal_mode(&t.seed_idle_limit)),
        "seedIdleLimit" => json!(to_minutes(t.seed_idle_limit.limit().or(extra.session_idle).unwrap_or(0))),
        "files" => {
            let file = |f: &FileInfo| json!({"bytesCompleted": f.have, "length": f.length, "name": f.path});
            t.files.iter().map(file).collect()
        }
        "fileStats" => {
            let priority = |p| json!(file_priority(p));
            let stat = |f: &FileInfo| json!({"bytesCompleted": f.have, "wanted": not_skipped(f.priority), "priority": priority(f.priority)});
            t.files.iter().map(stat).collect()
        }
        "priorities" => t.files.iter().map(|f| json!(file_priority(f.priority))).collect(),
        "wanted" => t.files.iter().map(|f| json!(not_skipped(f.priority))).collect(),
        "trackers" => t
            .trackers
            .iter()
            .enumerate()
            .map(|(i, tr)| json!({"announce": tr.url, "id": i, "scrape": "", "tier": tr.tier}))
            .collect(),
        "trackerStats" => tracker_stats(t),
        "peers" => extra.peers.iter().map(peer).collect(),
        _ => return None,
    })
}

fn totals(t: &TransferTotals) -> Value {
    json!({
        "uploadedBytes": t.uploaded,
        "downloadedBytes": t.downloaded,
        "filesAdded": t.torrents_added,
        "sessionCount": t.session_count,
        "secondsActive": t.seconds_active,
    })
}

/// `session-stats` arguments.
pub(crate) fn session_stats(s: &SessionStats) -> Map<String, Value> {
    let value = json!({
        "activeTorrentCount": s.active_torrent_count,
        "downloadSpeed": s.download_rate,
        "pausedTorrentCount": s.paused_torrent_count,
        "torrentCount": s.torrent_count,
        "uploadSpeed": s.upload_rate,
        "cumulative-stats": totals(&s.cumulative),
        "current-stats": totals(&s.current),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Every `session-get` argument. The version string starts with the Transmission version whose
/// RPC Shoal speaks, since clients compare it.
pub(crate) fn session(s: &SessionSettings, session_id: &str) -> Map<String, Value> {
    let pairs = [
        ("alt-speed-down", json!(0)),
        ("alt-speed-enabled", json!(false)),
        ("alt-speed-time-begin", json!(540)),
        ("alt-speed-time-day", json!(127)),
        ("alt-speed-time-enabled", json!(false)),
        ("alt-speed-time-end", json!(1020)),
        ("alt-speed-up", json!(0)),
        ("blocklist-enabled", json!(false)),
        ("blocklist-size", json!(0)),
        ("blocklist-url", json!("")),
        ("cache-size-mb", json!(0)),
        ("config-dir", json!("")),
        ("dht-enabled", json!(s.dht)),
        ("download-dir", json!(s.download_dir)),
        ("download-queue-enabled", json!(s.download_queue_size.is_some())),
        ("download-queue-size", json!(s.download_queue_size.unwrap_or(0))),
        // Transmission's names: Shoal's `off` speaks plain handshakes only, the closest is
        // "tolerated" (plain first).
        (
            "encryption",
            json!(match s.encryption.as_str() {
                "require" => "required",
                "off" => "tolerated",
                _ => "preferred",
            }),
        ),
        ("idle-seeding-limit", json!(to_minutes(s.seed_idle_limit.unwrap_or(0)))),
        ("idle-seeding-limit-enabled", json!(s.seed_idle_limit.is_some())),
        ("incomplete-dir", json!("")),
        ("incomplete-dir-enabled", json!(false)),
        ("lpd-enabled", json!(s.lsd)),
        ("peer-limit-global", json!(s.max_connections)),
        ("peer-limit-per-torrent", json!(s.max_connections_per_torrent)),
        ("peer-port", json!(s.listen_port)),
        ("peer-port-random-on-start", json!(false)),
        ("pex-enabled", json!(s.pex)),
        ("port-forwarding-enabled", json!(false)),
        ("queue-stalled-enabled", json!(false)),
        ("queue-stalled-minutes", json!(30)),
        ("rename-partial-files", json!(false)),
        ("rpc-version", json!(RPC_VERSION)),
        ("rpc-version-minimum", json!(1)),
        ("script-torrent-done-enabled", json!(false)),
        ("script-torrent-done-filename", json!("")),
        ("seed-queue-enabled", json!(s.seed_queue_size.is_some())),
        ("seed-queue-size", json!(s.seed_queue_size.unwrap_or(0))),
        ("seedRatioLimit", json!(s.seed_ratio_limit.unwrap_or(0.0))),
        ("seedRatioLimited", json!(s.seed_ratio_limit.is_some())),
        ("session-id", json!(session_id)),
        ("speed-limit-down", json!(to_kbps(s.download_limit.unwrap_or(0)))),
        ("speed-limit-down-enabled", json!(s.download_limit.is_some())),
        ("speed-limit-up", json!(to_kbps(s.upload_limit.unwrap_or(0)))),
        ("speed-limit-up-enabled", json!(s.upload_limit.is_some())),
        ("start-added-torrents", json!(true)),
        ("trash-original-torrent-files", json!(false)),
        (
            "units",
            json!({
                "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
                "speed-bytes": 1000,
                "size-units": ["kB", "MB", "GB", "TB"],
                "size-bytes": 1000,
                "memory-units": ["KiB", "MiB", "GiB", "TiB"],
                "memory-bytes": 1024
            }),
        ),
        ("utp-enabled", json!(s.utp != "off")),
        ("version", json!(format!("3.00 (Shoal {})", env!("CARGO_PKG_VERSION")))),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TorrentId, TrackerInfo};
    use crate::fake::torrent;

    #[test]
    fn every_listed_field_has_a_value() {
        let t = torrent(TorrentId(1), "x");
        for f in TORRENT_GET_FIELDS {
            assert!(torrent_field(f, &t, Extra::default()).is_some(), "{f}");
        }
        for f in ["desiredAvailable", "pieces", "bogus"] {
            assert_eq!(torrent_field(f, &t, Extra::default()), None, "{f}");
        }
    }

    #[test]
    fn status_codes_follow_transmission() {
        let mut t = torrent(TorrentId(1), "x");
        for (state, left, code) in [
            (TorrentState::Paused, 1, 0),
            (TorrentState::Error, 1, 0),
            (TorrentState::Checking, 1, 2),
            (TorrentState::Queued, 1, 3),
            (TorrentState::Downloading, 1, 4),
            (TorrentState::Queued, 0, 5),
            (TorrentState::Seeding, 0, 6),
        ] {
            t.state = state;
            t.left_bytes = left;
            assert_eq!(torrent_field("status", &t, Extra::default()), Some(json!(code)), "{state:?}");
        }
    }

    #[test]
    fn seeding_goals_labels_and_order() {
        let mut t = torrent(TorrentId(1), "x");
        let extra = Extra { session_ratio: Some(2.0), session_idle: Some(1800), ..Extra::default() };
        let field = |f: &str, t: &TorrentInfo| torrent_field(f, t, extra).expect("a field");
        assert_eq!((field("seedRatioMode", &t), field("seedRatioLimit", &t)), (json!(0), json!(2.0)));
        assert_eq!((field("seedIdleMode", &t), field("seedIdleLimit", &t)), (json!(0), json!(30)));
        t.seed_ratio_limit = Goal::Unlimited;
        t.seed_idle_limit = Goal::Limit(90);
        assert_eq!(field("seedRatioMode", &t), json!(2));
        assert_eq!((field("seedIdleMode", &t), field("seedIdleLimit", &t)), (json!(1), json!(2)));
        t.labels = vec!["tv".into(), "hd".into()];
        t.sequential = true;
        assert_eq!(field("labels", &t), json!(["tv", "hd"]));
        assert_eq!(field("sequential_download", &t), json!(true));
        t.state = TorrentState::Moving;
        assert_eq!(field("status", &t), json!(0));
    }

    #[test]
    fn numbers_have_the_types_transmission_remote_reads() {
        let t = torrent(TorrentId(1), "x");
        assert!(torrent_field("uploadRatio", &t, Extra::default()).expect("works").is_f64());
        assert!(torrent_field("percentDone", &t, Extra::default()).expect("works").is_f64());
        for f in ["id", "eta", "leftUntilDone", "sizeWhenDone", "rateDownload", "rateUpload", "status", "error"] {
            assert!(torrent_field(f, &t, Extra::default()).expect("works").is_i64(), "{f}");
        }
        assert_eq!(torrent_field("desiredAvailable", &t, Extra::default()), None);
    }

    #[test]
    fn errors_ratio_eta_and_magnet() {
        let mut t = torrent(TorrentId(1), "a b");
        t.trackers = vec![TrackerInfo {
            url: "udp://t.example:80/announce".into(),
            tier: 0,
            last_error: Some("timed out".into()),
            last_announce: None,
            next_announce: None,
            last_peers: None,
        }];
        assert_eq!(error(&t), (2, "timed out".to_owned()));
        t.error = Some("disk full".into());
        assert_eq!(error(&t), (3, "disk full".to_owned()));
        t.downloaded = 0;
        t.have_bytes = 0;
        t.uploaded = 0;
        assert_eq!(ratio(&t), -1.0);
        t.eta = None;
        assert_eq!(eta(&t), -2);
        t.left_bytes = 0;
        assert_eq!(eta(&t), -1);
        assert!(magnet_link(&t).starts_with(&format!("magnet:?xt=urn:btih:{}&dn=a%20b&tr=udp%3A", t.info_hash)));
        assert_eq!(tracker_host("http://t.example:6969/announce"), "http://t.example:6969");
    }
}
