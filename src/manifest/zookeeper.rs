//! Recognising the bitnami/zookeeper chart's objects in a parsed document, and the typed view
//! of its StatefulSet.

use jsonptr::PointerBuf;
use k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy;
use serde_yaml::Value;

use super::edit::Edit;
use super::error::{DocRef, ManifestError};
use crate::model::{ModelError, ServerList};

/// The chart label (`zookeeper-<chart version>`; `<alias>-<version>` under an alias): only
/// used to explain a refusal, never to recognise.
pub const CHART_LABEL: &str = "helm.sh/chart";
/// The env var the bitnami image builds the ensemble from.
pub const SERVERS_ENV: &str = "ZOO_SERVERS";
pub const LISTEN_ALL_IPS_ENV: &str = "ZOO_LISTEN_ALLIPS_ENABLED";
/// The script key of the chart's `<fullname>-scripts` ConfigMap.
pub const SETUP_SCRIPT: &str = "setup.sh";

/// A bitnami/zookeeper StatefulSet as found in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ZkStatefulSet {
    /// 0-based index of its document in the stream.
    pub doc_index: usize,
    pub name: String,
    /// `metadata.namespace`; `None` when the manifest leaves it to the release namespace.
    pub namespace: Option<String>,
    /// `spec.replicas` as written; `None` means Kubernetes' default of 1.
    pub replicas: Option<i32>,
    /// The parsed effective `ZOO_SERVERS` (the last entry of that name: Kubernetes lets later
    /// duplicates win).
    pub servers: ServerList,
    /// `ZOO_SERVERS` exactly as written.
    pub servers_env: String,
    /// Name and index of the container that has `ZOO_SERVERS` (the first when several do), and
    /// the index of that env entry.
    pub container: String,
    pub container_index: usize,
    pub servers_env_index: usize,
    pub pod_management_policy: Option<String>,
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    pub service_name: Option<String>,
    /// `ZOO_LISTEN_ALLIPS_ENABLED` as written (`"yes"`/`"no"` in the chart).
    pub listen_all_ips: Option<String>,
    /// That container's image.
    pub image: Option<String>,
    /// `spec.template`, verbatim, as JSON (what the API returns for the live object), for
    /// detecting template changes.
    pub pod_template: serde_json::Value,
    /// `minServerId`: the `N` of `ORD + N` in the chart's setup.sh, when its ConfigMap is in the
    /// stream.
    pub min_server_id: Option<u32>,
    /// Index of the document holding that scripts ConfigMap.
    pub scripts_doc_index: Option<usize>,
    /// Helm 4's `postrenderer.helm.sh/postrender-filename` annotation, when present.
    pub postrender_filename: Option<String>,
    /// Names of `spec.volumeClaimTemplates` (the chart's `data`): claims of pod `<sts>-<n>` are
    /// `<template>-<sts>-<n>`, and outlive the StatefulSet.
    pub claim_templates: Vec<String>,
}

impl ZkStatefulSet {
    /// `spec.replicas`, with Kubernetes' default of 1 when the manifest omits it.
    pub fn effective_replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }

    /// Whether `ZOO_LISTEN_ALLIPS_ENABLED` turns listening on all addresses on.
    pub fn listens_on_all_ips(&self) -> bool {
        matches!(
            self.listen_all_ips
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("yes" | "true" | "1")
        )
    }

    /// `/spec/template/spec/containers/<c>/env/<e>/value` of the effective `ZOO_SERVERS`.
    pub fn servers_pointer(&self) -> PointerBuf {
        let mut p = PointerBuf::parse("/spec/template/spec/containers").expect("valid pointer");
        p.push_back(self.container_index);
        p.push_back("env");
        p.push_back(self.servers_env_index);
        p.push_back("value");
        p
    }

    /// Edit setting `spec.replicas`.
    pub fn set_replicas(&self, replicas: i32) -> Edit {
        Edit::set(
            self.doc_index,
            PointerBuf::parse("/spec/replicas").expect("valid pointer"),
            replicas,
        )
    }

    /// Edit setting `ZOO_SERVERS` to `servers` (in the image's env format).
    pub fn set_servers(&self, servers: &ServerList) -> Edit {
        self.set_servers_env(servers.to_env())
    }

    /// Edit setting `ZOO_SERVERS` to a raw value.
    pub fn set_servers_env(&self, value: impl Into<String>) -> Edit {
        Edit::set(self.doc_index, self.servers_pointer(), value.into())
    }

    /// Edit setting one `metadata.annotations` entry of the StatefulSet.
    pub fn set_annotation(&self, key: &str, value: &str) -> Edit {
        let mut p = PointerBuf::parse("/metadata/annotations").expect("valid pointer");
        p.push_back(key);
        Edit::set(self.doc_index, p, value)
    }

    /// Edit setting `spec.updateStrategy`.
    pub fn set_update_strategy(&self, strategy: &StatefulSetUpdateStrategy) -> Edit {
        Edit::set_serialized(
            self.doc_index,
            PointerBuf::parse("/spec/updateStrategy").expect("valid pointer"),
            strategy,
        )
        .expect("k8s-openapi types serialize")
    }
}

/// The chart's scripts ConfigMap (`<fullname>-scripts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptsConfigMap {
    pub doc_index: usize,
    pub name: String,
    pub namespace: Option<String>,
    pub min_server_id: Option<u32>,
}

pub(crate) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    cur.as_str()
}

/// What a parsed document is, for the ZooKeeper logic.
pub(crate) enum Found {
    StatefulSet(Box<ZkStatefulSet>),
    Scripts(ScriptsConfigMap),
    Other,
}

/// Looks at one parsed document. `doc` names it in errors.
pub(crate) fn inspect(
    doc_index: usize,
    value: &Value,
    doc: impl Fn() -> DocRef,
) -> Result<Found, ManifestError> {
    match (str_at(value, &["apiVersion"]), str_at(value, &["kind"])) {
        (Some("apps/v1"), Some("StatefulSet")) => statefulset(doc_index, value, &doc),
        (Some("v1"), Some("ConfigMap")) => Ok(scripts(doc_index, value)),
        // `kind: List` (or `StatefulSetList`): kubectl applies every item. A ZooKeeper
        // StatefulSet in there would pass to Helm without the steps; refuse it instead.
        (_, Some(kind)) if kind.ends_with("List") => {
            for item in value
                .get("items")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let item_kind = (str_at(item, &["apiVersion"]), str_at(item, &["kind"]));
                let is_sts = item_kind.1 == Some("StatefulSet")
                    || (kind == "StatefulSetList" && item_kind.1.is_none());
                if is_sts && !matches!(statefulset(doc_index, item, &doc)?, Found::Other) {
                    return Err(ManifestError::InList {
                        doc: doc().into(),
                        name: str_at(item, &["metadata", "name"])
                            .unwrap_or("?")
                            .to_string(),
                    });
                }
            }
            Ok(Found::Other)
        }
        _ => Ok(Found::Other),
    }
}

fn scripts(doc_index: usize, value: &Value) -> Found {
    let (Some(name), Some(script)) = (
        str_at(value, &["metadata", "name"]),
        str_at(value, &["data", SETUP_SCRIPT]),
    ) else {
        return Found::Other;
    };
    Found::Scripts(ScriptsConfigMap {
        doc_index,
        name: name.to_string(),
        namespace: str_at(value, &["metadata", "namespace"]).map(str::to_string),
        min_server_id: min_server_id(script),
    })
}

/// The `N` of the chart's `ZOO_SERVER_ID="$((ORD + N ))"`.
pub fn min_server_id(script: &str) -> Option<u32> {
    let mut rest = script;
    while let Some(i) = rest.find("ORD") {
        let after = rest[i + 3..].trim_start();
        if let Some(num) = after.strip_prefix('+') {
            let num = num.trim_start();
            let digits = num.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                return num[..digits].parse().ok();
            }
        }
        rest = &rest[i + 3..];
    }
    None
}

/// What counts as a bitnami ZooKeeper StatefulSet, for every part of zkscale: the
/// post-renderer's scan, the cluster's discovery, `status`, and (in CEL, the same rule) the
/// guard. It goes by the image's contract, never by a name: `nameOverride`, `fullnameOverride`
/// and a subchart's alias rename every label and object the chart makes (an alias even rewrites
/// `helm.sh/chart`), and mirrors rename the image. What does not change is what the pods run.
///
/// - An `apps/v1` StatefulSet with a container (not an init container) whose env has an entry
///   named `ZOO_SERVERS` is one: the bitnami image builds its ensemble from that variable. That
///   is the whole test; no label, name or image is looked at.
/// - Several containers with it: the first one counts (the chart renders ZooKeeper's container
///   first, sidecars after it), as in the guard and the pod reader. If another one's effective
///   value differs, it is refused: which container runs the ensemble would be a guess.
/// - `ZOO_SERVERS` from `valueFrom`: refused, the manifest does not say the ensemble.
/// - No `ZOO_SERVERS` entry, but a container with `envFrom` and another of the image's variables
///   (`ZOO_*`): refused, `ZOO_SERVERS` may come from that ConfigMap or Secret.
/// - No `ZOO_SERVERS` and the chart label `helm.sh/chart: zookeeper-*`: refused, the chart always
///   renders it. The label only explains a refusal; it never makes a StatefulSet ours, and its
///   absence (an alias) never makes one not ours.
/// - Anything else is not a ZooKeeper ensemble and passes through.
fn statefulset(
    doc_index: usize,
    value: &Value,
    doc: &impl Fn() -> DocRef,
) -> Result<Found, ManifestError> {
    let invalid = |pointer: &str, reason: String| ManifestError::InvalidField {
        doc: doc().into(),
        pointer: pointer.to_string(),
        reason,
    };

    let containers = match value
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
    {
        Some(Value::Sequence(c)) => c.as_slice(),
        Some(Value::Null) | None => &[],
        Some(_) => {
            return Err(invalid(
                "/spec/template/spec/containers",
                "expected a list of containers".into(),
            ))
        }
    };
    // Containers with ZOO_SERVERS: (container index, env index of the last such entry).
    let with_servers: Vec<(usize, usize)> = containers
        .iter()
        .enumerate()
        .filter_map(|(ci, c)| last_env(c, SERVERS_ENV).map(|ei| (ci, ei)))
        .collect();
    let Some(&(ci, ei)) = with_servers.first() else {
        return without_servers(value, containers, doc);
    };
    // The effective value of every other container that has one must agree.
    for &(other, oei) in &with_servers[1..] {
        if containers[other]["env"][oei] != containers[ci]["env"][ei] {
            return Err(ManifestError::ConflictingServers {
                doc: doc().into(),
                first: str_at(&containers[ci], &["name"])
                    .unwrap_or("?")
                    .to_string(),
                second: str_at(&containers[other], &["name"])
                    .unwrap_or("?")
                    .to_string(),
            });
        }
    }
    let container = &containers[ci];
    let container_name = str_at(container, &["name"]).unwrap_or_default().to_string();
    let entry = &container["env"][ei];
    let servers_env = match entry.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) if entry.get("valueFrom").is_some() => {
            return Err(ManifestError::ServersNotLiteral {
                doc: doc().into(),
                container: container_name,
            })
        }
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(invalid(
                &format!("/spec/template/spec/containers/{ci}/env/{ei}/value"),
                format!("ZOO_SERVERS must be a string, found {other:?}"),
            ))
        }
    };
    let servers = ServerList::parse_env(&servers_env).map_err(|e| match e {
        ModelError::DuplicateId { id } => ManifestError::DuplicateServerId {
            doc: doc().into(),
            id,
            value: servers_env.clone(),
        },
        error => ManifestError::BadServers {
            doc: doc().into(),
            value: servers_env.clone(),
            error,
        },
    })?;

    let spec = value.get("spec");
    let replicas = match spec.and_then(|s| s.get("replicas")) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(r) if r >= 0 => Some(r),
            _ => {
                return Err(invalid(
                    "/spec/replicas",
                    format!("expected a non-negative integer, found {n}"),
                ))
            }
        },
        Some(other) => {
            return Err(invalid(
                "/spec/replicas",
                format!("expected an integer, found {other:?}"),
            ))
        }
    };
    let update_strategy = match spec.and_then(|s| s.get("updateStrategy")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_yaml::from_value::<StatefulSetUpdateStrategy>(v.clone())
                .map_err(|e| invalid("/spec/updateStrategy", e.to_string()))?,
        ),
    };
    let pod_template = match spec.and_then(|s| s.get("template")) {
        None => serde_json::Value::Null,
        Some(t) => serde_json::to_value(t)
            .map_err(|e| invalid("/spec/template", format!("not representable as JSON: {e}")))?,
    };
    let listen_all_ips = last_env(container, LISTEN_ALL_IPS_ENV)
        .and_then(|i| str_at(&container["env"][i], &["value"]))
        .map(str::to_string);
    let spec_str = |k: &str| {
        spec.and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };

    Ok(Found::StatefulSet(Box::new(ZkStatefulSet {
        doc_index,
        name: str_at(value, &["metadata", "name"])
            .unwrap_or_default()
            .to_string(),
        namespace: str_at(value, &["metadata", "namespace"]).map(str::to_string),
        replicas,
        servers,
        servers_env,
        container: container_name,
        container_index: ci,
        servers_env_index: ei,
        pod_management_policy: spec_str("podManagementPolicy"),
        update_strategy,
        service_name: spec_str("serviceName"),
        listen_all_ips,
        image: str_at(container, &["image"]).map(str::to_string),
        pod_template,
        min_server_id: None,
        scripts_doc_index: None,
        postrender_filename: value
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(super::FILENAME_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string),
        claim_templates: spec
            .and_then(|s| s.get("volumeClaimTemplates"))
            .and_then(Value::as_sequence)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| str_at(t, &["metadata", "name"]).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })))
}

/// A StatefulSet without a `ZOO_SERVERS` entry: not ours, unless it shows that it runs the
/// image with `ZOO_SERVERS` out of sight (see [`statefulset`]).
fn without_servers(
    value: &Value,
    containers: &[Value],
    doc: &impl Fn() -> DocRef,
) -> Result<Found, ManifestError> {
    let hidden = containers.iter().find(|c| {
        let env_from = c
            .get("envFrom")
            .and_then(Value::as_sequence)
            .is_some_and(|s| !s.is_empty());
        let zoo_var = c
            .get("env")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .any(|e| str_at(e, &["name"]).is_some_and(|n| n.starts_with("ZOO_")));
        env_from && zoo_var
    });
    if let Some(c) = hidden {
        return Err(ManifestError::ServersHidden {
            doc: doc().into(),
            container: str_at(c, &["name"]).unwrap_or("?").to_string(),
        });
    }
    let chart = str_at(value, &["metadata", "labels", CHART_LABEL]);
    if chart.is_some_and(|c| c.starts_with("zookeeper-")) {
        return Err(ManifestError::MissingServers { doc: doc().into() });
    }
    Ok(Found::Other)
}

/// Index of the last env entry named `name` in a container.
fn last_env(container: &Value, name: &str) -> Option<usize> {
    container
        .get("env")?
        .as_sequence()?
        .iter()
        .rposition(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

/// Names of the ConfigMaps the StatefulSet's pod template mounts.
pub(crate) fn mounted_config_maps(template: &serde_json::Value) -> Vec<&str> {
    template
        .pointer("/spec/volumes")
        .and_then(|v| v.as_array())
        .map(|vols| {
            vols.iter()
                .filter_map(|v| v.pointer("/configMap/name").and_then(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_min_server_id() {
        assert_eq!(
            min_server_id("export ZOO_SERVER_ID=\"$((ORD + 10 ))\""),
            Some(10)
        );
        assert_eq!(
            min_server_id("ORD=${BASH_REMATCH[2]}\n x=\"$((ORD+1))\""),
            Some(1)
        );
        assert_eq!(min_server_id("no ordinal here"), None);
    }
}
