//! Real ZooKeeper ensembles on loopback for tests.
//!
//! Each member is a `QuorumPeerMain` JVM on its own address 127.a.b.<id> (Linux routes all of
//! 127/8 to `lo`) with the usual ports 2181/2888/3888, so configs look like the chart's. Every
//! [`Ensemble`] gets its own 127.a.b.0/24, so tests (and test processes) run in parallel.
//!
//! Jars: ZooKeeper 3.9 from `tests/bed/install.sh zookeeper` (`$ZKSCALE_ZK_LIB` overrides the lib
//! dir), 3.8 from Debian's package (`tests/bed/install.sh zookeeper-debian`). Missing jars fail
//! the test with that hint; `ZKSCALE_SKIP_REAL_ZK=1` makes [`skip_real_zk`] say skip instead.
//!
//! On drop every member is killed; if the test is panicking, the ensemble directory (configs,
//! data, one log per member) is kept and its path and the logs' tails are printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use zkscale::zk::{self, Gate, MemberObservation, Probe, ServerId, Timeouts, Verdict};

use super::zk_client::{ClientError, ZkClient};

/// Which ZooKeeper to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZkVersion {
    /// The chart image's version (tests/bed/versions.env `ZK_VERSION`), from Maven Central.
    V3_9,
    /// Debian 12's package.
    V3_8,
}

impl ZkVersion {
    pub fn label(self) -> &'static str {
        match self {
            ZkVersion::V3_9 => "3.9",
            ZkVersion::V3_8 => "3.8",
        }
    }

    /// The JVM class path, or why it cannot be had.
    pub fn classpath(self) -> Result<String, String> {
        match self {
            ZkVersion::V3_9 => {
                let dir = zk39_lib_dir();
                let names: Vec<String> = std::fs::read_dir(&dir)
                    .map_err(|e| {
                        format!(
                            "ZooKeeper jars not found in {} ({e}): run `tests/bed/install.sh zookeeper` \
                             (or set ZKSCALE_ZK_LIB to a ZooKeeper lib dir; ZKSCALE_SKIP_REAL_ZK=1 skips)",
                            dir.display()
                        )
                    })?
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                // metrics-core and snappy-java are `provided` in ZooKeeper's pom but the server
                // cannot start without them.
                for prefix in [
                    "zookeeper-3",
                    "zookeeper-jute-",
                    "metrics-core-",
                    "snappy-java-",
                    "slf4j-api-",
                ] {
                    if !names
                        .iter()
                        .any(|n| n.starts_with(prefix) && n.ends_with(".jar"))
                    {
                        let provided =
                            if prefix.starts_with("metrics") || prefix.starts_with("snappy") {
                                " (ZooKeeper's pom marks io.dropwizard.metrics:metrics-core and \
                             org.xerial.snappy:snappy-java `provided`: tests/bed/zookeeper-pom.xml \
                             must list them, and an old cache needs its .complete removed)"
                            } else {
                                ""
                            };
                        return Err(format!(
                            "{prefix}*.jar missing in {}: run `tests/bed/install.sh zookeeper`{provided} \
                             (ZKSCALE_SKIP_REAL_ZK=1 skips these tests)",
                            dir.display()
                        ));
                    }
                }
                Ok(format!("{}/*", dir.display()))
            }
            ZkVersion::V3_8 => {
                // zookeeper.jar's manifest Class-Path names its other jars in /usr/share/java.
                let jars = [
                    "/usr/share/java/zookeeper.jar",
                    "/usr/share/java/slf4j-simple.jar",
                ];
                for j in jars {
                    if !Path::new(j).exists() {
                        return Err(format!(
                            "{j} missing: run `tests/bed/install.sh zookeeper-debian` \
                             (ZKSCALE_SKIP_REAL_ZK=1 skips these tests)"
                        ));
                    }
                }
                Ok(jars.join(":"))
            }
        }
    }
}

fn zk39_lib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZKSCALE_ZK_LIB") {
        return dir.into();
    }
    let cache = std::env::var_os("ZKSCALE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/zkscale")
        });
    cache.join(format!("zookeeper-{}/lib", pinned_zk_version()))
}

/// `ZK_VERSION` from tests/bed/versions.env.
fn pinned_zk_version() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/versions.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("ZK_VERSION="))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no ZK_VERSION= in {}", path.display()))
        .to_string()
}

/// True (after saying so) when `ZKSCALE_SKIP_REAL_ZK=1`: the caller returns early.
pub fn skip_real_zk() -> bool {
    let skip = std::env::var("ZKSCALE_SKIP_REAL_ZK").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("skipped: ZKSCALE_SKIP_REAL_ZK=1 (real ZooKeeper tests)");
    }
    skip
}

/// Highest member id an ensemble can have (addresses 127.a.b.1 ..= 127.a.b.MAX_ID are reserved).
pub const MAX_ID: ServerId = 9;
const PORTS: [u16; 3] = [2181, 2888, 3888];
static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A free 127.a.b.0/24: derived from the process id and a per-process counter, then checked by
/// binding every address and port the ensemble will use.
fn allocate_net() -> [u8; 3] {
    let pid = std::process::id();
    for _ in 0..1000 {
        let seq = NEXT_NET.fetch_add(1, Ordering::SeqCst);
        let slot = pid.wrapping_mul(7919).wrapping_add(seq.wrapping_mul(131)) % (200 * 256);
        let net = [127, 20 + (slot / 256) as u8, (slot % 256) as u8];
        let free = (1..=MAX_ID as u8).all(|host| {
            PORTS.iter().all(|&port| {
                TcpListener::bind(SocketAddrV4::new(
                    Ipv4Addr::new(net[0], net[1], net[2], host),
                    port,
                ))
                .is_ok()
            })
        });
        if free {
            return net;
        }
    }
    panic!("no free 127.a.b.0/24 for a ZooKeeper ensemble");
}

struct Member {
    servers: Vec<ServerId>,
    child: Option<Child>,
}

/// Real ZooKeeper members on loopback. Members are started explicitly, each with its own server
/// list (a list of one, or none, runs standalone as the bitnami image does).
pub struct Ensemble {
    version: ZkVersion,
    classpath: String,
    net: [u8; 3],
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    pub tick_ms: u32,
    /// Lines appended to every member's zoo.cfg (e.g. `reconfigEnabled=true`).
    pub extra_cfg: String,
    /// JVM flags for every member (e.g. a superDigest), as the image's JVMFLAGS.
    pub jvm_flags: Vec<String>,
    members: BTreeMap<ServerId, Member>,
    /// Released when the ensemble is gone (after its members are killed).
    _turn: Turn,
}

/// The real ensembles of one test binary run one at a time: several sets of JVMs starting
/// together on a 2-core machine starve each other past ZooKeeper's own timeouts (a leader
/// dropping its quorum because followers missed `syncLimit`), which tests the machine, not
/// the code under test. (One ensemble per test: a test that made two would wait for itself.)
static ENSEMBLE_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Turn;

impl Turn {
    fn take() -> Turn {
        use std::sync::atomic::Ordering;
        while ENSEMBLE_RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        ENSEMBLE_RUNNING.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Ensemble {
    /// Panics (with the install hint) if the jars are missing.
    pub fn new(version: ZkVersion) -> Ensemble {
        let classpath = version.classpath().unwrap_or_else(|e| panic!("{e}"));
        let turn = Turn::take();
        let net = allocate_net();
        let dir = tempfile::Builder::new()
            .prefix(&format!(
                "zkscale-zk{}-{}.{}-",
                version.label(),
                net[1],
                net[2]
            ))
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        Ensemble {
            version,
            classpath,
            net,
            dir: Some(dir),
            root,
            tick_ms: 200,
            extra_cfg: String::new(),
            jvm_flags: Vec::new(),
            members: BTreeMap::new(),
            _turn: turn,
        }
    }

    pub fn version(&self) -> ZkVersion {
        self.version
    }
    pub fn dir(&self) -> &Path {
        &self.root
    }
    pub fn ip(&self, id: ServerId) -> Ipv4Addr {
        assert!(
            (1..=MAX_ID).contains(&id),
            "member id {id} out of 1..={MAX_ID}"
        );
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], id as u8)
    }
    /// `host:port` of a member's client port.
    pub fn client_addr(&self, id: ServerId) -> String {
        format!("{}:2181", self.ip(id))
    }
    pub fn log_path(&self, id: ServerId) -> PathBuf {
        self.root.join(format!("member-{id}.log"))
    }
    fn data_dir(&self, id: ServerId) -> PathBuf {
        self.root.join(format!("member-{id}/data"))
    }
    /// Members started at least once, running or not.
    pub fn ids(&self) -> Vec<ServerId> {
        self.members.keys().copied().collect()
    }
    pub fn is_running(&mut self, id: ServerId) -> bool {
        match self.members.get_mut(&id).and_then(|m| m.child.as_mut()) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    /// The server list a member was (last) started with.
    pub fn servers_of(&self, id: ServerId) -> &[ServerId] {
        &self.members[&id].servers
    }

    fn write_config(&self, id: ServerId, servers: &[ServerId]) -> PathBuf {
        let data = self.data_dir(id);
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
        let mut cfg = format!(
            "tickTime={tick}\ninitLimit=10\nsyncLimit=10\ndataDir={data}\n\
             clientPortAddress={ip}\nclientPort=2181\n\
             4lw.commands.whitelist=srvr, mntr, ruok\nadmin.enableServer=false\n\
             preAllocSize=1024\nforceSync=no\n",
            tick = self.tick_ms,
            data = data.display(),
            ip = self.ip(id),
        );
        cfg.push_str(&self.extra_cfg);
        if servers.len() > 1 {
            for &s in servers {
                writeln!(cfg, "server.{s}={}:2888:3888", self.ip(s)).unwrap();
            }
        }
        let path = self.root.join(format!("member-{id}/zoo.cfg"));
        std::fs::write(&path, cfg).expect("zoo.cfg");
        path
    }

    /// Starts member `id` with server list `servers` (keeps its data dir from earlier runs).
    pub fn start(&mut self, id: ServerId, servers: &[ServerId]) {
        assert!(!self.is_running(id), "member {id} is already running");
        let cfg = self.write_config(id, servers);
        let log_path = self.log_path(id);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        writeln!(
            log,
            "==== zkscale test harness: starting member {id} with servers {servers:?}"
        )
        .unwrap();
        let child = Command::new("java")
            .args([
                "-Xmx128m",
                "-Xss512k",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Xshare:auto",
            ])
            .arg("-Dzookeeper.jmx.log4j.disable=true")
            .args(&self.jvm_flags)
            .args([
                "-cp",
                &self.classpath,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting java for member {id} (is Java 17 on PATH?): {e}"));
        self.members.insert(
            id,
            Member {
                servers: servers.to_vec(),
                child: Some(child),
            },
        );
    }

    /// `user:digest` for `user:password`: base64 of SHA-1 of `user:password`, as ZooKeeper's
    /// DigestAuthenticationProvider computes it (the value of its `superDigest` property).
    pub fn digest(&self, user: &str, password: &str) -> String {
        digest(user, password)
    }

    /// Starts members `1..=n`, each with the list `1..=n` (1: standalone).
    pub fn start_all(&mut self, n: ServerId) {
        let servers: Vec<ServerId> = (1..=n).collect();
        for id in 1..=n {
            self.start(id, &servers);
        }
    }

    fn signal(&mut self, id: ServerId, graceful: bool) {
        let Some(mut child) = self.members.get_mut(&id).and_then(|m| m.child.take()) else {
            return;
        };
        if graceful {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self, id: ServerId) {
        self.signal(id, true);
    }
    /// SIGKILL.
    pub fn kill(&mut self, id: ServerId) {
        self.signal(id, false);
    }
    /// Stop (SIGTERM) and start again with the same server list.
    pub fn restart(&mut self, id: ServerId) {
        let servers = self.servers_of(id).to_vec();
        self.restart_with(id, &servers);
    }
    /// Stop (SIGTERM) and start with another server list, as a pod restarted with a new
    /// `ZOO_SERVERS` would.
    pub fn restart_with(&mut self, id: ServerId, servers: &[ServerId]) {
        self.stop(id);
        self.start(id, servers);
    }

    /// `(id, host:port)` of every member started at least once.
    pub fn addrs(&self) -> Vec<(ServerId, String)> {
        self.ids()
            .into_iter()
            .map(|id| (id, self.client_addr(id)))
            .collect()
    }

    /// One observation round of every member started at least once.
    pub async fn observe(&self) -> Vec<MemberObservation> {
        zk::observe_all_tcp(&self.addrs(), timeouts()).await
    }

    /// One observation round of the given members (started or not: unstarted ones are unreachable).
    pub async fn observe_ids(&self, ids: &[ServerId]) -> Vec<MemberObservation> {
        let addrs: Vec<(ServerId, String)> =
            ids.iter().map(|&id| (id, self.client_addr(id))).collect();
        zk::observe_all_tcp(&addrs, timeouts()).await
    }

    pub async fn verdict(&self, gate: &Gate) -> Verdict {
        zk::verdict(gate, &self.observe().await)
    }

    /// Polls until healthy or `timeout`; returns the last verdict.
    pub async fn wait_healthy(&self, gate: &Gate, timeout: Duration) -> Verdict {
        let addrs = self.addrs();
        zk::wait_healthy(gate, timeout, Duration::from_millis(100), || {
            zk::observe_all_tcp(&addrs, timeouts())
        })
        .await
    }

    /// [`Ensemble::wait_healthy`], panicking with the verdict and the logs if not healthy.
    pub async fn assert_healthy(&self, gate: &Gate, timeout: Duration) -> Verdict {
        let v = self.wait_healthy(gate, timeout).await;
        if !v.healthy {
            panic!(
                "not healthy within {timeout:?}: {v}\n{}\n{}",
                serde_json::to_string_pretty(&v).unwrap(),
                self.log_tails(40)
            );
        }
        v
    }

    /// Polls observations until `pred` holds; panics with the last ones after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[MemberObservation]) -> bool,
    ) -> Vec<MemberObservation> {
        let deadline = Instant::now() + timeout;
        loop {
            let obs = self.observe().await;
            if pred(&obs) {
                return obs;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {timeout:?}; last observations:\n{}\n{}",
                    describe(&obs),
                    self.log_tails(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client session on member `id`, retrying while it is not serving (up to `timeout`).
    pub async fn client(&self, id: ServerId, timeout: Duration) -> ZkClient {
        let deadline = Instant::now() + timeout;
        loop {
            match ZkClient::connect(&self.client_addr(id), Duration::from_secs(4)).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!("client session on member {id}: {e}\n{}", self.log_tails(40))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Creates `parent` (if absent) and `n` children `parent/n-<i>` through member `id`.
    pub async fn write_znodes(
        &self,
        id: ServerId,
        parent: &str,
        n: usize,
    ) -> Result<(), ClientError> {
        let c = self.client(id, Duration::from_secs(20)).await;
        c.ensure(parent).await?;
        let paths: Vec<String> = (0..n).map(|i| format!("{parent}/n-{i:05}")).collect();
        c.create_many(&paths, b"zkscale").await?;
        c.close().await
    }

    /// Children of `parent` as member `id` sees them (0 if `parent` does not exist).
    pub async fn count_znodes(&self, id: ServerId, parent: &str) -> Result<usize, ClientError> {
        let c = self.client(id, Duration::from_secs(20)).await;
        let n = match c.get_children(parent).await {
            Ok(children) => children.len(),
            Err(ClientError::NoNode) => 0,
            Err(e) => return Err(e),
        };
        c.close().await?;
        Ok(n)
    }

    /// Last `lines` lines of every member's log, with the paths.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for id in self.ids() {
            let path = self.log_path(id);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            writeln!(out, "---- {} (last {} lines)", path.display(), tail.len()).unwrap();
            for l in tail {
                writeln!(out, "{l}").unwrap();
            }
        }
        out
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("ZooKeeper ensemble kept for inspection: {}", kept.display());
                eprintln!("{}", self.log_tails(25));
            }
        }
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_secs(3),
    }
}

/// One line per observation: `id: mode zxid nodes` or the state.
pub fn describe(obs: &[MemberObservation]) -> String {
    obs.iter()
        .map(|o| match &o.probe {
            Probe::Unreachable { error } => format!("  {}: unreachable ({error})", o.id),
            Probe::NotServing => format!("  {}: not serving", o.id),
            Probe::Serving { srvr, mntr } => format!(
                "  {}: {} zxid {} nodes {} quorum_size {:?} synced_followers {:?} non_voting {:?} peer_state {:?}",
                o.id,
                srvr.mode,
                srvr.zxid,
                srvr.node_count,
                mntr.quorum_size(),
                mntr.synced_followers(),
                mntr.synced_non_voting_followers(),
                mntr.peer_state()
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The serving member's mode, if `id` is serving.
pub fn mode_of(obs: &[MemberObservation], id: ServerId) -> Option<zk::Mode> {
    obs.iter()
        .find(|o| o.id == id)
        .and_then(|o| match &o.probe {
            Probe::Serving { srvr, .. } => Some(srvr.mode.clone()),
            _ => None,
        })
}

/// See [`Ensemble::digest`] (Python's hashlib: no SHA-1 in this crate's dependencies).
pub fn digest(user: &str, password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys; print(base64.b64encode(hashlib.sha1(sys.argv[1].encode()).digest()).decode())",
            &format!("{user}:{password}"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{user}:{}", String::from_utf8_lossy(&out.stdout).trim())
}
