//! Quorum math and the step planner. Pure, no I/O.
//!
//! # Why one member per step
//! With q(n) = ⌊n/2⌋+1, q(n) + q(n+1) = n+2 > n+1: any quorum of the old list and any quorum
//! of the new list share a member, so two leaders can never both hold a quorum, and the new
//! empty member (1 < q(n+1) for n ≥ 1) can never form a quorum of its own. Jumping two at once
//! breaks this (1→3: two empty pods are q(3) = 2 and elect one of themselves).
//!
//! # ZooKeeper behaviour the plan relies on (3.5+, static config, `reconfigEnabled=false`)
//! - A server's *view* is the `ZOO_SERVERS` it started with; it never changes while it runs
//!   (the pod's own env, which is why each [`PodState`] carries it).
//! - Fast leader election ignores notifications from, or naming, servers outside its own view.
//! - A (re)started server joins a running leader only if that leader is in its view and a quorum
//!   *of its own view* (not counting itself) reports leading/following that leader.
//! - A leader steps down once the followers in its view plus itself fall below its quorum.
//! - Elections pick the highest (epoch, zxid), then the highest id. A leader also accepts
//!   followers outside its view (they sync but do not vote).
//!
//! [`Ensemble`] models exactly this; the planner runs every step through it to predict what
//! each action does ([`Expect`]) and refuses plans it predicts to stall or lose data.
//!
//! # Step sequences (one member per step; the engine runs the full health gate after each)
//! - **1→2**: ApplySpec(2) creates pod 1 with an empty volume and the 2-list. It cannot follow
//!   a standalone server and alone is 1 < q(2) = 2, so it waits (`Deferred`). Restart the old
//!   standalone server into quorum mode: both elect, FLE picks the highest (epoch, zxid), which
//!   is the old server with the data (`Election`).
//! - **n→n+1, n ≥ 2**: ApplySpec(n+1) creates pod n with the new list; n ≥ q(n+1) old members
//!   report the current leader, so it follows and syncs (`Follow`). Then restart the old members
//!   with the new list, followers first and the leader last (one election). For n = 2 the first
//!   follower restart already costs the election (a 2-list leader has no spare vote); the old
//!   leader then cannot follow the new leader (not in its 2-list) until its own restart.
//! - **n→n−1, leaver is a follower**: ApplySpec(servers without the leaver, replicas kept so it
//!   keeps voting), restart the others followers-first/leader-last, then ApplySpec(n−1) and
//!   Remove. For n ≥ 4 each restarted follower rejoins at once; for 3→2 the first one cannot
//!   (its 2-list has only the leader left to report) and waits (`Deferred`) until the leader's
//!   restart makes the two of them elect: one election either way.
//! - **n→n−1, leaver is the leader**: members whose list lacks the leader cannot follow it, so
//!   for n ≥ 4 `MoveLeadership` first restarts the leader with the unchanged list (before
//!   ApplySpec, so the recreated pod still has it): one extra election, then as above. For 3→2
//!   no move is needed: the first restart waits, the second makes the old leader lose its quorum
//!   and the two remaining members elect, one election in total. The planner simulates both
//!   variants and keeps the cheaper one (elections + outage states).
//! - **2→1**: ApplySpec(1-list, replicas 2), restart the remaining member: it comes back
//!   standalone with all committed data (every commit of a 2-list needs both), the leaver loses
//!   its quorum; then ApplySpec(1) and Remove.
//!
//! # Re-planning mid-step
//! `plan` is meant to be called again with fresh state after every step (or after a crash).
//! A step is *in progress* when some pod's own `ZOO_SERVERS` differs from the StatefulSet's
//! (`Observed::servers`), when a listed member has no pod yet, or when replicas disagree: the
//! pods' old list and the StatefulSet's list must then be one member apart, and the first step
//! of the plan finishes that step (`resumed: true`) before planning on.

pub mod migrate;
pub mod netpol;
pub mod rebuild;
pub mod reconfig;
pub mod sim;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use thiserror::Error;

use crate::model::{Addressing, Member, ModelError, Role, ServerList};

pub use sim::{Ensemble, PeerState, SimMember, View};

/// Largest ensemble the planner will scale to.
pub const MAX_ENSEMBLE: u32 = 15;

/// Votes needed for a quorum of `n` voters.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Where members keep their data, as the StatefulSet mounts their data directory (the
/// adapter reads it: [`crate::cluster::Live::storage`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// A claim per member (or another volume that outlives the pod): a restarted member comes
    /// back with its data.
    #[default]
    Persistent,
    /// The data directory lives and dies with its pod (the chart's `persistence.enabled=false`
    /// mounts an emptyDir): every restart, deletion or eviction brings the member back empty,
    /// with the same id (setup.sh gives an empty volume `ordinal + minServerId`). `what` says
    /// which volume.
    Ephemeral { what: String },
}

/// What is asked of an ensemble whose members may come back empty ([`Storage::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Size or template steps: the ensemble model decides each one ([`Ensemble`] restarts a
    /// member empty when the storage is ephemeral); this is the refusal's wording.
    Steps,
    /// `kubectl zkscale rebuild`: the member is recreated empty on purpose, from a new claim.
    Rebuild,
    /// `kubectl zkscale migrate`: a moved member's data must outlive its pod.
    Migrate,
}

impl Storage {
    /// Whether a restarted member still holds its data.
    pub fn keeps_data(&self) -> bool {
        matches!(self, Storage::Persistent)
    }

    /// The one rule for members that keep no data across a restart, for every front end
    /// (`--to`, the post-renderer, `rebuild`, `migrate`): a restart of such a member loses
    /// its copy, so a change is safe only if, at every moment, the members that still hold
    /// the data form a quorum of the list in force and no majority of empty members can
    /// form. Size and template steps are checked action by action in the ensemble model
    /// (`why` is what the model found); `rebuild` and `migrate` work on claims and are
    /// refused outright. `Ok` when the storage is persistent.
    pub fn check(&self, change: Change, why: Option<&str>) -> Result<(), PlanError> {
        let Storage::Ephemeral { what } = self else {
            return Ok(());
        };
        let reason = match change {
            Change::Rebuild => {
                "a rebuild deletes a member's claim to start it empty, and there is \
                 no claim: deleting the pod already brings the member back empty (the others \
                 must hold a quorum meanwhile)"
                    .to_string()
            }
            Change::Migrate => "a moved member must keep its data when its pod restarts: \
                 install the target with persistence.enabled=true"
                .to_string(),
            Change::Steps => format!(
                "{}; a restarted member comes back empty, so this would leave no quorum of \
                 members that hold the data. Not possible without persistence: 1→2 (the \
                 standalone member must restart, in every method) and any step down to 2 or 1. \
                 Possible: n→n+1 for n ≥ 2 (each member restarts once and resyncs while the \
                 others hold the quorum), and with dynamic reconfiguration (--method reconfig) \
                 steps that restart nobody. To go further, move the data to a release with \
                 persistence.enabled=true",
                why.unwrap_or("the step fails the ensemble model")
            ),
        };
        Err(PlanError::NoPersistence {
            what: what.clone(),
            reason,
        })
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("target size 0 would delete the ensemble; refusing")]
    ZeroTarget,
    #[error("target size {target} is above the supported maximum of {max}")]
    TargetTooLarge { target: u32, max: u32 },
    #[error("the StatefulSet's server list is empty")]
    EmptyServerList,
    #[error("the ensemble has observers; the planner only handles participants")]
    Observers,
    #[error("no leader: the ensemble is not serving (wait for an election, then plan again)")]
    NoLeader,
    #[error("server(s) {ids:?} are not synced with the leader yet (wait, then plan again)")]
    NotSynced { ids: Vec<u32> },
    #[error("the new member in pod {ordinal} would get server id {id}, which is already taken")]
    IdConflict { ordinal: u32, id: u32 },
    #[error("unexpected ensemble state: {0}")]
    UnexpectedState(String),
    #[error("step {from}→{to} fails the ensemble model: {reason}")]
    Unsafe { from: u32, to: u32, reason: String },
    #[error("dynamic reconfiguration cannot be used: {0}")]
    ReconfigUnavailable(String),
    #[error("cannot rebuild: {0}")]
    Rebuild(String),
    #[error("cannot migrate: {0}")]
    Migrate(String),
    #[error(
        "cannot rebuild server {id} now: while it is down, {others} other member(s) would be synced \
         with the leader, and {needed} are needed for a quorum (not synced: {missing:?}); bring \
         them back first"
    )]
    NoSpare {
        id: u32,
        others: usize,
        needed: usize,
        missing: Vec<u32>,
    },
    #[error("the members keep no data across a restart ({what}): {reason}")]
    NoPersistence { what: String, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// One pod of the StatefulSet as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub ordinal: u32,
    /// Server id the pod runs with (its `myid`).
    pub id: u32,
    /// `ZOO_SERVERS` from the pod's own spec: the view it started with (fixed for its life).
    pub view: ServerList,
    /// ZooKeeper in the pod is up; false while it is pending, restarting or crash-looping.
    pub running: bool,
}

/// Live state as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `ZOO_SERVERS` in the StatefulSet's pod template now.
    pub servers: ServerList,
    pub addressing: Addressing,
    /// `minServerId`: a pod starting with an empty volume gets id `ordinal + min_server_id`.
    pub min_server_id: u32,
    pub sts_name: String,
    /// The StatefulSet's `spec.replicas` now.
    pub replicas: u32,
    /// Every existing pod (ordinals and their ids are the member ordinals).
    pub pods: Vec<PodState>,
    /// Server id of the leader; a standalone server counts as the leader of 1.
    pub leader: Option<u32>,
    /// Ids the leader counts as synced, plus the leader itself.
    pub synced: BTreeSet<u32>,
    /// Ordinals of pods created from an older pod template than the StatefulSet's (an image,
    /// config or env change not rolled out yet: the StatefulSet is `OnDelete`). A pod whose
    /// template differs only in `ZOO_SERVERS` is not outdated: its list is its view, above.
    pub outdated: BTreeSet<u32>,
    /// The committed configuration (`/zookeeper/config`) of an ensemble that runs in quorum
    /// mode with dynamic reconfiguration enabled. Then it, not the `ZOO_SERVERS` a pod started
    /// with, is every running member's view (the adapter sets [`PodState::view`] so). `None`
    /// for static configurations and standalone servers.
    pub committed: Option<ServerList>,
    /// Whether a restarted member keeps its data (see [`Storage`]).
    pub storage: Storage,
}

impl Observed {
    /// A settled ensemble: one running, synced pod per member, all started with `servers`.
    /// Ordinals come from the addressing, else `id − min_server_id`.
    pub fn settled(
        servers: ServerList,
        addressing: Addressing,
        min_server_id: u32,
        sts_name: impl Into<String>,
        leader: Option<u32>,
    ) -> Result<Observed, PlanError> {
        let mut pods = Vec::new();
        for m in servers.members() {
            let ordinal = addressing
                .ordinal_of_host(&m.host)
                .or_else(|| m.id.checked_sub(min_server_id))
                .ok_or_else(|| {
                    PlanError::UnexpectedState(format!("no pod ordinal for server {}", m.id))
                })?;
            pods.push(PodState {
                ordinal,
                id: m.id,
                view: servers.clone(),
                running: true,
            });
        }
        Ok(Observed {
            replicas: servers.len() as u32,
            synced: servers.ids(),
            servers,
            addressing,
            min_server_id,
            sts_name: sts_name.into(),
            pods,
            leader,
            outdated: BTreeSet::new(),
            committed: None,
            storage: Storage::Persistent,
        })
    }
}

/// How a step changes membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// New lists through restarts (static configuration): see the module docs.
    #[default]
    Restart,
    /// One `reconfig` call per step, no restart: see [`reconfig`].
    Reconfig,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Restart => "restart",
            Method::Reconfig => "reconfig",
        }
    }
}

/// What the engine should see once a start/restart is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Rejoins the serving leader without an election; wait until it follows and is synced.
    Follow,
    /// Costs an election (an outage): wait until a leader serves again and it follows or leads.
    Election,
    /// Stays LOOKING by design until a later action of the same step; wait only until
    /// ZooKeeper answers (`ruok`). The step's later actions resolve it.
    Deferred,
    /// Comes back as a standalone server (1-entry list).
    Standalone,
    /// Joins as a non-voting follower of the committed configuration (dynamic
    /// reconfiguration): wait until it follows the leader, caught up, before the `reconfig`.
    Learner,
}

/// One thing the engine does, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Patch the StatefulSet: pod template `ZOO_SERVERS = servers`, `updateStrategy: OnDelete`
    /// (so the patch itself restarts nothing), `replicas`. Raising replicas makes the controller
    /// create the new pod at once (Parallel); lowering it deletes the highest pod.
    ApplySpec { replicas: u32, servers: ServerList },
    /// Wait for the new pod (created by ApplySpec), which must start with an empty data volume
    /// so setup.sh gives it `id = ordinal + minServerId` (delete any stale PVC beforehand).
    StartNew {
        ordinal: u32,
        id: u32,
        expect: Expect,
    },
    /// Delete the pod; it comes back with the current template's list. Wait per `expect`.
    Restart {
        ordinal: u32,
        id: u32,
        expect: Expect,
    },
    /// Restart the leader with its *unchanged* list so another member leads; wait until a
    /// different server leads and this one follows. The following restarts were ordered for
    /// the predicted new leader: recompute with [`restart_order`] if another one won.
    MoveLeadership { ordinal: u32, id: u32 },
    /// After ApplySpec lowered replicas: wait until the pod is gone, then delete/report its PVC.
    Remove { ordinal: u32, id: u32 },
    /// One `reconfig` call: `join` makes the member (a synced non-voting follower by then) a
    /// voter; otherwise it stops being one (a leaving leader hands leadership to a synced
    /// voter). Nothing restarts. Wait until the ensemble is whole with the new configuration.
    Reconfig { ordinal: u32, id: u32, join: bool },
}

/// One size change by exactly one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub from: u32,
    pub to: u32,
    /// The list after this step.
    pub servers: ServerList,
    pub actions: Vec<Action>,
    /// Finishes a step that was already under way when planning.
    pub resumed: bool,
    /// Leader the actions were ordered for (observed for the first step, predicted later).
    pub assumed_leader: Option<u32>,
    /// Elections the model predicts for this step.
    pub predicted_elections: u32,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub from: u32,
    pub to: u32,
    pub steps: Vec<Step>,
    /// Why the steps use the method they use (`--method auto`'s choice), set by the engine.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method_reason: String,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Order to restart `members` (`(ordinal, id)`) in: followers by ordinal, the leader last, so
/// leadership changes at most once. Recompute when the leader changes mid-step.
pub fn restart_order(members: &[(u32, u32)], leader: Option<u32>) -> Vec<u32> {
    let mut v: Vec<(bool, u32)> = members
        .iter()
        .map(|&(ordinal, id)| (Some(id) == leader, ordinal))
        .collect();
    v.sort();
    v.into_iter().map(|(_, o)| o).collect()
}

/// Plans the way from the observed state to `target` members (see the module docs).
pub fn plan(obs: &Observed, target: u32) -> Result<Plan, PlanError> {
    without_persistence(obs, plan_static(obs, target))
}

/// A plan the model refused because restarted members come back empty is said as such
/// ([`Storage::check`]), with what is and is not possible.
pub(crate) fn without_persistence(
    obs: &Observed,
    r: Result<Plan, PlanError>,
) -> Result<Plan, PlanError> {
    match r {
        Err(PlanError::Unsafe { from, to, reason }) if !obs.storage.keeps_data() => {
            let why = format!("step {from}→{to}: {reason}");
            obs.storage.check(Change::Steps, Some(&why))?;
            Err(PlanError::Unsafe { from, to, reason })
        }
        r => r,
    }
}

fn plan_static(obs: &Observed, target: u32) -> Result<Plan, PlanError> {
    check_target(target)?;
    let mut ens = Ensemble::from_observed(obs)?;
    let mut steps = Vec::new();
    let from = match in_progress(&ens)? {
        Some((old, new)) => {
            let (step, next) = best_step(&ens, &old, &new, true, &obs.addressing)?;
            steps.push(step);
            ens = next;
            old.len()
        }
        None => ens.spec.len(),
    };
    while ens.spec.len() as u32 != target {
        let cur = ens.spec.clone();
        let new = if (cur.len() as u32) < target {
            grown(&ens, &cur, &obs.addressing)?
        } else {
            shrunk(&ens, &cur)?
        };
        let (step, next) = best_step(&ens, &cur, &new, false, &obs.addressing)?;
        steps.push(step);
        ens = next;
    }
    // Size steps restart every surviving member, which rolls the new template out on the way;
    // only at an unchanged size do outdated pods need a restart of their own.
    if steps.is_empty() {
        steps.extend(rollout(&ens, &obs.outdated)?);
    }
    Ok(Plan {
        from: from as u32,
        to: target,
        steps,
        method_reason: String::new(),
    })
}

/// [`plan`] with membership changed by `method` ([`reconfig::plan`] for [`Method::Reconfig`]).
pub fn plan_by(obs: &Observed, target: u32, method: Method) -> Result<Plan, PlanError> {
    match method {
        Method::Restart => plan(obs, target),
        Method::Reconfig => reconfig::plan(obs, target),
    }
}

fn check_target(target: u32) -> Result<(), PlanError> {
    if target == 0 {
        return Err(PlanError::ZeroTarget);
    }
    if target > MAX_ENSEMBLE {
        return Err(PlanError::TargetTooLarge {
            target,
            max: MAX_ENSEMBLE,
        });
    }
    Ok(())
}

/// Restarts the `outdated` pods of a settled ensemble with its unchanged list, followers
/// first and the leader last: at most one election (none when the leader is current). A
/// 1-member ensemble restarts standalone (an outage nothing can avoid); in a 2-member one every
/// restart costs the leader its quorum, so each is an election.
fn rollout(ens: &Ensemble, outdated: &BTreeSet<u32>) -> Result<Option<Step>, PlanError> {
    let mut todo: Vec<(u32, u32)> = ens
        .pods
        .values()
        .filter(|p| outdated.contains(&p.ordinal))
        .map(|p| (p.ordinal, p.id))
        .collect();
    if todo.is_empty() {
        return Ok(None);
    }
    let list = ens.spec.clone();
    let n = list.len() as u32;
    let fail = |reason: String| PlanError::Unsafe {
        from: n,
        to: n,
        reason,
    };
    let mut e = ens.clone();
    let (elections0, assumed_leader) = (e.elections, e.serving);
    let mut actions = Vec::new();
    while let Some(&ordinal) = restart_order(&todo, e.serving).first() {
        let id = e.pods[&ordinal].id;
        todo.retain(|&(o, _)| o != ordinal);
        let restart = Action::Restart {
            ordinal,
            id,
            expect: Expect::Follow,
        };
        simulate(&mut e, &mut actions, restart).map_err(fail)?;
    }
    e.check_settled(&list).map_err(fail)?;
    Ok(Some(Step {
        from: n,
        to: n,
        servers: list,
        actions,
        resumed: false,
        assumed_leader,
        predicted_elections: e.elections - elections0,
        method: Method::Restart,
    }))
}

/// `(id → ordinal)` for every member of `list`, which must be pods `0..n`.
fn member_ordinals(ens: &Ensemble, list: &ServerList) -> Result<BTreeMap<u32, u32>, PlanError> {
    let mut out = BTreeMap::new();
    for m in list.members() {
        let pod = ens
            .pods
            .values()
            .find(|p| p.id == m.id)
            .ok_or_else(|| PlanError::UnexpectedState(format!("server {} has no pod", m.id)))?;
        out.insert(m.id, pod.ordinal);
    }
    let ords: BTreeSet<u32> = out.values().copied().collect();
    if ords != (0..list.len() as u32).collect() {
        return Err(PlanError::UnexpectedState(format!(
            "members run in pods {ords:?}, expected ordinals 0..{}",
            list.len()
        )));
    }
    Ok(out)
}

/// `cur` plus a member for the next ordinal, addressed and spelled like the existing ones.
fn grown(
    ens: &Ensemble,
    cur: &ServerList,
    addressing: &Addressing,
) -> Result<ServerList, PlanError> {
    let ords = member_ordinals(ens, cur)?;
    let ordinal = cur.len() as u32;
    let id = ordinal + ens.min_server_id;
    if cur.get(id).is_some() {
        return Err(PlanError::IdConflict { ordinal, id });
    }
    let last = cur
        .members()
        .iter()
        .max_by_key(|m| ords[&m.id])
        .ok_or(PlanError::EmptyServerList)?;
    let all_say_participant = cur
        .members()
        .iter()
        .all(|m| m.role == Some(Role::Participant));
    let member = Member {
        id,
        host: addressing.address_for(ordinal),
        peer_port: last.peer_port,
        election_port: last.election_port,
        role: all_say_participant.then_some(Role::Participant),
        client: last.client.clone(),
    };
    Ok(cur.with_member_added(member)?)
}

/// `cur` without the member in the highest ordinal (the pod a scale-down deletes).
fn shrunk(ens: &Ensemble, cur: &ServerList) -> Result<ServerList, PlanError> {
    let ords = member_ordinals(ens, cur)?;
    let (&id, _) = ords
        .iter()
        .max_by_key(|(_, &o)| o)
        .ok_or(PlanError::EmptyServerList)?;
    Ok(cur.without_member(id)?)
}

/// The step under way, as `(list the stale pods run, StatefulSet's list)`, if any.
fn in_progress(ens: &Ensemble) -> Result<Option<(ServerList, ServerList)>, PlanError> {
    let spec = &ens.spec;
    let stale: Vec<&SimMember> = ens
        .pods
        .values()
        .filter(|p| !p.list.same_ensemble(spec))
        .collect();
    let missing: Vec<&Member> = spec
        .members()
        .iter()
        .filter(|m| !ens.pods.values().any(|p| p.id == m.id))
        .collect();
    if stale.is_empty() && missing.is_empty() && ens.replicas as usize == spec.len() {
        let down: Vec<u32> = ens
            .pods
            .values()
            .filter(|p| p.state == PeerState::Down)
            .map(|p| p.ordinal)
            .collect();
        if !down.is_empty() {
            return Err(PlanError::UnexpectedState(format!(
                "pod(s) {down:?} are not running"
            )));
        }
        return Ok(None);
    }
    let old = if let Some(first) = stale.first() {
        if let Some(other) = stale.iter().find(|p| !p.list.same_ensemble(&first.list)) {
            return Err(PlanError::UnexpectedState(format!(
                "pods {} and {} run with different server lists, neither the StatefulSet's",
                first.ordinal, other.ordinal
            )));
        }
        first.list.clone()
    } else if let [m] = missing.as_slice() {
        spec.without_member(m.id)?
    } else {
        return Err(PlanError::UnexpectedState(format!(
            "StatefulSet has {} replicas for {} servers and {} pods",
            ens.replicas,
            spec.len(),
            ens.pods.len()
        )));
    };
    let (o, n) = (old.ids(), spec.ids());
    let one_apart = o.symmetric_difference(&n).count() == 1
        && o.intersection(&n).all(|id| {
            let (a, b) = (old.get(*id), spec.get(*id));
            a.map(Member::quorum_address) == b.map(Member::quorum_address)
        });
    if !one_apart {
        return Err(PlanError::UnexpectedState(format!(
            "pods run with `{}` but the StatefulSet has `{}`: not one step apart",
            old.to_env(),
            spec.to_env()
        )));
    }
    Ok(Some((old, spec.clone())))
}

/// Runs the step through the model, with and (when the leaver leads) without moving
/// leadership first; returns the cheaper sequence that ends settled.
fn best_step(
    ens: &Ensemble,
    old: &ServerList,
    new: &ServerList,
    resumed: bool,
    addressing: &Addressing,
) -> Result<(Step, Ensemble), PlanError> {
    let leaver_leads = new.len() < old.len()
        && ens
            .serving
            .is_some_and(|l| old.get(l).is_some() && new.get(l).is_none());
    let plain = run_step(ens, old, new, resumed, false, addressing);
    if !leaver_leads {
        return plain.map(|(s, e, _)| (s, e));
    }
    let moved = run_step(ens, old, new, resumed, true, addressing);
    match (plain, moved) {
        (Ok(a), Ok(b)) => Ok(if b.2 < a.2 { (b.0, b.1) } else { (a.0, a.1) }),
        (Ok(a), Err(_)) => Ok((a.0, a.1)),
        (Err(_), Ok(b)) => Ok((b.0, b.1)),
        (Err(e), Err(_)) => Err(e),
    }
}

/// One step from `old` to `new` through the model: the StatefulSet change, the new member's
/// start, restarts of the members on the old list (followers first, the leader last) and the
/// leaver's removal, with (`move_first`) or without moving leadership off a leaving leader
/// first. Returns the step, the model after it, and its cost (elections + outages).
fn run_step(
    ens: &Ensemble,
    old: &ServerList,
    new: &ServerList,
    resumed: bool,
    move_first: bool,
    addressing: &Addressing,
) -> Result<(Step, Ensemble, u32), PlanError> {
    let (from, to) = (old.len() as u32, new.len() as u32);
    let fail = |reason: String| PlanError::Unsafe { from, to, reason };
    let mut e = ens.clone();
    let (elections0, cost0) = (e.elections, e.elections + e.outages);
    let assumed_leader = e.serving;
    let mut actions = Vec::new();
    let (leaver, newcomer) = if to > from {
        (None, Some(newcomer(&e, old, new, addressing)?))
    } else {
        (Some(leaver(&e, old, new)?), None)
    };
    let mut act = |e: &mut Ensemble, a: Action| simulate(e, &mut actions, a).map_err(fail);

    if move_first {
        let (xo, xi) = leaver.ok_or_else(|| fail("nothing to move".into()))?;
        // The recreated pod takes the template's list, so it must still be the old one.
        if !e.spec.same_ensemble(old) {
            let replicas = e.replicas;
            act(
                &mut e,
                Action::ApplySpec {
                    replicas,
                    servers: old.clone(),
                },
            )?;
        }
        act(
            &mut e,
            Action::MoveLeadership {
                ordinal: xo,
                id: xi,
            },
        )?;
    }

    // Keep the leaver's pod (and vote) until the others run the new list.
    let keep_leaver = leaver.is_some_and(|(xo, _)| e.pods.contains_key(&xo) && e.replicas > xo);
    let want_replicas = if keep_leaver { from } else { to };
    if !e.spec.same_ensemble(new) || e.replicas != want_replicas {
        act(
            &mut e,
            Action::ApplySpec {
                replicas: want_replicas,
                servers: new.clone(),
            },
        )?;
    }
    if let Some((ordinal, id)) = newcomer {
        let was_running = ens
            .pods
            .get(&ordinal)
            .is_some_and(|p| p.state != PeerState::Down);
        if !was_running {
            act(
                &mut e,
                Action::StartNew {
                    ordinal,
                    id,
                    expect: Expect::Follow,
                },
            )?;
        }
    }
    // Every member of the new list not yet running it restarts, followers first, the leader
    // last (recomputed after each: a restart can move leadership).
    for _ in 0..=2 * e.pods.len() {
        let stale: Vec<(u32, u32)> = e
            .pods
            .values()
            .filter(|p| new.get(p.id).is_some())
            .filter(|p| p.state == PeerState::Down || !p.list.same_ensemble(new))
            .map(|p| (p.ordinal, p.id))
            .collect();
        let Some(&ordinal) = restart_order(&stale, e.serving).first() else {
            break;
        };
        let id = e.pods[&ordinal].id;
        act(
            &mut e,
            Action::Restart {
                ordinal,
                id,
                expect: Expect::Follow,
            },
        )?;
    }
    if let Some((ordinal, id)) = leaver {
        if e.replicas != to {
            act(
                &mut e,
                Action::ApplySpec {
                    replicas: to,
                    servers: new.clone(),
                },
            )?;
        }
        act(&mut e, Action::Remove { ordinal, id })?;
    }
    e.check_settled(new).map_err(fail)?;
    let cost = e.elections + e.outages - cost0;
    let step = Step {
        from,
        to,
        servers: new.clone(),
        actions,
        resumed,
        assumed_leader,
        predicted_elections: e.elections - elections0,
        method: Method::Restart,
    };
    Ok((step, e, cost))
}

/// `(ordinal, id)` of the member leaving a scale-down: always the highest ordinal (what a
/// StatefulSet scale-down deletes).
fn leaver(e: &Ensemble, old: &ServerList, new: &ServerList) -> Result<(u32, u32), PlanError> {
    let to = new.len() as u32;
    let x = old
        .members()
        .iter()
        .find(|m| new.get(m.id).is_none())
        .ok_or_else(|| PlanError::Unsafe {
            from: old.len() as u32,
            to,
            reason: "no member leaves".into(),
        })?;
    if let Some(p) = e.pods.values().find(|p| p.id == x.id) {
        if p.ordinal != to {
            return Err(PlanError::UnexpectedState(format!(
                "leaving server {} runs in pod {}, not in the highest ordinal {to}",
                x.id, p.ordinal
            )));
        }
    }
    Ok((to, x.id))
}

/// `(ordinal, id)` of the member joining a scale-up: the next ordinal, whose empty volume gets
/// `ordinal + minServerId` from setup.sh, at that pod's address.
fn newcomer(
    e: &Ensemble,
    old: &ServerList,
    new: &ServerList,
    addressing: &Addressing,
) -> Result<(u32, u32), PlanError> {
    let m = new
        .members()
        .iter()
        .find(|m| old.get(m.id).is_none())
        .ok_or_else(|| PlanError::Unsafe {
            from: old.len() as u32,
            to: new.len() as u32,
            reason: "no member joins".into(),
        })?;
    let ordinal = old.len() as u32;
    if m.id != ordinal + e.min_server_id {
        return Err(PlanError::UnexpectedState(format!(
            "new server {} would run in pod {ordinal}, whose empty volume gets id {}",
            m.id,
            ordinal + e.min_server_id
        )));
    }
    if addressing
        .ordinal_of_host(&m.host)
        .is_some_and(|o| o != ordinal)
    {
        return Err(PlanError::UnexpectedState(format!(
            "new server {} has host {}, which is not pod {ordinal}'s address",
            m.id, m.host
        )));
    }
    Ok((ordinal, m.id))
}

/// Applies `a` to the model and records it with the predicted outcome filled in.
fn simulate(e: &mut Ensemble, actions: &mut Vec<Action>, mut a: Action) -> Result<(), String> {
    let outcome = e.apply(&a, &mut |_| {})?;
    if let (Some(x), Action::StartNew { expect, .. } | Action::Restart { expect, .. }) =
        (outcome, &mut a)
    {
        *expect = x;
    }
    actions.push(a);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(n: u32) -> Observed {
        chart_led_by(n, n)
    }

    /// A settled chart-shaped ensemble of `n` (pod DNS names, ids from 1) led by `leader`.
    pub(super) fn chart_led_by(n: u32, leader: u32) -> Observed {
        let env: Vec<String> = (0..n)
            .map(|o| format!("zk-{o}.zk-hs.ns.svc.cluster.local:2888:3888::{}", o + 1))
            .collect();
        let list = ServerList::parse_env(&(env.join(" ") + " ")).unwrap();
        let addr =
            Addressing::from_template("zk-{ordinal}.zk-hs.ns.svc.cluster.local", "zk").unwrap();
        Observed::settled(list, addr, 1, "zk", Some(leader)).unwrap()
    }

    fn kinds(s: &Step) -> Vec<String> {
        s.actions
            .iter()
            .map(|a| match a {
                Action::ApplySpec { replicas, .. } => format!("spec{replicas}"),
                Action::StartNew {
                    ordinal, expect, ..
                } => format!("new{ordinal}:{expect:?}"),
                Action::Restart {
                    ordinal, expect, ..
                } => format!("restart{ordinal}:{expect:?}"),
                Action::MoveLeadership { ordinal, .. } => format!("move{ordinal}"),
                Action::Remove { ordinal, .. } => format!("remove{ordinal}"),
                Action::Reconfig { ordinal, join, .. } => {
                    format!("{}{ordinal}", if *join { "add" } else { "drop" })
                }
            })
            .collect()
    }

    #[test]
    fn quorum_math() {
        assert_eq!((1..=6).map(quorum).collect::<Vec<_>>(), [1, 2, 2, 3, 3, 4]);
        for n in 1..20 {
            assert!(quorum(n) + quorum(n + 1) > n + 1);
        }
    }

    #[test]
    fn order_puts_leader_last() {
        assert_eq!(restart_order(&[(2, 3), (0, 1), (1, 2)], Some(1)), [1, 2, 0]);
        assert_eq!(restart_order(&[(1, 2), (0, 1)], None), [0, 1]);
    }

    #[test]
    fn sequences() {
        let p = plan(&chart(1), 2).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            ["spec2", "new1:Deferred", "restart0:Election"]
        );
        let p = plan(&chart(2), 3).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            [
                "spec3",
                "new2:Follow",
                "restart0:Election",
                "restart1:Follow"
            ]
        );
        let p = plan(&chart(3), 4).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            [
                "spec4",
                "new3:Follow",
                "restart0:Follow",
                "restart1:Follow",
                "restart2:Election"
            ]
        );
        // leader (id 3) leaves 3→2: no move, one election
        let p = plan(&chart(3), 2).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            [
                "spec3",
                "restart0:Deferred",
                "restart1:Election",
                "spec2",
                "remove2"
            ]
        );
        assert_eq!(p.steps[0].predicted_elections, 1);
        // leader leaves 4→3: move first
        let p = plan(&chart(4), 3).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            [
                "move3",
                "spec4",
                "restart0:Follow",
                "restart1:Follow",
                "restart2:Election",
                "spec3",
                "remove3"
            ]
        );
        // follower leaves 4→3
        let mut o = chart(4);
        o.leader = Some(1);
        let p = plan(&o, 3).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            [
                "spec4",
                "restart1:Follow",
                "restart2:Follow",
                "restart0:Election",
                "spec3",
                "remove3"
            ]
        );
        let p = plan(&chart(2), 1).unwrap();
        assert_eq!(
            kinds(&p.steps[0]),
            ["spec2", "restart0:Standalone", "spec1", "remove1"]
        );
        assert!(p.steps[0].servers.is_standalone());
        assert!(plan(&chart(3), 3).unwrap().is_empty());
        assert_eq!(plan(&chart(3), 0), Err(PlanError::ZeroTarget));
        assert!(matches!(
            plan(&chart(3), 16),
            Err(PlanError::TargetTooLarge { .. })
        ));
    }

    #[test]
    fn rollout_restarts_followers_first_and_the_leader_last() {
        // Leader 2 (pod 1) outdated with everyone else: it goes last, one election.
        let mut o = chart(3);
        o.leader = Some(2);
        o.outdated = [0, 1, 2].into();
        let p = plan(&o, 3).unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            kinds(&p.steps[0]),
            ["restart0:Follow", "restart2:Follow", "restart1:Election"]
        );
        assert_eq!(p.steps[0].predicted_elections, 1);
        assert_eq!((p.steps[0].from, p.steps[0].to), (3, 3));
        // Resumed after the followers: only the leader is left.
        o.outdated = [1].into();
        assert_eq!(kinds(&plan(&o, 3).unwrap().steps[0]), ["restart1:Election"]);
        // The leader already current: no election at all.
        o.outdated = [0, 2].into();
        let p = plan(&o, 3).unwrap();
        assert_eq!(kinds(&p.steps[0]), ["restart0:Follow", "restart2:Follow"]);
        assert_eq!(p.steps[0].predicted_elections, 0);
        // 1 member: standalone restart; 2 members: the follower's restart costs the election.
        let mut o = chart(1);
        o.outdated = [0].into();
        assert_eq!(
            kinds(&plan(&o, 1).unwrap().steps[0]),
            ["restart0:Standalone"]
        );
        let mut o = chart(2);
        o.outdated = [0, 1].into();
        let p = plan(&o, 2).unwrap();
        assert_eq!(p.steps[0].actions.len(), 2);
        assert_eq!(p.steps[0].predicted_elections, 2);
        // With a size change the steps' restarts roll the template out: no extra step.
        let mut o = chart(3);
        o.outdated = [0, 1, 2].into();
        let p = plan(&o, 4).unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].to, 4);
    }

    #[test]
    fn refuses_unhealthy() {
        let mut o = chart(3);
        o.leader = None;
        assert_eq!(plan(&o, 4), Err(PlanError::NoLeader));
        let mut o = chart(3);
        o.synced.remove(&1);
        assert_eq!(plan(&o, 4), Err(PlanError::NotSynced { ids: vec![1] }));
    }

    #[test]
    fn serializes() {
        let p = plan(&chart(1), 2).unwrap();
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["steps"][0]["actions"][1]["action"], "start_new");
        assert_eq!(j["steps"][0]["actions"][1]["expect"], "deferred");
        assert!(j["steps"][0]["servers"]["env"]
            .as_str()
            .unwrap()
            .ends_with("::2 "));
    }

    fn ephemeral(mut obs: Observed) -> Observed {
        obs.storage = Storage::Ephemeral {
            what: "the data directory is on an emptyDir".into(),
        };
        obs
    }

    /// Issue 23, defect 13: without persistence a restarted member comes back empty. 1→2 has
    /// no safe sequence (the standalone, the only copy, must restart beside an empty
    /// newcomer): refused, saying why and what to do; so is every plan through it.
    #[test]
    fn without_persistence_one_to_two_is_refused_with_the_reason() {
        for target in [2, 3, 5] {
            let e = plan(&ephemeral(chart(1)), target).unwrap_err();
            let PlanError::NoPersistence { reason, .. } = &e else {
                panic!("1→{target}: {e:?}");
            };
            assert!(reason.contains("step 1→2"), "{reason}");
            assert!(reason.contains("persistence.enabled=true"), "{reason}");
            assert!(
                e.to_string().contains("keep no data across a restart"),
                "{e}"
            );
        }
        // The same ensemble with persistence: the usual plan.
        assert_eq!(plan(&chart(1), 3).unwrap().steps.len(), 2);
    }

    /// Which steps are possible without persistence, for every size up to 7: up from 2 or
    /// more (each member restarts once, one at a time, and resyncs while the others hold the
    /// quorum; an empty member never wins an election against one with data), down to 3 or
    /// more; never 1→2, nor down to 2 or 1 (the last two members of the new list both come
    /// back empty and elect each other). A roll-out restarts each member once: possible from
    /// 2 members, not for a standalone. Every plan that is made passed the model with empty
    /// restarts: no leader without the data at any moment.
    #[test]
    fn without_persistence_only_steps_that_keep_a_quorum_with_data() {
        for from in 1..=7u32 {
            for to in 1..=7u32 {
                let r = plan(&ephemeral(chart(from)), to);
                let possible = if to > from {
                    from >= 2
                } else {
                    to >= 3 || to == from
                };
                assert_eq!(r.is_ok(), possible, "{from}→{to}: {r:?}");
                if let Err(e) = r {
                    assert!(
                        matches!(e, PlanError::NoPersistence { .. }),
                        "{from}→{to}: {e:?}"
                    );
                }
            }
            let mut outdated = ephemeral(chart(from));
            outdated.outdated = (0..from).collect();
            let r = plan(&outdated, from);
            assert_eq!(r.is_ok(), from >= 2, "roll-out of {from}: {r:?}");
        }
        // The same model with persistence takes every one of them.
        for from in 1..=7u32 {
            for to in 1..=7u32 {
                assert!(plan(&chart(from), to).is_ok(), "{from}→{to}");
            }
        }
    }

    /// The rule in one place: rebuild and migrate are refused without persistence, everything
    /// passes with it.
    #[test]
    fn storage_check_refuses_rebuild_and_migrate_without_persistence() {
        let e = ephemeral(chart(3)).storage;
        for change in [Change::Rebuild, Change::Migrate] {
            assert!(matches!(
                e.check(change, None),
                Err(PlanError::NoPersistence { .. })
            ));
            assert_eq!(Storage::Persistent.check(change, None), Ok(()));
        }
        assert_eq!(Storage::Persistent.check(Change::Steps, Some("x")), Ok(()));
    }
}
