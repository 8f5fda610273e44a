//! Loopback ports for the servers a test starts.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// A TCP port on 127.0.0.1 for a server a test starts, free when returned and reserved for this
/// test process until it exits.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), so no socket that
/// binds port 0 or connects out (every other test's clients and servers) can take one in the
/// meantime; and each is reserved with a lock file under the temporary folder, held until this
/// process exits, so tests running in parallel processes never hand out the same port. The port
/// is still checked by binding it (a program outside the tests may use it). Prefer letting the
/// program under test bind port 0 and report its port when it can.
///
/// # Panics
/// When no port can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    static HELD: OnceLock<Mutex<Vec<std::fs::File>>> = OnceLock::new();
    let held = HELD.get_or_init(Default::default);
    let (low, high) = reserved_range();
    let dir = std::env::temp_dir().join("shoal-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let mut state = seed();
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let port = low + (state % u64::from(high - low)) as u16;
        let Ok(lock) =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()))
        else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // another test process holds it
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(lock);
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between {low} and {high}");
}

/// Ports below the ephemeral range: from 10,000 up to its start (or 20,000–32,000 when the
/// range cannot be read).
fn reserved_range() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&start| start > 12_000);
    match start {
        Some(start) => (10_000, start),
        None => (20_000, 32_000),
    }
}

/// A different starting point in each process and call.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (u64::from(std::process::id()) << 32 ^ nanos) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: std::collections::HashSet<u16> = (0..20).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 20);
        let (low, high) = reserved_range();
        for port in ports {
            assert!((low..high).contains(&port), "{port} outside {low}..{high}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free");
        }
    }
}
