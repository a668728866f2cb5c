//! A migration's source ensemble on the test bed: real ZooKeeper 3.9 members **outside**
//! Kubernetes, each on its own loopback address (127.240.0.<id>), started and stopped through
//! `tests/bed/source-member.sh` (the same commands zkscale gets as --stop-cmd/--start-cmd).
//! They resolve cluster names through the pod runner's `<state>/hosts` (Service names to their
//! EndpointSlice or pod), with no DNS cache, as hosts on a cluster's network would.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bed::{wait_for, Bed};
use super::zk_client::ZkClient;
use super::zk_ensemble::ZkVersion;
use zkscale::zk::{self, Gate, Timeouts, Verdict};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bed/source-member.sh");

pub struct Sources {
    root: tempfile::TempDir,
    ids: Vec<u32>,
    net: [u8; 3],
    hosts_file: PathBuf,
    classpath: String,
}

impl Sources {
    /// Members `ids` (prepared, not started) for StatefulSet `sts` in `ns`.
    pub fn new(bed: &Bed, ids: &[u32]) -> Sources {
        let net = (0..=255u8)
            .map(|b| [127, 240, b])
            .find(|n| {
                ids.iter().all(|&id| {
                    [2181, 2888, 3888].iter().all(|&p| {
                        TcpListener::bind(SocketAddrV4::new(
                            Ipv4Addr::new(n[0], n[1], n[2], id as u8),
                            p,
                        ))
                        .is_ok()
                    })
                })
            })
            .expect("a free 127.240.x.0/24");
        Sources {
            root: tempfile::Builder::new()
                .prefix("zkscale-sources-")
                .tempdir()
                .expect("temp dir"),
            ids: ids.to_vec(),
            net,
            hosts_file: bed.runner_state.join("hosts"),
            classpath: ZkVersion::V3_9
                .classpath()
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn ip(&self, id: u32) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], id as u8)
    }

    pub fn client_addr(&self, id: u32) -> String {
        format!("{}:2181", self.ip(id))
    }

    pub fn dir(&self, id: u32) -> PathBuf {
        self.root.path().join(format!("member-{id}"))
    }

    /// `--from` for zkscale.
    pub fn entries_arg(&self) -> String {
        self.ids
            .iter()
            .map(|id| format!("{id}={}:2888:3888:2181", self.ip(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--host-ip` for zkscale: the address the cluster reaches each member at (the bed's
    /// runner maps 198.18.x.y to 127.240.x.y: an EndpointSlice cannot hold a loopback address).
    pub fn host_ip_arg(&self) -> String {
        self.ids
            .iter()
            .map(|id| format!("{id}=198.18.{}.{id}", self.net[2]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--stop-cmd` / `--start-cmd` for zkscale.
    pub fn cmd(&self, verb: &str) -> String {
        format!(
            "{SCRIPT} {verb} {}/member-{{id}}",
            self.root.path().display()
        )
    }

    /// Writes member `id`'s configuration: its list names `hosts(id)` for each member.
    pub fn configure(&self, id: u32, host: impl Fn(u32) -> String) {
        let ids = self.ids.clone();
        self.configure_with(id, &ids, host)
    }

    /// [`Sources::configure`] with the list `servers` (none: a standalone server). A running
    /// member takes it at its next start, as a staged configuration file would be.
    pub fn configure_with(&self, id: u32, servers: &[u32], host: impl Fn(u32) -> String) {
        let dir = self.dir(id);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPortAddress={}\n\
             clientPort=2181\n4lw.commands.whitelist=srvr, mntr, ruok, conf\n\
             admin.enableServer=false\npreAllocSize=1024\nforceSync=no\n",
            data.display(),
            self.ip(id)
        );
        for &s in servers {
            writeln!(cfg, "server.{s}={}:2888:3888", host(s)).unwrap();
        }
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        // A member whose own entry names its Service binds that name's address here (the bed
        // resolves a Service to its backend; a host in a cluster network would listen on all
        // IPs, `quorumListenOnAllIPs=true`, which the bed cannot: every member shares the
        // ports). So it starts once its name leads to it, as a pod starts once its names resolve.
        let own = host(id);
        let wait = if own.parse::<Ipv4Addr>().is_ok() {
            String::new()
        } else {
            format!(
                "for i in $(seq 150); do grep -qxF '{ip} {own}' {hosts} && break; sleep 0.2; done\n",
                ip = self.ip(id),
                hosts = self.hosts_file.display()
            )
        };
        let run = format!(
            "#!/bin/sh\n{wait}exec java -Xmx256m -Xms32m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
             -Djdk.net.hosts.file={hosts} -Dsun.net.inetaddr.ttl=0 \
             -Dsun.net.inetaddr.negative.ttl=0 -Dzookeeper.jmx.log4j.disable=true \
             -cp '{cp}' org.apache.zookeeper.server.quorum.QuorumPeerMain {cfg}\n",
            hosts = self.hosts_file.display(),
            cp = self.classpath,
            cfg = dir.join("zoo.cfg").display(),
        );
        let path = dir.join("run.sh");
        std::fs::write(&path, run).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn script(&self, verb: &str, id: u32) {
        let st = std::process::Command::new(SCRIPT)
            .args([verb, &self.dir(id).display().to_string()])
            .status()
            .expect("source-member.sh");
        assert!(st.success(), "source-member.sh {verb} {id}");
    }

    pub fn start(&self, id: u32) {
        self.script("start", id);
    }

    pub fn stop(&self, id: u32) {
        self.script("stop", id);
    }

    /// How many times `verb` ran for member `id` (the tests' calls and zkscale's alike).
    pub fn count(&self, id: u32, verb: &str) -> usize {
        std::fs::read_to_string(self.dir(id).join("events"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(verb))
            .count()
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Writes `/data/n0..n{count}` through member `id`.
    pub async fn write_znodes(&self, id: u32, count: usize) {
        let c = ZkClient::connect(&self.client_addr(id), Duration::from_secs(10))
            .await
            .expect("connect to a source member");
        c.ensure("/data").await.unwrap();
        let paths: Vec<String> = (0..count).map(|i| format!("/data/n{i}")).collect();
        c.create_many(&paths, b"payload").await.unwrap();
        c.close().await.ok();
    }

    /// One look at the source members.
    pub async fn verdict(&self) -> Verdict {
        let addrs: Vec<(u32, String)> = self
            .ids
            .iter()
            .map(|id| (*id, self.client_addr(*id)))
            .collect();
        let obs = zk::observe_all_tcp(&addrs, Timeouts::default()).await;
        zk::verdict(&Gate::new(self.ids.clone()), &obs)
    }

    /// Waits until the source members are one healthy ensemble.
    pub async fn wait_healthy(&self) -> Verdict {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.verdict().await;
            if v.healthy {
                return v;
            }
            if std::time::Instant::now() > deadline {
                panic!("source ensemble not healthy: {v}\n{}", self.log_tails());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn log_tails(&self) -> String {
        self.ids
            .iter()
            .map(|id| {
                let log = std::fs::read_to_string(self.dir(*id).join("zookeeper.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                format!(
                    "--- source {id}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = std::process::Command::new(SCRIPT)
                .args(["stop", &self.dir(id).display().to_string()])
                .status();
        }
        if std::env::var("ZKSCALE_KEEP_NS").as_deref() == Ok("1") {
            let keep = self.root.path().to_path_buf();
            eprintln!("keeping source dirs in {}", keep.display());
            std::mem::forget(std::mem::replace(
                &mut self.root,
                tempfile::tempdir().expect("temp dir"),
            ));
        }
    }
}

/// Waits until `name` resolves in the runner's outside hosts file to `ip`.
pub fn wait_resolves(bed: &Bed, name: &str, ip: &str) {
    let file = bed.runner_state.join("hosts");
    wait_for(
        &format!("{name} → {ip} in {}", file.display()),
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [ip, name])
            {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    )
}
