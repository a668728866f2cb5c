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
        annotations.insert(crate::guard::OVERRIDE_ANNOTATION.into(), json!(reason));
        let env = [
            ("ZOO_SERVERS", servers_env),
            ("ZOO_LISTEN_ALLIPS_ENABLED", "yes"),
        ];
        self.patch_step(live, replicas, &env, annotations).await
    }
}
