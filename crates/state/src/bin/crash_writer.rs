//! Test helper for `tests/crash.rs`: writes steps to the store at the path given as the only
//! argument, reporting `committed N` after each, until it is killed.

#[path = "../../tests/support/crash_steps.rs"]
mod crash_steps;

use std::io::Write;
use std::path::PathBuf;

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: crash_writer DATABASE");
        std::process::exit(2);
    };
    let store = match shoal_state::Store::open(&path) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("crash_writer: {e}");
            std::process::exit(1);
        }
    };
    let first = store.torrents().map(|t| t.len() as u64).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for i in first.. {
        crash_steps::step(&store, i);
        if writeln!(out, "committed {i}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}
