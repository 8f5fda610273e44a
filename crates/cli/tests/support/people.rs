//! Helpers for the tests of identities, groups, pushes and search: running `shoal` as one
//! person (a data folder of their own) and making people members of a group. Included with
//! `#[path]` by each test file that needs it; not every file uses every helper.
#![allow(dead_code)]

use std::path::Path;

use shoal_testkit::run_captured;

use crate::interop::{TRANSFER_TIMEOUT, ok, shoal};

/// Runs `shoal ARGS --data-dir DIR` to the end; returns (exit code, stdout, stderr).
pub(crate) fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = shoal(args);
    cmd.arg("--data-dir").arg(dir);
    let out = ok(run_captured(cmd, TRANSFER_TIMEOUT));
    (out.status.code().unwrap_or(-1), out.stdout, out.stderr)
}

/// Like [`run`], and the command must succeed; returns stdout.
pub(crate) fn run_ok(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(dir, args);
    assert_eq!(code, 0, "shoal {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// The identity ID of the person whose data folder is `dir` (made on first use).
pub(crate) fn identity(dir: &Path) -> String {
    run_ok(dir, &["identity"]).trim().to_string()
}

/// `member` joins `group` of `authority` through an invitation file.
pub(crate) fn invite_and_join(authority: &Path, group: &str, member: &Path) {
    let id = identity(member);
    let invitation = member.join("invitation.txt");
    run_ok(authority, &["group", "invite", group, &id, "-o", s(&invitation)]);
    run_ok(member, &["group", "join", s(&invitation)]);
}

/// A path as the `&str` a command line takes.
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One JSON-RPC call to a daemon on 127.0.0.1:`port` (with `token` as a bearer credential);
/// returns the whole reply.
pub(crate) fn rpc(port: u16, token: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the daemon");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n\
         {auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    let json = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

/// A .torrent file's bytes in base64, as `torrent.add` takes them.
pub(crate) fn torrent_b64(torrent: &Path) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(torrent).expect("torrent"))
}
