//! The engine: runs the planner's steps against a live ensemble, one member at a time, with the
//! health gates between them. Both front ends (the kubectl plugin and the Helm post-renderer) call
//! [`Engine::upgrade`]; the steps exist only here and in [`crate::plan`].
//!
//! State lives in the cluster, not here: every step starts from a fresh [`snapshot::Snapshot`]
//! (the StatefulSet, its pods and the members' own answers) and asks the planner again, so a run
//! killed at any point is resumed by running the same command (the planner recognises a step
//! under way).
//!
//! - [`snapshot`]: one look at the ensemble, and the planner's input derived from it;
//! - [`conditions`] and [`wait`]: the named conditions and the one loop that waits for them;
//! - [`steps`]: a plan's steps carried out, with roll-back of a new member that never joins;
//! - [`template`]: a chart's new pod template put in place for a roll-out;
//! - [`method`]: restart or reconfig, decided on what the leader says;
//! - [`rebuild`]: members recreated empty with their ids (`kubectl zkscale rebuild`);
//! - [`migrate`]: members moved in from hosts, one Service each (`kubectl zkscale migrate`);
//! - [`status`]: the rows of `kubectl zkscale status`;
//! - [`event`]: what a run reports; [`error`]: how it ends when it does not succeed.

pub mod annotation;
pub mod conditions;
pub mod error;
pub mod event;
#[cfg(test)]
mod fixtures;
pub mod method;
mod migrate;
mod rebuild;
mod reconfig;
pub mod snapshot;
pub mod status;
pub mod steps;
pub mod template;
#[cfg(test)]
mod tests;
pub mod wait;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Client;

use crate::cluster::{self, Changes, ClusterError, Connect, Live, Lock, Selector, Target};
use crate::plan::{self, PlanError};
use crate::zk::session::Identity;
use crate::zk::Verdict;

pub use error::EngineError;
pub use event::{Event, Progress};
pub use method::MethodChoice;
pub use migrate::Migration;
pub use status::{MemberStatus, Status};
use wait::{Check, Condition, Kind};

#[derive(Debug, Clone)]
pub struct Options {
    pub selector: Selector,
    /// Longest wait of any one gate.
    pub timeout: Duration,
    pub connect: Connect,
    /// Start from an unhealthy ensemble anyway; the reason is logged.
    pub force: Option<String>,
    /// Delete a leftover claim of a new member's ordinal instead of refusing.
    pub delete_stale_claims: bool,
    /// Keep the claim of a removed member (reported) instead of deleting it.
    pub keep_removed_claims: bool,
    /// Who holds the lock (shown to a second run).
    pub holder: String,
    /// Wait for another run's lock to be released (or expire) instead of refusing: a re-run of
    /// `helm upgrade` right after an interrupted one finds the old run still finishing its step.
    pub wait_for_lock: bool,
    /// Asks the run to stop at the next safe point (between steps).
    pub cancel: Cancel,
    /// How membership changes (`--method`).
    pub method: MethodChoice,
    /// Secret holding the identity `reconfig` runs as (`--zk-auth-secret`).
    pub identity_secret: Option<String>,
}

/// Stops a run between steps, at a size where the ensemble is whole: Ctrl-C, or the Helm
/// process that started the post-renderer is gone (nobody would apply its output).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Mutex<Option<String>>>);

impl Cancel {
    pub fn cancel(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.0.lock() {
            r.get_or_insert(reason.into());
        }
    }

    pub fn reason(&self) -> Option<String> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// How long the first pre-gate waits for an unhealthy ensemble before refusing (exit 3).
const REFUSE_AFTER: Duration = Duration::from_secs(30);

pub struct Engine<'p> {
    target: Target,
    opts: Options,
    progress: &'p dyn Progress,
    start: Instant,
    /// An Event could not be recorded (said once).
    events_failed: std::sync::atomic::AtomicBool,
    /// Watches that wake the waits, started by the first wait that needs them.
    changes: OnceLock<Changes>,
    /// The last look that asked the members, and the number of writes before it: a wait that
    /// starts right after another ended (a post-step gate after the last member's wait, the
    /// plan after a gate) takes it as its first look instead of asking everyone again.
    last_look: Mutex<Option<(Instant, u64, snapshot::Snapshot)>>,
    /// Writes made so far; a look taken before a write is never reused after it.
    writes: std::sync::atomic::AtomicU64,
    /// The identity from `opts.identity_secret`, read once.
    identity: tokio::sync::OnceCell<Option<Identity>>,
    /// Members outside the StatefulSet (a migration's source hosts): server id → client
    /// address, asked directly in every look that asks the members.
    external: Mutex<std::collections::BTreeMap<u32, String>>,
}

/// Whether the ensemble is exactly what `target` members and the chart's template ask for: the
/// size, its list, every pod current, nothing under way. The one definition of "nothing to do"
/// on the Kubernetes side: the post-renderer then takes no lock and runs no gate, and the
/// planner's plan for such an ensemble is empty.
pub fn nothing_to_do(live: &Live, target: u32, template_changes: bool) -> bool {
    live.replicas() == target
        && live.zk.servers.len() as u32 == target
        && live.operation().is_none()
        && (0..target).all(|o| {
            // A pod started with another list is mid-step, unless it runs with dynamic
            // reconfiguration: then it runs the committed configuration, whatever it started
            // with (a step under way there keeps the operation annotation set).
            live.pod_current(o)
                && live.pods.get(&o).is_some_and(|p| {
                    p.servers_env.as_deref() == Some(live.zk.servers_env.as_str())
                        || p.reconfig_env.enabled == Some(true)
                })
        })
        && !template_changes
}

impl<'p> Engine<'p> {
    /// The engine for the StatefulSet `opts.selector` names in `namespace`.
    pub async fn new(
        client: Client,
        namespace: String,
        opts: Options,
        progress: &'p dyn Progress,
    ) -> Result<Engine<'p>, EngineError> {
        let target = cluster::find(&client, &namespace, &opts.selector).await?;
        Ok(Engine {
            target,
            opts,
            progress,
            start: Instant::now(),
            events_failed: Default::default(),
            changes: OnceLock::new(),
            last_look: Mutex::new(None),
            writes: Default::default(),
            identity: Default::default(),
            external: Default::default(),
        })
    }

    /// The identity `reconfig` runs as, if a Secret was named.
    async fn identity(&self) -> Result<Option<Identity>, EngineError> {
        self.identity
            .get_or_try_init(|| async {
                match &self.opts.identity_secret {
                    Some(name) => Ok(Some(self.target.identity(name).await?)),
                    None => Ok(None),
                }
            })
            .await
            .cloned()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn statefulset(&self) -> &str {
        self.target.name()
    }

    pub fn namespace(&self) -> &str {
        self.target.namespace()
    }

    fn emit(&self, e: Event) {
        self.progress.event(&e);
    }

    pub async fn plan(&self, target: u32) -> Result<plan::Plan, EngineError> {
        self.plan_with(target, false).await
    }

    /// The plan; with `template_changes`, as if a new template were in place (every pod
    /// outdated): what [`Engine::upgrade`] with that template would do. Transient states (an
    /// election, a follower catching up, a pod mid-restart, the controller not yet at the
    /// latest spec) are waited out up to the timeout.
    pub async fn plan_with(
        &self,
        target: u32,
        template_changes: bool,
    ) -> Result<plan::Plan, EngineError> {
        let name = self.target.name().to_string();
        let choice = self.opts.method;
        let cond = Condition::new("a plan", true, Kind::Quiet, move |snap, look| {
            // Which pods are outdated is only known once the controller has seen the latest
            // spec (its updateRevision); a moment after a patch it may not have yet.
            if !cluster::observed_latest(&snap.live.sts) && !look.overdue {
                return Check::NotYet("the controller has not seen the latest spec".into());
            }
            let mut obs = match snap.observed(&name) {
                Ok(o) => o,
                Err(e) => return Check::Stop(e),
            };
            if template_changes {
                obs.outdated = obs.pods.iter().map(|p| p.ordinal).collect();
            }
            let config = match &snap.config {
                Some(Ok(c)) => c,
                Some(Err(why)) if !look.overdue => {
                    return Check::NotYet(format!("asking the leader about reconfiguration: {why}"))
                }
                Some(Err(why)) => {
                    return Check::Stop(EngineError::Stopped {
                        size: snap.live.replicas(),
                        reason: format!("could not ask the leader about reconfiguration: {why}"),
                    })
                }
                None => return Check::NotYet("no look at the leader".into()),
            };
            let size = obs
                .committed
                .as_ref()
                .map_or(obs.servers.len(), |c| c.len()) as u32;
            let facts = method::Facts {
                look: config,
                template: snap.live.template_reconfig_env(),
                skip_acl: snap
                    .live
                    .pods
                    .values()
                    .filter(|p| p.running)
                    .all(|p| p.reconfig_env.skip_acl),
                size,
                target,
            };
            let (m, why) = match method::choose(choice, &facts) {
                Ok(c) => c,
                Err(why) => return Check::Stop(EngineError::Refused(why)),
            };
            match plan::plan_by(&obs, target, m) {
                Ok(mut p) => {
                    if let Err(why) = method::check_strict(choice, &p) {
                        return Check::Stop(EngineError::Refused(why));
                    }
                    p.method_reason = why;
                    Check::Met(p, String::new())
                }
                Err(
                    e @ (PlanError::NoLeader
                    | PlanError::NotSynced { .. }
                    | PlanError::UnexpectedState(_)),
                ) if !look.overdue => Check::NotYet(e.to_string()),
                Err(e) => Check::Stop(e.into()),
            }
        })
        .with_config();
        self.until(cond, self.opts.timeout).await
    }

    /// Scales to `target`, one member per step, gated; returns the final verdict.
    pub async fn scale(&self, target: u32) -> Result<Verdict, EngineError> {
        self.upgrade(target, None).await
    }

    /// [`Engine::scale`], and when `template` (a chart's new pod template) differs from the live
    /// one, puts it in place first (restarting nothing) and restarts the members still on the
    /// old one followers first, leader last. Size steps restart members anyway and roll it out
    /// on the way; only at an unchanged size is there a roll-out step of its own.
    pub async fn upgrade(
        &self,
        target: u32,
        template: Option<&PodTemplateSpec>,
    ) -> Result<Verdict, EngineError> {
        self.with_lock(self.locked(target, template)).await
    }

    /// Runs `work` holding the lock (renewed meanwhile), then records how it ended (the status
    /// annotation, an Event) and releases the lock.
    async fn with_lock(
        &self,
        work: impl std::future::Future<Output = Result<Verdict, EngineError>>,
    ) -> Result<Verdict, EngineError> {
        // Lock first: a second run must not even plan from a state the first is changing.
        let lock = self.lock().await?;
        // Renew the lease while working; losing it stops the run (another run may have taken over).
        let renewer = async {
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(Lock::DURATION / 3).await;
                match lock.renew().await {
                    Ok(()) => renewed = Instant::now(),
                    // The API server away: keep trying while the lease still holds.
                    Err(e)
                        if e.is_transient()
                            && renewed.elapsed() < Lock::DURATION - Lock::DURATION / 6 =>
                    {
                        tracing::debug!(error = %e, "lease renewal failed; again");
                    }
                    Err(e) => return e,
                }
            }
        };
        let result = tokio::select! {
            r = work => r,
            e = renewer => Err(EngineError::Stopped {
                size: self.target.read().await.map(|l| l.replicas()).unwrap_or(0),
                reason: format!("the lock could not be renewed: {e}"),
            }),
        };
        if let Ok(live) = self.target.read().await {
            let status = match &result {
                Ok(v) => format!("ok: {} member(s); {}", live.replicas(), v.summary()),
                Err(e) => format!("stopped: {e}"),
            };
            let _ = self.target.annotate(&status, result.is_ok()).await;
            let (warning, reason, message) = match &result {
                Ok(v) => (
                    false,
                    "Scaled",
                    format!("{} member(s): {}", live.replicas(), v.summary()),
                ),
                Err(e @ EngineError::Refused(_)) => (true, "Refused", e.to_string()),
                Err(e) => (true, "Stopped", e.to_string()),
            };
            self.record(&live, warning, reason, &message).await;
        }
        let _ = lock.release().await;
        result
    }

    /// Takes the lock; with `wait_for_lock`, waits (up to the timeout) for another run's.
    async fn lock(&self) -> Result<Lock, EngineError> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match Lock::acquire(&self.target, self.opts.holder.clone()).await {
                Err(ClusterError::LockHeld { holder, .. })
                    if self.opts.wait_for_lock && start.elapsed() < self.opts.timeout =>
                {
                    if !said {
                        self.emit(Event::Warning {
                            message: format!("waiting for another run to finish: {holder}"),
                        });
                        said = true;
                    }
                    if let Some(why) = self.opts.cancel.reason() {
                        return Err(EngineError::Refused(format!(
                            "interrupted ({why}) while waiting for the lock"
                        )));
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// An Event on the StatefulSet; best effort (a run does not stop for want of one).
    async fn record(&self, live: &Live, warning: bool, reason: &str, message: &str) {
        if let Err(e) = self
            .target
            .record_event(live, warning, reason, message)
            .await
        {
            if !self
                .events_failed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                self.emit(Event::Warning {
                    message: format!("could not record an Event on the StatefulSet (progress is still logged): {e}"),
                });
            }
        }
    }

    async fn locked(
        &self,
        target: u32,
        template: Option<&PodTemplateSpec>,
    ) -> Result<Verdict, EngineError> {
        if let Some(t) = template {
            // Without persistence the plan may be refused (restarted members come back
            // empty): ask before the template goes in, so a refusal changes nothing.
            let live = self.target.read().await?;
            if !live.storage().keeps_data() && self.template_changes(&live, t).await? {
                self.plan_with(target, true).await?;
            }
            self.apply_template(t, target).await?;
        }
        let first = self.plan(target).await?;
        self.emit(Event::Target {
            namespace: self.namespace().to_string(),
            statefulset: self.statefulset().to_string(),
            from: first.from,
            to: target,
        });
        let plan_event = Event::Plan {
            plan: first.clone(),
        };
        self.emit(plan_event.clone());
        if !first.is_empty() {
            let live = self.target.read().await?;
            // The same words as the progress line ("plan: 3→4, 4→5", roll-outs named as such).
            let message = format!(
                "{} → {target} member(s), {plan_event} ({})",
                first.from, self.opts.holder
            );
            self.record(&live, false, "Scaling", &message).await;
        }
        self.run(target, first).await
    }
}

/// An ordinal as the StatefulSet controller writes it in a pod's name: decimal digits, no sign,
/// no leading zero (except `0` itself).
pub fn plain_ordinal(o: &str) -> bool {
    !o.is_empty()
        && o.len() <= 10
        && o.bytes().all(|b| b.is_ascii_digit())
        && (o == "0" || !o.starts_with('0'))
}
