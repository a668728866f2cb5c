//! `kubectl zkscale migrate`: members of an ensemble on hosts moved into the StatefulSet one at a
//! time, each keeping its server id and its address (its own Service). Which members, in which
//! order and with which list is [`crate::plan::migrate`]'s decision; this is the doing.
//!
//! Per member (ascending ids, see the planner for why): the gate (the ensemble whole, or whole
//! but for this member when a resumed run finds it already stopped); the operation annotation
//! names it; its source is stopped (`--stop-cmd`, or the operator is asked to) and the rest is
//! seen whole without it; its Service is pointed at the pod that will carry its id; the
//! StatefulSet grows by one, so that pod starts on an empty claim and can only join the
//! leader; the gates: it follows the leader, synced; then the whole list is healthy with no
//! fewer znodes than before the move. A pod that never syncs is removed again (with its claim),
//! the Service goes back to the host and the source is started again (`--start-cmd`): exit 4.
//!
//! State lives in the cluster: the StatefulSet's replicas say which members have moved (the
//! lowest ids), the Services where each one's traffic goes. A run killed anywhere is resumed by
//! the same command: a member whose source is already down is taken from where it stands.

use std::net::IpAddr;

use crate::cluster::Live;
use crate::plan::migrate::{endpoint_refusal, Backend, Layout, MigratePlan, Source, PORTS};
use crate::plan::netpol;
use crate::plan::Expect;
use crate::zk::{self, Probe, Verdict};

use super::conditions;
use super::snapshot::WRITE_LAG;
use super::wait::{Check, Condition, Kind};
use super::{Engine, EngineError, Event, REFUSE_AFTER};

/// A migration: the source and the target, and how to stop and start a source member.
#[derive(Debug, Clone)]
pub struct Migration {
    pub layout: Layout,
    /// Shell command templates with `{id}` and `{host}`; `None`: the operator is asked to.
    pub stop_cmd: Option<String>,
    pub start_cmd: Option<String>,
}

/// What to do when the pod of a member whose source is stopped could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    /// No pod for it and the StatefulSet not grown: the source can start again as it was.
    StartAgain,
    /// The StatefulSet grew (or its pod is there): the pod must go before the source starts,
    /// or two servers would run with one id.
    TakeOut,
    /// The cluster cannot be read: start nothing, say where the member is.
    Unknown,
}

/// [`AfterStop`] for the member that was to start in pod `ordinal`, from the StatefulSet and
/// its pods as read after the failure (`None`: they could not be read).
pub(super) fn after_stop(live: Option<&Live>, ordinal: u32) -> AfterStop {
    match live {
        None => AfterStop::Unknown,
        Some(l) if l.replicas() > ordinal || l.pods.contains_key(&ordinal) => AfterStop::TakeOut,
        Some(_) => AfterStop::StartAgain,
    }
}

/// What a run says when it leaves a source member stopped.
pub(super) fn stopped_on_host(id: u32, host: &str, cause: &str) -> String {
    format!(
        "server {id} is stopped on its host {host}; re-run the same command to resume (the \
         rest of the ensemble is whole without it). Cause: {cause}"
    )
}

impl Engine<'_> {
    /// The checks that need no write, and the plan, from one look at the StatefulSet and every
    /// member (pods for the moved ids, hosts for the rest).
    /// `migrate plan` refuses what the run would refuse before its first write: a source
    /// address an EndpointSlice cannot hold (names resolved as the run resolves them), and a
    /// source that has no quorum to move from (no member leads one, or a standalone source does
    /// not answer).
    pub async fn migrate_plan(&self, m: &Migration) -> Result<MigratePlan, EngineError> {
        let live = self.target.read().await?;
        let plan = self.plan_migration(&live, m).await?;
        for id in &plan.order {
            if let Some(src) = m.layout.source(*id) {
                host_backend(src).await?;
            }
        }
        if plan.leader.is_none() && !plan.order.is_empty() {
            let standalone_serves = match (m.layout.standalone, m.layout.sources.first()) {
                (true, Some(src)) => matches!(
                    zk::observe_tcp(
                        src.id,
                        &src.client_addr(),
                        zk::Timeouts::default().within(self.opts.timeout)
                    )
                    .await
                    .probe,
                    Probe::Serving { .. }
                ),
                _ => false,
            };
            if !standalone_serves {
                return Err(EngineError::Refused(format!(
                    "no source member leads a quorum (none answers as leader at {}): the \
                     migration would be refused; start the source ensemble (or give the right \
                     addresses) first",
                    m.layout
                        .sources
                        .iter()
                        .map(Source::client_addr)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(plan)
    }

    /// [`Engine::migrate_plan`] from `live`, read by the caller.
    async fn plan_migration(&self, live: &Live, m: &Migration) -> Result<MigratePlan, EngineError> {
        self.check_target(live, &m.layout).await?;
        let replicas = live.replicas();
        let obs = self.look_all(live, &m.layout).await;
        // The member leading a quorum (a standalone source serving alone leads none).
        let leaders: Vec<u32> = obs
            .iter()
            .filter_map(|o| match &o.probe {
                Probe::Serving { srvr, .. } if srvr.mode == zk::Mode::Leader => Some(o.id),
                _ => None,
            })
            .collect();
        let leader = (leaders.len() == 1).then(|| leaders[0]);
        let mut plan = MigratePlan::new(m.layout.clone(), replicas, leader)?;
        plan.network_policy = self
            .network_policy_advice(live, &m.layout, &plan.order)
            .await;
        Ok(plan)
    }

    /// What the namespace's NetworkPolicies would block between the source hosts still to move
    /// and the pods on the quorum and election ports, and what to set (see [`netpol`]).
    async fn network_policy_advice(
        &self,
        live: &Live,
        layout: &Layout,
        order: &[u32],
    ) -> Option<String> {
        let mut hosts = Vec::new();
        for id in order {
            if let Some(Ok(Backend::Host { ip, .. })) = match layout.source(*id) {
                Some(s) => Some(host_backend(s).await),
                None => None,
            } {
                hosts.push(ip);
            }
        }
        if hosts.is_empty() {
            return None;
        }
        let policies = match self.target.network_policies().await {
            Ok(p) => p,
            Err(e) => {
                return Some(format!(
                    "NetworkPolicies: not read ({e}); where policies are enforced, the pods must \
                     admit the hosts on ports {} and {} (the chart's own admits only its pods)",
                    PORTS[1].1, PORTS[2].1
                ))
            }
        };
        let template = live.sts.spec.as_ref().map(|s| &s.template);
        let labels = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        // The ports the pods will declare: their own, plus the quorum ports a migration step adds.
        let mut named: std::collections::BTreeMap<String, u16> = template
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.iter().find(|c| c.name == live.zk.container))
            .and_then(|c| c.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
            .collect();
        named.entry("follower".into()).or_insert(PORTS[1].1);
        named.entry("election".into()).or_insert(PORTS[2].1);
        let found = netpol::blocked(
            &policies,
            &labels,
            &named,
            &hosts,
            &[PORTS[1].1, PORTS[2].1],
        );
        if found.is_empty() {
            return None;
        }
        let what: Vec<String> = found
            .iter()
            .map(|b| {
                let (way, verb) = match b.direction {
                    netpol::Direction::Ingress => ("into the pods", "from"),
                    netpol::Direction::Egress => ("out of the pods", "to"),
                };
                let mut denied: Vec<String> =
                    b.denied.iter().map(|(ip, p)| format!("{ip}:{p}")).collect();
                denied.dedup();
                format!(
                    "NetworkPolicy {} admit(s) nothing {way} {verb} {}",
                    b.policies.join(", "),
                    denied.join(", ")
                )
            })
            .collect();
        Some(format!(
            "{}. Members on hosts and in pods dial each other on these ports during the moves: \
             where policies are enforced a move would stall (its pod never syncs; the member \
             goes back to its host after the timeout). Before the first move, set in the \
             release's values (and keep them until every member is in a pod):\n{}",
            what.join("; "),
            netpol::values_to_admit(&found).trim_end()
        ))
    }

    /// Moves every member not moved yet (see the module docs); the last gate's verdict.
    pub async fn migrate(&self, m: &Migration) -> Result<Verdict, EngineError> {
        self.with_lock(self.migrating(m)).await
    }

    async fn migrating(&self, m: &Migration) -> Result<Verdict, EngineError> {
        let layout = &m.layout;
        let n = layout.size();
        let live = self.target.read().await?;
        let plan = self.plan_migration(&live, m).await?;
        let under_way = live
            .operation()
            .and_then(super::annotation::parse_operation::<super::annotation::MigrateOp>)
            .map(|op| op.migrate);
        if live.operation().is_some() && under_way.is_none() {
            return Err(EngineError::Refused(format!(
                "{} has another operation under way ({}): finish it first",
                self.statefulset(),
                super::annotation::shown(live.operation().unwrap_or_default())
            )));
        }
        // Members whose Services are in place; the sources still out there are asked directly.
        for &id in &layout.ids {
            let svc = layout.service(id);
            let on_host = layout
                .source(id)
                .filter(|_| layout.ordinal(id) >= live.replicas());
            let backend = match on_host {
                Some(s) => {
                    self.set_external(id, Some(s.client_addr()));
                    host_backend(s).await?
                }
                None => Backend::Pod {
                    pod: layout.pod(id),
                },
            };
            self.target
                .point_member_service(&svc, &backend, live.helm_release())
                .await?;
        }
        if !layout.standalone {
            self.check_sources(layout, &plan.order, under_way).await?;
        }
        if let Some(advice) = &plan.network_policy {
            self.emit(Event::Warning {
                message: advice.clone(),
            });
        }
        let env = layout.servers().to_env();
        if live.zk.servers_env != env || !live.zk.listens_on_all_ips() {
            if live.replicas() > 0 {
                return Err(EngineError::Refused(format!(
                    "{} runs {} pod(s) with another member list than the migration's: it is not \
                     this migration's target",
                    self.statefulset(),
                    live.replicas()
                )));
            }
            self.emit(Event::Action {
                description: format!(
                    "{}: member list naming the Services, quorum on all IPs (0 pods, nothing restarts)",
                    self.statefulset()
                ),
            });
            self.target
                .apply_migration_step(&live, 0, &env, None)
                .await?;
            self.wrote();
        }
        self.emit(Event::Note {
            message: format!(
                "{}/{}: move servers {:?} from their hosts, one at a time ({} moved already; {} \
                 election(s) expected)",
                self.namespace(),
                self.statefulset(),
                plan.order,
                plan.moved.len(),
                plan.elections
            ),
        });
        if let Ok(live) = self.target.read().await {
            let message = format!(
                "migrate servers {:?} from hosts ({})",
                plan.order, self.opts.holder
            );
            self.record(&live, false, "Migrating", &message).await;
        }
        let mut order = plan.order.clone();
        if layout.standalone {
            self.form_from_standalone(m).await?;
            let replicas = self.target.read().await?.replicas();
            order = layout.ids[replicas as usize..].to_vec();
        }
        let mut last = None;
        for (i, &id) in order.iter().enumerate() {
            if i > 0 {
                if let Some(why) = self.opts.cancel.reason() {
                    return Err(EngineError::Stopped {
                        size: n,
                        reason: format!("interrupted ({why}) between two moved members"),
                    });
                }
            }
            last = Some(self.move_one(m, id, i == 0).await?);
        }
        let v = match last {
            Some(v) => v,
            None => {
                self.gate("all members in pods", None, Some(n), self.opts.timeout)
                    .await?
            }
        };
        self.target
            .annotate(&format!("migrated {n} members from hosts"), true)
            .await?;
        self.emit(Event::Note {
            message: "every member runs in a pod; the chart values to commit follow".into(),
        });
        self.emit(Event::Done {
            size: n,
            elapsed_ms: self.start.elapsed().as_millis() as u64,
            znode_count: v.baseline().map(|b| b.znode_count),
        });
        Ok(v)
    }

    /// One member from its host into its pod.
    async fn move_one(&self, m: &Migration, id: u32, first: bool) -> Result<Verdict, EngineError> {
        let layout = &m.layout;
        let n = layout.size();
        let src = layout.source(id).expect("planned ids are sources");
        let ordinal = layout.ordinal(id);
        let pod = layout.pod(id);
        let env = layout.servers().to_env();
        self.emit(Event::Note {
            message: format!("move server {id} from {} into {pod}", src.host),
        });
        let wait = if first {
            REFUSE_AFTER.min(self.opts.timeout)
        } else {
            self.opts.timeout
        };
        let before = format!("before moving server {id}");
        let pre = match self
            .until(conditions::healthy_but(&before, id, Some(n)), wait)
            .await
        {
            Ok(v) => v,
            Err(e) if first => {
                return Err(EngineError::Refused(format!(
                    "the ensemble is not whole (server {id} aside): {}",
                    e.into_reason()
                )))
            }
            Err(e) => return Err(e),
        };
        // A claim left for the pod this member will get would start it with old data instead of
        // empty: checked before its source stops, so a refusal changes nothing.
        let live = self.target.read().await?;
        if let (Some(claim), None) = (live.claims.get(&ordinal), live.pods.get(&ordinal)) {
            if !self.opts.delete_stale_claims {
                let why = format!(
                    "claim {claim} already exists for {pod}: a pod on it would start with old \
                     data instead of empty. Delete it (or pass --delete-stale-claims) and re-run"
                );
                return Err(if first {
                    EngineError::Refused(why)
                } else {
                    EngineError::Stopped {
                        size: n,
                        reason: format!("{why}; server {id} was not moved"),
                    }
                });
            }
            self.emit(Event::Action {
                description: format!("delete stale claim {claim} (--delete-stale-claims)"),
            });
            self.target.delete_claim(claim).await?;
            self.until(
                conditions::gone(format!("claim {claim} deleted"), move |l: &Live| {
                    l.claims.contains_key(&ordinal)
                }),
                self.opts.timeout,
            )
            .await?;
        }
        let op = serde_json::json!({
            "target": n, "step": format!("migrate server {id}"), "migrate": id,
            "holder": self.opts.holder,
            "at": k8s_openapi::jiff::Timestamp::now().to_string(),
        })
        .to_string();
        self.target.set_operation(&op).await?;
        self.wrote();
        let serving = matches!(
            zk::observe_tcp(
                id,
                &src.client_addr(),
                zk::Timeouts::default().within(self.opts.timeout)
            )
            .await
            .probe,
            Probe::Serving { .. }
        );
        if serving {
            self.source_command("stop", m.stop_cmd.as_deref(), src, n)
                .await?;
        }
        // From here the source is stopped: a failure before its pod exists (an API error, a
        // wait that ends) must not leave it so with only the error's words.
        let into_pod = async {
            self.until(dropped(id), self.opts.timeout).await?;
            let live = self.target.read().await?;
            let svc = layout.service(id);
            self.emit(Event::Action {
                description: format!(
                    "Service {} → pod {pod}; {} grows to {} (server {id} starts empty and syncs \
                     from the leader)",
                    svc.name,
                    self.statefulset(),
                    ordinal + 1
                ),
            });
            self.target
                .point_member_service(
                    &svc,
                    &Backend::Pod { pod: pod.clone() },
                    live.helm_release(),
                )
                .await?;
            self.set_external(id, None);
            if live.replicas() < ordinal + 1 {
                self.target
                    .apply_migration_step(&live, ordinal + 1, &env, Some(&op))
                    .await?;
            }
            Ok::<(), EngineError>(())
        };
        if let Err(e) = into_pod.await {
            return Err(self.after_stop_failed(m, id, e).await);
        }
        self.wrote();
        if let Err(e) = self
            .until(
                conditions::member(ordinal, id, Expect::Follow, None),
                self.opts.timeout,
            )
            .await
        {
            return Err(self.move_back(m, id, e.into_reason()).await);
        }
        let after = format!("after moving server {id}");
        self.gate(&after, pre.baseline(), Some(n), self.opts.timeout)
            .await
    }

    /// A standalone source becomes the highest of three members (see
    /// [`Layout::standalone`]): the first pod starts empty and waits (alone it is one vote of
    /// three), the source restarts once as a member (the downtime: stop, start, election) and
    /// leads, having the data, the first pod syncs from it; then the second pod joins. Each
    /// part is skipped when a resumed run finds it done.
    async fn form_from_standalone(&self, m: &Migration) -> Result<(), EngineError> {
        let layout = &m.layout;
        let n = layout.size();
        let src = &layout.sources[0];
        let (h, first, second) = (src.id, layout.ids[0], layout.ids[1]);
        let env = layout.servers().to_env();
        let live = self.target.read().await?;
        if live.replicas() >= 2 {
            return Ok(());
        }
        let timeouts = zk::Timeouts::default().within(self.opts.timeout);
        let mode = |o: zk::MemberObservation| match o.probe {
            Probe::Serving { srvr, .. } => Some((srvr.mode, srvr.node_count, srvr.zxid)),
            _ => None,
        };
        let now = mode(zk::observe_tcp(h, &src.client_addr(), timeouts).await);
        let formed = matches!(now, Some((zk::Mode::Leader | zk::Mode::Follower, ..)));
        let op = serde_json::json!({
            "target": n, "step": format!("server {h} from standalone"), "migrate": h,
            "holder": self.opts.holder,
            "at": k8s_openapi::jiff::Timestamp::now().to_string(),
        })
        .to_string();
        if !formed {
            let baseline = match &now {
                Some((zk::Mode::Standalone, count, zxid)) => Some(zk::Baseline {
                    znode_count: *count,
                    leader_zxid: *zxid,
                }),
                // Stopped by a run that was killed: it starts below; its data is its own.
                None if live.operation().is_some() => None,
                _ => {
                    return Err(EngineError::Refused(format!(
                        "source server {h} at {} does not serve standalone (nor as a member)",
                        src.client_addr()
                    )))
                }
            };
            self.target.set_operation(&op).await?;
            if live.replicas() < 1 {
                let why = format!(
                    "server {first} starts empty and waits for server {h} (alone it is 1 vote of 3)"
                );
                self.grow(&live, 1, &env, &op, &why).await?;
            }
            self.until(
                conditions::member(0, first, Expect::Deferred, None),
                self.opts.timeout,
            )
            .await?;
            let down_at = std::time::Instant::now();
            if baseline.is_some() {
                self.source_command("stop", m.stop_cmd.as_deref(), src, n)
                    .await?;
            }
            self.until(not_answering(h), self.opts.timeout).await?;
            self.source_command("start", m.start_cmd.as_deref(), src, n)
                .await?;
            self.until(formed_around(h, first, second, baseline), self.opts.timeout)
                .await?;
            self.emit(Event::Note {
                message: format!(
                    "server {h} leads a quorum with server {first}: {:.1} s from its stop to the quorum serving (the standalone's one downtime)",
                    down_at.elapsed().as_secs_f64()
                ),
            });
        }
        let live = self.target.read().await?;
        let before = self
            .until(
                conditions::healthy_but(&format!("before server {second} joins"), second, Some(n)),
                self.opts.timeout,
            )
            .await?;
        let why = format!("server {second} starts empty and syncs from the leader");
        self.grow(&live, 2, &env, &op, &why).await?;
        self.until(
            conditions::member(1, second, Expect::Follow, None),
            self.opts.timeout,
        )
        .await?;
        self.gate(
            &format!("after server {second} joined"),
            before.baseline(),
            Some(n),
            self.opts.timeout,
        )
        .await?;
        Ok(())
    }

    /// The StatefulSet grows to `replicas` (a new, empty pod), said with `why`.
    async fn grow(
        &self,
        live: &Live,
        replicas: u32,
        env: &str,
        op: &str,
        why: &str,
    ) -> Result<(), EngineError> {
        self.emit(Event::Action {
            description: format!("{} grows to {replicas}: {why}", self.statefulset()),
        });
        self.target
            .apply_migration_step(live, replicas, env, Some(op))
            .await?;
        self.wrote();
        Ok(())
    }

    /// The source of server `id` was stopped and its pod could not be started (an API error,
    /// a wait that ended). What the cluster shows decides ([`after_stop`]): no pod for it yet
    /// (the StatefulSet did not grow) → the Service points at the host again and the source
    /// starts (`--start-cmd`); a pod that is, or may be, there → [`Engine::move_back`], which
    /// takes it out first (never two servers with one id); the cluster unreadable → nothing
    /// is started and the message says where the member is and how to resume.
    async fn after_stop_failed(&self, m: &Migration, id: u32, cause: EngineError) -> EngineError {
        let layout = &m.layout;
        let n = layout.size();
        let src = layout.source(id).expect("planned ids are sources");
        let ordinal = layout.ordinal(id);
        let cause = cause.into_reason();
        // The API may be back a moment later: wait for it as long as any gate would.
        let live = match self.api_back().await {
            Ok(()) => self.target.read().await.ok(),
            Err(_) => None,
        };
        match after_stop(live.as_ref(), ordinal) {
            AfterStop::TakeOut => self.move_back(m, id, cause).await,
            AfterStop::Unknown => EngineError::Stopped {
                size: n,
                reason: stopped_on_host(id, &src.host, &cause),
            },
            AfterStop::StartAgain => {
                self.emit(Event::Warning {
                    message: format!(
                        "server {id} is stopped and its pod was not created ({cause}); starting it \
                         again on {}",
                        src.host
                    ),
                });
                let helm_release = live.as_ref().and_then(|l| l.helm_release());
                match self.start_on_host(m, id, helm_release).await {
                    Ok(_) => EngineError::Stopped {
                        size: n,
                        reason: format!(
                            "server {id} was not moved ({cause}). It runs on {} again and the \
                             ensemble is whole",
                            src.host
                        ),
                    },
                    Err(e) => EngineError::Stopped {
                        size: n,
                        reason: format!(
                            "{} (moving it back failed: {})",
                            stopped_on_host(id, &src.host, &cause),
                            e.into_reason()
                        ),
                    },
                }
            }
        }
    }

    /// A member whose pod never synced goes back to its host: the pod and its claim go, the
    /// Service points at the host again and the source starts. The error to stop with.
    async fn move_back(&self, m: &Migration, id: u32, why: String) -> EngineError {
        let layout = &m.layout;
        let n = layout.size();
        let src = layout.source(id).expect("planned ids are sources");
        let ordinal = layout.ordinal(id);
        let pod = layout.pod(id);
        self.emit(Event::Warning {
            message: format!(
                "server {id} did not sync in {pod} ({why}); moving it back to {}",
                src.host
            ),
        });
        let back = async {
            let live = self.target.read().await?;
            self.target
                .apply_migration_step(&live, ordinal, &layout.servers().to_env(), None)
                .await?;
            self.wrote();
            self.until(
                conditions::gone(format!("pod {pod} removed"), move |l: &Live| {
                    l.pods.contains_key(&ordinal)
                }),
                self.opts.timeout,
            )
            .await?;
            if let Some(claim) = self.target.read().await?.claims.get(&ordinal) {
                // Whatever it synced is a partial copy: the next attempt must start empty.
                self.target.delete_claim(claim).await?;
            }
            self.start_on_host(m, id, live.helm_release()).await
        };
        match back.await {
            Ok(_) => EngineError::Stopped {
                size: n,
                reason: format!(
                    "server {id} did not sync in {pod}: {why}. It runs on {} again and the \
                     ensemble is whole",
                    src.host
                ),
            },
            Err(e) => EngineError::Stopped {
                size: n,
                reason: format!(
                    "server {id} did not sync in {pod} ({why}), and moving it back to {} failed: \
                     {}. Point Service {} at the host and start the source by hand",
                    src.host,
                    e.into_reason(),
                    layout.service(id).name
                ),
            },
        }
    }

    /// The last part of every way back, once no pod runs with the member's id: its Service
    /// points at the host again, the source starts, and the ensemble is gated whole.
    async fn start_on_host(
        &self,
        m: &Migration,
        id: u32,
        helm_release: Option<&str>,
    ) -> Result<Verdict, EngineError> {
        let layout = &m.layout;
        let n = layout.size();
        let src = layout.source(id).expect("planned ids are sources");
        self.target
            .point_member_service(&layout.service(id), &host_backend(src).await?, helm_release)
            .await?;
        self.set_external(id, Some(src.client_addr()));
        self.source_command("start", m.start_cmd.as_deref(), src, n)
            .await?;
        self.gate(
            &format!("server {id} back on {}", src.host),
            None,
            Some(n),
            self.opts.timeout,
        )
        .await
    }

    /// Runs a `--stop-cmd`/`--start-cmd` for `src`, or asks the operator to do it.
    async fn source_command(
        &self,
        verb: &str,
        template: Option<&str>,
        src: &Source,
        n: u32,
    ) -> Result<(), EngineError> {
        let Some(t) = template else {
            self.emit(Event::Note {
                message: format!(
                    "{verb} ZooKeeper server {} on {} now (no --{verb}-cmd given); zkscale waits \
                     until it sees that done",
                    src.id, src.host
                ),
            });
            return Ok(());
        };
        // The values are shell-quoted by `plan::migrate::source_command` (the host was checked
        // by `check_host` when it was read): nothing from outside runs as shell syntax.
        let cmd = crate::plan::migrate::source_command(t, src);
        self.emit(Event::Action {
            description: format!("{verb} server {} on {}: {cmd}", src.id, src.host),
        });
        let run = tokio::process::Command::new("sh")
            .args(["-c", &cmd])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let failed = |why: String| EngineError::Stopped {
            size: n,
            reason: format!("--{verb}-cmd for server {} failed: {why}", src.id),
        };
        let out = match tokio::time::timeout(self.opts.timeout, run).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed(format!("no exit after {:?}", self.opts.timeout))),
        };
        // Its output is the operator's business, but never on stdout (`-o json` owns it).
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .filter(|l| !l.trim().is_empty())
        {
            tracing::info!(cmd = verb, "{line}");
        }
        if !out.status.success() {
            return Err(failed(format!("{} (`{cmd}`)", out.status)));
        }
        Ok(())
    }

    fn set_external(&self, id: u32, addr: Option<String>) {
        if let Ok(mut e) = self.external.lock() {
            match addr {
                Some(a) => e.insert(id, a),
                None => e.remove(&id),
            };
        }
    }

    /// The target must be a bitnami StatefulSet with persistence whose setup.sh numbers new pods
    /// from the lowest source id, and no more pods than members.
    async fn check_target(&self, live: &Live, layout: &Layout) -> Result<(), EngineError> {
        let refuse = |why: String| Err(EngineError::Refused(why));
        live.storage()
            .check(crate::plan::Change::Migrate, None)
            .map_err(|e| EngineError::Refused(format!("{}: {e}", self.statefulset())))?;
        if live.claim_template().is_none() {
            return refuse(format!(
                "{} has no volume claim template: install the chart with persistence.enabled=true \
                 (a member's data must outlive its pod)",
                self.statefulset()
            ));
        }
        match self.target.setup_min_server_id(live).await? {
            Some(min) if min == layout.min_server_id() => {}
            Some(min) => {
                return refuse(format!(
                    "{} numbers new pods from minServerId {min}, the source's lowest id is {}: \
                     install the release with --set minServerId={} (and replicaCount=0)",
                    self.statefulset(),
                    layout.min_server_id(),
                    layout.min_server_id()
                ))
            }
            None => {
                return refuse(format!(
                    "{}'s pods get no id from their ordinal (no setup.sh in a -scripts \
                     ConfigMap): this is not a bitnami release",
                    self.statefulset()
                ))
            }
        }
        if live.replicas() > layout.size() {
            return refuse(format!(
                "{} has {} replicas, more than the {} members to move",
                self.statefulset(),
                live.replicas(),
                layout.size()
            ));
        }
        Ok(())
    }

    /// Every member asked once: pods for the moved ids, hosts for the rest.
    async fn look_all(&self, live: &Live, layout: &Layout) -> Vec<zk::MemberObservation> {
        let timeouts = zk::Timeouts::default().within(self.opts.timeout);
        let futs = layout.ids.iter().map(|&id| async move {
            let ordinal = layout.ordinal(id);
            match layout.source(id) {
                Some(s) if ordinal >= live.replicas() => {
                    zk::observe_tcp(id, &s.client_addr(), timeouts).await
                }
                // A pod, or none yet (a standalone source's new members): no running pod.
                _ => {
                    self.target
                        .observe(live.pods.get(&ordinal), id, self.opts.connect, timeouts)
                        .await
                }
            }
        });
        futures::future::join_all(futs).await
    }

    /// Each source still to move runs with the list naming the Services (its `conf`); one that
    /// does not is refused with the lines to run with. `conf` not whitelisted: said, not
    /// refused (the pre-gate still holds every member to one leader).
    async fn check_sources(
        &self,
        layout: &Layout,
        order: &[u32],
        under_way: Option<u32>,
    ) -> Result<(), EngineError> {
        let mut wrong = Vec::new();
        for &id in order {
            let src = layout.source(id).expect("planned ids are sources");
            match zk::server_list_tcp(
                &src.client_addr(),
                zk::Timeouts::default().within(self.opts.timeout),
            )
            .await
            {
                Ok(list) => {
                    if let Err(e) = layout.check_source_list(id, &list) {
                        wrong.push(e);
                    }
                }
                Err(zk::ZkError::NotWhitelisted { .. }) => self.emit(Event::Warning {
                    message: format!(
                        "server {id} does not allow `conf` (4lw.commands.whitelist): its server \
                         list cannot be checked; it must be the Services' (see `migrate plan`)"
                    ),
                }),
                // The member this migration stopped before it was killed.
                Err(_) if under_way == Some(id) => {}
                Err(e) => wrong.push(format!("server {id} at {}: {e}", src.client_addr())),
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(EngineError::Refused(format!(
            "the source is not ready to move: {}. Before the first move every source member must \
             run with these lines (a rolling restart of the source; the Services now point at \
             the hosts):\n{}",
            wrong.join("; "),
            layout.source_lines().join("\n")
        )))
    }
}

/// The source's host as an EndpointSlice address: `--host-ip`, else the host (a name is
/// resolved here, once). Addresses the API server refuses in an EndpointSlice are refused here
/// with the way out.
async fn host_backend(src: &Source) -> Result<Backend, EngineError> {
    let ip = match (src.cluster_ip, src.host.parse::<IpAddr>()) {
        (Some(ip), _) | (None, Ok(ip)) => ip,
        (None, Err(_)) => tokio::net::lookup_host((src.host.as_str(), src.client_port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .ok_or_else(|| {
                EngineError::Refused(format!(
                    "source host {} does not resolve from here (its Service's EndpointSlice \
                     needs an address): give --host-ip {}=<IP>",
                    src.host, src.id
                ))
            })?,
    };
    if let Some(what) = endpoint_refusal(ip) {
        return Err(EngineError::Refused(format!(
            "server {}'s address {ip} is {what}, which an EndpointSlice cannot hold (nor a pod \
             reach): give the address the cluster reaches that host at with --host-ip {}=<IP>",
            src.id, src.id
        )));
    }
    Ok(Backend::Host {
        ip,
        ports: [src.client_port, src.quorum_port, src.election_port],
    })
}

/// Server `id` does not answer at all (a stopped process).
fn not_answering<'a>(id: u32) -> Condition<'a, ()> {
    Condition::new(
        format!("server {id} stopped"),
        true,
        Kind::Wait,
        move |snap, _| {
            let up = snap.members.iter().any(|(_, i, o)| {
                *i == id && matches!(o.probe, Probe::Serving { .. } | Probe::NotServing)
            });
            if up {
                Check::NotYet(format!("server {id} still answers"))
            } else {
                Check::Met((), String::new())
            }
        },
    )
}

/// The quorum formed from a standalone source: server `leader` (the former standalone, which
/// has the data) leads, `first` follows it synced, `pending` aside; no fewer znodes than the
/// standalone had. An empty member leading would mean the data is gone: stop at once.
fn formed_around<'a>(
    leader: u32,
    first: u32,
    pending: u32,
    baseline: Option<zk::Baseline>,
) -> Condition<'a, Verdict> {
    Condition::new(
        format!("server {leader} leads a quorum with server {first}, synced"),
        true,
        Kind::Gate { size: None },
        move |snap, look| {
            let lag = if look.n == 0 { 0 } else { WRITE_LAG };
            let v = snap.verdict_without(pending, lag);
            match v.leader {
                Some(l) if l != leader => {
                    return Check::Stop(EngineError::Stopped {
                        size: 3,
                        reason: format!(
                            "server {l}, which started empty, leads instead of server {leader}: \
                             stop everything and restore server {leader}'s data directory"
                        ),
                    })
                }
                _ => {}
            }
            let count_ok = match (baseline, v.znode_count) {
                (Some(b), Some(c)) => c >= b.znode_count,
                _ => true,
            };
            if v.healthy && count_ok {
                let detail = v.summary();
                Check::Met(v, detail)
            } else if !count_ok {
                Check::NotYet(format!(
                    "{} znodes, the standalone had {}",
                    v.znode_count.unwrap_or(0),
                    baseline.map(|b| b.znode_count).unwrap_or(0)
                ))
            } else {
                Check::NotYet(v.summary())
            }
        },
    )
}

/// Server `id` no longer answers and the rest of the list is whole without it: the ensemble
/// has dropped it (its leader no longer counts on it).
fn dropped<'a>(id: u32) -> Condition<'a, ()> {
    Condition::new(
        format!("server {id} gone from its host, the rest whole without it"),
        true,
        Kind::Wait,
        move |snap, look| {
            let down = !snap
                .members
                .iter()
                .any(|(_, i, o)| *i == id && matches!(o.probe, Probe::Serving { .. }));
            let lag = if look.n == 0 { 0 } else { WRITE_LAG };
            let rest = snap.verdict_without(id, lag);
            match (down, rest.healthy) {
                (true, true) => Check::Met((), rest.summary()),
                (false, _) => Check::NotYet(format!("server {id} still serves")),
                (true, false) => Check::NotYet(rest.summary()),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    //! The migration's own conditions on scenarios (pods stand in for hosts: the conditions
    //! read members by id, wherever they run).
    use super::super::fixtures::ensemble;
    use super::super::tests::{check, LATER};
    use super::*;

    #[test]
    fn a_member_is_dropped_once_it_is_gone_and_the_rest_is_whole() {
        // Server 2 (ordinal 1) stopped, 1 follows 3: met.
        assert!(check(dropped(2), &ensemble(3).unreachable(1), LATER).is_ok());
        let e = check(dropped(2), &ensemble(3), LATER).unwrap_err();
        assert!(e.contains("still serves"), "{e}");
        // Gone, but the rest has lost its leader: not yet.
        assert!(check(
            dropped(2),
            &ensemble(3).unreachable(1).unreachable(2),
            LATER
        )
        .is_err());
        assert!(check(not_answering(2), &ensemble(3).unreachable(1), LATER).is_ok());
        assert!(check(not_answering(2), &ensemble(3).not_serving(1), LATER).is_err());
    }

    #[test]
    fn the_quorum_formed_from_a_standalone_must_be_led_by_it() {
        let base = |znode_count| {
            Some(zk::Baseline {
                znode_count,
                leader_zxid: zk::Zxid(0),
            })
        };
        // 3 (the former standalone) leads, 1 follows, 2 not there yet: formed.
        let formed = ensemble(3).leader(3).unreachable(1);
        assert!(check(formed_around(3, 1, 2, base(0)), &formed, LATER).is_ok());
        // Fewer znodes than the standalone had: not yet (the sync is still running).
        let e = check(formed_around(3, 1, 2, base(u64::MAX)), &formed, LATER).unwrap_err();
        assert!(e.contains("the standalone had"), "{e}");
        // The empty member leads: the data would be gone; stop at once.
        let wrong = ensemble(3).leader(1).unreachable(1);
        let e = check(formed_around(3, 1, 2, base(0)), &wrong, LATER).unwrap_err();
        assert!(
            e.starts_with("stopped") && e.contains("started empty"),
            "{e}"
        );
    }
}
