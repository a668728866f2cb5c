//! The bitnami image's contract (`zoo_cfg`, `read_myid`/`write_myid`, `jvm_flags`): env →
//! zoo.cfg, server id from `data/myid` or `ZOO_SERVER_ID`. Shared by the bed image's entrypoint
//! on the node bed (`crate::image`, `Listen::Container`) and by the runner, which does for a
//! local JVM what the image does with a pod spec (`Launch`): the server id from the chart's
//! setup.sh rule, the data dir on the pod's claim, and the `ruok` readiness probe.
//!
//! The runner's deliberate differences from a container (all pods share one network namespace):
//! listeners bind the pod's own IP (`clientPortAddress`, and the quorum address from its own
//! `server.N` line even when `ZOO_LISTEN_ALLIPS_ENABLED=yes`, since 0.0.0.0 would collide between
//! pods), the admin server is off, and the heap is capped by `-Xmx` only.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use kube::api::Api;
use kube::{Client, ResourceExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub fn pod_dir(state: &Path, pod: &Pod) -> PathBuf {
    state
        .join("pods")
        .join(pod.namespace().unwrap_or_default())
        .join(pod.name_any())
}

/// Where the emptyDir volumes of every pod live: `<state>/emptydir/<pod uid>/<volume>`.
pub fn empty_dir_root(state: &Path) -> PathBuf {
    state.join("emptydir")
}

pub struct Launch {
    cfg_path: PathBuf,
    cfg_text: String,
    pub client_port: u16,
    java: String,
    args: Vec<String>,
    log: PathBuf,
    fault: PathBuf,
}

impl Launch {
    /// `None` when the pod has no ZooKeeper container.
    pub async fn from_pod(
        pod: &Pod,
        ip: Ipv4Addr,
        state: &Path,
        client: &Client,
    ) -> Result<Option<Launch>> {
        let spec = pod.spec.as_ref().context("pod without spec")?;
        let Some(c) = spec
            .containers
            .iter()
            .find(|c| c.env.iter().flatten().any(|e| e.name == "ZOO_SERVERS"))
        else {
            return Ok(None);
        };
        let env = env_of(pod, c, ip);
        let get = |k: &str, d: &str| {
            env.get(k)
                .cloned()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| d.to_string())
        };
        let ns = pod.namespace().unwrap_or_default();
        let dir = pod_dir(state, pod);
        std::fs::create_dir_all(&dir)?;

        let data_dir = host_path(
            pod,
            c,
            &get("ZOO_DATA_DIR", "/bitnami/zookeeper/data"),
            state,
        )?;
        std::fs::create_dir_all(&data_dir)?;
        let id: u32 = match read_myid(&data_dir)? {
            Some(id) => id,
            None => {
                let id = server_id_for_new_pod(pod, c, &env, client, &ns).await?;
                write_myid(&data_dir, id)?;
                id
            }
        };

        let log_dir = get("ZOO_DATA_LOG_DIR", "");
        let data_log_dir = if log_dir.is_empty() {
            None
        } else {
            let p = host_path(pod, c, &log_dir, state)?;
            std::fs::create_dir_all(&p)?;
            Some(p)
        };
        let client_port = client_port(&env)?;
        let cfg = zoo_cfg(
            &env,
            &data_dir,
            data_log_dir.as_deref(),
            Listen::SharedNetns(ip),
        )?;
        let cfg_path = dir.join("zoo.cfg");
        let cfg_text = cfg.join("\n") + "\n";

        let image = c.image.clone().unwrap_or_default();
        let classpath = if image.rsplit(':').next().unwrap_or("").starts_with("3.8") {
            std::env::var("ZK38_CLASSPATH").context("ZK38_CLASSPATH for a 3.8 image")?
        } else {
            format!("{}/*", std::env::var("ZK_LIB").context("ZK_LIB")?)
        };
        let heap = get("ZOO_HEAP_SIZE", "1024");
        let level = log_level(&env);
        // JVMFLAGS as the image passes them (e.g. a superDigest or skipACL).
        let mut args = jvm_flags(&env);
        args.extend([
            format!("-Xmx{heap}m"),
            "-Xms32m".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            format!("-Djdk.net.hosts.file={}", dir.join("hosts").display()),
            "-Dsun.net.inetaddr.ttl=0".into(),
            "-Dsun.net.inetaddr.negative.ttl=0".into(),
            format!("-Dorg.slf4j.simpleLogger.defaultLogLevel={level}"),
            "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
            "-cp".into(),
            classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
            cfg_path.display().to_string(),
        ]);
        let fault = state.join("faults").join(&ns).join(pod.name_any());
        crate::log(format!(
            "{ns}/{}: ZooKeeper id {id} on {ip}:{client_port}, data {}, image {image}",
            pod.name_any(),
            data_dir.display()
        ));
        Ok(Some(Launch {
            cfg_path,
            cfg_text,
            client_port,
            java: "java".into(),
            args,
            log: dir.join("zookeeper.log"),
            fault,
        }))
    }

    /// A test can keep a pod's process from starting by writing a reason to
    /// `<state>/faults/<namespace>/<pod>` (e.g. to show a member that never syncs).
    pub fn blocked(&self) -> Option<String> {
        std::fs::read_to_string(&self.fault)
            .ok()
            .map(|r| format!("blocked by test fault: {}", r.trim()))
    }

    pub fn spawn(&self) -> Result<Child> {
        // A new pod starts from the image's files: zoo.cfg is generated again and whatever
        // ZooKeeper wrote next to it (a reconfig's `zoo.cfg.dynamic.*`, `zoo.cfg.bak`) is gone.
        // (The image keeps them across a container restart in the same pod, its conf dir being
        // an emptyDir; the runner treats every start as a new pod.)
        if let Some(dir) = self.cfg_path.parent() {
            for e in std::fs::read_dir(dir)?.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("zoo.cfg.") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        std::fs::write(&self.cfg_path, &self.cfg_text)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.java)
            .args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("spawning java")?;
        Ok(child)
    }
}

/// How a member's listeners are bound: the one place the runner departs from the image.
#[derive(Clone, Copy)]
pub enum Listen {
    /// A container in its own network namespace (the bed's image on a real node): exactly as
    /// the image, the client port on every address (`;<port>` on each `server.N` line), the
    /// quorum ports on all addresses when `ZOO_LISTEN_ALLIPS_ENABLED=yes`, the admin server on.
    Container,
    /// A JVM in the host's network namespace shared by every pod (the runner): the pod's own IP
    /// for the client port, the quorum address from its own `server.N` line, no admin server.
    SharedNetns(Ipv4Addr),
}

/// The value of `ZOO_<name>` as the image's zookeeper-env.sh sees it: unset or empty → default.
pub fn zoo_env<'a>(env: &'a BTreeMap<String, String>, key: &str, default: &'a str) -> &'a str {
    env.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

pub fn client_port(env: &BTreeMap<String, String>) -> Result<u16> {
    zoo_env(env, "ZOO_PORT_NUMBER", "2181")
        .parse()
        .context("ZOO_PORT_NUMBER")
}

/// The bitnami image's contract, environment → zoo.cfg (libzookeeper.sh's
/// `zookeeper_generate_conf`): the `ZOO_*` keys with the image's defaults, `reconfigEnabled`
/// from `ZOO_RECONFIG_ENABLED`, `quorumListenOnAllIPs` from `ZOO_LISTEN_ALLIPS_ENABLED`, every
/// `ZOO_CFG_<key>` as `<key>` with `_` → `.` (case kept: `ZOO_CFG_standaloneEnabled`), then the
/// `server.N` lines from `ZOO_SERVERS`. Values are written as given: the environment is the
/// pod spec's, which the bed's own tests write.
pub fn zoo_cfg(
    env: &BTreeMap<String, String>,
    data_dir: &Path,
    data_log_dir: Option<&Path>,
    listen: Listen,
) -> Result<Vec<String>> {
    let get = |k: &str, d: &'static str| zoo_env(env, k, d).to_string();
    let port = client_port(env)?;
    let mut cfg = vec![
        format!("tickTime={}", get("ZOO_TICK_TIME", "2000")),
        format!("initLimit={}", get("ZOO_INIT_LIMIT", "10")),
        format!("syncLimit={}", get("ZOO_SYNC_LIMIT", "5")),
        format!("dataDir={}", data_dir.display()),
        format!("clientPort={port}"),
    ];
    if let Listen::SharedNetns(ip) = listen {
        cfg.push(format!("clientPortAddress={ip}"));
    }
    cfg.extend([
        format!("maxClientCnxns={}", get("ZOO_MAX_CLIENT_CNXNS", "60")),
        format!(
            "autopurge.purgeInterval={}",
            get("ZOO_AUTOPURGE_INTERVAL", "0")
        ),
        format!(
            "autopurge.snapRetainCount={}",
            get("ZOO_AUTOPURGE_RETAIN_COUNT", "3")
        ),
        format!(
            "maxSessionTimeout={}",
            get("ZOO_MAX_SESSION_TIMEOUT", "40000")
        ),
        format!("preAllocSize={}", get("ZOO_PRE_ALLOC_SIZE", "65536")),
        format!("snapCount={}", get("ZOO_SNAPCOUNT", "100000")),
        format!(
            "4lw.commands.whitelist={}",
            get("ZOO_4LW_COMMANDS_WHITELIST", "srvr, mntr")
        ),
    ]);
    match listen {
        Listen::Container => {
            cfg.push(format!(
                "quorumListenOnAllIPs={}",
                is_yes(&get("ZOO_LISTEN_ALLIPS_ENABLED", "no"))
            ));
            cfg.push(format!(
                "admin.serverPort={}",
                get("ZOO_ADMIN_SERVER_PORT_NUMBER", "8080")
            ));
            cfg.push(format!(
                "admin.enableServer={}",
                is_yes(&get("ZOO_ENABLE_ADMIN_SERVER", "yes"))
            ));
        }
        Listen::SharedNetns(_) => cfg.push("admin.enableServer=false".into()),
    }
    if let Some(p) = data_log_dir {
        cfg.push(format!("dataLogDir={}", p.display()));
    }
    cfg.push(format!(
        "reconfigEnabled={}",
        is_yes(&get("ZOO_RECONFIG_ENABLED", "no"))
    ));
    let peer_type = get("ZOO_PEER_TYPE", "");
    if !peer_type.is_empty() {
        cfg.push(format!("peerType={peer_type}"));
    }
    for (k, v) in env {
        if let Some(key) = k.strip_prefix("ZOO_CFG_") {
            cfg.push(format!("{}={v}", key.replace('_', ".")));
        }
    }
    let client_suffix = match listen {
        Listen::Container => Some(port),
        Listen::SharedNetns(_) => None,
    };
    cfg.extend(server_lines(&get("ZOO_SERVERS", ""), client_suffix)?);
    Ok(cfg)
}

/// `JVMFLAGS` as the image passes them to the JVM (e.g. a superDigest or skipACL).
pub fn jvm_flags(env: &BTreeMap<String, String>) -> Vec<String> {
    zoo_env(env, "JVMFLAGS", "")
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The slf4j level for `ZOO_LOG_LEVEL`; the chart's ERROR hides the elections the bed's users
/// want to read about, so the bed logs at info at least.
pub fn log_level(env: &BTreeMap<String, String>) -> String {
    match zoo_env(env, "ZOO_LOG_LEVEL", "INFO")
        .to_ascii_lowercase()
        .as_str()
    {
        "error" | "warn" => "info".to_string(),
        l => l.to_string(),
    }
}

/// The image's server id rule: a data dir's `myid` wins; a fresh data dir gets the id that
/// `ZOO_SERVER_ID` gives (the chart's setup.sh exports it from the pod's ordinal).
pub fn read_myid(data_dir: &Path) -> Result<Option<u32>> {
    match std::fs::read_to_string(data_dir.join("myid")) {
        Ok(s) => Ok(Some(s.trim().parse().context("data/myid")?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("reading data/myid"),
    }
}

pub fn write_myid(data_dir: &Path, id: u32) -> Result<()> {
    std::fs::write(data_dir.join("myid"), format!("{id}\n")).context("writing data/myid")
}

fn is_yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1")
}

fn env_of(pod: &Pod, c: &Container, ip: Ipv4Addr) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let v = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.name") => pod.name_any(),
                Some("metadata.namespace") => pod.namespace().unwrap_or_default(),
                Some("status.podIP") => ip.to_string(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        env.insert(e.name.clone(), v);
    }
    env
}

/// Maps a container path to the host directory behind its volume: a claim's PV directory, or a
/// per-pod-UID directory for emptyDir.
fn host_path(pod: &Pod, c: &Container, path: &str, state: &Path) -> Result<PathBuf> {
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| {
            path == m.mount_path
                || path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/')))
        })
        .max_by_key(|m| m.mount_path.len())
        .with_context(|| format!("no volume mounted at {path}"))?;
    let rest = path[mount.mount_path.len()..].trim_start_matches('/');
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .with_context(|| format!("volume {} not in pod spec", mount.name))?;
    let base = if let Some(claim) = &vol.persistent_volume_claim {
        state
            .join("pv")
            .join(pod.namespace().unwrap_or_default())
            .join(&claim.claim_name)
    } else {
        // An emptyDir lives and dies with the pod's UID, as in a cluster: a pod deleted and
        // recreated under the same name starts with an empty one (the runner removes it once
        // the pod object is gone: `Runner::collect_empty_dirs`). Keyed by name, a
        // persistence-off member would keep its data across a restart here and nowhere else.
        empty_dir_root(state)
            .join(pod.uid().unwrap_or_default())
            .join(&vol.name)
    };
    let sub = mount.sub_path.clone().unwrap_or_default();
    Ok(base.join(sub).join(rest))
}

/// The chart's setup.sh: `ZOO_SERVER_ID = ordinal + minServerId` when `data/myid` is absent.
async fn server_id_for_new_pod(
    pod: &Pod,
    c: &Container,
    env: &BTreeMap<String, String>,
    client: &Client,
    ns: &str,
) -> Result<u32> {
    let uses_setup = c.command.iter().flatten().any(|a| a.ends_with("setup.sh"));
    if uses_setup {
        let spec = pod.spec.as_ref().context("pod without spec")?;
        let cm_name = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.config_map.as_ref())
            .map(|cm| cm.name.clone())
            .find(|n| n.ends_with("-scripts"))
            .context("setup.sh without a scripts ConfigMap")?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get(&cm_name)
            .await
            .with_context(|| format!("ConfigMap {cm_name}"))?;
        let script = cm
            .data
            .as_ref()
            .and_then(|d| d.get("setup.sh"))
            .context("setup.sh missing from the scripts ConfigMap")?;
        let offset = min_server_id(script).context("setup.sh: no `ORD + N` rule")?;
        let host = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| pod.name_any());
        let ord: u32 = host
            .rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .with_context(|| format!("Failed to get index from hostname {host}"))?;
        return Ok(ord + offset);
    }
    Ok(env
        .get("ZOO_SERVER_ID")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1))
}

fn min_server_id(script: &str) -> Option<u32> {
    let i = script.find("ORD + ")?;
    script[i + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// `ZOO_SERVERS` → `server.N=` lines as libzookeeper.sh writes them: separators space, comma or
/// semicolon; ids from `::N` when present, positional otherwise; one entry or none = standalone;
/// `;<client port>` after each when the client port is on all addresses (the image).
fn server_lines(servers: &str, client_port: Option<u16>) -> Result<Vec<String>> {
    let entries: Vec<&str> = servers
        .split([' ', ',', ';', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .collect();
    if entries.len() <= 1 {
        return Ok(vec![]);
    }
    let with_ids = servers.contains("::");
    let suffix = client_port.map(|p| format!(";{p}")).unwrap_or_default();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (addr, id) = match e.rsplit_once("::") {
            Some((a, id)) if with_ids => (
                a,
                id.parse::<u32>()
                    .with_context(|| format!("server id in {e}"))?,
            ),
            _ if with_ids => bail!("entry {e} has no ::id while others do"),
            _ => (*e, i as u32 + 1),
        };
        out.push(format!("server.{id}={addr}{suffix}"));
    }
    Ok(out)
}

/// Readiness as the kubelet computes it from the container's probe settings.
pub struct Probe {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    ok_run: u32,
    fail_run: u32,
    ready: bool,
}

impl Probe {
    pub fn from_pod(pod: &Pod) -> Probe {
        let p = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .find_map(|c| c.readiness_probe.clone())
            .unwrap_or_default();
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Probe {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
            ok_run: 0,
            fail_run: 0,
            ready: false,
        }
    }
    pub fn record(&mut self, ok: bool) {
        if ok {
            self.ok_run += 1;
            self.fail_run = 0;
            if self.ok_run >= self.success_threshold {
                self.ready = true;
            }
        } else {
            self.fail_run += 1;
            self.ok_run = 0;
            if self.fail_run >= self.failure_threshold {
                self.ready = false;
            }
        }
    }
    /// A restarted container starts unready, like a new one.
    pub fn reset(&mut self) {
        self.ok_run = 0;
        self.fail_run = 0;
        self.ready = false;
    }
    pub fn ready(&self) -> bool {
        self.ready
    }
}

/// The chart's probe: `echo ruok | nc host port | grep imok`.
pub async fn ruok(ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(b"ruok").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf.starts_with(b"imok"))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_follow_the_image() {
        assert!(server_lines("a:2888:3888::1 ", None).unwrap().is_empty());
        assert_eq!(
            server_lines("a:2888:3888::1 b:2888:3888::5 ", None).unwrap(),
            vec!["server.1=a:2888:3888", "server.5=b:2888:3888"]
        );
        assert_eq!(
            server_lines("a:2888:3888,b:2888:3888;c:2888:3888", None).unwrap(),
            vec![
                "server.1=a:2888:3888",
                "server.2=b:2888:3888",
                "server.3=c:2888:3888"
            ]
        );
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SERVERS: &str = "a:2888:3888::1 b:2888:3888::2 c:2888:3888::3 ";

    #[test]
    fn a_container_gets_the_image_config() {
        let e = env(&[
            ("ZOO_SERVERS", SERVERS),
            ("ZOO_LISTEN_ALLIPS_ENABLED", "yes"),
            ("ZOO_RECONFIG_ENABLED", "yes"),
            ("ZOO_CFG_standaloneEnabled", "false"),
            ("ZOO_TICK_TIME", ""),
        ]);
        let cfg = zoo_cfg(&e, Path::new("/d"), None, Listen::Container).unwrap();
        for line in [
            "tickTime=2000",
            "dataDir=/d",
            "clientPort=2181",
            "quorumListenOnAllIPs=true",
            "admin.enableServer=true",
            "admin.serverPort=8080",
            "reconfigEnabled=true",
            "standaloneEnabled=false",
            "server.1=a:2888:3888;2181",
            "server.3=c:2888:3888;2181",
        ] {
            assert!(cfg.iter().any(|l| l == line), "{line} missing from {cfg:?}");
        }
        assert!(!cfg.iter().any(|l| l.starts_with("clientPortAddress")));
    }

    #[test]
    fn the_runner_binds_the_pod_ip() {
        let e = env(&[
            ("ZOO_SERVERS", SERVERS),
            ("ZOO_LISTEN_ALLIPS_ENABLED", "yes"),
            ("ZOO_PORT_NUMBER", "2182"),
        ]);
        let ip = Ipv4Addr::new(127, 100, 0, 7);
        let cfg = zoo_cfg(&e, Path::new("/d"), None, Listen::SharedNetns(ip)).unwrap();
        for line in [
            "clientPort=2182",
            "clientPortAddress=127.100.0.7",
            "admin.enableServer=false",
            "server.2=b:2888:3888",
        ] {
            assert!(cfg.iter().any(|l| l == line), "{line} missing from {cfg:?}");
        }
        assert!(!cfg.iter().any(|l| l.starts_with("quorumListenOnAllIPs")));
    }

    #[test]
    fn myid_wins_over_the_server_id() {
        let dir = std::env::temp_dir().join(format!("zoo-myid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_myid(&dir).unwrap(), None);
        write_myid(&dir, 12).unwrap();
        assert_eq!(read_myid(&dir).unwrap(), Some(12));
        std::fs::write(dir.join("myid"), "x").unwrap();
        assert!(read_myid(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn min_server_id_from_setup_sh() {
        assert_eq!(
            min_server_id("export ZOO_SERVER_ID=\"$((ORD + 10 ))\""),
            Some(10)
        );
        assert_eq!(min_server_id("nothing"), None);
    }
}
