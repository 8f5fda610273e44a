//! The messages of the push protocol between `shoal push` and a server peer, and their
//! framing: a 4-byte big-endian length, then that many bytes of JSON. A [`Request`] goes from
//! the pusher, a [`Reply`] comes back, in turn. The TLS and the connection handling are the
//! daemon's (`shoal_daemon::push` and `shoal_daemon::server`); what is here is pure, so that
//! the decoders of what the other side sends can be fuzzed alone.

use serde::{Deserialize, Serialize};

/// Largest frame either side accepts (a request carries a whole .torrent, base64).
pub const MAX_FRAME: usize = 16 << 20;

/// What a pusher asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Keep this torrent: fetch it from the caller (on `port` at the connection's address)
    /// and from any other peer.
    Push {
        /// The .torrent file, base64 (standard alphabet, padded).
        torrent: String,
        /// The port the caller serves the torrent on (its TLS port for a group share).
        port: u16,
        /// The caller's member certificates (PEM), which a server allowing `group:NAME`
        /// checks against its own copy of that group's authority.
        #[serde(default)]
        members: Vec<String>,
    },
    /// How far the server is with one of the caller's pushes.
    Status {
        /// Its info-hash (hex) or a unique prefix of at least 8 digits.
        torrent: String,
    },
    /// The caller's pushes.
    List,
    /// Drop one of the caller's pushes; the server deletes the data when nobody else pushed it.
    Withdraw {
        /// Its info-hash (hex) or a unique prefix of at least 8 digits.
        torrent: String,
    },
}

/// One push as the server reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushInfo {
    /// Info-hash, lower-case hex.
    pub info_hash: String,
    /// The torrent's name.
    pub name: String,
    /// Total bytes.
    pub size: u64,
    /// Bytes the server holds verified.
    pub have: u64,
    /// What the torrent is doing on the server (`downloading`, `seeding`, `checking`, ...).
    pub state: String,
    /// The server holds a verified copy of every byte.
    pub held: bool,
    /// Why the server cannot go on with it, if it cannot.
    pub error: Option<String>,
    /// When it was pushed, Unix seconds.
    pub pushed_at: u64,
    /// The group whose members alone may fetch it, by its name on the server.
    pub group: Option<String>,
}

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The push is taken (or was already): the server is fetching or holds it.
    Pushed {
        /// The push.
        push: PushInfo,
        /// Whether this identity had pushed it before.
        again: bool,
    },
    /// One push.
    Status {
        /// The push.
        push: PushInfo,
    },
    /// The caller's pushes, oldest first, with its quota.
    List {
        /// The pushes.
        pushes: Vec<PushInfo>,
        /// Bytes the caller may keep here (`None`: no limit).
        quota: Option<u64>,
    },
    /// The push is gone (and the data, when nobody else had pushed it).
    Withdrawn {
        /// The push as it was.
        push: PushInfo,
        /// Whether the data was deleted.
        deleted: bool,
    },
    /// Refused or failed; the message says why.
    Error {
        /// What went wrong, for the user.
        message: String,
    },
}

/// The length a frame header announces; an error when it is over [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, String> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(format!("a frame of {len} bytes is over the limit of {MAX_FRAME}"));
    }
    Ok(len)
}

/// A frame's JSON body.
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("a malformed message: {e}"))
}

/// The first frame in `bytes` and the bytes it took; `Ok(None)` when more bytes are needed.
pub fn decode_frame<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<Option<(T, usize)>, String> {
    let Some(header) = bytes.get(..4) else { return Ok(None) };
    let len = frame_len([header[0], header[1], header[2], header[3]])?;
    let Some(body) = bytes.get(4..4 + len) else { return Ok(None) };
    decode_body(body).map(|v| Some((v, 4 + len)))
}

/// One frame holding `value`.
pub fn encode_frame(value: &impl Serialize) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    if body.len() > MAX_FRAME {
        return Err(format!("a message of {} bytes is over the limit of {MAX_FRAME}", body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_partial_or_oversized_ones_are_told_apart() {
        let request = Request::Withdraw { torrent: "ab".repeat(20) };
        let frame = encode_frame(&request).expect("encode");
        assert_eq!(decode_frame::<Request>(&frame), Ok(Some((request, frame.len()))));
        assert_eq!(decode_frame::<Request>(&frame[..frame.len() - 1]), Ok(None));
        assert_eq!(decode_frame::<Request>(&frame[..3]), Ok(None));
        let huge = ((MAX_FRAME as u32) + 1).to_be_bytes();
        assert!(decode_frame::<Request>(&huge).expect_err("oversized").contains("over the limit"));
        let mut bad = 3u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"{x}");
        assert!(decode_frame::<Request>(&bad).is_err());
        let reply = Reply::Error { message: "no".into() };
        let frame = encode_frame(&reply).expect("encode");
        assert_eq!(decode_frame::<Reply>(&frame).expect("decode").map(|(r, _)| r), Some(reply));
    }
}
