//! Test bed pod runner: plays the kubelet (and a storage provisioner, and cluster DNS) for the
//! fake node that kwok keeps alive, with real ZooKeeper processes standing in for containers.
//!
//! Every `TICK` it reconciles from listed objects (cheap on a one-node bed, and it survives
//! missed watch events by construction):
//! - PVCs: a Pending claim gets a hostPath PV pre-bound to it (one data dir per claim); a PV whose
//!   claim is gone is deleted together with its directory.
//! - Pods bound to our node: a ZooKeeper pod (a container with `ZOO_SERVERS`) gets a JVM configured
//!   as the bitnami image's scripts would configure it from the pod spec; other pods just run.
//!   Status: Running when the process is up, Ready from the pod's own readiness probe timings,
//!   asking `ruok` like the chart's probe. Deletion: SIGTERM, grace period, SIGKILL, then the
//!   pod is deleted with grace 0 (what the kubelet does).
//! - Names: one hosts file per pod (JVM `jdk.net.hosts.file`) mapping pod DNS names through the
//!   headless Service and Service names to pod IPs (127.100.x.y, stable per pod name); a
//!   Service without a selector resolves to the first ready address of its EndpointSlices (a
//!   host outside the cluster, as in a migration). The API server refuses loopback addresses
//!   in EndpointSlices, so the bed's hosts outside the cluster have a cluster-side address in
//!   198.18.0.0/16 (RFC 2544, never routed) that stands for 127.240.x.y, where they listen: a
//!   NAT between the bed's "host network" and loopback. `<state>/hosts` holds every cluster name,
//!   for ZooKeeper processes outside the cluster (they resolve Service names as hosts in a
//!   cluster's network do).
//! - kwok PortForward objects, one per pod, so `kubectl port-forward` reaches the process.
//!
//! On the node bed (tests/bed/node) a real kubelet runs the pods: there the runner only
//! provisions claims (`--only provision`), and the same binary is the bed image's entrypoint,
//! run script and health check (`image-*` subcommands, see `image`), so the bitnami contract
//! (`zoo`) is implemented once for both beds.

mod image;
mod zoo;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use tokio::process::Child;

const TICK: Duration = Duration::from_millis(300);
const MANAGER: &str = "zkscale-pod-runner";

struct Args {
    kubeconfig: PathBuf,
    node: String,
    state: PathBuf,
    /// Only the storage provisioner (a real kubelet runs the pods).
    provision_only: bool,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let (mut kubeconfig, mut node, mut state) = (None, None, None);
    let mut provision_only = false;
    while let Some(a) = it.next() {
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(v)),
            "--node" => node = Some(v),
            "--state" => state = Some(PathBuf::from(v)),
            "--only" if v == "provision" => provision_only = true,
            _ => anyhow::bail!("unknown argument {a} {v}"),
        }
    }
    Ok(Args {
        kubeconfig: kubeconfig.context("--kubeconfig")?,
        node: node.context("--node")?,
        state: state.context("--state")?,
        provision_only,
    })
}

fn log(msg: impl AsRef<str>) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "[runner {}.{:03}] {}",
        t.as_secs(),
        t.subsec_millis(),
        msg.as_ref()
    );
}

/// A running (or stopping) pod this runner owns.
struct Running {
    uid: String,
    ip: Ipv4Addr,
    child: Option<Child>,
    /// ZooKeeper client port to probe; `None` for pods without a ZooKeeper container.
    probe_port: Option<u16>,
    probe: zoo::Probe,
    started_at: String,
    restarts: u32,
    next_probe: Instant,
    last_exit: Option<String>,
    /// Set once SIGTERM was sent: (deadline for SIGKILL).
    terminating: Option<Instant>,
    launch: Option<zoo::Launch>,
    next_restart: Option<Instant>,
}

struct Runner {
    client: Client,
    node: String,
    state: PathBuf,
    pods: HashMap<String, Running>, // key: ns/name
    ips: BTreeMap<String, Ipv4Addr>,
    last_status: HashMap<String, serde_json::Value>,
    hosts_written: HashMap<String, String>,
    /// Pod UIDs whose PortForward is in place (it is owned by, and collected with, that pod).
    forwards: std::collections::HashSet<String>,
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("image-entrypoint") => return image::entrypoint(&argv[2..]),
        Some("image-run") => return image::run(),
        Some("image-healthcheck") => return image::healthcheck(),
        _ => {}
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<()> {
    let a = args()?;
    let kc = Kubeconfig::read_from(&a.kubeconfig)?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(cfg)?;
    std::fs::create_dir_all(a.state.join("pv"))?;
    std::fs::create_dir_all(a.state.join("pods"))?;
    let ips = std::fs::read_to_string(a.state.join("ips.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let mut r = Runner {
        client,
        node: a.node,
        state: a.state.clone(),
        pods: HashMap::new(),
        ips,
        last_status: HashMap::new(),
        hosts_written: HashMap::new(),
        forwards: Default::default(),
    };
    std::fs::write(a.state.join("ready"), b"")?;
    log(format!(
        "runner up for node {}{}",
        r.node,
        if a.provision_only {
            " (storage provisioner only)"
        } else {
            ""
        }
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let pass = if a.provision_only {
            r.provision().await
        } else {
            r.reconcile().await
        };
        if let Err(e) = pass {
            log(format!("reconcile: {e:#}"));
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    r.shutdown().await;
    Ok(())
}

impl Runner {
    async fn reconcile(&mut self) -> Result<()> {
        self.provision().await?;
        let pods: Vec<Pod> = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.node)))
            .await?
            .items;
        let services = Api::<Service>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let slices = Api::<EndpointSlice>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let live: HashMap<String, &Pod> = pods.iter().map(|p| (key(p), p)).collect();
        // Pods that are gone from the API: nothing left to own.
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|k| live.get(*k).map(|p| p.uid()) != Some(self.pods[*k].uid.clone().into()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(mut run) = self.pods.remove(&k) {
                log(format!("{k}: pod object gone; stopping its process"));
                stop_now(&mut run).await;
                self.forwards.remove(&run.uid);
            }
            self.last_status.remove(&k);
        }
        self.collect_empty_dirs(&pods);
        // Names first: a pod's names resolve (for itself and its peers) before its process
        // starts, as cluster DNS publishes a headless Service's records (publishNotReadyAddresses)
        // as soon as the pod has an IP, before its container runs.
        self.write_hosts(&pods, &services, &slices)?;
        for pod in &pods {
            if let Err(e) = self.reconcile_pod(pod).await {
                log(format!("{}: {e:#}", key(pod)));
            }
        }
        Ok(())
    }

    /// Removes the emptyDir volumes of pods that no longer exist (by UID: a pod recreated
    /// under the same name has another UID and never sees its predecessor's). Pods still
    /// listed, terminating ones included, keep theirs.
    fn collect_empty_dirs(&self, pods: &[Pod]) {
        let live: std::collections::HashSet<String> = pods.iter().filter_map(|p| p.uid()).collect();
        let root = zoo::empty_dir_root(&self.state);
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for e in entries.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => log(format!(
                        "emptyDir volumes of pod uid {uid} removed (pod gone)"
                    )),
                    Err(err) => log(format!("removing emptyDir of pod uid {uid}: {err}")),
                }
            }
        }
    }

    fn ip_for(&mut self, k: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.ips.get(k) {
            return Ok(*ip);
        }
        let n = self.ips.len() as u32;
        let ip = Ipv4Addr::new(127, 100, (n / 250) as u8, (n % 250 + 1) as u8);
        self.ips.insert(k.to_string(), ip);
        std::fs::write(
            self.state.join("ips.json"),
            serde_json::to_vec_pretty(&self.ips)?,
        )?;
        Ok(ip)
    }

    async fn reconcile_pod(&mut self, pod: &Pod) -> Result<()> {
        let k = key(pod);
        let uid = pod.uid().unwrap_or_default();
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);

        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            let done = match self.pods.get_mut(&k) {
                Some(run) => terminate(&k, run, Duration::from_secs(grace)).await,
                None => true,
            };
            if done {
                self.pods.remove(&k);
                self.forwards.remove(&uid);
                self.last_status.remove(&k);
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&pod.name_any(), &dp).await {
                    Ok(_) => log(format!("{k}: deletion completed")),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(());
        }

        if !self.pods.contains_key(&k) {
            let ip = self.ip_for(&k)?;
            let launch = zoo::Launch::from_pod(pod, ip, &self.state, &self.client).await?;
            let probe_port = launch.as_ref().map(|l| l.client_port);
            let probe = zoo::Probe::from_pod(pod);
            let mut run = Running {
                uid: uid.clone(),
                ip,
                child: None,
                probe_port,
                next_probe: Instant::now() + probe.initial_delay,
                probe,
                started_at: now_rfc3339(),
                restarts: 0,
                last_exit: None,
                terminating: None,
                launch,
                next_restart: Some(Instant::now()),
            };
            if run.launch.is_none() {
                run.next_restart = None;
                log(format!(
                    "{k}: not a ZooKeeper pod; marked running without a process"
                ));
            }
            self.pods.insert(k.clone(), run);
            self.ensure_forward(pod, ip).await?;
        }

        let run = self.pods.get_mut(&k).expect("inserted above");
        supervise(&k, run).await;
        probe(run).await;
        let status = status_of(pod, run);
        if self.last_status.get(&k) != Some(&status) {
            api.patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .context("patching pod status")?;
            self.last_status.insert(k, status);
        }
        Ok(())
    }

    /// One kwok PortForward per pod (owned by the pod, so it goes with it): every declared
    /// container port forwards to the same port on the pod's IP.
    async fn ensure_forward(&mut self, pod: &Pod, ip: Ipv4Addr) -> Result<()> {
        let uid = pod.uid().unwrap_or_default();
        if self.forwards.contains(&uid) {
            return Ok(());
        }
        let mut ports: Vec<i32> = pod_spec_ports(pod);
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return Ok(());
        }
        let ar = ApiResource {
            group: "kwok.x-k8s.io".into(),
            version: "v1alpha1".into(),
            api_version: "kwok.x-k8s.io/v1alpha1".into(),
            kind: "PortForward".into(),
            plural: "portforwards".into(),
        };
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, &ar);
        let forwards: Vec<_> = ports
            .iter()
            .map(|p| json!({"ports": [p], "target": {"address": ip.to_string(), "port": p}}))
            .collect();
        let obj = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "PortForward",
            "metadata": {
                "name": pod.name_any(),
                "namespace": ns,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Pod", "name": pod.name_any(),
                    "uid": pod.uid().unwrap_or_default(),
                }],
            },
            "spec": {"forwards": forwards},
        });
        api.patch(
            &pod.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .context("applying kwok PortForward")?;
        self.forwards.insert(uid);
        Ok(())
    }

    /// Stands in for a local-path storage provisioner: one hostPath PV (a directory under the
    /// state dir) per claim, pre-bound so the PV controller binds them; the PV and its directory
    /// go when the claim is deleted, never before.
    async fn provision(&mut self) -> Result<()> {
        let pvcs = Api::<PersistentVolumeClaim>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let pv_api: Api<PersistentVolume> = Api::all(self.client.clone());
        let pvs = pv_api.list(&ListParams::default()).await?.items;
        let by_claim: HashMap<String, &PersistentVolume> = pvs
            .iter()
            .filter_map(|pv| {
                let c = pv.spec.as_ref()?.claim_ref.as_ref()?;
                Some((
                    format!(
                        "{}/{}",
                        c.namespace.clone().unwrap_or_default(),
                        c.name.clone().unwrap_or_default()
                    ),
                    pv,
                ))
            })
            .collect();
        for pvc in &pvcs {
            let k = key(pvc);
            if pvc.metadata.deletion_timestamp.is_some() || by_claim.contains_key(&k) {
                continue;
            }
            let spec = pvc.spec.clone().unwrap_or_default();
            // Provision once the scheduler has picked our node (WaitForFirstConsumer), or at once
            // for a claim without a class.
            let selected = pvc.annotations().get("volume.kubernetes.io/selected-node");
            let immediate = spec.storage_class_name.as_deref().unwrap_or("").is_empty();
            if spec.volume_name.is_some() || !(immediate || selected == Some(&self.node)) {
                continue;
            }
            let name = format!(
                "bed-{}-{}",
                pvc.namespace().unwrap_or_default(),
                pvc.name_any()
            );
            let dir = self.pv_dir(&k);
            std::fs::create_dir_all(&dir)?;
            // World-writable like a local-path provisioner's directories: a hostPath volume
            // gets no fsGroup ownership, and on a real node the image runs as uid 1001.
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
            let storage = spec
                .resources
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").cloned())
                .map(|q| q.0)
                .unwrap_or_else(|| "1Gi".into());
            let pv: PersistentVolume = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"zkscale.bed/pvc": pvc.name_any()}},
                "spec": {
                    "capacity": {"storage": storage},
                    "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": spec.storage_class_name.unwrap_or_default(),
                    "hostPath": {"path": dir.to_string_lossy(), "type": "DirectoryOrCreate"},
                    "claimRef": {
                        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "namespace": pvc.namespace(), "name": pvc.name_any(), "uid": pvc.uid(),
                    },
                },
            }))?;
            match pv_api.create(&PostParams::default(), &pv).await {
                Ok(_) => log(format!("{k}: provisioned PV {name} at {}", dir.display())),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let live: HashMap<String, Option<String>> =
            pvcs.iter().map(|c| (key(c), c.uid())).collect();
        for (claim, pv) in by_claim {
            let Some(c) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
                continue;
            };
            let same = live.get(&claim).map(|u| u.as_deref() == c.uid.as_deref());
            if same != Some(true) && pv.labels().contains_key("zkscale.bed/pvc") {
                let dir = self.pv_dir(&claim);
                match pv_api
                    .delete(&pv.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                let _ = std::fs::remove_dir_all(&dir);
                log(format!(
                    "{claim}: claim deleted; removed PV {} and {}",
                    pv.name_any(),
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    fn pv_dir(&self, claim_key: &str) -> PathBuf {
        self.state.join("pv").join(claim_key)
    }

    /// Cluster DNS stand-in: per-pod hosts files (each with its namespace's short names, as the
    /// pod's resolv.conf search path would give).
    fn write_hosts(
        &mut self,
        pods: &[Pod],
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> Result<()> {
        const DOMAINS: [&str; 2] = ["cluster.local", "corp.example"];
        let mut by_ns: BTreeMap<String, Vec<(String, Ipv4Addr)>> = BTreeMap::new();
        // Every pod bound here has its IP (stable per pod name) from the moment it exists; a pod
        // whose deletion completed is gone from `pods` and from the names.
        let mut ips: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
        for p in pods {
            let k = key(p);
            ips.insert(k.clone(), self.ip_for(&k)?);
        }
        for p in pods {
            let k = key(p);
            let ip = ips[&k];
            let ns = p.namespace().unwrap_or_default();
            let spec = p.spec.as_ref();
            let host = spec
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| p.name_any());
            let e = by_ns.entry(ns.clone()).or_default();
            e.push((host.clone(), ip));
            if let Some(sub) = spec.and_then(|s| s.subdomain.clone()) {
                e.push((format!("{host}.{sub}"), ip));
                for d in DOMAINS {
                    e.push((format!("{host}.{sub}.{ns}.svc.{d}"), ip));
                }
            }
        }
        // A Service name resolves to the first running pod it selects (no kube-proxy here), or
        // without a selector to the first ready address of its EndpointSlices.
        for s in services {
            let ns = s.namespace().unwrap_or_default();
            let sel = s
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            let target = if sel.is_empty() {
                slice_address(slices, &ns, &s.name_any())
            } else {
                let running = pods
                    .iter()
                    .find(|p| {
                        p.namespace().as_deref() == Some(ns.as_str())
                            && sel.iter().all(|(k, v)| p.labels().get(k) == Some(v))
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .map(|p| ips[&key(p)]);
                // A cluster's Service name always resolves (to its ClusterIP), pod or no pod.
                // A Service for one StatefulSet pod resolves to that pod's IP (stable per pod
                // name here) before the pod exists, so peers that started earlier can dial it.
                match (running, sel.get("statefulset.kubernetes.io/pod-name")) {
                    (Some(ip), _) => Some(ip),
                    (None, Some(pod)) if sel.len() == 1 => {
                        Some(self.ip_for(&format!("{ns}/{pod}"))?)
                    }
                    (None, _) => None,
                }
            };
            if let Some(ip) = target {
                let n = s.name_any();
                let e = by_ns.entry(ns.clone()).or_default();
                e.push((n.clone(), ip));
                e.push((format!("{n}.{ns}"), ip));
                e.push((format!("{n}.{ns}.svc"), ip));
                for d in DOMAINS {
                    e.push((format!("{n}.{ns}.svc.{d}"), ip));
                }
            }
        }
        let all: Vec<(String, Ipv4Addr)> = by_ns
            .iter()
            .flat_map(|(ns, es)| {
                es.iter()
                    .filter(move |(n, _)| n.contains(&format!(".{ns}.")))
                    .cloned()
            })
            .collect();
        // Outside the cluster: every fully qualified name.
        let mut outside = String::from("# written by zkscale-pod-runner: cluster names\n");
        let mut seen = std::collections::HashSet::new();
        for (n, ip) in &all {
            if seen.insert(n.clone()) {
                outside.push_str(&format!("{ip} {n}\n"));
            }
        }
        if self.hosts_written.get("") != Some(&outside) {
            let path = self.state.join("hosts");
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &outside)?;
            std::fs::rename(&tmp, &path)?;
            self.hosts_written.insert(String::new(), outside);
        }
        for p in pods {
            let k = key(p);
            let ns = p.namespace().unwrap_or_default();
            let mut text = String::from("# written by zkscale-pod-runner\n");
            let mut seen = std::collections::HashSet::new();
            for (n, ip) in by_ns.get(&ns).into_iter().flatten().chain(all.iter()) {
                if seen.insert(n.clone()) {
                    text.push_str(&format!("{ip} {n}\n"));
                }
            }
            if self.hosts_written.get(&k) != Some(&text) {
                let path = zoo::pod_dir(&self.state, p).join("hosts");
                std::fs::create_dir_all(path.parent().expect("has parent"))?;
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &text)?;
                std::fs::rename(&tmp, &path)?;
                self.hosts_written.insert(k, text);
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        log("shutting down: stopping every pod process");
        for (k, run) in self.pods.iter_mut() {
            log(format!("{k}: stopping"));
            stop_now(run).await;
        }
    }
}

fn key<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn pod_spec_ports(pod: &Pod) -> Vec<i32> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| p.container_port)
        .collect()
}

/// Starts the process when due; notices exits and schedules restarts with backoff
/// (restartPolicy Always, as the kubelet would).
async fn supervise(k: &str, run: &mut Running) {
    if run.terminating.is_some() {
        return;
    }
    if let Some(child) = run.child.as_mut() {
        if let Ok(Some(st)) = child.try_wait() {
            log(format!(
                "{k}: process exited ({st}); restarting with backoff"
            ));
            run.child = None;
            run.last_exit = Some(st.to_string());
            run.probe.reset();
            let backoff = Duration::from_secs((10u64 << run.restarts.min(4)).min(60));
            run.next_restart = Some(Instant::now() + backoff.min(Duration::from_secs(5)));
        }
        return;
    }
    let Some(due) = run.next_restart else { return };
    if Instant::now() < due {
        return;
    }
    let Some(launch) = run.launch.as_ref() else {
        return;
    };
    match launch.blocked() {
        Some(why) => {
            run.next_restart = Some(Instant::now() + Duration::from_secs(2));
            run.last_exit = Some(why);
        }
        None => match launch.spawn() {
            Ok(child) => {
                if run.last_exit.is_some() {
                    run.restarts += 1;
                }
                log(format!(
                    "{k}: started ZooKeeper pid {:?} on {}",
                    child.id(),
                    run.ip
                ));
                run.child = Some(child);
                run.started_at = now_rfc3339();
                run.next_probe = Instant::now() + run.probe.initial_delay;
                run.next_restart = None;
            }
            Err(e) => {
                log(format!("{k}: cannot start: {e:#}"));
                run.last_exit = Some(format!("{e:#}"));
                run.next_restart = Some(Instant::now() + Duration::from_secs(5));
            }
        },
    }
}

async fn probe(run: &mut Running) {
    if run.terminating.is_some() || Instant::now() < run.next_probe {
        return;
    }
    run.next_probe = Instant::now() + run.probe.period;
    let ok = match (run.probe_port, run.child.is_some()) {
        (Some(port), true) => zoo::ruok(run.ip, port, run.probe.timeout).await,
        (Some(_), false) => false,
        (None, _) => true,
    };
    run.probe.record(ok);
}

/// SIGTERM once, then SIGKILL at the deadline. Returns true when the process is gone.
async fn terminate(k: &str, run: &mut Running, grace: Duration) -> bool {
    let Some(child) = run.child.as_mut() else {
        return true;
    };
    if let Ok(Some(_)) = child.try_wait() {
        run.child = None;
        return true;
    }
    match run.terminating {
        None => {
            if let Some(pid) = child.id() {
                log(format!(
                    "{k}: SIGTERM pid {pid} (grace {}s)",
                    grace.as_secs()
                ));
                signal(pid, "TERM");
            }
            run.terminating = Some(Instant::now() + grace);
            false
        }
        Some(deadline) if Instant::now() >= deadline => {
            log(format!("{k}: grace period over; SIGKILL"));
            let _ = child.kill().await;
            run.child = None;
            true
        }
        Some(_) => false,
    }
}

async fn stop_now(run: &mut Running) {
    if let Some(mut child) = run.child.take() {
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn status_of(pod: &Pod, run: &Running) -> serde_json::Value {
    let up = run.child.is_some() || run.launch.is_none();
    let ready = up && run.probe.ready();
    let t = |b: bool| if b { "True" } else { "False" };
    let containers: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            let state = if up {
                json!({"running": {"startedAt": run.started_at}})
            } else {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": run.last_exit.clone().unwrap_or_default()}})
            };
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "containerID": format!("zkscale://{}", run.uid),
                "ready": ready, "started": up, "restartCount": run.restarts, "state": state,
            })
        })
        .collect();
    // Conditions carry no timestamps that change every tick, so an unchanged pod is not re-patched.
    json!({
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": run.ip.to_string(),
        "podIPs": [{"ip": run.ip.to_string()}],
        "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0.to_string()).unwrap_or_else(|| run.started_at.clone()),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": t(ready)},
            {"type": "Ready", "status": t(ready)},
        ],
        "containerStatuses": containers,
    })
}

/// The first ready IPv4 address of the EndpointSlices of Service `ns/name`.
fn slice_address(slices: &[EndpointSlice], ns: &str, name: &str) -> Option<Ipv4Addr> {
    slices
        .iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns)
                && s.labels()
                    .get("kubernetes.io/service-name")
                    .map(String::as_str)
                    == Some(name)
                && s.address_type == "IPv4"
        })
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| e.addresses.iter())
        .find_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(|ip| match ip.octets() {
            [198, 18, x, y] => Ipv4Addr::new(127, 240, x, y),
            _ => ip,
        })
}
