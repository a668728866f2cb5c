//! A chart's new pod template (image, config, env) put in place for a roll-out: compared with
//! the live one the way the API server would store it, applied with `OnDelete` (nothing
//! restarts by itself) and the live `ZOO_SERVERS` (only the steps change that).

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::cluster::Live;

use super::{conditions, Engine, EngineError, Event};

impl Engine<'_> {
    /// Whether `template` (with the live `ZOO_SERVERS`, which only the steps change) differs
    /// from `live`'s pod template, as the API server would store it.
    pub async fn template_changes(
        &self,
        live: &Live,
        template: &PodTemplateSpec,
    ) -> Result<bool, EngineError> {
        Ok(self.changed_template(live, template).await?.is_some())
    }

    /// The template to put in place, if it changes anything: `template` with the live
    /// `ZOO_SERVERS`, compared with the live one by a dry-run replace (the API server's
    /// defaults filled in, so only real changes count).
    async fn changed_template(
        &self,
        live: &Live,
        template: &PodTemplateSpec,
    ) -> Result<Option<PodTemplateSpec>, EngineError> {
        let desired = with_live_servers(template, live)?;
        let would = self
            .target
            .replace_template(live, &desired, None, true)
            .await?;
        Ok((template_json(&live.sts) != template_json(&would)).then_some(desired))
    }

    /// Puts a changed template in place (`OnDelete`: nothing restarts) and waits until the
    /// controller has seen it, so that pods on the old one show as outdated.
    pub(super) async fn apply_template(
        &self,
        template: &PodTemplateSpec,
        target: u32,
    ) -> Result<(), EngineError> {
        let mut live = self.target.read().await?;
        if self.changed_template(&live, template).await?.is_none() {
            return Ok(());
        }
        // A size step an earlier run left under way is finished first, with its own waits and
        // gates: mid-step the ensemble is not whole by definition, so the gate below could
        // only refuse it. Whether one is under way is read from the cluster's state (the
        // pods' own lists, replicas, missing pods: [`step_under_way`]), never from the
        // `zkscale.io/operation` annotation, which anyone can set or leave behind.
        if let Some(why) = step_under_way(&live) {
            let plan = self.plan(target).await?;
            if plan.steps.first().is_some_and(|s| s.resumed) {
                self.emit(Event::Note {
                    message: format!(
                        "a step is under way ({why}): finishing it before the new template"
                    ),
                });
                self.run_steps(target, plan, Some(1)).await?;
                live = self.target.read().await?;
            }
        }
        // Nothing changes before the ensemble is known healthy (as the first step's pre-gate
        // would). Always: an operation annotation, stale or not, never skips it.
        self.healthy_or_forced(
            "before the new template",
            None,
            "new template on an unhealthy ensemble",
        )
        .await?;
        let Some(desired) = self.changed_template(&live, template).await? else {
            return Ok(());
        };
        let (old, new) = (
            live.sts
                .spec
                .as_ref()
                .map(|s| image(&s.template, &live.zk.container))
                .unwrap_or_default(),
            image(&desired, &live.zk.container),
        );
        self.emit(Event::Action {
            description: if old != new {
                format!("apply the new pod template (image {old} → {new}); restarts follow, leader last")
            } else {
                "apply the new pod template; restarts follow, leader last".into()
            },
        });
        let op = self.operation(target, "template");
        self.target
            .replace_template(&live, &desired, Some(&op), false)
            .await?;
        self.wrote();
        self.until(conditions::controller_caught_up(), self.opts.timeout)
            .await
    }
}

/// Why a size step is under way, read from the cluster's state alone (the operation
/// annotation is not trusted: anyone can set it, and a run killed at the wrong moment leaves
/// it behind): replicas that differ from the StatefulSet's list, a listed member without a
/// pod, or a pod started with another list than the StatefulSet's (unless it runs with
/// dynamic reconfiguration, where the committed configuration, not its start list, is its
/// view). `None`: no step is under way, and "healthy" means the full verdict.
pub fn step_under_way(live: &Live) -> Option<String> {
    let listed = live.zk.servers.len() as u32;
    if live.replicas() != listed {
        return Some(format!(
            "replicas {} with {listed} member(s) listed",
            live.replicas()
        ));
    }
    if let Some(o) = (0..listed).find(|o| !live.pods.contains_key(o)) {
        return Some(format!("no pod {}-{o} yet", live.name));
    }
    live.pods
        .values()
        .find(|p| {
            p.servers_env.as_deref() != Some(live.zk.servers_env.as_str())
                && p.reconfig_env.enabled != Some(true)
        })
        .map(|p| format!("{} runs another member list than the StatefulSet's", p.name))
}

/// The image of container `container` in `t`.
fn image(t: &PodTemplateSpec, container: &str) -> String {
    t.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// `template` with the live StatefulSet's `ZOO_SERVERS` (the steps, not the chart, change it).
fn with_live_servers(
    template: &PodTemplateSpec,
    live: &Live,
) -> Result<PodTemplateSpec, EngineError> {
    let mut t = template.clone();
    let env = t
        .spec
        .as_mut()
        .and_then(|s| {
            s.containers
                .iter_mut()
                .find(|c| c.name == live.zk.container)
        })
        .and_then(|c| c.env.as_mut())
        .and_then(|env| env.iter_mut().rev().find(|e| e.name == "ZOO_SERVERS"));
    match env {
        Some(e) => {
            e.value = Some(live.zk.servers_env.clone());
            Ok(t)
        }
        None => Err(EngineError::Refused(format!(
            "the new pod template has no ZOO_SERVERS in container `{}`",
            live.zk.container
        ))),
    }
}

fn template_json(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> serde_json::Value {
    serde_json::to_value(sts.spec.as_ref().map(|s| &s.template)).unwrap_or_default()
}

pub(super) fn is_on_delete(live: &Live) -> bool {
    live.sts
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}
