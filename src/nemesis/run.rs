//! One run: start an ensemble, let clients hammer a few znodes while the nemesis breaks
//! servers on a schedule, heal everything, read every key once more, then check.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checker::{self, Report};
use super::cluster::{self, Cluster, Placement, Spec};
use super::history::{Answer, Call, Op, Outcome, Seen};
use super::netns::{self, Netns};
use crate::client::{Client, ClientError, Znode};

/// The parent of every znode the clients touch.
pub const ROOT: &str = "/nemesis";

/// Which faults the nemesis may inject.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Faults {
    /// SIGKILL (and restart) of the leader and of followers.
    pub kill: bool,
    /// SIGSTOP (and SIGCONT) of the leader and of followers.
    pub pause: bool,
    /// Network partitions (needs root, `ip netns` and `nft`).
    pub partition: bool,
}

/// Whether to put the servers in network namespaces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NetMode {
    /// When possible (root, `ip`, `nft`); otherwise loopback, and no partitions.
    Auto,
    /// Never: loopback, no partitions.
    Off,
    /// Always; the run fails when it is not possible.
    Required,
}

/// What one run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Servers in the ensemble (3 or 5 make sense).
    pub servers: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Persistent znodes (registers) the clients share.
    pub keys: usize,
    /// Ephemeral znodes, each created in one client's session at a time.
    pub ephemeral_keys: usize,
    /// How long the clients run at least.
    pub duration: Duration,
    /// Operations to complete at least (the run goes on past `duration` until then).
    pub min_ops: usize,
    /// The run fails if `min_ops` is not reached by then.
    pub max_duration: Duration,
    /// Faults allowed.
    pub faults: Faults,
    /// Mean time between the end of one fault and the start of the next.
    pub fault_gap: Duration,
    /// Mean time a fault lasts before it is healed.
    pub fault_length: Duration,
    /// Seed of every random choice (clients and nemesis).
    pub seed: u64,
    /// Client read/write timeout: past it the outcome is unknown.
    pub op_timeout: Duration,
    /// Timeout the clients ask for their sessions, in ms.
    pub session_timeout_ms: u32,
    /// Namespaces or loopback.
    pub net: NetMode,
    /// The server binary, its tuning and where its data goes.
    pub spec: Spec,
    /// Set (by a signal handler) to end the run early, healing and cleaning up.
    pub interrupt: Arc<AtomicBool>,
}

/// What a run did and found.
pub struct Outcomes {
    /// The history.
    pub ops: Vec<Op>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u32>,
    /// Why partitions were not injected, if they were wanted and were not.
    pub partitions_skipped: Option<String>,
    /// The checker's verdict.
    pub report: Report,
    /// How long the clients ran.
    pub elapsed: Duration,
    /// Servers that exited on their own during the run.
    pub crashes: Vec<String>,
    /// How long the check took.
    pub check_time: Duration,
}

impl Outcomes {
    /// Operations by outcome kind: (ok, fail, info).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok { .. } => c.0 += 1,
                Outcome::Fail { .. } => c.1 += 1,
                Outcome::Info { .. } => c.2 += 1,
            }
        }
        c
    }

    /// Operations by call name and outcome kind.
    pub fn by_call(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        let mut m = BTreeMap::new();
        for op in &self.ops {
            *m.entry((op.call.name(), op.outcome.kind())).or_insert(0) += 1;
        }
        m
    }
}

/// A small deterministic generator (splitmix64).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % n.max(1)
    }

    /// A duration uniformly in [mean/2, 3·mean/2].
    pub fn around(&mut self, mean: Duration) -> Duration {
        let ms = mean.as_millis() as u64;
        Duration::from_millis(ms / 2 + self.below(ms + 1))
    }
}

/// Runs once, writing progress to `log`.
///
/// # Errors
/// A sentence when the run itself could not be carried out (the cluster did not start,
/// namespaces were required and could not be made, too few operations completed). An
/// anomaly is not an error: it is in the returned report.
pub fn run(cfg: &Config, log: &mut dyn Write) -> Result<Outcomes, String> {
    let mut partitions_skipped = None;
    let want_ns = match cfg.net {
        NetMode::Off => {
            if cfg.faults.partition {
                partitions_skipped = Some("namespaces are off (--no-netns)".to_string());
            }
            false
        }
        NetMode::Required => {
            netns::available().map_err(|e| format!("network namespaces are required: {e}"))?;
            true
        }
        NetMode::Auto => match netns::available() {
            Ok(()) => true,
            Err(why) => {
                if cfg.faults.partition {
                    partitions_skipped = Some(why);
                }
                false
            }
        },
    };
    // Declared before the cluster, so it is dropped after the servers are killed.
    let mut net = if want_ns {
        Some(Netns::create(cfg.servers)?)
    } else {
        None
    };
    let placement = match &net {
        Some(n) => Placement::Namespaces {
            names: n.names(),
            ips: n.ips(),
        },
        None => Placement::Loopback(cluster::free_loopback(cfg.servers)?),
    };
    let mut cluster = Cluster::new(cfg.spec.clone(), placement)?;
    let _ = writeln!(
        log,
        "starting {} servers ({}) in {}",
        cfg.servers,
        if net.is_some() {
            "one network namespace each"
        } else {
            "loopback"
        },
        cluster.dir().display()
    );
    let leader = cluster.start_all(Duration::from_secs(60))?;
    let _ = writeln!(log, "all serving under leader {leader}");
    let result = drive(cfg, &mut cluster, net.as_mut(), log);
    let mut out = match result {
        Ok(out) => out,
        Err(e) => {
            for id in cluster.ids() {
                let _ = writeln!(
                    log,
                    "--- server {id} log tail:\n{}",
                    cluster.log_tail(id, 30)
                );
            }
            return Err(e);
        }
    };
    out.partitions_skipped = partitions_skipped.or(if cfg.faults.partition && net.is_none() {
        Some("namespaces are off".into())
    } else {
        None
    });
    if !out.report.anomalies.is_empty() || !out.crashes.is_empty() {
        cluster.keep();
        let _ = writeln!(log, "server logs kept in {}", cluster.dir().display());
    }
    Ok(out)
}

/// Shared between the clients and the driver.
struct Shared {
    stop: AtomicBool,
    next_id: AtomicUsize,
    completed: AtomicUsize,
    start: Instant,
}

fn drive(
    cfg: &Config,
    cluster: &mut Cluster,
    mut net: Option<&mut Netns>,
    log: &mut dyn Write,
) -> Result<Outcomes, String> {
    let urls: Vec<String> = cluster.ids().iter().map(|&id| cluster.url(id)).collect();
    make_root(&urls, cfg.op_timeout)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        next_id: AtomicUsize::new(0),
        completed: AtomicUsize::new(0),
        start: Instant::now(),
    });
    let mut handles = Vec::new();
    for c in 0..cfg.clients {
        let worker = Worker::new(c, cfg, &urls, shared.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("nemesis-client-{c}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("cannot start a client thread: {e}"))?,
        );
    }
    let mut nemesis = Nemesis {
        rng: Rng::new(cfg.seed ^ 0x006E_656D_6573_6973),
        faults: BTreeMap::new(),
        active: None,
        crashes: Vec::new(),
    };
    let ended = nemesis.schedule(cfg, cluster, &mut net, &shared, log);
    nemesis.heal(cluster, &mut net, log);
    shared.stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for h in handles {
        ops.extend(
            h.join()
                .map_err(|_| "a client thread panicked".to_string())?,
        );
    }
    let elapsed = shared.start.elapsed();
    ended?;
    // Everything healed: each key is read once more, so unknown writes are pinned down.
    cluster.wait_all_serving(Duration::from_secs(60))?;
    let mut last = Worker::new(cfg.clients, cfg, &urls, shared.clone());
    for key in last.keys.clone().iter().chain(&last.eph_keys.clone()) {
        last.final_read(key);
    }
    ops.extend(last.ops);
    ops.sort_by_key(|o| o.id);
    nemesis.crashes.extend(
        cluster
            .crashed()
            .into_iter()
            .map(|(id, status)| format!("server {id} exited on its own: {status}")),
    );
    let _ = writeln!(log, "checking {} operations", ops.len());
    let checking = Instant::now();
    let report = checker::check(&ops);
    let check_time = checking.elapsed();
    Ok(Outcomes {
        ops,
        faults: nemesis.faults,
        partitions_skipped: None,
        report,
        elapsed,
        crashes: nemesis.crashes,
        check_time,
    })
}

/// Creates the parent znode, trying every server until one says it exists.
fn make_root(urls: &[String], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    for url in urls.iter().cycle() {
        let c = Client::with_timeouts(url, Duration::from_secs(1), timeout);
        match c.create(ROOT, b"") {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("node_exists") => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("cannot create {ROOT}: {last}"))
}

// ---------------------------------------------------------------------------------------
// The nemesis.

/// A fault in force, and how to heal it.
enum Active {
    Killed(Vec<u64>),
    Paused(u64),
    Partitioned,
}

struct Nemesis {
    rng: Rng,
    faults: BTreeMap<String, u32>,
    active: Option<Active>,
    crashes: Vec<String>,
}

impl Nemesis {
    /// Injects and heals faults until the clients have run long enough.
    fn schedule(
        &mut self,
        cfg: &Config,
        cluster: &mut Cluster,
        net: &mut Option<&mut Netns>,
        shared: &Shared,
        log: &mut dyn Write,
    ) -> Result<(), String> {
        let mut kinds: Vec<&str> = Vec::new();
        if cfg.faults.kill {
            kinds.extend(["kill-leader", "kill-follower", "kill-majority", "kill-all"]);
        }
        if cfg.faults.pause {
            kinds.extend(["pause-leader", "pause-follower"]);
        }
        if cfg.faults.partition && net.is_some() {
            kinds.extend([
                "partition-leader",
                "partition-halves",
                "partition-leader-sends",
                "partition-leader-hears",
            ]);
        }
        let done = |shared: &Shared| {
            if cfg.interrupt.load(Ordering::Relaxed) {
                return true;
            }
            let t = shared.start.elapsed();
            let n = shared.completed.load(Ordering::Relaxed);
            t >= cfg.duration && n >= cfg.min_ops
        };
        let mut progress_at = Instant::now();
        loop {
            let gap = self.rng.around(cfg.fault_gap);
            if self.wait(gap, shared, &done, &mut progress_at, log) {
                return Ok(());
            }
            if cfg.interrupt.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if shared.start.elapsed() > cfg.max_duration {
                return Err(format!(
                    "only {} operations completed in {:?} (wanted {})",
                    shared.completed.load(Ordering::Relaxed),
                    cfg.max_duration,
                    cfg.min_ops
                ));
            }
            if !kinds.is_empty() {
                let kind = kinds[self.rng.below(kinds.len() as u64) as usize];
                let t = shared.start.elapsed().as_secs_f64();
                match self.inject(kind, cluster, net) {
                    Ok(what) => {
                        let _ = writeln!(log, "{t:8.3}s nemesis: {what}");
                        *self.faults.entry(kind.to_string()).or_insert(0) += 1;
                    }
                    Err(e) => {
                        let _ = writeln!(log, "{t:8.3}s nemesis: {kind} not injected: {e}");
                    }
                }
                let length = self.rng.around(cfg.fault_length);
                let stop_early = self.wait(length, shared, &done, &mut progress_at, log);
                self.heal(cluster, net, log);
                for (id, status) in cluster.crashed() {
                    let msg = format!("server {id} exited on its own: {status}");
                    let _ = writeln!(log, "{msg}\n{}", cluster.log_tail(id, 20));
                    self.crashes.push(msg);
                    cluster.start(id)?;
                }
                if cfg.interrupt.load(Ordering::Relaxed) {
                    return Err("interrupted".into());
                }
                if stop_early {
                    return Ok(());
                }
            }
        }
    }

    /// Waits `d` (in short steps, printing progress every 5 s); true once `done`.
    fn wait(
        &self,
        d: Duration,
        shared: &Shared,
        done: &dyn Fn(&Shared) -> bool,
        progress_at: &mut Instant,
        log: &mut dyn Write,
    ) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if done(shared) {
                return true;
            }
            if progress_at.elapsed() >= Duration::from_secs(5) {
                *progress_at = Instant::now();
                let _ = writeln!(
                    log,
                    "{:8.3}s {} operations completed",
                    shared.start.elapsed().as_secs_f64(),
                    shared.completed.load(Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        done(shared)
    }

    fn pick_follower(&mut self, cluster: &Cluster, leader: Option<u64>) -> u64 {
        let others: Vec<u64> = cluster
            .ids()
            .into_iter()
            .filter(|&id| Some(id) != leader)
            .collect();
        others[self.rng.below(others.len() as u64) as usize]
    }

    fn inject(
        &mut self,
        kind: &str,
        cluster: &mut Cluster,
        net: &mut Option<&mut Netns>,
    ) -> Result<String, String> {
        let leader = cluster.leader();
        let target = if kind.ends_with("leader") || kind.starts_with("partition-leader") {
            leader.ok_or("no serving leader right now")?
        } else {
            self.pick_follower(cluster, leader)
        };
        let ids = cluster.ids();
        let others: Vec<u64> = ids.iter().copied().filter(|&i| i != target).collect();
        match kind {
            "kill-leader" | "kill-follower" => {
                cluster.kill(target)?;
                self.active = Some(Active::Killed(vec![target]));
                Ok(format!("SIGKILL server {target} ({kind})"))
            }
            "kill-majority" | "kill-all" => {
                // The leader (when there is one) and followers up to a majority, or all:
                // whatever was acknowledged must come back from the disks.
                let mut victims: Vec<u64> = leader.into_iter().collect();
                let mut rest: Vec<u64> =
                    ids.iter().copied().filter(|&i| Some(i) != leader).collect();
                let want = if kind == "kill-all" {
                    ids.len()
                } else {
                    ids.len() / 2 + 1
                };
                while victims.len() < want {
                    let i = self.rng.below(rest.len() as u64) as usize;
                    victims.push(rest.swap_remove(i));
                }
                let mut killed = Vec::new();
                for &v in &victims {
                    if cluster.running(v) {
                        cluster.kill(v)?;
                        killed.push(v);
                    }
                }
                self.active = Some(Active::Killed(killed));
                Ok(format!("SIGKILL servers {victims:?} ({kind})"))
            }
            "pause-leader" | "pause-follower" => {
                cluster.pause(target)?;
                self.active = Some(Active::Paused(target));
                Ok(format!("SIGSTOP server {target} ({kind})"))
            }
            _ => {
                let net = net.as_deref_mut().ok_or("no namespaces")?;
                self.active = Some(Active::Partitioned);
                match kind {
                    "partition-leader" => net.split(&[target], &others)?,
                    "partition-leader-sends" => {
                        for &o in &others {
                            net.cut(target, o)?;
                        }
                    }
                    "partition-leader-hears" => {
                        for &o in &others {
                            net.cut(o, target)?;
                        }
                    }
                    _ => {
                        // A random minority against the rest.
                        let mut shuffled = ids.clone();
                        for i in (1..shuffled.len()).rev() {
                            let j = self.rng.below(i as u64 + 1) as usize;
                            shuffled.swap(i, j);
                        }
                        let minority = (ids.len() - 1) / 2;
                        let (a, b) = shuffled.split_at(minority.max(1));
                        net.split(a, b)?;
                    }
                }
                Ok(format!("{kind}: cut {}", net.describe()))
            }
        }
    }

    fn heal(&mut self, cluster: &mut Cluster, net: &mut Option<&mut Netns>, log: &mut dyn Write) {
        let healed = match self.active.take() {
            None => return,
            Some(Active::Killed(ids)) => ids
                .iter()
                .try_for_each(|&id| cluster.start(id))
                .map(|_| format!("restart servers {ids:?}")),
            Some(Active::Paused(id)) => cluster.resume(id).map(|_| format!("SIGCONT server {id}")),
            Some(Active::Partitioned) => match net.as_deref_mut() {
                Some(n) => n.heal().map(|_| "heal the network".to_string()),
                None => Ok(String::new()),
            },
        };
        let _ = match healed {
            Ok(what) => writeln!(log, "          nemesis: {what}"),
            Err(e) => writeln!(log, "          nemesis: healing failed: {e}"),
        };
    }
}

// ---------------------------------------------------------------------------------------
// The clients.

/// A session this client holds: its id, the ephemeral znode it is for, whether the
/// znode was created, when it last heartbeat.
struct Held {
    id: u64,
    key: String,
    created: bool,
    heartbeat_at: Instant,
}

struct Worker {
    id: usize,
    rng: Rng,
    servers: Vec<Client>,
    current: usize,
    keys: Vec<String>,
    eph_keys: Vec<String>,
    shared: Arc<Shared>,
    /// The newest zxid this client has seen (sent as `min_zxid` on local reads).
    max_zxid: u64,
    /// The last version this client saw per key (what its CAS expects).
    versions: HashMap<String, i32>,
    session: Option<Held>,
    session_timeout_ms: u32,
    written: u64,
    ops: Vec<Op>,
}

/// What a call returned, before it is classified.
type Answered = Result<Answer, ClientError>;

impl Worker {
    fn new(id: usize, cfg: &Config, urls: &[String], shared: Arc<Shared>) -> Worker {
        let servers = urls
            .iter()
            .map(|u| Client::with_timeouts(u, Duration::from_secs(1), cfg.op_timeout))
            .collect();
        let mut rng = Rng::new(
            cfg.seed
                .wrapping_add(1 + id as u64)
                .wrapping_mul(0x2545_F491_4F6C_DD1D),
        );
        let current = rng.below(urls.len() as u64) as usize;
        Worker {
            id,
            rng,
            servers,
            current,
            keys: (0..cfg.keys).map(|k| format!("{ROOT}/k{k}")).collect(),
            eph_keys: (0..cfg.ephemeral_keys)
                .map(|k| format!("{ROOT}/e{k}"))
                .collect(),
            shared,
            max_zxid: 0,
            versions: HashMap::new(),
            session: None,
            session_timeout_ms: cfg.session_timeout_ms,
            written: 0,
            ops: Vec::new(),
        }
    }

    fn run(mut self) -> Vec<Op> {
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.heartbeat();
            self.one_op();
        }
        if let Some(h) = self.session.take() {
            // Leave nothing behind for the final reads to wonder about.
            let key = h.key.clone();
            self.record(&key, Call::CloseSession { session: h.id }, |c| {
                c.close_session(&format!("{:#x}", h.id))
                    .map(|_| Answer::Done)
            });
        }
        self.ops
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> &'a str {
        &from[self.rng.below(from.len() as u64) as usize]
    }

    fn value(&mut self) -> String {
        self.written += 1;
        format!("c{}-{}", self.id, self.written)
    }

    fn one_op(&mut self) {
        let keys = self.keys.clone();
        let all: Vec<String> = self.keys.iter().chain(&self.eph_keys).cloned().collect();
        let roll = self.rng.below(100);
        match roll {
            0..=24 => {
                let key = self.pick(&all).to_string();
                self.record(&key, Call::SyncRead, |c| read(c.get_synced(&key)));
            }
            25..=39 => {
                let key = self.pick(&all).to_string();
                let min = self.max_zxid;
                self.record(&key, Call::LocalRead { min_zxid: min }, |c| {
                    read(c.get_at(&key, min))
                });
            }
            40..=59 => {
                let key = self.pick(&keys).to_string();
                let value = self.value();
                self.record(
                    &key,
                    Call::Write {
                        value: value.clone(),
                    },
                    |c| written(c.set(&key, value.as_bytes(), None)),
                );
            }
            60..=79 => {
                let key = self.pick(&keys).to_string();
                let expect = self.versions.get(&key).copied().unwrap_or(0);
                let value = self.value();
                let call = Call::Cas {
                    expect,
                    value: value.clone(),
                };
                self.record(&key, call, |c| {
                    written(c.set(&key, value.as_bytes(), Some(expect)))
                });
            }
            80..=87 => {
                let key = self.pick(&keys).to_string();
                let value = self.value();
                self.record(
                    &key,
                    Call::Create {
                        value: value.clone(),
                    },
                    |c| {
                        c.create(&key, value.as_bytes()).map(|cr| Answer::Written {
                            version: cr.stat.version,
                            zxid: cr.zxid,
                        })
                    },
                );
            }
            88..=92 => {
                let key = self.pick(&keys).to_string();
                let expect = if self.rng.below(2) == 0 {
                    self.versions.get(&key).copied()
                } else {
                    None
                };
                self.record(&key, Call::Delete { expect }, |c| {
                    c.delete(&key, expect).map(|_| Answer::Done)
                });
            }
            _ => self.session_op(),
        }
    }

    /// Opens a session, creates its ephemeral, reads it, or closes the session.
    fn session_op(&mut self) {
        let Some(held) = &self.session else {
            let key = self.pick(&self.eph_keys.clone()).to_string();
            let timeout = self.session_timeout_ms;
            let op = self.record(&key, Call::OpenSession, |c| {
                c.open_session(timeout).and_then(|s| {
                    parse_session(&s.id)
                        .map(Answer::Session)
                        .ok_or_else(|| ClientError::Decode(format!("session id {:?}", s.id)))
                })
            });
            if let Some(Answer::Session(id)) = op {
                self.session = Some(Held {
                    id,
                    key,
                    created: false,
                    heartbeat_at: Instant::now(),
                });
            }
            return;
        };
        let (id, key, created) = (held.id, held.key.clone(), held.created);
        if !created {
            let value = self.value();
            let call = Call::CreateEphemeral {
                session: id,
                value: value.clone(),
            };
            let sid = format!("{id:#x}");
            let answer = self.record(&key, call, |c| {
                let opts = crate::client::CreateOptions {
                    ephemeral_session: Some(sid.clone()),
                    ..Default::default()
                };
                c.create_with(&key, value.as_bytes(), &opts)
                    .map(|cr| Answer::Written {
                        version: cr.stat.version,
                        zxid: cr.zxid,
                    })
            });
            if let Some(h) = self.session.as_mut() {
                // Tried once, whatever came of it: next the session is read or closed.
                h.created = true;
            }
            let _ = answer;
        } else if self.rng.below(3) == 0 {
            self.session = None;
            self.record(&key, Call::CloseSession { session: id }, |c| {
                c.close_session(&format!("{id:#x}")).map(|_| Answer::Done)
            });
        } else {
            self.record(&key, Call::SyncRead, |c| read(c.get_synced(&key)));
        }
    }

    /// Keeps the held session alive: a heartbeat every third of its timeout. A session
    /// the server says is gone is dropped.
    fn heartbeat(&mut self) {
        let every = Duration::from_millis(u64::from(self.session_timeout_ms) / 3);
        let Some(h) = &self.session else { return };
        if h.heartbeat_at.elapsed() < every {
            return;
        }
        let sid = format!("{:#x}", h.id);
        match self.servers[self.current].heartbeat(&sid) {
            Ok(()) => {
                if let Some(h) = self.session.as_mut() {
                    h.heartbeat_at = Instant::now();
                }
            }
            Err(e) if e.code() == Some("no_session") => {
                if let Some(h) = self.session.as_mut() {
                    // Gone (expired): the znode went with it; close it formally anyway
                    // (the close then fails with no_session, which the checker uses).
                    h.created = true;
                    h.heartbeat_at = Instant::now();
                }
            }
            Err(_) => self.switch_server(),
        }
    }

    fn switch_server(&mut self) {
        let n = self.servers.len() as u64;
        if n > 1 {
            self.current = (self.current + 1 + self.rng.below(n - 1) as usize) % n as usize;
        }
    }

    /// The last read of a key after everything healed, retried until it succeeds.
    fn final_read(&mut self, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .record(key, Call::SyncRead, |c| read(c.get_synced(key)))
                .is_some()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one operation against the current server, recording its invocation and
    /// completion; returns the answer when it succeeded.
    fn record(
        &mut self,
        key: &str,
        call: Call,
        f: impl FnOnce(&Client) -> Answered,
    ) -> Option<Answer> {
        let server = self.current as u64 + 1;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let invoke_ns = self.shared.start.elapsed().as_nanos() as u64;
        let result = f(&self.servers[self.current]);
        let complete_ns = self.shared.start.elapsed().as_nanos() as u64;
        let outcome = classify(&call, &result);
        if !matches!(outcome, Outcome::Ok { .. }) && !tree_error(&result) {
            self.switch_server();
            // A client backs off before it tries again, as real ones do: while servers
            // are down, a refused connection would otherwise come back in microseconds
            // and flood the history with failures.
            std::thread::sleep(Duration::from_millis(5 + self.rng.below(20)));
        }
        if let Ok(answer) = &result {
            self.learn(key, &call, answer);
        }
        self.ops.push(Op {
            id,
            client: self.id,
            key: key.to_string(),
            call,
            server,
            invoke_ns,
            complete_ns,
            outcome,
        });
        self.shared.completed.fetch_add(1, Ordering::Relaxed);
        result.ok()
    }

    /// Remembers the newest zxid and the key's version from an answer.
    fn learn(&mut self, key: &str, call: &Call, answer: &Answer) {
        match answer {
            Answer::Read(Some(s)) => {
                self.max_zxid = self.max_zxid.max(s.mzxid);
                self.versions.insert(key.to_string(), s.version);
            }
            Answer::Written { version, zxid } => {
                self.max_zxid = self.max_zxid.max(*zxid);
                self.versions.insert(key.to_string(), *version);
            }
            Answer::Done if matches!(call, Call::Delete { .. }) => {
                self.versions.remove(key);
            }
            _ => {}
        }
    }
}

fn parse_session(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn read(r: Result<Znode, ClientError>) -> Answered {
    match r {
        Ok(z) => Ok(Answer::Read(Some(Seen {
            value: String::from_utf8_lossy(&z.data).into_owned(),
            version: z.stat.version,
            mzxid: z.stat.mzxid,
            owner: z.stat.ephemeral_owner,
        }))),
        Err(e) if e.code() == Some("no_node") => Ok(Answer::Read(None)),
        Err(e) => Err(e),
    }
}

fn written(r: Result<crate::client::StatJson, ClientError>) -> Answered {
    r.map(|stat| Answer::Written {
        version: stat.version,
        zxid: stat.mzxid,
    })
}

/// Whether the server refused on the tree's grounds (the request reached the order).
fn tree_error(r: &Answered) -> bool {
    matches!(
        r.as_ref().err().and_then(ClientError::code),
        Some("no_node" | "node_exists" | "bad_version" | "no_session" | "not_empty")
    )
}

/// Jepsen's classification: `fail` only when the operation certainly did not happen.
fn classify(call: &Call, r: &Answered) -> Outcome {
    let e = match r {
        Ok(answer) => {
            return Outcome::Ok {
                answer: answer.clone(),
            }
        }
        Err(e) => e,
    };
    let definite = match e {
        // Nothing was sent, except for a DELETE: ureq sends a body-less DELETE again on
        // a fresh connection when a kept-alive one broke before the answer, so the
        // first attempt may have reached a server that died before answering.
        ClientError::Unreachable(_) => {
            !matches!(call, Call::Delete { .. } | Call::CloseSession { .. })
        }
        ClientError::Http { status, code, .. } => match (status, code.as_str()) {
            (503, "no_leader" | "busy") => true,
            // A read that fails changed nothing either way.
            (503 | 504, _) => call.is_read(),
            (400..=499, _) => true,
            _ => call.is_read(),
        },
        ClientError::Transport(_) | ClientError::Decode(_) => false,
    };
    if definite {
        Outcome::Fail {
            code: match e {
                ClientError::Http { code, .. } => code.clone(),
                ClientError::Unreachable(_) => "unreachable".into(),
                _ => "error".into(),
            },
        }
    } else {
        Outcome::Info {
            error: e.to_string(),
        }
    }
}

/// The default location of the server binary: beside this program.
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("zooweeper")))
        .unwrap_or_else(|| PathBuf::from("zooweeper"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_that_did_nothing_are_definite_failures() {
        let write = Call::Write { value: "x".into() };
        let http = |status, code: &str| -> Answered {
            Err(ClientError::Http {
                status,
                code: code.into(),
                message: String::new(),
            })
        };
        assert_eq!(classify(&write, &http(409, "bad_version")).kind(), "fail");
        assert_eq!(classify(&write, &http(503, "no_leader")).kind(), "fail");
        assert_eq!(classify(&write, &http(503, "uncertain")).kind(), "info");
        assert_eq!(classify(&write, &http(504, "timeout")).kind(), "info");
        assert_eq!(classify(&write, &http(503, "shutting_down")).kind(), "info");
        assert_eq!(
            classify(&write, &Err(ClientError::Transport("reset".into()))).kind(),
            "info"
        );
        assert_eq!(
            classify(&write, &Err(ClientError::Unreachable("refused".into()))).kind(),
            "fail"
        );
        let delete = Call::Delete { expect: None };
        assert_eq!(
            classify(&delete, &Err(ClientError::Unreachable("refused".into()))).kind(),
            "info"
        );
        assert_eq!(
            classify(&Call::SyncRead, &http(504, "timeout")).kind(),
            "fail"
        );
    }

    #[test]
    fn session_ids_parse_from_their_hex_form() {
        assert_eq!(parse_session("0x1a2b"), Some(0x1a2b));
        assert_eq!(parse_session("1a2b"), None);
    }
}
