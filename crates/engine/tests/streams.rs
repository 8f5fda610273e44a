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
