//! Fetching a magnet link's metadata (BEP 9) from hostile and honest peers over real sockets on
//! 127.0.0.1: a peer whose dictionary fails the info-hash, and one announcing an absurd size,
//! cost only their own connection; the dictionary then comes from an honest Shoal seed, and
//! with liars alone the fetch fails with a reason instead of trusting a byte.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use shoal_engine::{AddTorrent, MetadataProgress, Session, SessionConfig};
use shoal_proto::extension::{ExtHandshake, MetadataMessage, UT_METADATA};
use shoal_proto::magnet::Magnet;
use shoal_proto::metainfo::{CreateContent, CreateSpec, build_torrent};
use shoal_proto::wire::decode_message;
use shoal_proto::{Handshake, InfoHash, Message, Metainfo, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(60);

fn local() -> SessionConfig {
    SessionConfig { listen: "127.0.0.1:0".parse().expect("address"), ..Default::default() }
}

/// A one-file torrent of `data` with 16 KiB pieces, and the folder holding the data.
fn torrent_of(data: &[u8], dir: &std::path::Path) -> Metainfo {
    use sha1::{Digest, Sha1};
    let piece = 16 * 1024;
    let hashes: Vec<[u8; 20]> = data.chunks(piece).map(|c| Sha1::digest(c).into()).collect();
    let spec = CreateSpec {
        name: "blob.bin".into(),
        piece_length: piece as u32,
        content: CreateContent::SingleFile { length: data.len() as u64 },
        trackers: vec![],
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    std::fs::write(dir.join("blob.bin"), data).expect("write data");
    Metainfo::from_bytes(&build_torrent(&spec, &hashes)).expect("torrent parses")
}

/// A fake peer serving `info` as the metadata of `info_hash` while announcing `size` bytes,
/// to every connection, until dropped.
async fn liar(info_hash: InfoHash, size: u32, info: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let info = info.clone();
            tokio::spawn(async move {
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).await.is_err() {
                    return;
                }
                let mut reserved = [0u8; 8];
                reserved[5] = 0x10;
                let ours = Handshake { reserved, info_hash, peer_id: PeerId::generate([7; 12]) };
                let mut out = BytesMut::from(&ours.encode()[..]);
                let ext = ExtHandshake {
                    m: [(UT_METADATA.to_string(), 3u8)].into_iter().collect(),
                    metadata_size: Some(size),
                    ..Default::default()
                };
                Message::Extended { id: 0, payload: ext.encode().into() }.encode(&mut out);
                if s.write_all(&out).await.is_err() {
                    return;
                }
                let mut buf = BytesMut::new();
                loop {
                    match decode_message(&mut buf, 1 << 20) {
                        Ok(Some(Message::Extended { id: 3, payload })) => {
                            if let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&payload) {
                                let start = (piece as usize * 16384).min(info.len());
                                let end = (start + 16384).min(info.len());
                                let data = info[start..end].to_vec().into();
                                let msg = MetadataMessage::Data { piece, total_size: size, data };
                                let mut out = BytesMut::new();
                                Message::Extended { id: 1, payload: msg.encode().into() }.encode(&mut out);
                                if s.write_all(&out).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            buf.reserve(16384);
                            match s.read_buf(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    addr
}

async fn fetch(session: &Session, magnet: &Magnet) -> Result<Metainfo, String> {
    let (tx, _rx) = tokio::sync::watch::channel(MetadataProgress::default());
    match tokio::time::timeout(DEADLINE, session.fetch_metadata(magnet, vec![], false, tx)).await {
        Ok(Ok((meta, _))) => Ok(meta),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => panic!("the metadata fetch did not end within {DEADLINE:?}"),
    }
}

#[tokio::test]
async fn liars_cost_only_their_connection_and_the_honest_seed_provides() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = torrent_of(&data, dir.path());
    let info = meta.info_bytes.to_vec();
    let hash = meta.info_hash;

    // Same size, one byte changed: fails the info-hash. And an absurd announced size.
    let mut forged = info.clone();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    let wrong = liar(hash, info.len() as u32, forged).await;
    let huge = liar(hash, u32::MAX, info.clone()).await;

    let leecher = Session::start(local()).await.expect("session");
    let mut only_liars = Magnet::new(hash);
    only_liars.peers = vec![wrong.to_string(), huge.to_string()];
    let err = fetch(&leecher, &only_liars).await.expect_err("liars alone must not provide metadata");
    assert!(err.contains(&hash.to_hex()) && err.contains("2 peers"), "{err}");

    let seed = Session::start(local()).await.expect("session");
    let _torrent = seed
        .add(AddTorrent {
            ssl: None,
            meta: meta.clone(),
            download_dir: dir.path().to_path_buf(),
            peers: vec![],
            use_trackers: false,
            file_priorities: None,
            sequential: false,
            resume: None,
        })
        .await
        .expect("seed");
    let mut with_seed = only_liars.clone();
    with_seed.peers.push(seed.listen_addr().to_string());
    let got = fetch(&leecher, &with_seed).await.expect("the honest seed provides the metadata");
    assert_eq!(got.info_hash, hash);
    assert_eq!(got.info_bytes, meta.info_bytes);
}
