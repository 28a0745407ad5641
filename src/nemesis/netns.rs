//! One network namespace per server, joined by veth links to a bridge in the driver's
//! namespace, and the partitions the nemesis makes between them with nftables.
//!
//! Server `id` lives in namespace `zwn<pid>-<id>` as `10.A.B.<id>/24` on its `eth0`; the
//! bridge `zwb<pid>` holds `10.A.B.254`, so the driver's clients reach every server, and
//! the servers reach each other through the bridge. A cut from server `x` to server `y`
//! is an nftables rule in `x`'s namespace that drops what `x` sends to `y`'s address:
//! the packets vanish silently, as on a broken network. Client traffic (to and from
//! `.254`) is never cut.
//!
//! Everything made here is removed on drop, also when the run fails; namespaces and
//! bridges left by a driver that was SIGKILLed (its pid no longer exists) are removed the
//! next time one is made.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

const TABLE: &str = "zwnemesis";

/// The namespaces and links of one run.
pub struct Netns {
    pid: u32,
    subnet: (u8, u8),
    n: u64,
    /// Namespaces made so far (removed on drop).
    made: Vec<String>,
    bridge: Option<String>,
    /// Current cuts (from, to).
    cuts: BTreeSet<(u64, u64)>,
}

/// Runs `prog args`, returning its stdout, or a sentence with its stderr.
fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether partitions can be made here: root, `ip` and `nft` present, and a namespace can
/// be created. `Err` says why not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root (network namespaces need it)".into());
    }
    run("ip", &["-V"]).map_err(|e| format!("no `ip` command: {e}"))?;
    run("nft", &["--version"])
        .map_err(|e| format!("no `nft` command (apt-get install nftables): {e}"))?;
    let probe = format!("zwnprobe{}", std::process::id());
    run("ip", &["netns", "add", &probe])
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let nft = run(
        "ip",
        &[
            "netns", "exec", &probe, "nft", "add", "table", "inet", TABLE,
        ],
    );
    let _ = run("ip", &["netns", "del", &probe]);
    nft.map_err(|e| format!("nftables does not work in a namespace: {e}"))?;
    Ok(())
}

/// Removes namespaces and bridges left behind by drivers that no longer run.
fn remove_stale() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    let mut dead = BTreeSet::new();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("zwn") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
            dead.insert(pid.to_string());
        }
    }
    for pid in dead {
        let _ = run("ip", &["link", "del", &format!("zwb{pid}")]);
    }
}

/// A /24 in 10.0.0.0/8 that no interface here uses.
fn free_subnet(pid: u32) -> Result<(u8, u8), String> {
    let used = run("ip", &["-o", "-4", "addr", "show"])?;
    for k in 0..2000u32 {
        let a = 100 + ((pid + k) % 150) as u8;
        let b = ((pid / 150 + k * 7) % 250) as u8;
        if !used.contains(&format!(" 10.{a}.{b}.")) {
            return Ok((a, b));
        }
    }
    Err("no free 10.x.y.0/24 subnet".into())
}

impl Netns {
    /// Makes `n` namespaces and their links.
    ///
    /// # Errors
    /// The failing command's sentence; whatever was made is removed again.
    pub fn create(n: u64) -> Result<Netns, String> {
        remove_stale();
        let pid = std::process::id();
        let mut net = Netns {
            pid,
            subnet: free_subnet(pid)?,
            n,
            made: Vec::new(),
            bridge: None,
            cuts: BTreeSet::new(),
        };
        net.build()?;
        Ok(net)
    }

    fn build(&mut self) -> Result<(), String> {
        let bridge = format!("zwb{}", self.pid);
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        self.bridge = Some(bridge.clone());
        let host = format!("{}/24", self.host_ip());
        run("ip", &["addr", "add", &host, "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for id in 1..=self.n {
            let ns = self.name(id);
            run("ip", &["netns", "add", &ns])?;
            self.made.push(ns.clone());
            let outside = format!("zwv{}x{id}", self.pid);
            let inside = format!("zwp{}x{id}", self.pid);
            run(
                "ip",
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ],
            )?;
            run("ip", &["link", "set", &inside, "netns", &ns])?;
            run("ip", &["link", "set", &outside, "master", &bridge])?;
            run("ip", &["link", "set", &outside, "up"])?;
            let exec = |args: &[&str]| {
                let mut all = vec!["netns", "exec", ns.as_str()];
                all.extend_from_slice(args);
                run("ip", &all)
            };
            exec(&["ip", "link", "set", &inside, "name", "eth0"])?;
            exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", self.ip(id)),
                "dev",
                "eth0",
            ])?;
            exec(&["ip", "link", "set", "eth0", "up"])?;
            exec(&["ip", "link", "set", "lo", "up"])?;
            exec(&["nft", "add", "table", "inet", TABLE])?;
            exec(&[
                "nft",
                "add chain inet zwnemesis out { type filter hook output priority 0 ; policy accept ; }",
            ])?;
        }
        Ok(())
    }

    /// The namespace of server `id`.
    pub fn name(&self, id: u64) -> String {
        format!("zwn{}-{id}", self.pid)
    }

    /// Server `id`'s address.
    pub fn ip(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, id as u8)
    }

    /// The driver's address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, 254)
    }

    /// Namespace names, by id.
    pub fn names(&self) -> Vec<String> {
        (1..=self.n).map(|id| self.name(id)).collect()
    }

    /// Addresses, by id.
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        (1..=self.n).map(|id| self.ip(id)).collect()
    }

    /// Drops everything server `from` sends to server `to` (one way).
    ///
    /// # Errors
    /// The failing `nft` command's sentence.
    pub fn cut(&mut self, from: u64, to: u64) -> Result<(), String> {
        if from == to || !self.cuts.insert((from, to)) {
            return Ok(());
        }
        let rule = format!("add rule inet {TABLE} out ip daddr {} drop", self.ip(to));
        run("ip", &["netns", "exec", &self.name(from), "nft", &rule])?;
        Ok(())
    }

    /// Cuts both ways between every server of `a` and every server of `b`.
    ///
    /// # Errors
    /// As [`Netns::cut`].
    pub fn split(&mut self, a: &[u64], b: &[u64]) -> Result<(), String> {
        for &x in a {
            for &y in b {
                self.cut(x, y)?;
                self.cut(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every cut.
    ///
    /// # Errors
    /// The failing `nft` command's sentence.
    pub fn heal(&mut self) -> Result<(), String> {
        let from: BTreeSet<u64> = self.cuts.iter().map(|c| c.0).collect();
        for id in from {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.name(id),
                    "nft",
                    "flush",
                    "chain",
                    "inet",
                    TABLE,
                    "out",
                ],
            )?;
        }
        self.cuts.clear();
        Ok(())
    }

    /// The cuts in force, as `from->to`.
    pub fn describe(&self) -> String {
        let all: Vec<String> = self.cuts.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        all.join(" ")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.made.drain(..) {
            let _ = run("ip", &["netns", "del", &ns]);
        }
        if let Some(b) = self.bridge.take() {
            let _ = run("ip", &["link", "del", &b]);
        }
    }
}
