//! Kubernetes adapter: finding the ensemble's StatefulSet, reading its live state, the few writes
//! the engine makes (one field manager), the Lease that keeps two runs apart, and reaching members
//! for four-letter words (API-server port-forward or direct).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde::Serialize;
use serde_json::json;
use thiserror::Error;

use crate::manifest::{self, ZkStatefulSet};
use crate::zk::{self, MemberObservation, ServerId, Timeouts};

/// The one field manager zkscale writes with.
pub const FIELD_MANAGER: &str = "kubectl-zkscale";
/// Annotation on the StatefulSet recording the operation in progress (resume reads it).
pub const OPERATION_ANNOTATION: &str = "zkscale.io/operation";
/// Annotation with the last outcome, for humans and pipelines reading the object.
pub const STATUS_ANNOTATION: &str = "zkscale.io/status";
const CLIENT_PORT: u16 = 2181;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    #[error("no StatefulSet {name} in namespace {namespace}")]
    NotFound { namespace: String, name: String },
    #[error("no bitnami ZooKeeper StatefulSet in namespace {namespace}{hint}")]
    NoneFound { namespace: String, hint: String },
    #[error(
        "{count} bitnami ZooKeeper StatefulSets in namespace {namespace}: {candidates}; choose one with --statefulset or --release",
        count = candidates.len(),
        candidates = candidates.join(", ")
    )]
    Ambiguous {
        namespace: String,
        candidates: Vec<String>,
    },
    #[error("StatefulSet {namespace}/{name} is not a bitnami ZooKeeper StatefulSet: {reason}")]
    NotZooKeeper {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("another zkscale run holds the lock on {namespace}/{name}: {holder}, since {since}; it expires {expires}")]
    LockHeld {
        namespace: String,
        name: String,
        holder: String,
        since: String,
        expires: String,
    },
    #[error("lost the lock on {0}: another run took it over")]
    LockLost(String),
    #[error("StatefulSet {0} changed while zkscale was working on it; re-run to continue from its new state")]
    Conflict(String),
}

/// Where to find the cluster, as kubectl plugins take it.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client and the namespace to work in (flag, else the context's, else `default`).
pub async fn connect(access: &Access) -> Result<(Client, String), ClusterError> {
    let opts = KubeConfigOptions {
        context: access.context.clone(),
        ..Default::default()
    };
    let err = |e: &dyn std::fmt::Display| ClusterError::Config(e.to_string());
    let config = match (&access.kubeconfig, &access.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| err(&format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| err(&e))?
        }
        // KUBECONFIG (a path list, merged) or ~/.kube/config.
        (None, Some(_)) => Config::from_kubeconfig(&opts).await.map_err(|e| err(&e))?,
        // The same, or the in-cluster service account (a pipeline Job).
        (None, None) => Config::infer().await.map_err(|e| err(&e))?,
    };
    let namespace = access
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(ClusterError::Api)?;
    Ok((client, namespace))
}

/// Which StatefulSet to work on.
#[derive(Debug, Clone)]
pub enum Selector {
    StatefulSet(String),
    /// Helm release name: `app.kubernetes.io/instance=<release>`.
    Release(String),
    /// The only bitnami ZooKeeper StatefulSet in the namespace.
    Auto,
}

/// The bitnami view of a live StatefulSet (the same recogniser the post-renderer uses).
fn recognise(sts: &StatefulSet) -> Result<ZkStatefulSet, String> {
    manifest::recognise_live(sts)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            "it has no `app.kubernetes.io/name: zookeeper` label or no container with ZOO_SERVERS"
                .to_string()
        })
}

pub async fn find(
    client: &Client,
    namespace: &str,
    selector: &Selector,
) -> Result<StatefulSet, ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    match selector {
        Selector::StatefulSet(name) => {
            let sts = api
                .get_opt(name)
                .await?
                .ok_or_else(|| ClusterError::NotFound {
                    namespace: namespace.into(),
                    name: name.clone(),
                })?;
            recognise(&sts).map_err(|reason| ClusterError::NotZooKeeper {
                namespace: namespace.into(),
                name: name.clone(),
                reason,
            })?;
            Ok(sts)
        }
        Selector::Release(_) | Selector::Auto => {
            let lp = match selector {
                Selector::Release(r) => ListParams::default().labels(&format!(
                    "app.kubernetes.io/name=zookeeper,app.kubernetes.io/instance={r}"
                )),
                _ => ListParams::default().labels("app.kubernetes.io/name=zookeeper"),
            };
            let mut found: Vec<StatefulSet> = api
                .list(&lp)
                .await?
                .items
                .into_iter()
                .filter(|s| recognise(s).is_ok())
                .collect();
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(ClusterError::NoneFound {
                    namespace: namespace.into(),
                    hint: match selector {
                        Selector::Release(r) => format!(" for release {r}"),
                        _ => " (use -n to choose the namespace)".into(),
                    },
                }),
                _ => Err(ClusterError::Ambiguous {
                    namespace: namespace.into(),
                    candidates: found.iter().map(|s| s.name_any()).collect(),
                }),
            }
        }
    }
}

/// One pod of the StatefulSet as the engine needs it.
#[derive(Debug, Clone, Serialize)]
pub struct LivePod {
    pub ordinal: u32,
    pub name: String,
    pub uid: String,
    pub ip: Option<String>,
    pub ready: bool,
    pub running: bool,
    pub deleting: bool,
    /// `controller-revision-hash`: which template it was created from.
    pub revision: Option<String>,
    /// `ZOO_SERVERS` of the pod's own spec: the member list its ZooKeeper started with.
    pub servers_env: Option<String>,
    /// The ZooKeeper container's image.
    pub image: Option<String>,
}

/// The StatefulSet, its pods and claims, read at one moment.
#[derive(Debug, Clone)]
pub struct Live {
    pub sts: StatefulSet,
    pub zk: ZkStatefulSet,
    pub namespace: String,
    pub name: String,
    pub pods: BTreeMap<u32, LivePod>,
    /// Claims of the `data` template by ordinal (including ordinals beyond replicas: leftovers).
    pub claims: BTreeMap<u32, String>,
    pub update_revision: Option<String>,
}

impl Live {
    pub fn replicas(&self) -> u32 {
        self.sts
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as u32
    }

    pub fn operation(&self) -> Option<&str> {
        self.sts
            .annotations()
            .get(OPERATION_ANNOTATION)
            .map(String::as_str)
    }

    /// Whether the pod at `ordinal` runs the StatefulSet's current template.
    pub fn pod_current(&self, ordinal: u32) -> bool {
        match (self.pods.get(&ordinal), &self.update_revision) {
            (Some(p), Some(rev)) => p.revision.as_deref() == Some(rev.as_str()),
            _ => false,
        }
    }

    pub fn claim_template(&self) -> Option<String> {
        let spec = self.sts.spec.as_ref()?;
        spec.volume_claim_templates
            .as_ref()?
            .iter()
            .map(|t| t.name_any())
            .next()
    }
}

fn zk_container(p: &Pod) -> Option<&k8s_openapi::api::core::v1::Container> {
    let spec = p.spec.as_ref()?;
    spec.containers
        .iter()
        .find(|c| c.env.iter().flatten().any(|e| e.name == "ZOO_SERVERS"))
}

fn ordinal_of(sts: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

pub async fn read(client: &Client, namespace: &str, name: &str) -> Result<Live, ClusterError> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| ClusterError::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let zk = recognise(&sts).map_err(|reason| ClusterError::NotZooKeeper {
        namespace: namespace.into(),
        name: name.into(),
        reason,
    })?;
    let selector = sts
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let pods = pods
        .items
        .into_iter()
        .filter_map(|p| {
            let ordinal = ordinal_of(name, &p.name_any())?;
            let status = p.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Some((
                ordinal,
                LivePod {
                    ordinal,
                    name: p.name_any(),
                    uid: p.uid().unwrap_or_default(),
                    ip: status.pod_ip.clone().filter(|s| !s.is_empty()),
                    ready,
                    running: status.phase.as_deref() == Some("Running"),
                    deleting: p.metadata.deletion_timestamp.is_some(),
                    revision: p.labels().get("controller-revision-hash").cloned(),
                    servers_env: zk_container(&p).and_then(|c| {
                        c.env
                            .iter()
                            .flatten()
                            .rev()
                            .find(|e| e.name == "ZOO_SERVERS")
                            .and_then(|e| e.value.clone())
                    }),
                    image: zk_container(&p).and_then(|c| c.image.clone()),
                },
            ))
        })
        .collect();
    let mut live = Live {
        update_revision: sts.status.as_ref().and_then(|s| s.update_revision.clone()),
        sts,
        zk,
        namespace: namespace.into(),
        name: name.into(),
        pods,
        claims: BTreeMap::new(),
    };
    if let Some(template) = live.claim_template() {
        live.claims = claims(client, namespace, name, &template).await?;
    }
    Ok(live)
}

/// The claims of StatefulSet `name`'s volume claim template `template` by ordinal
/// (`<template>-<name>-<ordinal>`), whether or not the StatefulSet exists: claims outlive it
/// (`helm uninstall` keeps them), and a new pod on an old claim starts with its data.
pub async fn claims(
    client: &Client,
    namespace: &str,
    name: &str,
    template: &str,
) -> Result<BTreeMap<u32, String>, ClusterError> {
    let prefix = format!("{template}-{name}-");
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?;
    Ok(claims
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let n = c.name_any();
            let ord = n.strip_prefix(&prefix)?.parse().ok()?;
            Some((ord, n))
        })
        .collect())
}

/// The StatefulSet change of one step: server list, `OnDelete` (so zkscale, not the controller,
/// decides restart order), replicas, and the operation annotation (`None` removes it), guarded by
/// resourceVersion.
pub async fn apply_step(
    client: &Client,
    live: &Live,
    replicas: u32,
    servers_env: &str,
    operation: Option<&str>,
) -> Result<(), ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &live.namespace);
    let patch = json!({
        "metadata": {
            "resourceVersion": live.sts.resource_version(),
            "annotations": { OPERATION_ANNOTATION: operation },
        },
        "spec": {
            "replicas": replicas,
            "updateStrategy": { "type": "OnDelete", "rollingUpdate": null },
            "template": { "spec": { "containers": [
                { "name": live.zk.container, "env": [ { "name": "ZOO_SERVERS", "value": servers_env } ] }
            ] } },
        },
    });
    patch_sts(&api, &live.name, patch).await
}

/// Replaces the StatefulSet's pod template with `template` (a chart's new template: image,
/// config, env), keeping everything else, with `OnDelete` so that nothing restarts by itself and
/// the operation annotation set. A PUT, not a merge, so fields the chart dropped go too; guarded
/// by resourceVersion. With `dry_run` the API server only answers what it would store, defaults
/// filled in: how the caller tells whether the template really changes.
pub async fn replace_template(
    client: &Client,
    live: &Live,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    operation: Option<&str>,
    dry_run: bool,
) -> Result<StatefulSet, ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &live.namespace);
    let mut sts = live.sts.clone();
    sts.metadata.managed_fields = None;
    if let Some(op) = operation {
        sts.annotations_mut()
            .insert(OPERATION_ANNOTATION.into(), op.into());
    }
    let spec = sts.spec.get_or_insert_with(Default::default);
    spec.template = template.clone();
    spec.update_strategy = Some(k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    let pp = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match api.replace(&live.name, &pp, &sts).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(ClusterError::Conflict(live.name.clone())),
        Err(e) => Err(e.into()),
    }
}

/// Whether the StatefulSet controller has seen the latest spec (so `updateRevision`, and with
/// it [`Live::pod_current`], reflects it).
pub fn observed_latest(sts: &StatefulSet) -> bool {
    let generation = sts.metadata.generation.unwrap_or(0);
    sts.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_some_and(|g| g >= generation)
}

/// A Kubernetes Event on the StatefulSet (`kubectl describe` / `kubectl events` show it): where
/// a run stands reaches people and pipelines even when its own output is swallowed (Helm 4
/// drops a post-renderer's stderr).
pub async fn record_event(
    client: &Client,
    live: &Live,
    warning: bool,
    reason: &str,
    message: &str,
) -> Result<(), ClusterError> {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let api: Api<Event> = Api::namespaced(client.clone(), &live.namespace);
    let now = k8s_openapi::jiff::Timestamp::now();
    // The API server caps messages at 1 KiB.
    let mut message = message.to_string();
    if message.len() > 1000 {
        let mut end = 1000;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{}.{:x}", live.name, now.as_nanosecond())),
            namespace: Some(live.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            name: Some(live.name.clone()),
            namespace: Some(live.namespace.clone()),
            uid: live.sts.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some(FIELD_MANAGER.into()),
            host: None,
        }),
        reporting_component: Some(FIELD_MANAGER.into()),
        reporting_instance: Some(FIELD_MANAGER.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    api.create(&PostParams::default(), &event).await?;
    Ok(())
}

/// Records the outcome (and clears the operation when `done`).
pub async fn annotate(
    client: &Client,
    live: &Live,
    status: &str,
    done: bool,
) -> Result<(), ClusterError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &live.namespace);
    let mut ann = serde_json::Map::new();
    ann.insert(STATUS_ANNOTATION.into(), json!(status));
    if done {
        ann.insert(OPERATION_ANNOTATION.into(), serde_json::Value::Null);
        // A preview applied by another tool left a note of what was pending: done now.
        ann.insert(manifest::PENDING_ANNOTATION.into(), serde_json::Value::Null);
    }
    patch_sts(
        &api,
        &live.name,
        json!({ "metadata": { "annotations": ann } }),
    )
    .await
}

async fn patch_sts(
    api: &Api<StatefulSet>,
    name: &str,
    patch: serde_json::Value,
) -> Result<(), ClusterError> {
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch(name, &pp, &Patch::Strategic(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(ClusterError::Conflict(name.into())),
        Err(e) => Err(e.into()),
    }
}

/// Deletes one pod (only the one we looked at: UID precondition). The controller recreates it
/// from the current template.
pub async fn delete_pod(
    client: &Client,
    namespace: &str,
    pod: &LivePod,
) -> Result<(), ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&pod.name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_claim(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How four-letter words reach a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connect {
    /// Through the API server (pods/portforward), from anywhere kubectl works.
    PortForward,
    /// Straight to the pod IP, from inside the cluster (a pipeline Job).
    Direct,
}

/// `srvr` + `mntr` of the member in pod `pod`, reported as server `id`.
pub async fn observe(
    client: &Client,
    namespace: &str,
    pod: Option<&LivePod>,
    id: ServerId,
    connect: Connect,
    timeouts: Timeouts,
) -> MemberObservation {
    let Some(pod) = pod.filter(|p| p.running && !p.deleting) else {
        return MemberObservation {
            id,
            probe: zk::Probe::Unreachable {
                error: "no running pod".into(),
            },
        };
    };
    match connect {
        Connect::Direct => {
            let Some(ip) = &pod.ip else {
                return MemberObservation {
                    id,
                    probe: zk::Probe::Unreachable {
                        error: "pod has no IP".into(),
                    },
                };
            };
            zk::observe_tcp(id, &format!("{ip}:{CLIENT_PORT}"), timeouts).await
        }
        Connect::PortForward => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let name = pod.name.clone();
            zk::observe_stream(
                id,
                || {
                    let api = api.clone();
                    let name = name.clone();
                    async move {
                        let fut = async {
                            let mut pf = api
                                .portforward(&name, &[CLIENT_PORT])
                                .await
                                .map_err(std::io::Error::other)?;
                            pf.take_stream(CLIENT_PORT)
                                .ok_or_else(|| std::io::Error::other("port-forward gave no stream"))
                        };
                        match tokio::time::timeout(timeouts.connect, fut).await {
                            Ok(Ok(s)) => Ok(s),
                            Ok(Err(e)) => Err(zk::ZkError::Connect {
                                addr: format!("pod/{name}"),
                                source: e,
                            }),
                            Err(_) => Err(zk::ZkError::ConnectTimeout {
                                addr: format!("pod/{name}"),
                                after: timeouts.connect,
                            }),
                        }
                    }
                },
                timeouts.read,
            )
            .await
        }
    }
}

/// Lease times are `MicroTime`: the API server wants exactly six fractional digits.
fn micro_time(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A Lease per StatefulSet (`<name>-zkscale`) so two runs never work on one ensemble at once.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

impl Lock {
    pub const DURATION: Duration = Duration::from_secs(30);

    /// Takes the lease, or refuses with who holds it and since when; an expired lease is taken over.
    pub async fn acquire(
        client: &Client,
        live: &Live,
        holder: String,
    ) -> Result<Lock, ClusterError> {
        let name = format!("{}-zkscale", live.name);
        let api: Api<Lease> = Api::namespaced(client.clone(), &live.namespace);
        let lock = Lock {
            api,
            name,
            holder,
            duration: Self::DURATION,
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let spec = json!({
            "holderIdentity": lock.holder,
            "leaseDurationSeconds": lock.duration.as_secs(),
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        });
        match lock.api.get_opt(&lock.name).await? {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": { "name": lock.name, "labels": { "app.kubernetes.io/managed-by": FIELD_MANAGER } },
                    "spec": spec,
                }))
                .expect("valid lease");
                match lock
                    .api
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..Default::default()
                        },
                        &lease,
                    )
                    .await
                {
                    Ok(_) => Ok(lock),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Box::pin(Self::acquire(client, live, lock.holder)).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Some(existing) => {
                let s = existing.spec.clone().unwrap_or_default();
                let holder = s.holder_identity.clone().unwrap_or_default();
                let renew = s.renew_time.as_ref().map(|t| t.0);
                let secs = s.lease_duration_seconds.unwrap_or(30) as i64;
                let expires = renew.map(|r| r + k8s_openapi::jiff::SignedDuration::from_secs(secs));
                let live_holder =
                    !holder.is_empty() && holder != lock.holder && expires.is_some_and(|e| e > now);
                if live_holder {
                    return Err(ClusterError::LockHeld {
                        namespace: live.namespace.clone(),
                        name: live.name.clone(),
                        holder,
                        since: s
                            .acquire_time
                            .map(|t| t.0.to_string())
                            .unwrap_or_else(|| "?".into()),
                        expires: expires.map(|e| e.to_string()).unwrap_or_default(),
                    });
                }
                let patch = json!({ "metadata": { "resourceVersion": existing.resource_version() }, "spec": spec });
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match lock.api.patch(&lock.name, &pp, &Patch::Merge(patch)).await {
                    Ok(_) => Ok(lock),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Box::pin(Self::acquire(client, live, lock.holder)).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Renews the lease; fails if another run took it (ours had expired).
    pub async fn renew(&self) -> Result<(), ClusterError> {
        let cur = self.api.get(&self.name).await?;
        if cur.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
            != Some(self.holder.as_str())
        {
            return Err(ClusterError::LockLost(self.name.clone()));
        }
        let patch = json!({
            "metadata": { "resourceVersion": cur.resource_version() },
            "spec": { "renewTime": micro_time(k8s_openapi::jiff::Timestamp::now()) },
        });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api
            .patch(&self.name, &pp, &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    pub async fn release(self) -> Result<(), ClusterError> {
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
