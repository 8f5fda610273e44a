//! Streams of a torrent are bounded: anyone who can reach an HTTP endpoint can open one, and
//! each holds a window of piece deadlines.

mod support;

use shoal_engine::stream::MAX_STREAMS;
use shoal_engine::{Session, StreamError};
use support::{add, bytes, folder_torrent, local};

#[tokio::test]
async fn at_most_max_streams_are_open_on_a_torrent_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = folder_torrent(dir.path(), &[("a.bin", bytes(100_000, 1))]);
    let session = Session::start(local()).await.expect("session");
    let torrent = add(&session, &meta, dir.path(), vec![]).await;
    let mut open: Vec<_> = (0..MAX_STREAMS).map(|_| torrent.stream(0).expect("a stream")).collect();
    assert_eq!(torrent.stream(0).err(), Some(StreamError::TooMany));
    assert!(matches!(torrent.stream(1).err(), Some(StreamError::NoSuchFile { index: 1, count: 1 })));
    // A stream that goes away makes room, and what is open still reads.
    open.pop();
    let mut again = torrent.stream(0).expect("room again");
    assert_eq!(again.read(0, 10).await.expect("read").as_ref(), &bytes(100_000, 1)[..10]);
    drop(open);
    torrent.stop().await;
}

/// An MP4 written without `faststart`: its index (`moov`) follows 2 MiB of media data.
fn index_at_end_mp4() -> Vec<u8> {
    let media = 2 << 20;
    let mut file = Vec::new();
    file.extend_from_slice(&32u32.to_be_bytes());
    file.extend_from_slice(b"ftypisom");
    file.extend_from_slice(&[0; 20]);
    file.extend_from_slice(&(8 + media as u32).to_be_bytes());
    file.extend_from_slice(b"mdat");
    file.extend_from_slice(&bytes(media, 3));
    file.extend_from_slice(&(64u32 << 10).to_be_bytes());
    file.extend_from_slice(b"moov");
    file.extend_from_slice(&bytes((64 << 10) - 8, 4));
    file
}

#[tokio::test]
async fn once_a_reader_saw_an_mp4_head_its_index_comes_before_the_media() {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let data = index_at_end_mp4();
    let meta = folder_torrent(seed_dir.path(), &[("film.mp4", data.clone())]);
    let pieces = meta.info.pieces.len() as u32;
    // A plain seed (an initial seed shows a lone peer everything only at its first tick).
    let mut config = local();
    config.swarm.initial_seeding = false;
    let seed = Session::start(config).await.expect("seed session");
    let seeding = add(&seed, &meta, seed_dir.path(), vec![]).await;
    // 16 pieces a second: the order the pieces come in shows.
    seeding.set_limits(Some(256 * 1024), None);

    let leech_dir = tempfile::tempdir().expect("temp dir");
    let leech = Session::start(local()).await.expect("leech session");
    let t = add(&leech, &meta, leech_dir.path(), vec![seed.listen_addr()]).await;
    let mut head = t.stream(0).expect("a stream");
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), head.read(0, 64)).await;
    assert_eq!(first.expect("the head within 30 s").expect("read").as_ref(), &data[..64]);
    // The last four pieces hold the index.
    let index = pieces - 4..pieces;
    let since = std::time::Instant::now();
    while !index.clone().all(|p| t.has_piece(p)) {
        assert!(since.elapsed() < std::time::Duration::from_secs(30), "the index arrives within 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let media_pieces = (1..pieces - 4).filter(|&p| t.has_piece(p)).count();
    // Without the index known, the head's 16 pieces (256 KiB) came first and the guessed tail
    // after them.
    println!("{media_pieces} media pieces came before the index");
    assert!(media_pieces < 12, "{media_pieces} media pieces came before the index");
    drop(head);
    t.stop().await;
    seeding.stop().await;
}
