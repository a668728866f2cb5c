//! Reading one ensemble's live objects: the StatefulSet, its pods and its claims, at one moment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use serde::Serialize;

use super::{recognise, ClusterError, Target, OPERATION_ANNOTATION};
use crate::manifest::ZkStatefulSet;

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
    /// Created from the StatefulSet's current template, or from one that differs from it only
    /// in `ZOO_SERVERS` (a reconfig step grew or shrank the list; the pod's ZooKeeper runs the
    /// committed configuration whatever it started with). See [`Live::pod_current`].
    pub template_current: bool,
    /// What the container's env says about dynamic reconfiguration.
    pub reconfig_env: ReconfigEnv,
}

/// Dynamic reconfiguration settings as a ZooKeeper container's env gives them to the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconfigEnv {
    /// `ZOO_RECONFIG_ENABLED` (`None`: set from a ConfigMap or Secret, so not known here).
    pub enabled: Option<bool>,
    /// `skipACL` through `JVMFLAGS` or `ZOO_CFG_skipACL`: anyone may call `reconfig`.
    pub skip_acl: bool,
}

impl ReconfigEnv {
    pub fn of(c: &k8s_openapi::api::core::v1::Container) -> ReconfigEnv {
        let literal = |name: &str| {
            c.env
                .iter()
                .flatten()
                .rev()
                .find(|e| e.name == name)
                .map(|e| (e.value.clone(), e.value_from.is_some()))
        };
        let yes = |v: &str| matches!(v.trim().to_ascii_lowercase().as_str(), "yes" | "true" | "1");
        let enabled = match literal("ZOO_RECONFIG_ENABLED") {
            Some((_, true)) => None,
            Some((v, false)) => Some(yes(v.as_deref().unwrap_or(""))),
            None if c.env_from.as_ref().is_some_and(|f| !f.is_empty()) => None,
            None => Some(false),
        };
        let jvm = literal("JVMFLAGS").and_then(|(v, _)| v).unwrap_or_default();
        let skip_acl = jvm
            .split_whitespace()
            .any(|f| f.strip_prefix("-Dzookeeper.skipACL=").is_some_and(yes))
            || literal("ZOO_CFG_skipACL").is_some_and(|(v, _)| yes(v.as_deref().unwrap_or("")));
        ReconfigEnv { enabled, skip_acl }
    }
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
    /// The UIDs of those claims: a claim deleted and created again has the same name.
    pub claim_uids: BTreeMap<u32, String>,
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

    /// Whether the pod at `ordinal` runs the StatefulSet's current template, `ZOO_SERVERS`
    /// aside (the list is a step's business: see [`LivePod::servers_env`]).
    pub fn pod_current(&self, ordinal: u32) -> bool {
        self.pods.get(&ordinal).is_some_and(|p| p.template_current)
    }

    /// The reconfiguration settings of the StatefulSet's pod template.
    pub fn template_reconfig_env(&self) -> ReconfigEnv {
        self.sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == self.zk.container))
            .map(ReconfigEnv::of)
            .unwrap_or_default()
    }

    /// The label selector of the StatefulSet's pods.
    pub fn pod_selector(&self) -> String {
        pod_selector(&self.sts)
    }

    /// The Helm release the StatefulSet belongs to, if any.
    pub fn helm_release(&self) -> Option<&str> {
        self.sts
            .metadata
            .annotations
            .as_ref()?
            .get("meta.helm.sh/release-name")
            .map(String::as_str)
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

/// The StatefulSet's own pod selector as a label-selector string, `matchExpressions` included
/// (a selector of expressions alone must not become "every pod of the namespace").
fn pod_selector(sts: &StatefulSet) -> String {
    let Some(selector) = sts.spec.as_ref().map(|s| &s.selector) else {
        return String::new();
    };
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            // DoesNotExist (the API server validates the operator).
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// A stored pod template with the ZooKeeper container's `ZOO_SERVERS` value blanked.
fn without_servers(mut t: serde_json::Value, container: &str) -> serde_json::Value {
    if let Some(cs) = t
        .pointer_mut("/spec/containers")
        .and_then(|c| c.as_array_mut())
    {
        for c in cs.iter_mut().filter(|c| c["name"] == container) {
            if let Some(env) = c.get_mut("env").and_then(|e| e.as_array_mut()) {
                for e in env.iter_mut().filter(|e| e["name"] == "ZOO_SERVERS") {
                    e["value"] = serde_json::Value::Null;
                }
            }
        }
    }
    t
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

impl Target {
    /// The StatefulSet, its pods and its claims, now.
    #[tracing::instrument(level = "trace", skip(self), fields(sts = %self.name), err)]
    pub async fn read(&self) -> Result<Live, ClusterError> {
        let (client, namespace, name) = (&self.client, self.namespace.as_str(), self.name.as_str());
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
        let selector = pod_selector(&sts);
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
                        template_current: false,
                        reconfig_env: zk_container(&p).map(ReconfigEnv::of).unwrap_or_default(),
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
            claim_uids: BTreeMap::new(),
        };
        if let Some(template) = live.claim_template() {
            for (ordinal, name, uid) in self.claim_list(&template).await? {
                live.claims.insert(ordinal, name);
                live.claim_uids.insert(ordinal, uid);
            }
        }
        self.mark_current(&mut live).await;
        Ok(live)
    }

    /// Sets [`LivePod::template_current`]: the pod's revision is the update revision, or its
    /// ControllerRevision's template equals the update revision's but for `ZOO_SERVERS`. When
    /// the revisions cannot be read (no `controllerrevisions` permission), a pod on another
    /// revision counts as outdated, which costs a restart at most.
    async fn mark_current(&self, live: &mut Live) {
        let Some(update) = live.update_revision.clone() else {
            return;
        };
        let mut others = false;
        for p in live.pods.values_mut() {
            p.template_current = p.revision.as_deref() == Some(update.as_str());
            others |= !p.template_current;
        }
        if !others {
            return;
        }
        let api = Api::<ControllerRevision>::namespaced(self.client.clone(), &self.namespace);
        let revisions = match api
            .list(&ListParams::default().labels(&live.pod_selector()))
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                tracing::debug!(error = %e, "controller revisions unreadable; pods on other revisions count as outdated");
                return;
            }
        };
        let container = live.zk.container.clone();
        let template_of = |name: &str| {
            revisions
                .iter()
                .find(|r| r.name_any() == name)
                .and_then(|r| r.data.as_ref())
                .and_then(|d| d.0.pointer("/spec/template").cloned())
                .map(|t| without_servers(t, &container))
        };
        let Some(current) = template_of(&update) else {
            return;
        };
        for p in live.pods.values_mut().filter(|p| !p.template_current) {
            p.template_current = p
                .revision
                .as_deref()
                .and_then(template_of)
                .is_some_and(|t| t == current);
        }
    }

    /// The claims of StatefulSet `name`'s volume claim template `template` by ordinal
    /// (`<template>-<name>-<ordinal>`), whether or not the StatefulSet exists: claims outlive it
    /// (`helm uninstall` keeps them), and a new pod on an old claim starts with its data.
    pub async fn claims(&self, template: &str) -> Result<BTreeMap<u32, String>, ClusterError> {
        Ok(self
            .claim_list(template)
            .await?
            .into_iter()
            .map(|(ordinal, name, _)| (ordinal, name))
            .collect())
    }

    /// [`Target::claims`] as `(ordinal, name, uid)`; claims being deleted are left out.
    async fn claim_list(&self, template: &str) -> Result<Vec<(u32, String, String)>, ClusterError> {
        let prefix = format!("{template}-{}-", self.name);
        let claims = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await?;
        Ok(claims
            .items
            .into_iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| {
                let n = c.name_any();
                let ord = n.strip_prefix(&prefix)?.parse().ok()?;
                Some((ord, n, c.metadata.uid.clone().unwrap_or_default()))
            })
            .collect())
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
