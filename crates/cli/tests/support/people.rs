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
