//! `shoal tracker`: runs the built-in tracker, HTTP and UDP on the same port, until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use shoal_engine::tracker::{TrackerConfig, TrackerServer};

use crate::args::TrackerArgs;
use crate::{Failure, interrupted};

pub(crate) async fn run(a: TrackerArgs) -> Result<(), Failure> {
    let config = TrackerConfig { interval: Duration::from_secs(a.interval.max(1)), ..Default::default() };
    let server = TrackerServer::bind(a.listen, config).await.context("cannot start the tracker")?;
    println!("tracker listening on {}", server.announce_url());
    if let Some(udp) = server.udp_addr() {
        println!("tracker listening on udp://{udp}");
    }
    interrupted().await;
    Ok(())
}
