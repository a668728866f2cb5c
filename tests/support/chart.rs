//! The bitnami fixture charts on the bed: install/upgrade, wait for the controller and the
//! ensemble, write and count znodes through `kubectl port-forward`. Shared by the e2e tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::bed::{wait_for, Bed};
use super::zk_client::ZkClient;
use zkscale::zk::{observe_all_tcp, verdict, Gate, Timeouts, Verdict};

/// The StatefulSet of the shared fixtures (release `zk`, no name values).
pub const STS: &str = "zk-zookeeper";
pub const SETTLE: Duration = Duration::from_secs(240);

static STS_BY_NS: std::sync::Mutex<BTreeMap<String, String>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Records the StatefulSet that chart `dir` renders as namespace `ns`'s (fixtures renamed by
/// `nameOverride` or an alias have another name than [`STS`]).
pub fn remember_sts(ns: &str, dir: &Path) {
    if let Some(name) = rendered_sts(dir) {
        STS_BY_NS.lock().unwrap().insert(ns.to_string(), name);
    }
}

/// The `metadata.name` of the StatefulSet in a static fixture chart's manifests.
fn rendered_sts(dir: &Path) -> Option<String> {
    for path in super::fixtures::fixture_files(dir) {
        let text = std::fs::read_to_string(path).ok()?;
        for doc in text.split("\n---") {
            if doc.contains("\nkind: StatefulSet") {
                let value: serde_yaml::Value = serde_yaml::from_str(doc).ok()?;
                return value["metadata"]["name"].as_str().map(str::to_string);
            }
        }
    }
    None
}

/// Namespace `ns`'s ZooKeeper StatefulSet name: the one its fixture chart renders.
pub fn sts(ns: &str) -> String {
    STS_BY_NS
        .lock()
        .unwrap()
        .get(ns)
        .cloned()
        .unwrap_or_else(|| STS.to_string())
}

pub fn sts_field(bed: &Bed, ns: &str, path: &str) -> String {
    bed.kubectl_try(&[
        "get",
        "statefulset",
        "-n",
        ns,
        &sts(ns),
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
    .unwrap_or_default()
}

/// The value of env entry `name` in the StatefulSet template's first container (ZooKeeper's).
pub fn sts_env(bed: &Bed, ns: &str, name: &str) -> String {
    sts_field(
        bed,
        ns,
        &format!(".spec.template.spec.containers[0].env[?(@.name==\"{name}\")].value"),
    )
}

/// The StatefulSet controller has finished: `n` pods, all Ready, all on the update revision.
pub fn wait_rolled(bed: &Bed, ns: &str, n: usize) {
    wait_for(
        &format!("StatefulSet rolled out with {n} ready pods"),
        SETTLE,
        || {
            let ready = sts_field(bed, ns, ".status.readyReplicas");
            let updated = sts_field(bed, ns, ".status.updatedReplicas");
            let cur = sts_field(bed, ns, ".status.currentRevision");
            let upd = sts_field(bed, ns, ".status.updateRevision");
            let want = n.to_string();
            if ready == want && updated == want && cur == upd {
                Ok(())
            } else {
                Err(format!(
                    "ready={ready} updated={updated} current={cur} update={upd}"
                ))
            }
        },
    )
}

/// Observes members `0..n` directly at their pod IPs and returns the verdict for voters 1..=n.
pub async fn observe(bed: &Bed, ns: &str, n: usize) -> Verdict {
    let members: Vec<(u32, String)> = (0..n)
        .map(|o| {
            let ip = bed
                .pod_ip(ns, &format!("{}-{o}", sts(ns)))
                .unwrap_or_else(|| "127.0.0.255".into());
            (o as u32 + 1, format!("{ip}:2181"))
        })
        .collect();
    let obs = observe_all_tcp(&members, Timeouts::default()).await;
    verdict(&Gate::new(1..=n as u32), &obs)
}

pub async fn wait_healthy(bed: &Bed, ns: &str, n: usize) -> Verdict {
    let start = std::time::Instant::now();
    loop {
        let v = observe(bed, ns, n).await;
        if v.healthy {
            eprintln!("[{:>5.1}s] {}", start.elapsed().as_secs_f64(), v.summary());
            return v;
        }
        assert!(
            start.elapsed() < SETTLE,
            "ensemble never healthy: {}",
            v.summary()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes `/data/n0..n{count}` through `kubectl port-forward` to pod 0.
pub async fn write_znodes(bed: &Bed, ns: &str, count: usize) {
    let pf = bed.port_forward(ns, &format!("{}-0", sts(ns)), 2181);
    let c = ZkClient::connect(&pf.addr(), Duration::from_secs(10))
        .await
        .expect("connect");
    c.ensure("/data").await.expect("create /data");
    let paths: Vec<String> = (0..count).map(|i| format!("/data/n{i}")).collect();
    c.create_many(&paths, b"payload")
        .await
        .expect("create znodes");
    c.close().await.ok();
}

/// Children of `/data` through a port-forward to pod 0 (0 when `/data` itself is gone).
pub async fn count_znodes(bed: &Bed, ns: &str) -> usize {
    let pf = bed.port_forward(ns, &format!("{}-0", sts(ns)), 2181);
    let c = ZkClient::connect(&pf.addr(), Duration::from_secs(10))
        .await
        .expect("connect");
    let n = if c.exists("/data").await.expect("exists") {
        c.get_children("/data").await.expect("children").len()
    } else {
        0
    };
    c.close().await.ok();
    n
}

pub fn install(bed: &Bed, ns: &str, fixture: &str) {
    let chart = bed.chart(fixture, ns);
    bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", ns]);
}

pub fn upgrade(bed: &Bed, ns: &str, fixture: &str) {
    let chart = bed.chart(fixture, ns);
    bed.helm(&["upgrade", "zk", chart.to_str().unwrap(), "-n", ns]);
}

/// Client addresses of pods `0..n` right now (pod IPs; the bed's host reaches them directly).
pub fn member_addrs(bed: &Bed, ns: &str, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|o| bed.pod_ip(ns, &format!("{}-{o}", sts(ns))))
        .map(|ip| format!("{ip}:2181"))
        .collect()
}

/// A function listing the namespace's pod client addresses now (for clients that must find
/// restarted pods again, like the continuous writer).
pub fn pod_addrs(bed: &Bed, ns: &str) -> impl Fn() -> Vec<String> + Send + 'static {
    let (kubeconfig, kubectl, ns) = (bed.kubeconfig.clone(), bed.kubectl.clone(), ns.to_string());
    move || {
        std::process::Command::new(&kubectl)
            .args([
                "get",
                "pods",
                "-n",
                &ns,
                "-o",
                "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|ip| format!("{ip}:2181"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Installs a fixture chart, waits for its `n` members to roll out and be healthy, and writes
/// `znodes` znodes under `/data`.
pub async fn fresh_ensemble(bed: &Bed, ns: &str, fixture: &str, n: usize, znodes: usize) {
    install(bed, ns, fixture);
    wait_rolled(bed, ns, n);
    wait_healthy(bed, ns, n).await;
    write_znodes(bed, ns, znodes).await;
}

/// Children of `/data` asked of every member `0..n` at its pod IP (each answers from its own
/// copy: a member truncated by another quorum shows it here even when pod 0 does not).
pub async fn znodes_on_each_member(bed: &Bed, ns: &str, n: usize) -> Vec<usize> {
    let mut counts = Vec::new();
    for addr in member_addrs(bed, ns, n) {
        let c = ZkClient::connect(&addr, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let count = if c.exists("/data").await.expect("exists") {
            c.get_children("/data").await.expect("children").len()
        } else {
            0
        };
        c.close().await.ok();
        counts.push(count);
    }
    counts
}

/// Deletes pods `0..n` one at a time, as a node drain or an eviction would, each after the
/// ensemble is whole again (`healthy_at` members answering as one ensemble).
pub async fn delete_each_pod_in_turn(bed: &Bed, ns: &str, n: usize, healthy_at: usize) {
    for o in 0..n {
        recreate_pod(bed, ns, &format!("{}-{o}", sts(ns)));
        wait_healthy(bed, ns, healthy_at).await;
    }
}

/// The UID of pod `pod` now.
pub fn pod_uid(bed: &Bed, ns: &str, pod: &str) -> String {
    bed.kubectl(&[
        "get",
        "pod",
        "-n",
        ns,
        pod,
        "-o",
        "jsonpath={.metadata.uid}",
    ])
}

/// Deletes pod `pod`, as a node drain or an eviction would, and waits until the StatefulSet
/// controller has it running again under a new UID.
pub fn recreate_pod(bed: &Bed, ns: &str, pod: &str) {
    let uid = pod_uid(bed, ns, pod);
    bed.kubectl(&["delete", "pod", "-n", ns, pod, "--wait=true"]);
    wait_for(&format!("{pod} recreated and running"), SETTLE, || {
        let now = bed
            .kubectl_try(&[
                "get",
                "pod",
                "-n",
                ns,
                pod,
                "-o",
                "jsonpath={.metadata.uid} {.status.phase}",
            ])
            .unwrap_or_default();
        match now.split_once(' ') {
            Some((u, "Running")) if u != uid => Ok(()),
            _ => Err(now),
        }
    });
}

/// The UIDs of the namespace's pods, space-separated (a pod recreated or restarted by deletion
/// shows as another UID).
pub fn pod_uids(bed: &Bed, ns: &str) -> String {
    bed.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].metadata.uid}",
    ])
}

/// What runs leave in the cluster for people to read, by name: the StatefulSet's annotations
/// and the namespace's Events (for the checks that no secret shows anywhere).
pub fn left_in_cluster(bed: &Bed, ns: &str) -> Vec<(&'static str, String)> {
    let annotations = bed.kubectl(&[
        "get",
        "sts",
        &sts(ns),
        "-n",
        ns,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    let events = bed.kubectl(&["get", "events", "-n", ns, "-o", "yaml"]);
    vec![("annotations", annotations), ("events", events)]
}

/// The bitnami chart 13.8.8 as `helm template --set replicaCount=<replicas>` renders it, for
/// release `zk` in `ns`, as a static chart. There is no replicas-0 fixture, so 0 is made from the
/// replicas-1 render exactly as the chart's templates (bitnami/charts, zookeeper 13.8.8) would
/// render 0: `replicas: 0`, and `ZOO_SERVERS` from `range until 0`, i.e. `value: ` with nothing
/// after it (a null: the env entry without a value). Everything else the chart guards by
/// `replicaCount` is guarded by `> 1` (the quorum and election container ports and the client
/// Service's ports), so it renders for 0 as for 1.
pub fn chart_1388(bed: &Bed, ns: &str, replicas: u32) -> std::path::PathBuf {
    let fixtures = bed
        .charts
        .parent()
        .expect("fixtures dir")
        .join("bitnami-zookeeper");
    let from = replicas.max(1);
    let mut text = std::fs::read_to_string(fixtures.join(format!("13.8.8-replicas-{from}.yaml")))
        .unwrap()
        .replace("zk-test", ns);
    if replicas == 0 {
        let (size, servers) = (
            "\n  replicas: 1\n",
            format!(
                "              value: zk-zookeeper-0.zk-zookeeper-headless.{ns}.svc.cluster.local:2888:3888::1 \n"
            ),
        );
        assert!(text.contains(size) && text.contains(&servers));
        text = text
            .replace(size, "\n  replicas: 0\n")
            .replace(&servers, "              value: \n");
        assert!(
            !text.contains("containerPort: 2888"),
            "the chart leaves the quorum ports out at 0"
        );
    }
    let dir = std::env::temp_dir()
        .join(format!("zkscale-charts-{}", std::process::id()))
        .join(ns)
        .join(format!("13.8.8-replicas-{replicas}"));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let chart_yaml = std::fs::read_to_string(
        bed.charts
            .join("bitnami-zookeeper-13.8.8-replicas-3")
            .join("Chart.yaml"),
    )
    .unwrap();
    std::fs::write(dir.join("Chart.yaml"), chart_yaml).unwrap();
    std::fs::write(dir.join("templates").join("manifest.yaml"), text).unwrap();
    dir
}

/// The release at replicaCount=0 (the chart's real render for 0, see [`chart_1388`]),
/// minServerId 1, persistence on.
pub fn install_empty_release(bed: &Bed, ns: &str) {
    let chart = chart_1388(bed, ns, 0);
    bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", ns]);
    assert_eq!(
        sts_env(bed, ns, "ZOO_SERVERS"),
        "",
        "installed with an empty list"
    );
}
