//! The engine: runs the planner's steps against a live ensemble, one member at a time, with the
//! health gates between them. Both front ends (the kubectl plugin and the Helm post-renderer) call
//! [`Engine::scale`]; the steps exist only here and in [`crate::plan`].
//!
//! State lives in the cluster, not here: every step starts by reading the StatefulSet, its pods
//! and the members' own answers, and asks the planner again, so a run killed at any point is
//! resumed by running the same command (the planner recognises a step under way).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodTemplateSpec;

use kube::Client;
use serde::Serialize;
use thiserror::Error;

use crate::cluster::{self, ClusterError, Connect, Live, LivePod, Lock, Selector};
use crate::model::{Addressing, ModelError, ServerList};
use crate::plan::{self, Action, Expect, Observed, PlanError, PodState};
use crate::zk::{self, Baseline, Gate, MemberObservation, Mode, Probe, Timeouts, Verdict};

#[derive(Debug, Error)]
pub enum EngineError {
    /// Nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    /// A gate failed; the ensemble was left at a size where it is whole.
    #[error("stopped at {size} member(s): {reason}. Fix the cause and re-run the same command to resume")]
    Stopped { size: u32, reason: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
    #[error("server list: {0}")]
    Model(#[from] ModelError),
}

impl EngineError {
    /// What went wrong, without a `Stopped`'s own "stopped at …; re-run" framing: for wrapping
    /// it into another outcome.
    fn into_reason(self) -> String {
        match self {
            EngineError::Stopped { reason, .. } => reason,
            other => other.to_string(),
        }
    }

    /// The documented exit code (README): 3 refused before any change, 4 stopped at a safe size.
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::Refused(_) => 3,
            EngineError::Cluster(ClusterError::LockHeld { .. })
            | EngineError::Cluster(ClusterError::NotFound { .. })
            | EngineError::Cluster(ClusterError::NoneFound { .. })
            | EngineError::Cluster(ClusterError::Ambiguous { .. })
            | EngineError::Cluster(ClusterError::NotZooKeeper { .. }) => 3,
            EngineError::Plan(_) | EngineError::Model(_) => 3,
            EngineError::Stopped { .. } => 4,
            EngineError::Cluster(_) => 1,
        }
    }
}

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

/// What a run reports as it goes (text lines on stderr, or JSON events).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Target {
        namespace: String,
        statefulset: String,
        from: u32,
        to: u32,
    },
    Plan {
        plan: plan::Plan,
    },
    Warning {
        message: String,
    },
    /// Context worth a line (which mode a post-render runs in, …).
    Note {
        message: String,
    },
    Step {
        from: u32,
        to: u32,
        resumed: bool,
    },
    Action {
        description: String,
    },
    Gate {
        name: String,
        passed: bool,
        elapsed_ms: u64,
        detail: String,
    },
    Done {
        size: u32,
        elapsed_ms: u64,
        znode_count: Option<u64>,
    },
}

impl std::fmt::Display for Event {
    /// The line a person reads (the text output of both front ends).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            Event::Target {
                namespace,
                statefulset,
                from,
                to,
            } => {
                format!("{namespace}/{statefulset}: {from} → {to} member(s)")
            }
            Event::Plan { plan } => {
                let steps: Vec<String> = plan
                    .steps
                    .iter()
                    .map(|s| {
                        if s.from == s.to {
                            format!("roll-out at {} ({} restart(s))", s.to, s.actions.len())
                        } else {
                            format!("{}→{}", s.from, s.to)
                        }
                    })
                    .collect();
                format!(
                    "plan: {}",
                    if steps.is_empty() {
                        "nothing to do".into()
                    } else {
                        steps.join(", ")
                    }
                )
            }
            Event::Warning { message } => format!("WARNING: {message}"),
            Event::Note { message } => message.clone(),
            Event::Step { from, to, resumed } if from == to => format!(
                "roll-out at {to} member(s): members on the old template restart, followers first, leader last{}",
                if *resumed { " (resuming)" } else { "" }
            ),
            Event::Step { from, to, resumed } => {
                format!(
                    "step {from}→{to}{}",
                    if *resumed {
                        " (resuming a step under way)"
                    } else {
                        ""
                    }
                )
            }
            Event::Action { description } => format!("  {description}"),
            Event::Gate {
                name,
                passed,
                elapsed_ms,
                detail,
            } => format!(
                "  {} {name} ({:.1}s){}{detail}",
                if *passed { "ok  " } else { "FAIL" },
                *elapsed_ms as f64 / 1000.0,
                if detail.is_empty() { "" } else { ": " }
            ),
            Event::Done {
                size,
                elapsed_ms,
                znode_count,
            } => format!(
                "done: {size} member(s) in {:.1}s{}",
                *elapsed_ms as f64 / 1000.0,
                znode_count
                    .map(|c| format!(", {c} znodes"))
                    .unwrap_or_default()
            ),
        };
        f.write_str(&line)
    }
}

pub trait Progress: Send + Sync {
    fn event(&self, event: &Event);
}

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub pod: String,
    pub ordinal: u32,
    pub server_id: Option<u32>,
    pub address: Option<String>,
    pub ready: bool,
    pub mode: String,
    pub zxid: Option<String>,
    pub znode_count: Option<u64>,
    /// Counted as synced by the leader (a follower at the leader's zxid, while the leader counts
    /// every voter as a synced follower).
    pub synced: Option<bool>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub namespace: String,
    pub statefulset: String,
    pub replicas: u32,
    pub servers: String,
    pub members: Vec<MemberStatus>,
    pub verdict: Verdict,
    pub operation: Option<String>,
}

pub struct Engine<'p> {
    client: Client,
    namespace: String,
    name: String,
    opts: Options,
    progress: &'p dyn Progress,
    start: Instant,
    /// An Event could not be recorded (said once).
    events_failed: std::sync::atomic::AtomicBool,
}

/// One observation of every pod, with the server id each runs as.
struct Seen {
    live: Live,
    addressing: Addressing,
    min_server_id: u32,
    /// `(ordinal, id, observation)` for every pod that exists.
    members: Vec<(u32, u32, MemberObservation)>,
}

impl Seen {
    fn obs(&self, ordinal: u32) -> Option<&MemberObservation> {
        self.members
            .iter()
            .find(|(o, _, _)| *o == ordinal)
            .map(|(_, _, m)| m)
    }

    fn serving_leaders(&self) -> Vec<(u32, &zk::Srvr, &zk::Mntr)> {
        self.members
            .iter()
            .filter_map(|(_, id, m)| match &m.probe {
                Probe::Serving { srvr, mntr }
                    if srvr.mode == Mode::Leader || srvr.mode == Mode::Standalone =>
                {
                    Some((*id, srvr, mntr))
                }
                _ => None,
            })
            .collect()
    }

    /// The verdict for the StatefulSet's list.
    fn verdict(&self, baseline: Option<Baseline>, lag: u64) -> Verdict {
        let voters: Vec<u32> = self.live.zk.servers.ids().into_iter().collect();
        let obs: Vec<MemberObservation> = self
            .members
            .iter()
            .filter(|(_, id, _)| voters.contains(id))
            .map(|(_, _, m)| m.clone())
            .collect();
        let mut gate = Gate::new(voters).with_max_zxid_lag(lag);
        if let Some(b) = baseline {
            gate = gate.with_baseline(b);
        }
        zk::verdict(&gate, &obs)
    }
}

impl<'p> Engine<'p> {
    pub async fn new(
        client: Client,
        namespace: String,
        opts: Options,
        progress: &'p dyn Progress,
    ) -> Result<Engine<'p>, EngineError> {
        let sts = cluster::find(&client, &namespace, &opts.selector).await?;
        let name = kube::ResourceExt::name_any(&sts);
        Ok(Engine {
            client,
            namespace,
            name,
            opts,
            progress,
            start: Instant::now(),
            events_failed: Default::default(),
        })
    }

    pub fn statefulset(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn emit(&self, e: Event) {
        self.progress.event(&e);
    }

    async fn see(&self) -> Result<Seen, EngineError> {
        let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
        let servers = &live.zk.servers;
        let ordinals: Vec<(u32, &crate::model::Member)> = servers
            .members()
            .iter()
            .filter_map(|m| crate::model::ordinal_of(m, &self.name).map(|o| (o, m)))
            .collect();
        let min_server_id = live
            .zk
            .min_server_id
            .or_else(|| servers.infer_min_server_id(&self.name).ok())
            .unwrap_or(1);
        let addressing = if ordinals.len() == servers.len() {
            Addressing::infer(&ordinals, &self.name)?
        } else {
            // Per-member Services or other hosts: ordinals from ids.
            let by_id: Vec<(u32, &crate::model::Member)> = servers
                .members()
                .iter()
                .filter_map(|m| m.id.checked_sub(min_server_id).map(|o| (o, m)))
                .collect();
            Addressing::infer(&by_id, &self.name)?
        };
        let timeouts = Timeouts::default();
        let mut futs = Vec::new();
        for pod in live.pods.values() {
            let id = pod_id(pod, &addressing, min_server_id);
            futs.push(async move {
                let o = cluster::observe(
                    &self.client,
                    &self.namespace,
                    Some(pod),
                    id,
                    self.opts.connect,
                    timeouts,
                )
                .await;
                (pod.ordinal, id, o)
            });
        }
        // Members are few; observing them concurrently keeps a poll short.
        let members = futures::future::join_all(futs).await;
        Ok(Seen {
            live,
            addressing,
            min_server_id,
            members,
        })
    }

    /// The planner's view of what was seen.
    fn observed(&self, seen: &Seen) -> Result<Observed, EngineError> {
        let live = &seen.live;
        let verdict = seen.verdict(None, u64::MAX);
        let leaders = seen.serving_leaders();
        let leader = verdict.leader.or(match leaders.as_slice() {
            [(id, _, _)] => Some(*id),
            _ => None,
        });
        let leader_zxid = leaders
            .iter()
            .find(|(id, _, _)| Some(*id) == leader)
            .map(|(_, s, _)| s.zxid);
        let mut synced = BTreeSet::new();
        let mut pods = Vec::new();
        // `see` already worked out each pod's server id and observed it.
        for (ordinal, id, obs) in &seen.members {
            let p = &live.pods[ordinal];
            if p.deleting {
                continue;
            }
            let id = *id;
            let view = match &p.servers_env {
                Some(env) => ServerList::parse_env(env)?,
                None => live.zk.servers.clone(),
            };
            let probe = &obs.probe;
            let running = matches!(probe, Probe::Serving { .. } | Probe::NotServing);
            if let Probe::Serving { srvr, .. } = probe {
                let at_leader = leader_zxid.is_some_and(|z| caught_up(srvr.zxid, z));
                if Some(id) == leader || (srvr.mode == Mode::Follower && at_leader) {
                    synced.insert(id);
                }
            }
            pods.push(PodState {
                ordinal: p.ordinal,
                id,
                view,
                running,
            });
        }
        Ok(Observed {
            servers: live.zk.servers.clone(),
            addressing: seen.addressing.clone(),
            min_server_id: seen.min_server_id,
            sts_name: self.name.clone(),
            replicas: live.replicas(),
            pods,
            leader,
            synced,
            outdated: seen
                .live
                .pods
                .values()
                .filter(|p| !p.deleting && !seen.live.pod_current(p.ordinal))
                .map(|p| p.ordinal)
                .collect(),
        })
    }

    pub async fn status(&self) -> Result<Status, EngineError> {
        let seen = self.see().await?;
        let verdict = seen.verdict(None, 0);
        let leader_zxid = seen
            .serving_leaders()
            .iter()
            .find(|(id, _, _)| Some(*id) == verdict.leader)
            .map(|(_, s, _)| s.zxid);
        let members = seen
            .members
            .iter()
            .map(|(ordinal, id, o)| {
                let pod = &seen.live.pods[ordinal];
                let member = seen.live.zk.servers.get(*id);
                let (mode, zxid, count, version, synced) = match &o.probe {
                    Probe::Serving { srvr, .. } => (
                        srvr.mode.as_str().to_string(),
                        Some(srvr.zxid.to_string()),
                        Some(srvr.node_count),
                        Some(srvr.release().to_string()),
                        Some(match srvr.mode {
                            Mode::Leader | Mode::Standalone => true,
                            _ => verdict.healthy || leader_zxid == Some(srvr.zxid),
                        }),
                    ),
                    Probe::NotServing => ("not serving".into(), None, None, None, Some(false)),
                    Probe::Unreachable { error } => {
                        (format!("unreachable: {error}"), None, None, None, None)
                    }
                };
                MemberStatus {
                    pod: pod.name.clone(),
                    ordinal: *ordinal,
                    server_id: member.map(|m| m.id).or(Some(*id)),
                    address: member.map(|m| m.quorum_address()),
                    ready: pod.ready,
                    mode,
                    zxid,
                    znode_count: count,
                    synced,
                    version,
                }
            })
            .collect();
        Ok(Status {
            namespace: self.namespace.clone(),
            statefulset: self.name.clone(),
            replicas: seen.live.replicas(),
            servers: seen.live.zk.servers_env.clone(),
            members,
            verdict,
            operation: seen.live.operation().map(str::to_string),
        })
    }

    pub async fn plan(&self, target: u32) -> Result<plan::Plan, EngineError> {
        self.plan_with(target, false).await
    }

    /// The plan; with `template_changes`, as if a new template were in place (every pod
    /// outdated): what [`Engine::upgrade`] with that template would do.
    pub async fn plan_with(
        &self,
        target: u32,
        template_changes: bool,
    ) -> Result<plan::Plan, EngineError> {
        let start = Instant::now();
        loop {
            let seen = self.see().await?;
            // Which pods are outdated is only known once the controller has seen the latest
            // spec (its updateRevision); a moment after a patch it may not have yet.
            if !cluster::observed_latest(&seen.live.sts) && start.elapsed() < self.opts.timeout {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let mut obs = self.observed(&seen)?;
            if template_changes {
                obs.outdated = obs.pods.iter().map(|p| p.ordinal).collect();
            }
            match plan::plan(&obs, target) {
                // Mid-election, a follower catching up, a pod mid-restart: transient, look again.
                Err(
                    PlanError::NoLeader
                    | PlanError::NotSynced { .. }
                    | PlanError::UnexpectedState(_),
                ) if start.elapsed() < self.opts.timeout => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                r => return Ok(r?),
            }
        }
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
        // Lock first: a second run must not even plan from a state the first is changing.
        let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
        let lock = self.lock(&live).await?;
        // Renew the lease while working; losing it stops the run (another run may have taken over).
        let renewer = async {
            loop {
                tokio::time::sleep(Lock::DURATION / 3).await;
                if let Err(e) = lock.renew().await {
                    return e;
                }
            }
        };
        let result = tokio::select! {
            r = self.locked(target, template) => r,
            e = renewer => Err(EngineError::Stopped {
                size: cluster::read(&self.client, &self.namespace, &self.name).await.map(|l| l.replicas()).unwrap_or(0),
                reason: format!("the lock could not be renewed: {e}"),
            }),
        };
        let live = cluster::read(&self.client, &self.namespace, &self.name).await;
        if let Ok(live) = &live {
            let status = match &result {
                Ok(v) => format!("ok: {} member(s); {}", live.replicas(), v.summary()),
                Err(e) => format!("stopped: {e}"),
            };
            let _ = cluster::annotate(&self.client, live, &status, result.is_ok()).await;
            let (warning, reason, message) = match &result {
                Ok(v) => (
                    false,
                    "Scaled",
                    format!("{} member(s): {}", live.replicas(), v.summary()),
                ),
                Err(e @ EngineError::Refused(_)) => (true, "Refused", e.to_string()),
                Err(e) => (true, "Stopped", e.to_string()),
            };
            self.record(live, warning, reason, &message).await;
        }
        let _ = lock.release().await;
        result
    }

    /// Takes the lock; with `wait_for_lock`, waits (up to the timeout) for another run's.
    async fn lock(&self, live: &Live) -> Result<Lock, EngineError> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match Lock::acquire(&self.client, live, self.opts.holder.clone()).await {
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
        if let Err(e) = cluster::record_event(&self.client, live, warning, reason, message).await {
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
            self.apply_template(t, target).await?;
        }
        let first = self.plan(target).await?;
        self.emit(Event::Target {
            namespace: self.namespace.clone(),
            statefulset: self.name.clone(),
            from: first.from,
            to: target,
        });
        let plan_event = Event::Plan {
            plan: first.clone(),
        };
        self.emit(plan_event.clone());
        if !first.is_empty() {
            let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
            // The same words as the progress line ("plan: 3→4, 4→5", roll-outs named as such).
            let message = format!(
                "{} → {target} member(s), {plan_event} ({})",
                first.from, self.opts.holder
            );
            self.record(&live, false, "Scaling", &message).await;
        }
        self.run(target, first).await
    }

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
        let would = cluster::replace_template(&self.client, live, &desired, None, true).await?;
        Ok((template_json(&live.sts) != template_json(&would)).then_some(desired))
    }

    /// Puts a changed template in place (`OnDelete`: nothing restarts) and waits until the
    /// controller has seen it, so that pods on the old one show as outdated.
    async fn apply_template(
        &self,
        template: &PodTemplateSpec,
        target: u32,
    ) -> Result<(), EngineError> {
        let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
        let Some(desired) = self.changed_template(&live, template).await? else {
            return Ok(());
        };
        // Nothing changes before the ensemble is known healthy (as the first step's pre-gate
        // would); a step left under way by an earlier run is finished by the steps anyway.
        if live.operation().is_none() {
            let wait = self.opts.timeout.min(REFUSE_AFTER);
            if let Err(e) = self.gate("before the new template", None, None, wait).await {
                let e = e.into_reason();
                match &self.opts.force {
                    Some(reason) => self.emit(Event::Warning {
                        message: format!(
                            "--force ({reason}): new template on an unhealthy ensemble: {e}"
                        ),
                    }),
                    None => {
                        return Err(EngineError::Refused(format!(
                            "the ensemble is not healthy: {e}"
                        )))
                    }
                }
            }
        }
        let image = |t: &PodTemplateSpec| {
            t.spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == live.zk.container))
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        };
        let (old, new) = (
            live.sts
                .spec
                .as_ref()
                .map(|s| image(&s.template))
                .unwrap_or_default(),
            image(&desired),
        );
        self.emit(Event::Action {
            description: if old != new {
                format!("apply the new pod template (image {old} → {new}); restarts follow, leader last")
            } else {
                "apply the new pod template; restarts follow, leader last".into()
            },
        });
        let op = serde_json::json!({
            "target": target, "step": "template",
            "holder": self.opts.holder, "at": k8s_openapi::jiff::Timestamp::now().to_string(),
        });
        cluster::replace_template(&self.client, &live, &desired, Some(&op.to_string()), false)
            .await?;
        self.wait("the StatefulSet controller sees the new template", |seen| {
            if cluster::observed_latest(&seen.live.sts) {
                Ok(())
            } else {
                Err("status.observedGeneration behind".into())
            }
        })
        .await
    }

    async fn run(&self, target: u32, first: plan::Plan) -> Result<Verdict, EngineError> {
        let mut plan = first;
        let mut started_any = false;
        // The verdict of the gate that just passed: the next pre-gate (or the final one) would
        // only ask the same question again a moment later.
        let mut just_passed: Option<Verdict> = None;
        loop {
            let Some(step) = plan.steps.first().cloned() else {
                let v = match just_passed {
                    Some(v) => v,
                    None => self.gate("final", None, None, self.opts.timeout).await?,
                };
                self.emit(Event::Done {
                    size: target,
                    elapsed_ms: self.start.elapsed().as_millis() as u64,
                    znode_count: v.znode_count,
                });
                return Ok(v);
            };
            if let Some(why) = self.opts.cancel.reason() {
                // Between steps the ensemble is whole at `step.from` members.
                return Err(EngineError::Stopped {
                    size: step.from,
                    reason: format!("interrupted ({why}) before step {}→{}", step.from, step.to),
                });
            }
            self.emit(Event::Step {
                from: step.from,
                to: step.to,
                resumed: step.resumed,
            });
            // Pre-gate: a step starts from a whole ensemble (a resumed one is half-way by
            // definition). Before anything changed, an unhealthy ensemble is refused soon.
            let pre_timeout = if started_any {
                self.opts.timeout
            } else {
                self.opts.timeout.min(REFUSE_AFTER)
            };
            let baseline = match (step.resumed, just_passed.take()) {
                (true, _) => None,
                (false, Some(v)) => v.baseline(),
                (false, None) => {
                    let name = format!("pre-step {}→{}", step.from, step.to);
                    match self.gate(&name, None, Some(step.from), pre_timeout).await {
                        Ok(v) => v.baseline(),
                        Err(e) if !started_any => match &self.opts.force {
                            Some(reason) => {
                                self.emit(Event::Warning {
                                    message: format!("--force ({reason}): starting from an unhealthy ensemble: {e}"),
                                });
                                None
                            }
                            None => {
                                return Err(EngineError::Refused(format!(
                                    "the ensemble is not healthy: {e}"
                                )))
                            }
                        },
                        Err(e) => return Err(e),
                    }
                }
            };
            self.check_new_claims(&step).await?;
            started_any = true;
            let replan = self.execute(&step, target).await?;
            if !replan {
                let name = format!("post-step {}→{}", step.from, step.to);
                let v = self
                    .gate(&name, baseline, Some(step.to), self.opts.timeout)
                    .await?;
                if let Ok(live) = cluster::read(&self.client, &self.namespace, &self.name).await {
                    let message = format!("step {}→{} done: {}", step.from, step.to, v.summary());
                    self.record(&live, false, "Step", &message).await;
                }
                just_passed = Some(v);
            }
            plan = self.plan(target).await?;
        }
    }

    /// A new member must start with an empty volume: a claim left by an earlier scale-down would
    /// bring back old state (and maybe another id).
    async fn check_new_claims(&self, step: &plan::Step) -> Result<(), EngineError> {
        let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
        for a in &step.actions {
            let Action::StartNew { ordinal, .. } = a else {
                continue;
            };
            if live.pods.contains_key(ordinal) {
                continue; // resumed: its pod exists, so the claim is the one it started with
            }
            let Some(claim) = live.claims.get(ordinal) else {
                continue;
            };
            if !self.opts.delete_stale_claims {
                return Err(EngineError::Refused(format!(
                    "PersistentVolumeClaim {ns}/{claim} is left over from an earlier scale-down and may hold stale \
                     ZooKeeper data; the new member {ordinal} must start empty. Delete it \
                     (kubectl delete pvc -n {ns} {claim}) or re-run with --delete-stale-claims",
                    ns = self.namespace
                )));
            }
            self.emit(Event::Action {
                description: format!("delete stale claim {claim} (--delete-stale-claims)"),
            });
            cluster::delete_claim(&self.client, &self.namespace, claim).await?;
            self.wait_gone(&format!("claim {claim} gone"), |live| {
                live.claims.contains_key(ordinal)
            })
            .await?;
        }
        Ok(())
    }

    /// Runs a step's actions; returns true when leadership moved and the rest must be re-planned.
    async fn execute(&self, step: &plan::Step, target: u32) -> Result<bool, EngineError> {
        let mut restarted_any = false;
        let before = cluster::read(&self.client, &self.namespace, &self.name).await?;
        let (old_replicas, old_servers) = (before.replicas(), before.zk.servers.clone());
        for action in &step.actions {
            match action {
                Action::ApplySpec { replicas, servers } => {
                    let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
                    if live.replicas() == *replicas
                        && live.zk.servers.to_env() == servers.to_env()
                        && is_on_delete(&live)
                    {
                        continue;
                    }
                    self.emit(Event::Action {
                        description: format!(
                            "set replicas {replicas}, ZOO_SERVERS `{}`, updateStrategy OnDelete",
                            servers.to_env()
                        ),
                    });
                    let op = serde_json::json!({
                        "target": target, "step": format!("{}→{}", step.from, step.to),
                        "holder": self.opts.holder, "at": k8s_openapi::jiff::Timestamp::now().to_string(),
                    });
                    cluster::apply_step(
                        &self.client,
                        &live,
                        *replicas,
                        &servers.to_env(),
                        Some(&op.to_string()),
                    )
                    .await?;
                }
                Action::StartNew {
                    ordinal,
                    id,
                    expect,
                } => {
                    let r = self.wait_member(*ordinal, *id, *expect, None).await;
                    if let Err(e) = r {
                        if !restarted_any && step.to > step.from {
                            return Err(self
                                .roll_back(*ordinal, old_replicas, &old_servers, step.from, e)
                                .await);
                        }
                        return Err(e);
                    }
                }
                Action::Restart {
                    ordinal,
                    id,
                    expect,
                } => {
                    self.restart(*ordinal, false).await?;
                    restarted_any = true;
                    self.wait_member(*ordinal, *id, *expect, None).await?;
                }
                Action::MoveLeadership { ordinal, id } => {
                    self.restart(*ordinal, true).await?;
                    self.wait_member(*ordinal, *id, Expect::Follow, Some(*id))
                        .await?;
                    return Ok(true);
                }
                Action::Remove { ordinal, id } => {
                    let pod = format!("{}-{ordinal}", self.name);
                    self.wait_gone(&format!("pod {pod} (server {id}) removed"), |live| {
                        live.pods.contains_key(ordinal)
                    })
                    .await?;
                    let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
                    if let Some(claim) = live.claims.get(ordinal) {
                        if self.opts.keep_removed_claims {
                            self.emit(Event::Warning {
                                message: format!(
                                    "kept claim {claim} of removed server {id} (--keep-removed-claims); it holds stale data: \
                                     zkscale refuses to scale up onto it until it is deleted"
                                ),
                            });
                        } else {
                            self.emit(Event::Action {
                                description: format!("delete claim {claim} of removed server {id}"),
                            });
                            cluster::delete_claim(&self.client, &self.namespace, claim).await?;
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Undoes an up-step whose new member never came up: nothing else had changed yet, so the
    /// old list and size are whole again once the new pod and its claim are gone.
    async fn roll_back(
        &self,
        ordinal: u32,
        replicas: u32,
        servers: &ServerList,
        size: u32,
        cause: EngineError,
    ) -> EngineError {
        let member = format!("new member {}-{ordinal}", self.name);
        // The cause's own "stopped at …, re-run" framing belongs to the roll-back's result.
        let cause = cause.into_reason();
        self.emit(Event::Warning {
            message: format!("{member} did not come up ({cause}); rolling back to {size}"),
        });
        let undo = async {
            let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
            // The roll-back ends the operation: nothing is under way any more.
            cluster::apply_step(&self.client, &live, replicas, &servers.to_env(), None).await?;
            self.wait_gone(&format!("pod {}-{ordinal} gone", self.name), |live| {
                live.pods.contains_key(&ordinal)
            })
            .await?;
            let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
            if let Some(claim) = live.claims.get(&ordinal) {
                cluster::delete_claim(&self.client, &self.namespace, claim).await?;
            }
            self.gate("after roll-back", None, Some(size), self.opts.timeout)
                .await
        };
        match undo.await {
            Ok(_) => EngineError::Stopped {
                size,
                reason: format!("{member} did not join ({cause}); rolled back"),
            },
            Err(e) => EngineError::Stopped {
                size,
                reason: format!("{member} did not join ({cause}) and rolling back failed: {e}"),
            },
        }
    }

    async fn restart(&self, ordinal: u32, always: bool) -> Result<(), EngineError> {
        let live = cluster::read(&self.client, &self.namespace, &self.name).await?;
        let Some(pod) = live.pods.get(&ordinal).cloned() else {
            return Ok(()); // already gone: the controller is recreating it
        };
        if !always
            && live.pod_current(ordinal)
            && pod.servers_env.as_deref() == Some(live.zk.servers_env.as_str())
        {
            // Resumed after a crash that happened after this restart. (A leadership move
            // restarts a pod that already has the current list, so it always restarts.)
            return Ok(());
        }
        self.emit(Event::Action {
            description: format!("restart {}", pod.name),
        });
        cluster::delete_pod(&self.client, &self.namespace, &pod).await?;
        let uid = pod.uid.clone();
        self.wait(&format!("{} recreated", pod.name), move |seen| {
            match seen.live.pods.get(&ordinal) {
                Some(p) if p.uid != uid && p.running => Ok(()),
                Some(p) if p.uid == uid => Err("old pod still terminating".into()),
                _ => Err("no running pod yet".into()),
            }
        })
        .await
    }

    /// Waits until the member in `ordinal` meets `expect` (see [`Expect`]).
    async fn wait_member(
        &self,
        ordinal: u32,
        id: u32,
        expect: Expect,
        not_leader: Option<u32>,
    ) -> Result<(), EngineError> {
        let what = match expect {
            Expect::Follow => format!("server {id} follows the leader, synced"),
            Expect::Election => format!("a leader after the election; server {id} in it, synced"),
            Expect::Deferred => format!("server {id} up (waits for the rest of the step)"),
            Expect::Standalone => format!("server {id} serves standalone"),
        };
        self.wait(&what, |seen| {
            let probe = seen.obs(ordinal).map(|o| &o.probe);
            match expect {
                Expect::Deferred => match probe {
                    Some(Probe::Serving { .. } | Probe::NotServing) => Ok(()),
                    Some(Probe::Unreachable { error }) => Err(error.clone()),
                    None => Err("no pod".into()),
                },
                Expect::Standalone => match probe {
                    Some(Probe::Serving { srvr, .. }) if srvr.mode == Mode::Standalone => Ok(()),
                    other => Err(describe(other)),
                },
                Expect::Follow | Expect::Election => in_sync(seen, ordinal, id, not_leader),
            }
        })
        .await
    }

    /// The full health verdict for the StatefulSet's list, polled until healthy.
    async fn gate(
        &self,
        name: &str,
        baseline: Option<Baseline>,
        size: Option<u32>,
        timeout: Duration,
    ) -> Result<Verdict, EngineError> {
        let start = Instant::now();
        let mut polls = 0;
        loop {
            let seen = self.see().await?;
            // Exact zxids first; under steady client writes members are asked at slightly
            // different moments, so from the second look on accept a small lag within the
            // leader's epoch (znode counts are then held to the baseline, not to each other).
            let lag = if polls == 0 { 0 } else { WRITE_LAG };
            polls += 1;
            let v = seen.verdict(baseline, lag);
            if v.healthy {
                self.emit(Event::Gate {
                    name: name.into(),
                    passed: true,
                    elapsed_ms: start.elapsed().as_millis() as u64,
                    detail: v.summary(),
                });
                return Ok(v);
            }
            if start.elapsed() > timeout {
                self.emit(Event::Gate {
                    name: name.into(),
                    passed: false,
                    elapsed_ms: start.elapsed().as_millis() as u64,
                    detail: v.summary(),
                });
                return Err(EngineError::Stopped {
                    size: size.unwrap_or_else(|| seen.live.replicas()),
                    reason: format!(
                        "gate `{name}` not passed after {timeout:?}: {}",
                        v.summary()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until `present` no longer holds for the live objects.
    async fn wait_gone(
        &self,
        what: &str,
        present: impl Fn(&Live) -> bool,
    ) -> Result<(), EngineError> {
        self.wait(what, |seen| {
            if present(&seen.live) {
                Err("still there".into())
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Polls `check` over fresh observations until it passes or the gate timeout.
    async fn wait<F>(&self, what: &str, mut check: F) -> Result<(), EngineError>
    where
        F: FnMut(&Seen) -> Result<(), String>,
    {
        let start = Instant::now();
        loop {
            let seen = self.see().await?;
            match check(&seen) {
                Ok(()) => {
                    self.emit(Event::Gate {
                        name: what.into(),
                        passed: true,
                        elapsed_ms: start.elapsed().as_millis() as u64,
                        detail: String::new(),
                    });
                    return Ok(());
                }
                Err(why) if start.elapsed() > self.opts.timeout => {
                    self.emit(Event::Gate {
                        name: what.into(),
                        passed: false,
                        elapsed_ms: start.elapsed().as_millis() as u64,
                        detail: why.clone(),
                    });
                    return Err(EngineError::Stopped {
                        size: seen.live.zk.servers.len() as u32,
                        reason: format!(
                            "timed out after {:?} waiting for {what}: {why}",
                            self.opts.timeout
                        ),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
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

fn is_on_delete(live: &Live) -> bool {
    live.sts
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

/// A pod's server id: its entry in its own list (by address), else what setup.sh gives a new pod.
fn pod_id(pod: &LivePod, addressing: &Addressing, min_server_id: u32) -> u32 {
    pod.servers_env
        .as_deref()
        .and_then(|env| ServerList::parse_env(env).ok())
        .and_then(|list| {
            list.members()
                .iter()
                .find(|m| addressing.ordinal_of_host(&m.host) == Some(pod.ordinal))
                .map(|m| m.id)
        })
        .unwrap_or(pod.ordinal + min_server_id)
}

fn describe(probe: Option<&Probe>) -> String {
    match probe {
        None => "no pod".into(),
        Some(Probe::Unreachable { error }) => format!("unreachable: {error}"),
        Some(Probe::NotServing) => "not serving".into(),
        Some(Probe::Serving { srvr, .. }) => format!("mode {}", srvr.mode.as_str()),
    }
}

/// The member follows the one serving leader (or is it), has its zxid (epoch and, once the
/// leader has committed in this epoch, counter) and znode count, and the leader counts every
/// serving follower as synced. `Mode` alone is not enough: during a step an old member can still
/// say `leader` while the others elected another, hence "exactly one".
fn in_sync(seen: &Seen, ordinal: u32, id: u32, not_leader: Option<u32>) -> Result<(), String> {
    let leaders = seen.serving_leaders();
    let [(leader, lsrvr, lmntr)] = leaders.as_slice() else {
        return Err(format!("{} serving leaders", leaders.len()));
    };
    if not_leader == Some(*leader) {
        return Err(format!("server {leader} still leads"));
    }
    let followers = seen
        .members
        .iter()
        .filter(|(_, _, m)| matches!(&m.probe, Probe::Serving { srvr, .. } if srvr.mode == Mode::Follower))
        .count() as u64;
    let synced = lmntr.synced_followers().unwrap_or(0);
    if synced < followers {
        return Err(format!(
            "leader {leader} counts {synced} synced followers of {followers} following"
        ));
    }
    if *leader == id {
        return Ok(());
    }
    match seen.obs(ordinal).map(|o| &o.probe) {
        Some(Probe::Serving { srvr, .. }) if srvr.mode == Mode::Follower => {
            let lz = lsrvr.zxid;
            if !caught_up(srvr.zxid, lz) {
                return Err(format!("zxid {} behind leader {leader}'s {lz}", srvr.zxid));
            }
            // Each transaction creates at most one znode, so the count may trail by the zxid lag.
            if srvr.node_count + WRITE_LAG < lsrvr.node_count {
                return Err(format!(
                    "{} znodes, leader has {}",
                    srvr.node_count, lsrvr.node_count
                ));
            }
            Ok(())
        }
        other => Err(describe(other)),
    }
}

/// How long the first pre-gate waits for an unhealthy ensemble before refusing (exit 3).
const REFUSE_AFTER: Duration = Duration::from_secs(30);

/// Largest zxid lag (transactions, same epoch) accepted while clients keep writing: members are
/// asked at slightly different moments.
const WRITE_LAG: u64 = 500;

/// A follower's zxid has caught up with the leader's: equal, or a little apart in the same epoch
/// (writes in flight; the follower may be asked after the leader), or the leader is new and has committed nothing yet (followers keep their
/// previous zxid until its first commit).
fn caught_up(follower: zk::Zxid, leader: zk::Zxid) -> bool {
    follower == leader
        || (follower.epoch() == leader.epoch() && follower.0.abs_diff(leader.0) <= WRITE_LAG)
        || (leader.counter() == 0 && follower.0 <= leader.0)
}
