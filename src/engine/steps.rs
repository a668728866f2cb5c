//! A plan carried out: each step's pre-gate, its actions (the StatefulSet change, a new member's
//! start, restarts followers first and the leader last, a leaver's removal) each followed by its
//! wait, and its post-gate; then the planner is asked again from the new state.

use crate::cluster::Live;
use crate::plan::{self, Action, Expect};
use crate::zk::Verdict;

use super::conditions;
use super::{Engine, EngineError, Event, REFUSE_AFTER};

impl Engine<'_> {
    pub(super) async fn run(&self, target: u32, first: plan::Plan) -> Result<Verdict, EngineError> {
        self.run_steps(target, first, None).await
    }

    /// [`Engine::run`]; with `max_steps`, returns after that many steps have passed their
    /// post-gate (the verdict of the last), without the final report: a step found under way
    /// is finished that way before a new template goes in.
    pub(super) async fn run_steps(
        &self,
        target: u32,
        first: plan::Plan,
        max_steps: Option<usize>,
    ) -> Result<Verdict, EngineError> {
        let mut plan = first;
        let mut steps_done = 0usize;
        let mut started_any = false;
        // The verdict of the gate that just passed: the next pre-gate (or the final one) would
        // only ask the same question again a moment later.
        let mut just_passed: Option<Verdict> = None;
        loop {
            if let (Some(max), Some(v)) = (max_steps, &just_passed) {
                if steps_done >= max {
                    return Ok(v.clone());
                }
            }
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
            let baseline = match (step.resumed, just_passed.take()) {
                (true, _) => None,
                (false, Some(v)) => v.baseline(),
                (false, None) if started_any => {
                    let name = format!("pre-step {}→{}", step.from, step.to);
                    self.gate(&name, None, Some(step.from), self.opts.timeout)
                        .await?
                        .baseline()
                }
                (false, None) => {
                    let name = format!("pre-step {}→{}", step.from, step.to);
                    self.healthy_or_forced(
                        &name,
                        Some(step.from),
                        "starting from an unhealthy ensemble",
                    )
                    .await?
                    .and_then(|v| v.baseline())
                }
            };
            self.check_new_claims(&step).await?;
            started_any = true;
            let replan = match self.execute(&step, target).await {
                Ok(replan) => replan,
                // The API server went away mid-step. The step's state is in the cluster, so
                // once it answers again the planner finishes the step from what it finds, as a
                // re-run would.
                Err(e) if e.is_transient() => {
                    self.emit(Event::Warning {
                        message: format!(
                            "lost the API server during step {}→{} ({e}); waiting for it, then resuming from the live state",
                            step.from, step.to
                        ),
                    });
                    self.api_back().await?;
                    plan = self.plan(target).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !replan {
                let name = format!("post-step {}→{}", step.from, step.to);
                let v = self
                    .gate(&name, baseline, Some(step.to), self.opts.timeout)
                    .await?;
                if let Err(reason) = no_unexpected_election(&step, baseline, &v) {
                    return Err(EngineError::Stopped {
                        size: step.to,
                        reason,
                    });
                }
                if let Ok(live) = self.target.read().await {
                    let message = format!("step {}→{} done: {}", step.from, step.to, v.summary());
                    self.record(&live, false, "Step", &message).await;
                }
                just_passed = Some(v);
                steps_done += 1;
            }
            plan = self.plan(target).await?;
        }
    }

    /// Waits until the API server answers again (up to the timeout).
    pub(super) async fn api_back(&self) -> Result<(), EngineError> {
        let start = std::time::Instant::now();
        loop {
            match self.target.read().await {
                Ok(_) => {
                    self.wrote();
                    return Ok(());
                }
                Err(e) if e.is_transient() && start.elapsed() < self.opts.timeout => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The health gate (see [`conditions::healthy`]).
    pub(super) async fn gate(
        &self,
        name: &str,
        baseline: Option<crate::zk::Baseline>,
        size: Option<u32>,
        timeout: std::time::Duration,
    ) -> Result<Verdict, EngineError> {
        self.until(conditions::healthy(name, baseline, size), timeout)
            .await
    }

    /// Before anything changes: the ensemble must be healthy within [`REFUSE_AFTER`], else the
    /// run is refused (nothing changed), unless `--force` (then `None`, and a warning saying
    /// `what`).
    pub(super) async fn healthy_or_forced(
        &self,
        name: &str,
        size: Option<u32>,
        what: &str,
    ) -> Result<Option<Verdict>, EngineError> {
        let wait = self.opts.timeout.min(REFUSE_AFTER);
        match self.gate(name, None, size, wait).await {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let e = e.into_reason();
                match &self.opts.force {
                    Some(reason) => {
                        self.emit(Event::Warning {
                            message: format!("--force ({reason}): {what}: {e}"),
                        });
                        Ok(None)
                    }
                    None => Err(EngineError::Refused(format!(
                        "the ensemble is not healthy: {e}"
                    ))),
                }
            }
        }
    }

    /// A new member must start with an empty volume: a claim left by an earlier scale-down would
    /// bring back old state (and maybe another id).
    async fn check_new_claims(&self, step: &plan::Step) -> Result<(), EngineError> {
        let live = self.target.read().await?;
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
                    ns = self.namespace()
                )));
            }
            self.emit(Event::Action {
                description: format!("delete stale claim {claim} (--delete-stale-claims)"),
            });
            self.target.delete_claim(claim).await?;
            self.wrote();
            let ordinal = *ordinal;
            self.until(
                conditions::gone(format!("claim {claim} gone"), move |live: &Live| {
                    live.claims.contains_key(&ordinal)
                }),
                self.opts.timeout,
            )
            .await?;
        }
        Ok(())
    }

    /// Runs a step's actions; returns true when leadership moved and the rest must be re-planned.
    async fn execute(&self, step: &plan::Step, target: u32) -> Result<bool, EngineError> {
        let mut restarted_any = false;
        for action in &step.actions {
            tracing::debug!(?action, "action");
            match action {
                Action::ApplySpec { replicas, servers } => {
                    let live = self.target.read().await?;
                    if live.replicas() == *replicas
                        && live.zk.servers.to_env() == servers.to_env()
                        && super::template::is_on_delete(&live)
                    {
                        continue;
                    }
                    self.emit(Event::Action {
                        description: format!(
                            "set replicas {replicas}, ZOO_SERVERS `{}`, updateStrategy OnDelete",
                            servers.to_env()
                        ),
                    });
                    // A migrated ensemble's members are named by their own Services: a new
                    // member's must exist before its pod starts (and binds, and is dialled).
                    let min = super::snapshot::Snapshot::of(live.clone(), self.statefulset())?
                        .min_server_id;
                    for name in self
                        .target
                        .add_member_services(servers, min, live.helm_release())
                        .await?
                    {
                        self.emit(Event::Action {
                            description: format!("Service {name} for the new member"),
                        });
                    }
                    let op = self.operation(target, &format!("{}→{}", step.from, step.to));
                    self.target
                        .apply_step(&live, *replicas, &servers.to_env(), Some(&op))
                        .await?;
                    self.wrote();
                }
                Action::StartNew {
                    ordinal,
                    id,
                    expect,
                } => {
                    let r = self.wait_member(*ordinal, *id, *expect, None).await;
                    if let Err(e) = r {
                        if !restarted_any && step.to > step.from {
                            return Err(self.roll_back(step, *ordinal, *id, e).await);
                        }
                        return Err(e);
                    }
                }
                Action::Reconfig { ordinal, id, join } => {
                    if let Err(e) = self.reconfigure(step, *id, *join).await {
                        // A joiner the configuration certainly did not take: undo its pod as
                        // if it had never come up. Otherwise the next run reads what happened.
                        if *join && e.refused {
                            return Err(self.roll_back(step, *ordinal, *id, e.error).await);
                        }
                        return Err(e.error);
                    }
                    if !*join {
                        // The leaver is a non-voting follower now. A leaving leader hands over
                        // at the commit: its pod goes once another member leads.
                        self.until(conditions::led_by_another(*id), self.opts.timeout)
                            .await?;
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
                    let pod = format!("{}-{ordinal}", self.statefulset());
                    let o = *ordinal;
                    self.until(
                        conditions::gone(
                            format!("pod {pod} (server {id}) removed"),
                            move |live: &Live| live.pods.contains_key(&o),
                        ),
                        self.opts.timeout,
                    )
                    .await?;
                    let live = self.target.read().await?;
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
                            self.target.delete_claim(claim).await?;
                            self.wrote();
                        }
                    }
                    // A migrated ensemble's member had its own Service: it names nobody now.
                    // (Only asked when the others are named by theirs: a plain ensemble's
                    // Role need not read Services.)
                    let prefix = format!(
                        "{}.",
                        crate::plan::migrate::service_name(self.statefulset(), 0)
                    );
                    let prefix = prefix.trim_end_matches("0.");
                    let migrated = live
                        .zk
                        .servers
                        .members()
                        .iter()
                        .any(|m| m.host.starts_with(prefix));
                    let removed = if migrated {
                        self.target.remove_member_service(*id).await?
                    } else {
                        None
                    };
                    if let Some((svc, release)) = removed {
                        self.emit(Event::Action {
                            description: format!("deleted Service {svc} of removed server {id}"),
                        });
                        if let Some(release) = release {
                            self.emit(Event::Warning {
                                message: format!(
                                    "Service {svc} belonged to Helm release {release} (extraDeploy): drop it from the \
                                     release's values, or the next helm upgrade creates it again"
                                ),
                            });
                        }
                        self.wrote();
                    }
                }
            }
        }
        Ok(false)
    }

    /// The `zkscale.io/operation` annotation: what is under way, for humans and for resume.
    pub(super) fn operation(&self, target: u32, step: &str) -> String {
        serde_json::json!({
            "target": target, "step": step,
            "holder": self.opts.holder, "at": k8s_openapi::jiff::Timestamp::now().to_string(),
        })
        .to_string()
    }

    /// Undoes an up-step whose new member never came up (or never became a voter): nothing
    /// else had changed yet, so the old list and size are whole again once the new pod and its
    /// claim are gone.
    async fn roll_back(
        &self,
        step: &plan::Step,
        ordinal: u32,
        id: u32,
        cause: EngineError,
    ) -> EngineError {
        let (replicas, size) = (step.from, step.from);
        let servers = match step.servers.without_member(id) {
            Ok(s) => s,
            Err(e) => {
                return EngineError::Stopped {
                    size,
                    reason: format!("{cause}; no list to roll back to: {e}"),
                }
            }
        };
        let servers = &servers;
        let member = format!("new member {}-{ordinal}", self.statefulset());
        // The cause's own "stopped at …, re-run" framing belongs to the roll-back's result.
        let cause = cause.into_reason();
        self.emit(Event::Warning {
            message: format!("{member} did not come up ({cause}); rolling back to {size}"),
        });
        let undo = async {
            let live = self.target.read().await?;
            // The roll-back ends the operation: nothing is under way any more.
            self.target
                .apply_step(&live, replicas, &servers.to_env(), None)
                .await?;
            self.wrote();
            self.until(
                conditions::gone(
                    format!("pod {}-{ordinal} gone", self.statefulset()),
                    move |live: &Live| live.pods.contains_key(&ordinal),
                ),
                self.opts.timeout,
            )
            .await?;
            let live = self.target.read().await?;
            if let Some(claim) = live.claims.get(&ordinal) {
                self.target.delete_claim(claim).await?;
                self.wrote();
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
        let live = self.target.read().await?;
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
        self.target.delete_pod(&pod).await?;
        self.wrote();
        self.until(
            conditions::recreated(&pod.name, ordinal, pod.uid.clone()),
            self.opts.timeout,
        )
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
        self.until(
            conditions::member(ordinal, id, expect, not_leader),
            self.opts.timeout,
        )
        .await
    }
}

/// A reconfig step the model predicts without an election must end in the leader's epoch it
/// started in: another epoch means an election happened that nothing in the step explains
/// (a restarted leader, lost connectivity), so the run stops to be looked at.
fn no_unexpected_election(
    step: &plan::Step,
    baseline: Option<crate::zk::Baseline>,
    after: &Verdict,
) -> Result<(), String> {
    if step.method != plan::Method::Reconfig || step.predicted_elections > 0 || step.from == step.to
    {
        return Ok(());
    }
    let (Some(b), Some(a)) = (baseline, after.baseline()) else {
        return Ok(());
    };
    if a.leader_zxid.epoch() == b.leader_zxid.epoch() {
        Ok(())
    } else {
        Err(format!(
            "step {}→{} was to change no leader, but the epoch went from {:#x} to {:#x} (an election \
             happened); the ensemble is whole at {} member(s): look at what restarted, then re-run",
            step.from,
            step.to,
            b.leader_zxid.epoch(),
            a.leader_zxid.epoch(),
            step.to
        ))
    }
}
