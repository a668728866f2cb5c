//! The few writes zkscale makes, all with one field manager: a step's spec change, a new pod
//! template, the status annotation and Events, and deleting a pod or a claim.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;
use serde_json::json;

use super::{
    ClusterError, Live, LivePod, Target, FIELD_MANAGER, OPERATION_ANNOTATION, STATUS_ANNOTATION,
};
use crate::manifest;

impl Target {
    /// The StatefulSet change of one step: server list, `OnDelete` (so zkscale, not the controller,
    /// decides restart order), replicas, and the operation annotation (`None` removes it), guarded by
    /// resourceVersion.
    #[tracing::instrument(level = "debug", skip(self, live), fields(sts = %self.name), err)]
    pub async fn apply_step(
        &self,
        live: &Live,
        replicas: u32,
        servers_env: &str,
        operation: Option<&str>,
    ) -> Result<(), ClusterError> {
        let mut annotations = serde_json::Map::new();
        annotations.insert(OPERATION_ANNOTATION.into(), json!(operation));
        self.patch_step(
            live,
            replicas,
            &[("ZOO_SERVERS", servers_env)],
            serde_json::Map::new(),
            annotations,
        )
        .await
    }

    /// What every step writes: replicas, the zk container's `env` entries (the others kept, in
    /// their order) and any `container` fields given (strategic-merge directives included),
    /// `OnDelete`, and `annotations` (null removes one), guarded by resourceVersion.
    pub(super) async fn patch_step(
        &self,
        live: &Live,
        replicas: u32,
        env: &[(&str, &str)],
        container_fields: serde_json::Map<String, serde_json::Value>,
        annotations: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ClusterError> {
        let api = self.statefulsets();
        let mut container = json!({
            "name": live.zk.container,
            "env": env.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect::<Vec<_>>(),
        });
        for (k, v) in container_fields {
            container[k] = v;
        }
        // A strategic merge leaves one patched entry where it is, but moves several next to each
        // other; the chart's next render would then differ from the live template (and restart
        // every pod). Their order is given, and the patch's entries must follow it.
        if env.len() > 1 {
            let mut order: Vec<&str> = live
                .sts
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .into_iter()
                .flat_map(|s| s.containers.iter())
                .filter(|c| c.name == live.zk.container)
                .flat_map(|c| c.env.iter().flatten().map(|e| e.name.as_str()))
                .collect();
            for (name, _) in env {
                if !order.contains(name) {
                    order.push(name);
                }
            }
            let mut entries: Vec<(&str, &str)> = env.to_vec();
            entries.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
            container["env"] = entries
                .iter()
                .map(|(n, v)| json!({ "name": n, "value": v }))
                .collect();
            container["$setElementOrder/env"] =
                order.iter().map(|n| json!({ "name": n })).collect();
        }
        let mut version = live.sts.resource_version();
        for attempt in 0.. {
            let patch = json!({
                "metadata": {
                    "resourceVersion": version,
                    "annotations": annotations,
                },
                "spec": {
                    "replicas": replicas,
                    "updateStrategy": { "type": "OnDelete", "rollingUpdate": null },
                    "template": { "spec": { "containers": [ container ] } },
                },
            });
            match patch_sts(&api, &self.name, patch).await {
                // The controller's status updates change the resourceVersion too; only a spec
                // changed by someone else since `live` was read (another generation) conflicts.
                Err(ClusterError::Conflict(name)) if attempt < 5 => {
                    let now = api.get(&self.name).await?;
                    if now.metadata.generation != live.sts.metadata.generation {
                        return Err(ClusterError::Conflict(name));
                    }
                    version = now.resource_version();
                }
                r => return r,
            }
        }
        unreachable!("the loop returns")
    }

    /// Replaces the StatefulSet's pod template with `template` (a chart's new template: image,
    /// config, env), keeping everything else, with `OnDelete` so that nothing restarts by itself and
    /// the operation annotation set. A PUT, not a merge, so fields the chart dropped go too; guarded
    /// by resourceVersion against spec changes since `live` was read (status-only changes retried). With `dry_run` the API server only answers what it would store, defaults
    /// filled in: how the caller tells whether the template really changes.
    #[tracing::instrument(level = "debug", skip(self, live, template), fields(sts = %self.name), err)]
    pub async fn replace_template(
        &self,
        live: &Live,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
        operation: Option<&str>,
        dry_run: bool,
    ) -> Result<StatefulSet, ClusterError> {
        let api = self.statefulsets();
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
        for attempt in 0.. {
            match api.replace(&self.name, &pp, &sts).await {
                Ok(s) => return Ok(s),
                // As in `apply_step`: a status update (a pod turning ready) changed the
                // resourceVersion; only another generation means someone changed the spec.
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < 5 => {
                    let now = api.get(&self.name).await?;
                    if now.metadata.generation != live.sts.metadata.generation {
                        return Err(ClusterError::Conflict(self.name.clone()));
                    }
                    tracing::debug!(attempt, "status changed under the replace; again");
                    sts.metadata.resource_version = now.metadata.resource_version;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Err(ClusterError::Conflict(self.name.clone()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns")
    }

    /// A Kubernetes Event on the StatefulSet (`kubectl describe` / `kubectl events` show it): where
    /// a run stands reaches people and pipelines even when its own output is swallowed (Helm 4
    /// drops a post-renderer's stderr).
    #[tracing::instrument(level = "debug", skip(self, live), fields(sts = %self.name), err)]
    pub async fn record_event(
        &self,
        live: &Live,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), ClusterError> {
        use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
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
                name: Some(format!("{}.{:x}", self.name, now.as_nanosecond())),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("StatefulSet".into()),
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
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
    #[tracing::instrument(level = "debug", skip(self), fields(sts = %self.name), err)]
    pub async fn annotate(&self, status: &str, done: bool) -> Result<(), ClusterError> {
        let api = self.statefulsets();
        let mut ann = serde_json::Map::new();
        ann.insert(STATUS_ANNOTATION.into(), json!(status));
        if done {
            ann.insert(OPERATION_ANNOTATION.into(), serde_json::Value::Null);
            // A preview applied by another tool left a note of what was pending: done now.
            ann.insert(manifest::PENDING_ANNOTATION.into(), serde_json::Value::Null);
        }
        patch_sts(
            &api,
            &self.name,
            json!({ "metadata": { "annotations": ann } }),
        )
        .await
    }

    /// Sets the operation annotation (what a run is doing, for the run that resumes it) alone.
    #[tracing::instrument(level = "debug", skip(self), fields(sts = %self.name), err)]
    pub async fn set_operation(&self, operation: &str) -> Result<(), ClusterError> {
        patch_sts(
            &self.statefulsets(),
            &self.name,
            json!({ "metadata": { "annotations": { OPERATION_ANNOTATION: operation } } }),
        )
        .await
    }

    /// Deletes one pod (only the one we looked at: UID precondition). The controller recreates it
    /// from the current template.
    #[tracing::instrument(level = "debug", skip(self), fields(pod = %pod.name, uid = %pod.uid), err)]
    pub async fn delete_pod(&self, pod: &LivePod) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
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

    #[tracing::instrument(level = "debug", skip(self), err)]
    pub async fn delete_claim(&self, name: &str) -> Result<(), ClusterError> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
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
