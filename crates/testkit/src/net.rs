//! Loopback ports for the servers a test starts.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// A TCP port on 127.0.0.1 that was free a moment ago, chosen by the operating system.
///
/// The port is released before it is returned, so another process could take it first; the
/// operating system hands ephemeral ports out in turn, which makes that rare. Within this test
/// process no port is returned twice, so tests running in parallel never collide with each
/// other. Prefer letting the program under test bind port 0 and report its port when it can.
///
/// # Panics
/// When no port can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a TCP port on 127.0.0.1: {e}"));
        let port = listener.local_addr().unwrap_or_else(|e| panic!("cannot read the bound address: {e}")).port();
        let mut given = given.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if given.insert(port) {
            return port;
        }
    }
    panic!("the operating system kept handing out ports this test process already used");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: HashSet<u16> = (0..20).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 20);
        for port in ports {
            assert_ne!(port, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free");
        }
    }
}
