//! Incoming connections beyond the session's limit are closed as soon as they are accepted,
//! before a byte is read, and counted: a crowd of dialling peers costs no more file
//! descriptors than the limit allows.

mod support;

use std::time::Duration;

use shoal_engine::{Session, SessionConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a refused connection may take to be closed.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// Reads until the peer closes; Err when it is still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Result<(), ()> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
        Ok(Ok(_)) => Err(()),
        Err(_) => Err(()),
    }
}

#[tokio::test]
async fn connections_beyond_the_session_limit_are_closed_at_once_and_counted() {
    let session = Session::start(SessionConfig { max_connections: 2, ..support::local() }).await.expect("session");
    let addr = session.listen_addr();
    // Two connections that never send a handshake: both are kept while they may still send one.
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // The listener takes connections in the order they arrived, so these find no room.
    for i in 0..3 {
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        assert!(closed_within(&mut extra, CLOSED_WITHIN).await.is_ok(), "extra connection {i} was not closed");
    }
    assert_eq!(session.refused_connections(), 3);
    for (i, stream) in kept.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_millis(200)).await.is_err(),
            "connection {i}, within the limit, was closed before its handshake timed out"
        );
    }
    // Once the first two are gone there is room again.
    drop(kept);
    let deadline = tokio::time::Instant::now() + CLOSED_WITHIN;
    loop {
        let mut next = TcpStream::connect(addr).await.expect("connect");
        if closed_within(&mut next, Duration::from_millis(200)).await.is_err() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no room after the first connections closed");
    }
}
