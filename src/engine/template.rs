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
        let live = self.target.read().await?;
        let Some(desired) = self.changed_template(&live, template).await? else {
            return Ok(());
        };
        // Nothing changes before the ensemble is known healthy (as the first step's pre-gate
        // would); a step left under way by an earlier run is finished by the steps anyway.
        if live.operation().is_none() {
            self.healthy_or_forced(
                "before the new template",
                None,
                "new template on an unhealthy ensemble",
            )
            .await?;
        }
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
