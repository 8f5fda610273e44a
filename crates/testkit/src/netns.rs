//! Network namespaces a test creates for itself, for what must not touch the outside network
//! (multicast local peer discovery): two namespaces joined by a veth pair, each with an address
//! on a private /24, loopback up and a multicast route. Needs root (`ip netns`); removed on drop.

use std::process::Command;

/// Two network namespaces joined by one link.
#[derive(Debug)]
pub struct NetPair {
    /// Namespace names.
    pub names: [String; 2],
    /// The address of each side on the link.
    pub addrs: [std::net::Ipv4Addr; 2],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl NetPair {
    /// Creates the pair on 10.213.`subnet`.0/24; `tag` (a short name), `subnet` and the process
    /// id make the names unique, so each test of a process must use its own `subnet`.
    pub fn create(tag: &str, subnet: u8) -> Result<NetPair, String> {
        let id = std::process::id() % 100_000;
        let names = [format!("shoal-{tag}-{id}-a"), format!("shoal-{tag}-{id}-b")];
        // Interface names hold at most 15 bytes.
        let links = [format!("sa{id}s{subnet}"), format!("sb{id}s{subnet}")];
        let addrs = [std::net::Ipv4Addr::new(10, 213, subnet, 1), std::net::Ipv4Addr::new(10, 213, subnet, 2)];
        let pair = NetPair { names: names.clone(), addrs };
        for n in &names {
            ip(&["netns", "add", n])?;
        }
        ip(&["link", "add", &links[0], "type", "veth", "peer", "name", &links[1]])?;
        for i in 0..2 {
            let (ns, link) = (&names[i], &links[i]);
            ip(&["link", "set", link, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", addrs[i]), "dev", link])?;
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", link])?;
        }
        Ok(pair)
    }

    /// `cmd` run inside namespace `side` (0 or 1).
    pub fn command(&self, side: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[side], program]);
        cmd
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and with it the other end.
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}
