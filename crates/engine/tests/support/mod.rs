//! What the engine's integration tests share: a session on 127.0.0.1, deterministic bytes, a
//! folder torrent made on disk, and adding a torrent with every option at its default.

#![allow(dead_code)]

use std::path::Path;

use shoal_engine::{AddTorrent, Session, SessionConfig, Torrent};
use shoal_proto::{CreateContent, CreateFile, CreateSpec, Metainfo, build_torrent};

pub(crate) fn local() -> SessionConfig {
    SessionConfig { listen: "127.0.0.1:0".parse().expect("address"), ..Default::default() }
}

pub(crate) fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect()
}

/// A torrent of `files` (name, bytes) under folder `set` in `dir`, 16 KiB pieces.
pub(crate) fn folder_torrent(dir: &Path, files: &[(&str, Vec<u8>)]) -> Metainfo {
    use sha1::{Digest, Sha1};
    let mut all = Vec::new();
    for (name, data) in files {
        std::fs::create_dir_all(dir.join("set")).expect("mkdir");
        std::fs::write(dir.join("set").join(name), data).expect("write");
        all.extend_from_slice(data);
    }
    let piece = 16 * 1024;
    let hashes: Vec<[u8; 20]> = all.chunks(piece).map(|c| Sha1::digest(c).into()).collect();
    let spec = CreateSpec {
        name: "set".into(),
        piece_length: piece as u32,
        content: CreateContent::MultiFile(
            files.iter().map(|(n, d)| CreateFile { path: vec![(*n).to_string()], length: d.len() as u64 }).collect(),
        ),
        trackers: vec![],
        comment: None,
        creation_date: None,
        private: false,
        web_seeds: Vec::new(),
        ssl_cert: None,
        sealed: None,
    };
    Metainfo::from_bytes(&build_torrent(&spec, &hashes)).expect("torrent parses")
}

pub(crate) async fn add(session: &Session, meta: &Metainfo, dir: &Path, peers: Vec<std::net::SocketAddr>) -> Torrent {
    session
        .add(AddTorrent {
            ssl: None,
            meta: meta.clone(),
            download_dir: dir.to_path_buf(),
            peers,
            use_trackers: false,
            file_priorities: None,
            sequential: false,
            resume: None,
        })
        .await
        .expect("add")
}
