//! `shoal tracker`: runs the built-in HTTP tracker until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use shoal_engine::tracker::{TrackerConfig, TrackerServer};

use crate::args::TrackerArgs;
use crate::{Failure, interrupted};

pub(crate) async fn run(a: TrackerArgs) -> Result<(), Failure> {
    let listener =
        tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
    let config = TrackerConfig { interval: Duration::from_secs(a.interval.max(1)), ..Default::default() };
    let server = TrackerServer::start(listener, config).context("cannot start the tracker")?;
    println!("tracker listening on {}", server.announce_url());
    interrupted().await;
    Ok(())
}
