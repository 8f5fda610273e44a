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

/// A plain seed of one file (an initial seed shows a lone peer everything only at its first
/// tick), its upload held to 16 pieces of 16 KiB a second so the order pieces come in shows.
async fn capped_seed(
    name: &str,
    data: Vec<u8>,
) -> (tempfile::TempDir, shoal_proto::Metainfo, Session, shoal_engine::Torrent) {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    let meta = folder_torrent(seed_dir.path(), &[(name, data)]);
    let mut config = local();
    config.swarm.initial_seeding = false;
    let seed = Session::start(config).await.expect("seed session");
    let seeding = add(&seed, &meta, seed_dir.path(), vec![]).await;
    seeding.set_limits(Some(256 * 1024), None);
    (seed_dir, meta, seed, seeding)
}

#[tokio::test]
async fn once_a_reader_saw_an_mp4_head_its_index_comes_before_the_media() {
    let data = index_at_end_mp4();
    let (_seed_dir, meta, seed, seeding) = capped_seed("film.mp4", data.clone()).await;
    let pieces = meta.info.pieces.len() as u32;

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

#[tokio::test]
async fn a_stream_told_where_it_will_read_has_those_pieces_asked_for_first() {
    // `shoal play` tells the torrent that the head of its file will be read before the player
    // opens the URL: the first requests go to the head, not to pieces picked at random.
    let (_seed_dir, meta, seed, seeding) = capped_seed("film.mkv", bytes(4 << 20, 5)).await;
    let pieces = meta.info.pieces.len() as u32;

    let leech_dir = tempfile::tempdir().expect("temp dir");
    let leech = Session::start(local()).await.expect("leech session");
    let t = add(&leech, &meta, leech_dir.path(), vec![]).await;
    let mut stream = t.stream(0).expect("a stream");
    stream.expect_read(0);
    t.add_peers(vec![seed.listen_addr()]);
    let since = std::time::Instant::now();
    let had = loop {
        let had: Vec<u32> = (0..pieces).filter(|&p| t.has_piece(p)).collect();
        if had.len() >= 8 {
            break had;
        }
        assert!(since.elapsed() < std::time::Duration::from_secs(30), "8 pieces within 30 s: {had:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    // The head (256 KiB, 16 pieces) in order, the guessed tail (64 KiB) after it; of 256.
    assert!(had.iter().all(|&p| p < 24 || p >= pieces - 4), "{had:?}");
    drop(stream);
    t.stop().await;
    seeding.stop().await;
}

/// Reads one peer message (keep-alives skipped) from a raw connection, within 10 s.
async fn next_message(sock: &mut tokio::net::TcpStream, buf: &mut bytes::BytesMut) -> shoal_proto::Message {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(msg) = shoal_proto::wire::decode_message(buf, 1 << 20).expect("a valid message") {
            if msg != shoal_proto::Message::KeepAlive {
                return msg;
            }
            continue;
        }
        let read = tokio::time::timeout_at(deadline, sock.read_buf(buf)).await.expect("a message within 10 s");
        assert!(read.expect("read") > 0, "the seed closed the connection");
    }
}

async fn send(sock: &mut tokio::net::TcpStream, msg: shoal_proto::Message) {
    use tokio::io::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    msg.encode(&mut out);
    sock.write_all(&out).await.expect("write");
}

#[tokio::test]
async fn a_capped_seed_shows_a_player_the_pieces_it_asks_for_ahead_of_queued_blocks() {
    use shoal_proto::extension::{ExtHandshake, SHOAL_WANTS, encode_wants};
    use shoal_proto::{Handshake, Message, PeerId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("temp dir");
    let meta = folder_torrent(dir.path(), &[("film.mp4", bytes(64 * 16_384, 5))]);
    // An initial seed (the default) capped at two blocks a second: blocks asked for queue up.
    let seed = Session::start(local()).await.expect("seed session");
    let seeding = add(&seed, &meta, dir.path(), vec![]).await;
    seeding.set_limits(Some(32 * 1024), None);

    // Another peer came first (a lone peer is shown every piece): the seed's first message to
    // it (`have none`) says it counts it.
    let mut other = tokio::net::TcpStream::connect(seed.listen_addr()).await.expect("connect");
    let hs = Handshake::new(meta.info_hash, PeerId(*b"-XX0000-streamtest01"));
    other.write_all(&hs.encode()).await.expect("handshake");
    let mut theirs = [0u8; Handshake::LEN];
    other.read_exact(&mut theirs).await.expect("handshake back");
    assert_eq!(next_message(&mut other, &mut bytes::BytesMut::new()).await, Message::HaveNone);

    let mut sock = tokio::net::TcpStream::connect(seed.listen_addr()).await.expect("connect");
    let hs = Handshake::new(meta.info_hash, PeerId(*b"-XX0000-streamtest00"));
    sock.write_all(&hs.encode()).await.expect("handshake");
    let mut theirs = [0u8; Handshake::LEN];
    sock.read_exact(&mut theirs).await.expect("handshake back");
    let mut ours = ExtHandshake::default();
    ours.m.insert(SHOAL_WANTS.to_string(), 7);
    send(&mut sock, Message::Extended { id: 0, payload: ours.encode().into() }).await;

    // The seed shows a few pieces, unchokes, and names its own id for shoal_wants.
    let mut buf = bytes::BytesMut::new();
    let (mut shown, mut unchoked, mut wants_id) = (Vec::new(), false, None);
    while !(unchoked && wants_id.is_some() && shown.len() >= 4) {
        match next_message(&mut sock, &mut buf).await {
            Message::Have(p) => shown.push(p),
            Message::Unchoke => unchoked = true,
            Message::Extended { id: 0, payload } => {
                wants_id = ExtHandshake::decode(&payload).expect("extension handshake").id_of(SHOAL_WANTS);
            }
            _ => {}
        }
    }
    send(&mut sock, Message::Interested).await;
    for &p in &shown[..4] {
        send(&mut sock, Message::Request { index: p, begin: 0, length: 16_384 }).await;
    }
    // Four blocks queue at two a second; a player now asks for a piece it was not shown.
    let wanted = (0..64).find(|p| !shown.contains(p)).expect("a hidden piece");
    let payload = encode_wants(&[wanted]);
    send(&mut sock, Message::Extended { id: wants_id.expect("shoal_wants"), payload: payload.into() }).await;
    let mut blocks = 0;
    loop {
        match next_message(&mut sock, &mut buf).await {
            Message::Have(p) if p == wanted => break,
            Message::Piece { .. } => blocks += 1,
            _ => {}
        }
    }
    // Without the `have` going ahead, it came after all four blocks (two seconds).
    assert!(blocks < 3, "the wanted piece was shown after {blocks} queued blocks");
    seeding.stop().await;
}

#[tokio::test]
async fn a_capped_seed_counts_as_uploaded_only_the_blocks_that_went_out() {
    use shoal_proto::{Handshake, Message, PeerId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("temp dir");
    let meta = folder_torrent(dir.path(), &[("film.mp4", bytes(64 * 16_384, 6))]);
    // Capped at two blocks a second: blocks asked for wait in the seed's send queue.
    let seed = Session::start(local()).await.expect("seed session");
    let seeding = add(&seed, &meta, dir.path(), vec![]).await;
    seeding.set_limits(Some(32 * 1024), None);

    let mut sock = tokio::net::TcpStream::connect(seed.listen_addr()).await.expect("connect");
    let hs = Handshake::new(meta.info_hash, PeerId(*b"-XX0000-counttest000"));
    sock.write_all(&hs.encode()).await.expect("handshake");
    let mut theirs = [0u8; Handshake::LEN];
    sock.read_exact(&mut theirs).await.expect("handshake back");
    let mut buf = bytes::BytesMut::new();
    let (mut shown, mut unchoked) = (Vec::new(), false);
    while !(unchoked && shown.len() >= 4) {
        match next_message(&mut sock, &mut buf).await {
            Message::Have(p) => shown.push(p),
            Message::Unchoke => unchoked = true,
            _ => {}
        }
    }
    send(&mut sock, Message::Interested).await;
    for &p in &shown[..4] {
        send(&mut sock, Message::Request { index: p, begin: 0, length: 16_384 }).await;
    }
    // The first block comes; one of the others is cancelled, then the peer goes away.
    while !matches!(next_message(&mut sock, &mut buf).await, Message::Piece { .. }) {}
    send(&mut sock, Message::Cancel { index: shown[3], begin: 0, length: 16_384 }).await;
    drop(sock);
    // What was cancelled or still queued when the connection ended did not go out: at most
    // the block received and one more (sent as the peer closed), not the four asked for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut stats = seeding.status().stats;
    while (stats.peers > 0 || stats.uploaded == 0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stats = seeding.status().stats;
    }
    assert_eq!(stats.peers, 0, "the peer is gone");
    let mut uploaded = stats.uploaded;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while uploaded > 2 * 16_384 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        uploaded = seeding.status().stats.uploaded;
    }
    assert!((16_384..=2 * 16_384).contains(&uploaded), "uploaded {uploaded} bytes");
    seeding.stop().await;
}
