//! The goals use case on real processes: a ZooWeeper [`Cluster`], `mimic-queue` brokers
//! and `goals-consumer`s on the cluster's own loopback address (brokers on 9090.., the
//! consumers' pages on 3000.., as the original laid them out), each started, SIGKILLed
//! and restarted by pid, with its log (and a consumer's printed timeline) in files that
//! survive restarts. Dropping the stack kills every process it started.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zooweeper::queue::goal::Goal;

use super::{agent, pace, Cluster, Options, WAIT};

/// First broker port; broker `i` (from 0) listens on `BROKER_BASE + i`.
pub const BROKER_BASE: u16 = 9090;
/// First consumer page port.
pub const CONSUMER_BASE: u16 = 3000;

/// One broker or consumer process.
struct Node {
    name: String,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    out: PathBuf,
    data_dir: PathBuf,
}

/// Servers, brokers and consumers.
pub struct Stack {
    /// The ZooWeeper ensemble.
    pub cluster: Cluster,
    ip: String,
    brokers: Vec<Node>,
    consumers: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Stack {
    /// `servers` ZooWeeper servers, then `brokers` brokers (registered) and `consumers`
    /// consumers (answering), consumer `j` preferring broker `j % brokers`.
    pub fn start(servers: u64, brokers: usize, consumers: usize) -> Stack {
        Stack::start_with(servers, brokers, consumers, Options::for_tests())
    }

    /// As [`Stack::start`], with the servers started with `opts`.
    pub fn start_with(servers: u64, brokers: usize, consumers: usize, opts: Options) -> Stack {
        let cluster = Cluster::start(servers, opts);
        cluster.wait_all_serving();
        let ip = cluster
            .url(1)
            .trim_start_matches("http://")
            .rsplit_once(':')
            .unwrap()
            .0
            .to_string();
        let dir = tempfile::Builder::new()
            .prefix("zw-goals-")
            .tempdir()
            .unwrap();
        let node = |kind: &str, port: u16| Node {
            name: format!("{kind}-{port}"),
            port,
            child: None,
            log: dir.path().join(format!("{kind}-{port}.log")),
            out: dir.path().join(format!("{kind}-{port}.out")),
            data_dir: dir.path().join(format!("{kind}-{port}")),
        };
        let brokers = (0..brokers)
            .map(|i| node("broker", BROKER_BASE + i as u16))
            .collect();
        let consumers = (0..consumers)
            .map(|i| node("consumer", CONSUMER_BASE + i as u16))
            .collect();
        let mut s = Stack {
            cluster,
            ip,
            brokers,
            consumers,
            dir,
        };
        for i in 0..s.brokers.len() {
            s.start_broker(i);
        }
        for i in 0..s.brokers.len() {
            s.wait_registered(i);
        }
        for j in 0..s.consumers.len() {
            s.start_consumer(j);
        }
        s
    }

    /// The servers, as `--servers` takes them.
    pub fn servers(&self) -> String {
        self.cluster
            .urls()
            .iter()
            .map(|u| u.trim_start_matches("http://").to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Broker `i`'s id (its port).
    pub fn broker_id(&self, i: usize) -> String {
        self.brokers[i].port.to_string()
    }

    /// Broker `i`'s base URL.
    pub fn broker_url(&self, i: usize) -> String {
        format!("http://{}:{}", self.ip, self.brokers[i].port)
    }

    /// Consumer `j`'s page.
    pub fn consumer_url(&self, j: usize) -> String {
        format!("http://{}:{}", self.ip, self.consumers[j].port)
    }

    /// Consumer `j`'s name (where its offset lives: `/consumers/<name>`).
    pub fn consumer_name(&self, j: usize) -> String {
        self.consumers[j].name.clone()
    }

    /// Starts (or restarts) broker `i` on its port and data dir.
    pub fn start_broker(&mut self, i: usize) {
        let servers = self.servers();
        let ip = self.ip.clone();
        let b = &mut self.brokers[i];
        assert!(b.child.is_none(), "{} is running", b.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimic-queue"));
        cmd.args(["--port", &b.port.to_string(), "--host", &ip])
            .args(["--servers", &servers, "--session-timeout-ms", "1500"])
            .arg("--data-dir")
            .arg(&b.data_dir)
            .env_remove("PORT")
            .env_remove("ZW_SERVERS")
            .env("RUST_LOG", "info");
        b.child = Some(spawn(cmd, &b.log, &b.log));
    }

    /// Starts (or restarts) consumer `j`; it prefers broker `j % brokers`.
    pub fn start_consumer(&mut self, j: usize) {
        let servers = self.servers();
        let ip = self.ip.clone();
        let broker = self.broker_id(j % self.brokers.len().max(1));
        let c = &mut self.consumers[j];
        assert!(c.child.is_none(), "{} is running", c.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_goals-consumer"));
        cmd.args([
            "--servers",
            &servers,
            "--name",
            &c.name,
            "--broker",
            &broker,
        ])
        .args(["--port", &c.port.to_string(), "--host", &ip])
        .args(["--wait-ms", "500"])
        .env_remove("PORT")
        .env_remove("ZW_SERVERS")
        .env("RUST_LOG", "info");
        c.child = Some(spawn(cmd, &c.out, &c.log));
        let url = format!("http://{}:{}/status", ip, c.port);
        wait(&format!("consumer {} to answer", c.name), || {
            get(&url).filter(|(s, _)| *s == 200).map(|_| ())
        });
    }

    /// SIGKILLs broker `i`.
    pub fn kill_broker(&mut self, i: usize) {
        kill(&mut self.brokers[i]);
    }

    /// SIGKILLs consumer `j`.
    pub fn kill_consumer(&mut self, j: usize) {
        kill(&mut self.consumers[j]);
    }

    /// Waits until broker `i` says it is registered in ZooWeeper.
    pub fn wait_registered(&self, i: usize) {
        let url = format!("{}/status", self.broker_url(i));
        wait(&format!("broker {} to register", self.broker_id(i)), || {
            let (_, v) = get(&url)?;
            (v["registered"] == true).then_some(())
        });
    }

    /// `POST /addScore` to broker `i`: the status and body.
    pub fn add_score(
        &self,
        i: usize,
        receiver: Option<u64>,
        clients: Option<&str>,
        goal: &Goal,
    ) -> (u16, String) {
        let mut meta = serde_json::Map::new();
        if let Some(id) = receiver {
            let port = self.cluster.url(id).rsplit_once(':').unwrap().1.to_string();
            meta.insert("ReceiverIp".into(), Value::String(port));
        }
        if let Some(c) = clients {
            meta.insert("Clients".into(), Value::String(c.into()));
        }
        let body = serde_json::json!({"metadata": meta, "gameResults": goal});
        self.post_raw(i, &body.to_string())
    }

    /// `POST /addScore` to broker `i` with this exact body.
    pub fn post_raw(&self, i: usize, body: &str) -> (u16, String) {
        let url = format!("{}/addScore", self.broker_url(i));
        match agent(Duration::from_secs(30)).post(&url).send_string(body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                (r.status(), r.into_string().unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Broker `i`'s `GET /status`.
    pub fn broker_status(&self, i: usize) -> Option<Value> {
        get(&format!("{}/status", self.broker_url(i))).map(|(_, v)| v)
    }

    /// Broker `i`'s goals (`GET /data`), if it answers.
    pub fn broker_goals(&self, i: usize) -> Option<Vec<Goal>> {
        let (status, v) = get(&format!("{}/data", self.broker_url(i)))?;
        (status == 200).then(|| serde_json::from_value(v).expect("GET /data is a list of goals"))
    }

    /// Waits until broker `i` holds `n` goals (fails the test if it holds more).
    pub fn wait_broker_goals(&self, i: usize, n: usize) -> Vec<Goal> {
        wait(
            &format!("broker {} to hold {n} goals", self.broker_id(i)),
            || {
                let goals = self.broker_goals(i)?;
                assert!(
                    goals.len() <= n,
                    "broker {} holds {} goals, more than {n}",
                    self.broker_id(i),
                    goals.len()
                );
                (goals.len() == n).then_some(goals)
            },
        )
    }

    /// The lines consumer `j` has printed, over all its runs.
    pub fn consumer_lines(&self, j: usize) -> Vec<String> {
        std::fs::read_to_string(&self.consumers[j].out)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Waits until consumer `j` has printed `n` lines (fails the test if it prints more).
    pub fn wait_consumer_lines(&self, j: usize, n: usize) -> Vec<String> {
        wait(&format!("consumer {j} to print {n} lines"), || {
            let lines = self.consumer_lines(j);
            assert!(
                lines.len() <= n,
                "consumer {j} printed {} lines, more than {n}:\n{}",
                lines.len(),
                lines.join("\n")
            );
            (lines.len() == n).then_some(lines)
        })
    }

    /// Consumer `j`'s stored offset in ZooWeeper.
    pub fn consumer_offset(&self, j: usize) -> Option<u64> {
        let z = self.cluster.znode(
            self.cluster.live_ids()[0],
            &format!("/consumers/{}", self.consumers[j].name),
        )?;
        z["data"].as_str()?.trim().parse().ok()
    }

    /// Consumer `j`'s `GET /status`.
    pub fn consumer_status(&self, j: usize) -> Option<Value> {
        get(&format!("{}/status", self.consumer_url(j))).map(|(_, v)| v)
    }

    /// The tail of a process's log, for failure messages.
    pub fn log_of(&self, name: &str) -> String {
        let path = self.dir.path().join(format!("{name}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for n in self.brokers.iter_mut().chain(self.consumers.iter_mut()) {
            kill(n);
            if failing {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "----- {} log, last 30 lines:\n{}",
                    n.name,
                    lines[lines.len().saturating_sub(30)..].join("\n")
                );
            }
        }
    }
}

fn spawn(mut cmd: Command, out: &PathBuf, err: &PathBuf) -> Child {
    let open = |p: &PathBuf| -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open a log file")
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(open(out)))
        .stderr(Stdio::from(open(err)));
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn().expect("start a process")
}

fn kill(n: &mut Node) {
    if let Some(mut child) = n.child.take() {
        // SAFETY: our own unreaped child, by pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// `GET url`: status and JSON body (Null if not JSON), or `None` if unreachable.
pub fn get(url: &str) -> Option<(u16, Value)> {
    match agent(Duration::from_secs(5)).get(url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let text = r.into_string().unwrap_or_default();
            Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }
        Err(_) => None,
    }
}

/// Polls `f` until it gives a value, for at most [`WAIT`] (then fails the test).
pub fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        pace();
    }
}

/// Goal number `i`: its Minute counts 1..90 as the original's producer did, and its
/// Score is unique (`i / 1000 - i % 1000`), so a duplicate or a gap cannot hide.
pub fn goal(i: u64) -> Goal {
    let players = ["Ronaldo", "Messi", "Pele", "Maradona"];
    let clubs = ["FCB", "RMA", "MU"];
    Goal {
        minute: (i % 90 + 1) as u32,
        player: players[(i % 4) as usize].into(),
        club: clubs[(i % 3) as usize].into(),
        score: format!("{}-{}", i / 1000, i % 1000),
    }
}
