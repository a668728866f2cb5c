//! One Service per member for a migration from hosts (`kubectl zkscale migrate`): before its
//! member moves, a Service has no selector and one EndpointSlice with the host's address; after,
//! it selects the pod that carries the member's id (`statefulset.kubernetes.io/pod-name`). Every
//! member's server list names the Services, so moving one member changes no other member's
//! configuration. Also the StatefulSet's side of a move: replicas and the member env, and the
//! `minServerId` the chart's setup.sh gives new pods.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

use super::{ClusterError, Live, Target, FIELD_MANAGER, OPERATION_ANNOTATION};
use crate::model::ServerList;
use crate::plan::migrate::{service_name, Backend, MemberService, PORTS};

/// Label on every Service and EndpointSlice a migration creates (value: the StatefulSet).
pub const MIGRATION_LABEL: &str = "zkscale.io/migration";
/// `endpointslice.kubernetes.io/managed-by` of our slices: the EndpointSlice controller leaves
/// them alone and removes its own once a Service has no selector.
const SLICE_MANAGER: &str = "zkscale.io";

impl Target {
    /// Puts a member's Service in place for `backend`: the source host (no selector, our
    /// EndpointSlice) or the pod (a selector; our slice removed, the controller makes its own).
    /// Idempotent: a run that resumes applies the same objects again. With `release` (the
    /// StatefulSet's Helm release), the Service carries Helm's ownership marks, so the chart
    /// values printed at the end (`extraDeploy`) adopt it on the next `helm upgrade`.
    #[tracing::instrument(level = "debug", skip(self, svc), fields(svc = %svc.name), err)]
    pub async fn point_member_service(
        &self,
        svc: &MemberService,
        backend: &Backend,
        release: Option<&str>,
    ) -> Result<(), ClusterError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let ports: Vec<_> = PORTS
            .iter()
            .map(|(name, port)| json!({ "name": name, "port": port, "targetPort": port, "protocol": "TCP" }))
            .collect();
        let selector = match backend {
            Backend::Pod { pod } => json!({ "statefulset.kubernetes.io/pod-name": pod }),
            Backend::Host { .. } => serde_json::Value::Null,
        };
        let mut spec = json!({
            "type": "ClusterIP",
            "ports": ports,
            // A member must be reachable before it is ready: it is ready only once it has
            // joined, and it joins through this address.
            "publishNotReadyAddresses": true,
        });
        if !selector.is_null() {
            spec["selector"] = selector;
        }
        let mut service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": svc.name,
                "labels": {
                    MIGRATION_LABEL: self.name,
                    "zkscale.io/server-id": svc.id.to_string(),
                    "app.kubernetes.io/managed-by": "kubectl-zkscale",
                },
            },
            "spec": spec,
        });
        if let Some(release) = release {
            service["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
            service["metadata"]["annotations"] = json!({
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": self.namespace,
            });
        }
        // Server-side apply: a selector this manager applied before and leaves out now is
        // removed, which is how a Service goes back to its host.
        services
            .patch(&svc.name, &pp, &Patch::Apply(&service))
            .await?;
        let slice_name = format!("{}-host", svc.name);
        match backend {
            Backend::Host { ip, ports } => {
                let kind = match ip {
                    IpAddr::V4(_) => "IPv4",
                    IpAddr::V6(_) => "IPv6",
                };
                let ports: Vec<_> = PORTS
                    .iter()
                    .zip(ports)
                    .map(|((name, _), port)| json!({ "name": name, "port": port, "protocol": "TCP" }))
                    .collect();
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {
                        "name": slice_name,
                        "labels": {
                            "kubernetes.io/service-name": svc.name,
                            "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
                            MIGRATION_LABEL: self.name,
                        },
                    },
                    "addressType": kind,
                    "endpoints": [ { "addresses": [ ip.to_string() ], "conditions": { "ready": true } } ],
                    "ports": ports,
                });
                slices
                    .patch(&slice_name, &pp, &Patch::Apply(&slice))
                    .await?;
            }
            Backend::Pod { .. } => match slices.delete(&slice_name, &DeleteParams::default()).await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }

    /// After a migration the members' list names their Services, so a size step's new member
    /// needs one too: each member of `servers` named `<sts>-member-<id>…` without its Service
    /// gets one selecting its pod (`id − min_server_id`). Nothing for a StatefulSet that no
    /// migration set up (no Service carries its label). The Services created, by name.
    pub async fn add_member_services(
        &self,
        servers: &ServerList,
        min_server_id: u32,
        release: Option<&str>,
    ) -> Result<Vec<String>, ClusterError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("{MIGRATION_LABEL}={}", self.name);
        let ours = match services
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(l) => l,
            // The minimal Role has no Services: no migration to follow up (a migrated ensemble
            // needs role-migrate.yaml too, which has them).
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::debug!("services not listable; no migration Services looked for");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        if ours.items.is_empty() {
            return Ok(Vec::new());
        }
        let existing: Vec<String> = ours.items.iter().map(|s| s.name_any()).collect();
        let mut created = Vec::new();
        for m in servers.members() {
            let name = service_name(&self.name, m.id);
            let named = m.host == name || m.host.starts_with(&format!("{name}."));
            if !named || existing.contains(&name) || m.id < min_server_id {
                continue;
            }
            let svc = MemberService {
                id: m.id,
                name: name.clone(),
                host: m.host.clone(),
            };
            let pod = format!("{}-{}", self.name, m.id - min_server_id);
            self.point_member_service(&svc, &Backend::Pod { pod }, release)
                .await?;
            created.push(name);
        }
        Ok(created)
    }

    /// The `minServerId` the chart's setup.sh gives a new pod (`ORD + N`), from the scripts
    /// ConfigMap the pod template mounts; `None` when the template runs no setup.sh.
    pub async fn setup_min_server_id(&self, live: &Live) -> Result<Option<u32>, ClusterError> {
        let spec = live
            .sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        let Some(cm) = spec
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| v.config_map.as_ref())
            .map(|c| c.name.clone())
            .find(|n| n.ends_with("-scripts"))
        else {
            return Ok(None);
        };
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(cms
            .get_opt(&cm)
            .await?
            .and_then(|c| c.data?.get("setup.sh").cloned())
            .and_then(|script| crate::manifest::min_server_id(&script)))
    }

    /// A migration step on the StatefulSet: replicas, the member list naming the Services and
    /// quorum listen-on-all-IPs (a pod cannot bind a Service's address), `OnDelete`, and the
    /// operation annotation (`None` removes it).
    #[tracing::instrument(level = "debug", skip(self, live), fields(sts = %self.name), err)]
    pub async fn apply_migration_step(
        &self,
        live: &Live,
        replicas: u32,
        servers_env: &str,
        operation: Option<&str>,
    ) -> Result<(), ClusterError> {
        // The guard refuses replicas that differ from the list's length and a list that gives a
        // member another address; a migration does both on purpose (the list holds the members
        // still on hosts; the first list names the Services). Its override annotation, changed
        // in each request, lets exactly these requests through.
        let reason = format!(
            "kubectl zkscale migrate: {replicas} of the list's members in pods ({})",
            k8s_openapi::jiff::Timestamp::now()
        );
        let mut annotations = serde_json::Map::new();
        annotations.insert(OPERATION_ANNOTATION.into(), json!(operation));
        // The installed guard's own override name (a custom `overrideAnnotation` included).
        let key = crate::guard::override_annotation(&self.client).await;
        annotations.insert(key, json!(reason));
        let env = [
            ("ZOO_SERVERS", servers_env),
            ("ZOO_LISTEN_ALLIPS_ENABLED", "yes"),
        ];
        let container_ports = live
            .sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == live.zk.container))
            .map(|c| c.ports.clone().unwrap_or_default())
            .unwrap_or_default();
        let fields = quorum_ports_patch(&container_ports).unwrap_or_default();
        self.patch_step(live, replicas, &env, fields, annotations)
            .await
    }

    /// After server `id` left the ensemble (its pod and claim gone), its own Service, when a
    /// migration or a size step of a migrated ensemble made it (our labels: this StatefulSet,
    /// this server id): deleted, with its host EndpointSlice if any. Another Service of that
    /// name is left alone. The Service's name and, when a Helm release had adopted it
    /// (`extraDeploy`), that release: its values must drop it or the next upgrade brings it back.
    pub async fn remove_member_service(
        &self,
        id: u32,
    ) -> Result<Option<(String, Option<String>)>, ClusterError> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = service_name(&self.name, id);
        let Some(svc) = services.get_opt(&name).await? else {
            return Ok(None);
        };
        let labels = svc.labels();
        let ours = labels.get(MIGRATION_LABEL) == Some(&self.name)
            && labels.get("zkscale.io/server-id") == Some(&id.to_string());
        if !ours {
            return Ok(None);
        }
        let release = svc.annotations().get("meta.helm.sh/release-name").cloned();
        match services.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        match slices
            .delete(&format!("{name}-host"), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Some((name, release)))
    }

    /// The host address a migration's member Service leads to (its EndpointSlice's), `None`
    /// when it has none (it selects a pod, or there is no such Service).
    pub async fn member_host(&self, service: &str) -> Result<Option<String>, ClusterError> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(slice) = slices.get_opt(&format!("{service}-host")).await? else {
            return Ok(None);
        };
        // An address the API server validated as an IP (EndpointSlice addressType), re-parsed
        // so that only an IP reaches the output.
        Ok(slice
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter())
            .find_map(|a| a.parse::<IpAddr>().ok())
            .map(|ip| ip.to_string()))
    }

    /// The namespace's NetworkPolicies (for what they let through during a migration).
    pub async fn network_policies(
        &self,
    ) -> Result<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>, ClusterError> {
        let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
            Api::namespaced(self.client.clone(), &self.namespace);
        Ok(api.list(&ListParams::default()).await?.items)
    }
}

/// The quorum (`follower`) and election container ports, as the chart renders them when
/// `replicaCount > 1`, when the container lacks them; `None` when it has both.
///
/// A release installed with `replicaCount=0` for a migration has neither (the chart leaves them
/// out for 0 and 1), while the chart values printed at the end (`replicaCount` ≥ 3) render them.
/// Without them in the migration's template, the next `helm upgrade` would bring a new pod
/// template and restart every member. With them exactly where the chart puts them (after
/// `client` and `client-tls`, before `metrics` and `http-admin`, names and numbers as rendered),
/// that render equals the live template and nothing restarts. Adding them to the template is
/// the fix rather than ignoring a ports-only difference when deciding on a roll-out: a
/// difference ignored there would still be one for every other reader of the template (Helm's
/// diff, GitOps tools, `kubectl rollout status`), and a NetworkPolicy that names the ports
/// could only match declared ones.
pub fn quorum_ports_patch(
    ports: &[k8s_openapi::api::core::v1::ContainerPort],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let wanted = [("follower", PORTS[1].1), ("election", PORTS[2].1)];
    let missing: Vec<(&str, u16)> = wanted
        .iter()
        .copied()
        .filter(|(_, n)| !ports.iter().any(|p| p.container_port == i32::from(*n)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut order: Vec<i32> = ports.iter().map(|p| p.container_port).collect();
    let after = ports
        .iter()
        .rposition(|p| matches!(p.name.as_deref(), Some("client" | "client-tls")))
        .map_or(0, |i| i + 1);
    for (i, (_, n)) in missing.iter().enumerate() {
        order.insert(after + i, i32::from(*n));
    }
    let mut fields = serde_json::Map::new();
    fields.insert(
        "ports".into(),
        json!(missing
            .iter()
            .map(|(name, n)| json!({ "name": name, "containerPort": n }))
            .collect::<Vec<_>>()),
    );
    fields.insert(
        "$setElementOrder/ports".into(),
        json!(order
            .iter()
            .map(|n| json!({ "containerPort": n }))
            .collect::<Vec<_>>()),
    );
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn port(name: &str, n: i32) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: n,
            ..Default::default()
        }
    }

    /// The chart 13.8.8 at replicaCount 0 or 1 declares client and http-admin; at > 1 it adds
    /// follower and election between them.
    #[test]
    fn quorum_ports_go_where_the_chart_renders_them() {
        let f = quorum_ports_patch(&[port("client", 2181), port("http-admin", 8080)]).unwrap();
        assert_eq!(
            f["ports"],
            json!([{"name": "follower", "containerPort": 2888}, {"name": "election", "containerPort": 3888}])
        );
        assert_eq!(
            f["$setElementOrder/ports"],
            json!([{"containerPort": 2181}, {"containerPort": 2888}, {"containerPort": 3888}, {"containerPort": 8080}])
        );
        // client-tls and metrics, as with tls.client and metrics enabled.
        let f = quorum_ports_patch(&[
            port("client", 2181),
            port("client-tls", 3181),
            port("metrics", 9141),
            port("http-admin", 8080),
        ])
        .unwrap();
        let order: Vec<i64> = f["$setElementOrder/ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        assert_eq!(order, [2181, 3181, 2888, 3888, 9141, 8080]);
        // Already there (a template rendered at > 1): nothing to change.
        assert!(quorum_ports_patch(&[
            port("client", 2181),
            port("follower", 2888),
            port("election", 3888)
        ])
        .is_none());
    }
}
