//! Property tests of the planner: every plan is executed action by action on the abstract
//! ensemble model (`zkscale::plan::Ensemble`: each pod's view = the list it started with,
//! leadership, and whether it may lack committed data), and every intermediate state is checked
//! against invariants written here independently of the planner:
//! (1) members that may lack committed data never form a quorum of a view someone runs,
//! (2) no two disjoint groups of running members can each hold a quorum of their own view,
//! (3) steps never rewrite or drop an existing member except the one a down-step removes,
//! (4) down-steps end at the target (1 = a standalone 1-entry list), never below 1,
//! (5) every step changes the size by exactly one,
//! (6) within a step the current leader is restarted last.
//! The same checker flags plain Helm's jumps (1→3, 3→5), so it can fail.

use std::collections::BTreeSet;

use proptest::prelude::*;
use zkscale::model::{Addressing, Member, ServerList};
use zkscale::plan::{
    plan, quorum, Action, Ensemble, Expect, Observed, PeerState, Plan, PlanError, View,
};

// ---------------------------------------------------------------------------------------------
// Invariants on one model state

fn running(e: &Ensemble) -> impl Iterator<Item = &zkscale::plan::SimMember> {
    e.pods().filter(|p| p.state != PeerState::Down)
}

fn views(e: &Ensemble) -> Vec<View> {
    let mut out: Vec<View> = Vec::new();
    for p in running(e) {
        if !out.contains(&p.view) {
            out.push(p.view.clone());
        }
    }
    out
}

/// (1) For every view some running member holds, the running members that may lack committed
/// data (empty or not synced) must stay below that view's quorum.
fn lacking_quorum(e: &Ensemble) -> Result<(), String> {
    for v in views(e) {
        let lacking: Vec<u32> = running(e)
            .filter(|p| !p.up_to_date && v.has(p.id))
            .map(|p| p.id)
            .collect();
        if lacking.len() >= quorum(v.voters.len()) {
            return Err(format!(
                "members {lacking:?} may lack committed data and are a quorum of view {:?}",
                v.voters
            ));
        }
    }
    Ok(())
}

/// (2) Conservative split-brain check: any running member may vote in any view that lists it.
fn split_brain(e: &Ensemble) -> Result<(), String> {
    let run: BTreeSet<u32> = running(e).map(|p| p.id).collect();
    let vs = views(e);
    for (i, a) in vs.iter().enumerate() {
        for b in &vs[i + 1..] {
            let ra: BTreeSet<u32> = a.voters.intersection(&run).copied().collect();
            let rb: BTreeSet<u32> = b.voters.intersection(&run).copied().collect();
            let (qa, qb) = (quorum(a.voters.len()), quorum(b.voters.len()));
            let shared = ra.intersection(&rb).count();
            let only_a = ra.len() - shared;
            let only_b = rb.len() - shared;
            if ra.len() >= qa
                && rb.len() >= qb
                && qa.saturating_sub(only_a) + qb.saturating_sub(only_b) <= shared
            {
                return Err(format!(
                    "views {:?} and {:?} can both reach a quorum with disjoint running members {run:?}",
                    a.voters, b.voters
                ));
            }
        }
    }
    Ok(())
}

fn invariants(e: &Ensemble) -> Result<(), String> {
    lacking_quorum(e)?;
    split_brain(e)?;
    if let Some(v) = e.violations().first() {
        return Err(format!("model: {v}"));
    }
    Ok(())
}

/// Applies one action, checking (1), (2) and the model at every intermediate state.
fn apply_checked(e: &mut Ensemble, a: &Action) -> Result<Option<Expect>, String> {
    let mut first_err: Option<String> = None;
    let out = e.apply(a, &mut |st| {
        if first_err.is_none() {
            first_err = invariants(st).err();
        }
    });
    if let Some(err) = first_err {
        return Err(format!("{a:?}: {err}"));
    }
    out.map_err(|err| format!("{a:?}: {err}"))
}

fn stale_members(e: &Ensemble, list: &ServerList) -> Vec<u32> {
    e.pods()
        .filter(|p| list.get(p.id).is_some())
        .filter(|p| p.state == PeerState::Down || !p.list.same_ensemble(list))
        .map(|p| p.id)
        .collect()
}

/// Executes `plan` from `e` (actions `skip..` of the flattened plan are run when `stop` is
/// given, up to `stop` actions), checking (1)–(6). Returns the number of actions run.
fn execute(
    e: &mut Ensemble,
    obs: &Observed,
    plan: &Plan,
    target: u32,
    stop: Option<usize>,
) -> Result<usize, String> {
    let mut done = 0;
    for step in &plan.steps {
        let before = e.spec().clone();
        // (5)
        if step.from.abs_diff(step.to) != 1 {
            return Err(format!("step {}→{} is not one member", step.from, step.to));
        }
        if !step.resumed && before.len() as u32 != step.from {
            return Err(format!(
                "step starts at {} but the list has {}",
                step.from,
                before.len()
            ));
        }
        if step.to == 0 {
            return Err("step to 0".into());
        }
        for a in &step.actions {
            if stop.is_some_and(|s| done >= s) {
                return Ok(done);
            }
            // (6) restarting the leader while other members still need a restart
            if let Action::Restart { id, .. } = a {
                if e.serving_leader() == Some(*id) {
                    let others: Vec<u32> = stale_members(e, &step.servers)
                        .into_iter()
                        .filter(|x| x != id)
                        .collect();
                    if !others.is_empty() {
                        return Err(format!("leader {id} restarted before {others:?}"));
                    }
                }
            }
            let out = apply_checked(e, a)?;
            // the planner's prediction must match what the model does
            if let (Some(got), Action::StartNew { expect, .. } | Action::Restart { expect, .. }) =
                (out, a)
            {
                if got != *expect {
                    return Err(format!("{a:?}: predicted {expect:?}, model did {got:?}"));
                }
            }
            done += 1;
        }
        e.check_settled(&step.servers)
            .map_err(|err| format!("after step {}→{}: {err}", step.from, step.to))?;
        // (3) existing members keep id and address; only the leaver disappears
        let new = &step.servers;
        let removed: Vec<&Member> = before
            .members()
            .iter()
            .filter(|m| new.get(m.id).is_none())
            .collect();
        for m in before.members() {
            if let Some(n) = new.get(m.id) {
                if n != m {
                    return Err(format!("member {} rewritten: {m:?} → {n:?}", m.id));
                }
            }
        }
        let added: Vec<&Member> = new
            .members()
            .iter()
            .filter(|m| before.get(m.id).is_none())
            .collect();
        match (step.to > step.from, removed.as_slice(), added.as_slice()) {
            (true, [], [m]) => {
                let ordinal = step.from;
                if m.id != ordinal + obs.min_server_id
                    || m.host != obs.addressing.address_for(ordinal)
                {
                    return Err(format!("new member {m:?} is not pod {ordinal}'s"));
                }
            }
            (false, [_], []) => {}
            _ if step.resumed => {}
            other => return Err(format!("step {}→{} changes {other:?}", step.from, step.to)),
        }
    }
    // (4) and the target
    if stop.is_none() {
        if e.spec().len() as u32 != target {
            return Err(format!("ended at {} servers, not {target}", e.spec().len()));
        }
        if target == 1 && !e.spec().is_standalone() {
            return Err("1 member but not a standalone list".into());
        }
    }
    Ok(done)
}

// ---------------------------------------------------------------------------------------------
// Generated ensembles

#[derive(Debug, Clone)]
struct Shape {
    n: u32,
    min_id: u32,
    /// 0 pod DNS (chart), 1 short pod DNS, 2 Service per member, 3 bare per-member names.
    addressing: u8,
    /// 0 chart (space + trailing space), 1 comma, 2 semicolon, 3 ", ", 4 positional ids.
    style: u8,
    leader: u32,
    synced: Vec<bool>,
}

fn host(a: u8, o: u32) -> String {
    match a {
        0 => format!("zk-zookeeper-{o}.zk-zookeeper-headless.zk-test.svc.cluster.local"),
        1 => format!("zk-zookeeper-{o}.zk-hs"),
        2 => format!("zk-zookeeper-{o}-quorum.zk-test.svc.cluster.local"),
        _ => format!("coord-member-{o}"),
    }
}

fn observed(s: &Shape) -> Observed {
    let positional = s.style == 4 && s.min_id == 1;
    let sep = match s.style {
        1 => ",",
        2 => ";",
        3 => ", ",
        _ => " ",
    };
    let entries: Vec<String> = (0..s.n)
        .map(|o| {
            let core = format!("{}:2888:3888", host(s.addressing, o));
            if positional {
                core
            } else {
                format!("{core}::{}", o + s.min_id)
            }
        })
        .collect();
    let mut env = entries.join(sep);
    if s.style == 0 {
        env.push(' ');
    }
    let list = ServerList::parse_env(&env).unwrap();
    assert_eq!(list.to_env(), env);
    let pairs: Vec<(u32, &Member)> = list
        .members()
        .iter()
        .zip(0..)
        .map(|(m, o)| (o, m))
        .collect();
    let addressing = Addressing::infer(&pairs, "zk-zookeeper").unwrap();
    assert_eq!(addressing.is_pod_own_address(), s.addressing < 2);
    let min = if positional { 1 } else { s.min_id };
    let leader = list.members()[s.leader as usize].id;
    let mut obs = Observed::settled(list, addressing, min, "zk-zookeeper", Some(leader)).unwrap();
    obs.synced = obs
        .pods
        .iter()
        .filter(|p| p.id == leader || s.synced[p.ordinal as usize])
        .map(|p| p.id)
        .collect();
    obs
}

fn shape() -> impl Strategy<Value = Shape> {
    (1u32..=9, 1u32..=20, 0u8..4, 0u8..5).prop_flat_map(|(n, min_id, addressing, style)| {
        (
            0..n,
            proptest::collection::vec(proptest::bool::weighted(0.85), n as usize),
        )
            .prop_map(move |(leader, synced)| Shape {
                n,
                min_id,
                addressing,
                style,
                leader,
                synced,
            })
    })
}

/// Plans, executes and checks. `Ok(None)`: the planner (rightly) refused an unhealthy state;
/// `Ok(Some(resumed))`: done, `resumed` when the re-plan after `cut` finished a step under way.
fn check(obs: &Observed, target: u32, cut: Option<usize>) -> Result<Option<bool>, String> {
    let all_synced = obs.pods.iter().all(|p| obs.synced.contains(&p.id));
    let p = match plan(obs, target) {
        Ok(p) => p,
        Err(PlanError::NotSynced { .. }) | Err(PlanError::UnexpectedState(_)) if !all_synced => {
            return Ok(None)
        }
        Err(err) => return Err(format!("plan refused a healthy state: {err}")),
    };
    let n = obs.servers.len() as u32;
    if p.steps.len() as u32 != n.abs_diff(target) {
        return Err(format!("{} steps for {n}→{target}", p.steps.len()));
    }
    let mut e = Ensemble::from_observed(obs).map_err(|err| err.to_string())?;
    invariants(&e)?;
    let Some(cut) = cut else {
        execute(&mut e, obs, &p, target, None)?;
        return Ok(Some(false));
    };
    // Stop after `cut` actions, observe, re-plan and finish with the new plan.
    let done = execute(&mut e, obs, &p, target, Some(cut))?;
    let mid = e.observed(obs);
    let p2 = plan(&mid, target).map_err(|err| format!("re-plan after {done} actions: {err}"))?;
    execute(&mut e, obs, &p2, target, None)
        .map_err(|err| format!("after re-plan at {done}: {err}"))?;
    Ok(Some(p2.steps.first().is_some_and(|st| st.resumed)))
}

#[test]
fn every_size_target_and_leader() {
    let mut plans = 0;
    for n in 1..=9u32 {
        for target in 1..=9u32 {
            for leader in 0..n {
                for addressing in 0..4 {
                    let s = Shape {
                        n,
                        min_id: 1 + leader % 3,
                        addressing,
                        style: addressing,
                        leader,
                        synced: vec![true; n as usize],
                    };
                    let obs = observed(&s);
                    check(&obs, target, None)
                        .unwrap_or_else(|err| panic!("{s:?} → {target}: {err}"));
                    plans += 1;
                }
            }
        }
    }
    assert_eq!(plans, 4 * 9 * (1..=9).sum::<u32>());
}

#[test]
fn replanning_after_every_action() {
    let (mut cuts, mut resumed) = (0, 0);
    for n in 1..=6u32 {
        for target in 1..=6u32 {
            for leader in 0..n {
                let s = Shape {
                    n,
                    min_id: 1,
                    addressing: 0,
                    style: 0,
                    leader,
                    synced: vec![true; n as usize],
                };
                let obs = observed(&s);
                let total: usize = plan(&obs, target)
                    .unwrap()
                    .steps
                    .iter()
                    .map(|st| st.actions.len())
                    .sum();
                for cut in 0..=total {
                    let r = check(&obs, target, Some(cut))
                        .unwrap_or_else(|err| panic!("{s:?} → {target} cut {cut}: {err}"));
                    resumed += usize::from(r == Some(true));
                    cuts += 1;
                }
            }
        }
    }
    // most cuts fall inside a step, so most re-plans must have resumed one
    assert!(
        resumed * 2 > cuts,
        "{resumed} of {cuts} re-plans resumed a step"
    );
    eprintln!("{cuts} re-plans, {resumed} resumed a step");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_ensembles_plan_safely(s in shape(), target in 1u32..=9, cut in proptest::option::of(0usize..40)) {
        let obs = observed(&s);
        let r = check(&obs, target, cut);
        prop_assert!(r.is_ok(), "{:?} → {}: {}", s, target, r.unwrap_err());
    }
}

// ---------------------------------------------------------------------------------------------
// The checker can fail: plain Helm's jumps

fn chart_obs(n: u32) -> Observed {
    observed(&Shape {
        n,
        min_id: 1,
        addressing: 0,
        style: 0,
        leader: n - 1,
        synced: vec![true; n as usize],
    })
}

/// What `helm upgrade --set replicaCount=m` does: the template and replicas change at once
/// (Parallel: all new pods start together), then RollingUpdate restarts pods from the highest
/// ordinal down.
fn helm_jump(n: u32, m: u32) -> Result<(), String> {
    let obs = chart_obs(n);
    let mut list = obs.servers.clone();
    for o in n..m {
        list = list
            .with_member_added(Member::new(o + 1, host(0, o), 2888, 3888))
            .unwrap();
    }
    let mut e = Ensemble::from_observed(&obs).unwrap();
    apply_checked(
        &mut e,
        &Action::ApplySpec {
            replicas: m,
            servers: list,
        },
    )?;
    for o in (0..n).rev() {
        let a = Action::Restart {
            ordinal: o,
            id: o + 1,
            expect: Expect::Follow,
        };
        apply_checked(&mut e, &a)?;
    }
    Ok(())
}

#[test]
fn helm_jump_1_to_3_is_flagged_as_data_loss() {
    let err = helm_jump(1, 3).unwrap_err();
    assert!(err.contains("may lack committed data"), "{err}");
}

#[test]
fn helm_jump_3_to_5_is_flagged_as_split_brain() {
    // the two empty members are not a quorum of 5 (invariant 1 holds) ...
    let obs = chart_obs(3);
    let mut e = Ensemble::from_observed(&obs).unwrap();
    let mut list = obs.servers.clone();
    for o in 3..5 {
        list = list
            .with_member_added(Member::new(o + 1, host(0, o), 2888, 3888))
            .unwrap();
    }
    e.apply(
        &Action::ApplySpec {
            replicas: 5,
            servers: list,
        },
        &mut |st| {
            assert!(lacking_quorum(st).is_ok());
        },
    )
    .unwrap();
    // ... but old and new views can each reach a quorum with disjoint members
    let err = helm_jump(3, 5).unwrap_err();
    assert!(err.contains("disjoint"), "{err}");
}

#[test]
fn single_steps_pass_the_same_checker() {
    for n in 1..=8 {
        assert_eq!(check(&chart_obs(n), n + 1, None), Ok(Some(false)));
        if n > 1 {
            assert_eq!(check(&chart_obs(n), n - 1, None), Ok(Some(false)));
        }
    }
}

#[test]
fn unsynced_states_are_refused_or_safe() {
    let mut obs = chart_obs(3);
    obs.synced.remove(&1);
    assert!(matches!(plan(&obs, 4), Err(PlanError::NotSynced { .. })));
}

// ---------------------------------------------------------------------------------------------
// The same plans against real ZooKeeper 3.9 (loopback JVMs from tests/support): an engine loop
// that observes, plans, runs the first step, and checks each predicted `Expect` against what the
// servers do. Znodes are written before every step and inside every `Deferred` window (writes
// the waiting member misses); at the end every member must hold all of them.
// `ZKSCALE_SKIP_REAL_ZK=1` skips these.

mod support;

mod real {
    use std::time::{Duration, Instant};

    use super::support::zk_ensemble::{describe, mode_of, skip_real_zk, Ensemble, ZkVersion};
    use zkscale::model::{Addressing, Member, ServerList};
    use zkscale::plan::{plan, Action, Expect, Observed, PodState};
    use zkscale::zk::{Gate, MemberObservation, Mode, Probe, ServerId};

    const SETTLE: Duration = Duration::from_secs(60);
    const BATCH: usize = 10;

    fn member(id: u32) -> Member {
        Member::new(id, format!("zk-{}.zk-hs", id - 1), 2888, 3888)
    }

    fn list(ids: &[ServerId]) -> ServerList {
        ServerList::from_members(ids.iter().map(|&id| member(id)).collect()).unwrap()
    }

    fn ids(l: &ServerList) -> Vec<ServerId> {
        l.members().iter().map(|m| m.id).collect()
    }

    fn leader(obs: &[MemberObservation]) -> Option<ServerId> {
        obs.iter()
            .find(|o| matches!(mode_of(obs, o.id), Some(Mode::Leader | Mode::Standalone)))
            .map(|o| o.id)
    }

    fn following(obs: &[MemberObservation], id: ServerId) -> bool {
        matches!(mode_of(obs, id), Some(Mode::Follower | Mode::Leader))
    }

    struct Engine {
        e: Ensemble,
        template: ServerList,
        replicas: u32,
        batches: Vec<String>,
        log: Vec<String>,
    }

    impl Engine {
        async fn start(n: u32) -> Engine {
            let mut e = Ensemble::new(ZkVersion::V3_9);
            e.start_all(n);
            let all: Vec<ServerId> = (1..=n).collect();
            e.assert_healthy(&Gate::new(all.clone()), SETTLE).await;
            Engine {
                e,
                template: list(&all),
                replicas: n,
                batches: Vec::new(),
                log: Vec::new(),
            }
        }

        async fn observed(&mut self) -> Observed {
            let obs = self.e.observe().await;
            let leader = leader(&obs);
            let mut pods = Vec::new();
            for id in self.e.ids() {
                if self.e.is_running(id) {
                    pods.push(PodState {
                        ordinal: id - 1,
                        id,
                        view: list(self.e.servers_of(id)),
                        running: true,
                    });
                }
            }
            let synced = pods
                .iter()
                .map(|p| p.id)
                .filter(|&id| Some(id) == leader || mode_of(&obs, id) == Some(Mode::Follower))
                .collect();
            Observed {
                servers: self.template.clone(),
                addressing: Addressing::from_template("zk-{ordinal}.zk-hs", "zk").unwrap(),
                min_server_id: 1,
                sts_name: "zk".into(),
                replicas: self.replicas,
                pods,
                leader,
                synced,
                outdated: Default::default(),
                committed: None,
                storage: Default::default(),
            }
        }

        async fn wait(
            &self,
            what: &str,
            pred: impl Fn(&[MemberObservation]) -> bool,
        ) -> Vec<MemberObservation> {
            self.e.wait_until(what, SETTLE, pred).await
        }

        async fn write_batch(&mut self) {
            let obs = self.e.observe().await;
            let l = leader(&obs)
                .unwrap_or_else(|| panic!("no leader to write to:\n{}", describe(&obs)));
            let parent = format!("/zkscale-{}", self.batches.len());
            self.e.write_znodes(l, &parent, BATCH).await.unwrap();
            self.batches.push(parent);
        }

        async fn run(&mut self, a: &Action) {
            let before = leader(&self.e.observe().await);
            self.log.push(format!("{a:?} (leader {before:?})"));
            match a {
                Action::ApplySpec { replicas, servers } => {
                    self.template = servers.clone();
                    self.replicas = *replicas;
                    let t = ids(servers);
                    for id in self.e.ids() {
                        if id > *replicas {
                            self.e.stop(id);
                        }
                    }
                    for id in 1..=*replicas {
                        if !self.e.is_running(id) {
                            assert!(!self.e.ids().contains(&id), "pod {id} would reuse a volume");
                            self.e.start(id, &t);
                        }
                    }
                }
                Action::StartNew { id, expect, .. } => self.expect(*id, *expect, before).await,
                Action::Restart { id, expect, .. } => {
                    self.e.restart_with(*id, &ids(&self.template));
                    self.expect(*id, *expect, before).await;
                }
                Action::MoveLeadership { id, .. } => {
                    self.e.restart_with(*id, &ids(&self.template));
                    let id = *id;
                    self.wait("leadership moved", |obs| {
                        leader(obs).is_some_and(|l| l != id) && following(obs, id)
                    })
                    .await;
                }
                Action::Remove { id, .. } => {
                    self.e.stop(*id);
                    assert!(!self.e.is_running(*id));
                }
                Action::Reconfig { .. } => unreachable!("restart plans only: {a:?}"),
            }
        }

        async fn expect(&mut self, id: ServerId, x: Expect, before: Option<ServerId>) {
            match x {
                Expect::Learner => unreachable!("restart plans only"),
                Expect::Follow => {
                    let obs = self.wait("member follows", |obs| following(obs, id)).await;
                    assert_eq!(leader(&obs), before, "Follow must not change the leader");
                }
                Expect::Election => {
                    self.wait("member follows a new election's leader", |obs| {
                        following(obs, id) && leader(obs).is_some()
                    })
                    .await;
                }
                Expect::Standalone => {
                    self.wait("member runs standalone", |obs| {
                        mode_of(obs, id) == Some(Mode::Standalone)
                    })
                    .await;
                }
                Expect::Deferred => {
                    let reachable = |obs: &[MemberObservation]| {
                        obs.iter()
                            .any(|o| o.id == id && matches!(o.probe, Probe::NotServing))
                    };
                    self.wait("member answers but waits", reachable).await;
                    // give it 20 ticks to (wrongly) join, then check it still waits
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    let obs = self.e.observe().await;
                    assert!(
                        reachable(&obs),
                        "Deferred member {id} joined:\n{}",
                        describe(&obs)
                    );
                    // the rest still serves: commits the waiting member misses
                    self.write_batch().await;
                }
            }
        }

        /// The engine loop: observe, plan, run the first step, health gate; until `target`.
        async fn scale(&mut self, target: u32) {
            loop {
                let obs = self.observed().await;
                let p = plan(&obs, target).unwrap_or_else(|e| panic!("plan: {e}\n{:#?}", self.log));
                let Some(step) = p.steps.first() else { return };
                self.write_batch().await;
                for a in &step.actions {
                    self.run(a).await;
                }
                let v = self
                    .e
                    .assert_healthy(&Gate::new(ids(&step.servers)), SETTLE)
                    .await;
                self.log.push(format!(
                    "step {}→{} done, leader {:?}",
                    step.from, step.to, v.leader
                ));
            }
        }

        async fn check_data(&mut self) {
            self.write_batch().await;
            let running: Vec<ServerId> = ids(&self.template);
            for id in running {
                for parent in &self.batches {
                    let n = self.e.count_znodes(id, parent).await.unwrap();
                    assert_eq!(n, BATCH, "member {id} lost {parent}; log {:#?}", self.log);
                }
            }
            println!("{}", self.log.join("\n"));
        }

        /// Restart the leader until `pred(leader)` (leadership set-up for a scenario).
        async fn make_leader(&mut self, pred: impl Fn(ServerId) -> bool) {
            let t0 = Instant::now();
            loop {
                let obs = self.e.observe().await;
                let l = leader(&obs).expect("a leader");
                if pred(l) {
                    return;
                }
                assert!(t0.elapsed() < SETTLE, "could not move leadership");
                self.e.restart(l);
                self.e
                    .assert_healthy(&Gate::new(ids(&self.template)), SETTLE)
                    .await;
            }
        }
    }

    #[tokio::test]
    async fn real_up_1_to_4_and_down_to_1() {
        if skip_real_zk() {
            return;
        }
        let mut g = Engine::start(1).await;
        g.scale(4).await;
        g.scale(1).await;
        g.check_data().await;
    }

    #[tokio::test]
    async fn real_3_to_2_follower_leaves() {
        if skip_real_zk() {
            return;
        }
        let mut g = Engine::start(3).await;
        g.make_leader(|l| l != 3).await;
        g.scale(2).await;
        g.check_data().await;
    }

    #[tokio::test]
    async fn real_3_to_2_leader_leaves() {
        if skip_real_zk() {
            return;
        }
        let mut g = Engine::start(3).await;
        g.make_leader(|l| l == 3).await;
        g.scale(2).await;
        g.check_data().await;
    }

    #[tokio::test]
    async fn real_5_to_3_leader_leaves() {
        if skip_real_zk() {
            return;
        }
        let mut g = Engine::start(5).await;
        g.make_leader(|l| l == 5).await;
        g.scale(3).await;
        g.check_data().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Template roll-outs (same size, outdated pods)

/// Every size 1..=9, every leader and every set of outdated pods: the plan is one step that
/// restarts exactly the outdated pods, once each, the leader last, keeps every invariant, costs
/// at most one election (none when the leader is current and n ≥ 3; with 2
/// members each restart costs one) and ends settled.
#[test]
fn rollouts_restart_outdated_pods_leader_last() {
    let mut plans = 0;
    for n in 1..=9u32 {
        for leader in 0..n {
            let mut obs = observed(&Shape {
                n,
                min_id: 1,
                addressing: 0,
                style: 0,
                leader,
                synced: vec![true; n as usize],
            });
            for mask in 1u32..(1 << n) {
                obs.outdated = (0..n).filter(|o| mask & (1 << o) != 0).collect();
                let p = plan(&obs, n).unwrap_or_else(|e| panic!("n={n} mask={mask:b}: {e}"));
                let ctx = format!("n={n} leader pod {leader} outdated {:?}", obs.outdated);
                assert_eq!(p.steps.len(), 1, "{ctx}");
                let step = &p.steps[0];
                assert_eq!((step.from, step.to), (n, n), "{ctx}");
                assert!(step.servers.same_ensemble(&obs.servers), "{ctx}");
                let mut e = Ensemble::from_observed(&obs).unwrap();
                let mut restarted = Vec::new();
                for a in &step.actions {
                    let Action::Restart {
                        ordinal,
                        id,
                        expect,
                    } = a
                    else {
                        panic!("{ctx}: {a:?} in a roll-out");
                    };
                    if e.serving_leader() == Some(*id) {
                        assert_eq!(
                            restarted.len() + 1,
                            obs.outdated.len(),
                            "{ctx}: leader not last"
                        );
                    }
                    let got = apply_checked(&mut e, a).unwrap_or_else(|err| panic!("{ctx}: {err}"));
                    assert_eq!(got, Some(*expect), "{ctx}: prediction");
                    restarted.push(*ordinal);
                }
                restarted.sort();
                assert_eq!(
                    restarted,
                    obs.outdated.iter().copied().collect::<Vec<_>>(),
                    "{ctx}"
                );
                e.check_settled(&step.servers)
                    .unwrap_or_else(|err| panic!("{ctx}: {err}"));
                // A 2-member ensemble has no spare vote: every restart costs an election.
                let bound = if n == 2 { obs.outdated.len() as u32 } else { 1 };
                assert!(e.elections() <= bound, "{ctx}: {} elections", e.elections());
                if n >= 3 && !obs.outdated.contains(&leader) {
                    assert_eq!(e.elections(), 0, "{ctx}");
                }
                assert_eq!(step.predicted_elections, e.elections(), "{ctx}");
                plans += 1;
            }
        }
    }
    assert_eq!(plans, (1..=9u32).map(|n| n * ((1 << n) - 1)).sum::<u32>());
}

// ---------------------------------------------------------------------------------------------
// Persistence off (issue 23, defect 13): a restarted member comes back empty.

/// (7) Without persistence, at every moment the members holding the data form a quorum of
/// the StatefulSet's list (the list in force), beside invariants (1) and (2).
fn data_holders_hold_a_quorum(e: &Ensemble) -> Result<(), String> {
    let view = View::of(e.spec());
    let holders = e.pods().filter(|p| view.has(p.id) && p.up_to_date).count();
    if holders < view.quorum() {
        return Err(format!(
            "only {holders} member(s) of {} in the list in force hold the data",
            view.voters.len()
        ));
    }
    Ok(())
}

/// Plans `obs` (persistence off) to `target`: refused only as [`PlanError::NoPersistence`]
/// (or as not synced yet), else every action keeps (1), (2) and (7) and the plan ends whole.
fn check_ephemeral(obs: &Observed, target: u32) -> Result<bool, String> {
    let all_synced = obs.pods.iter().all(|p| obs.synced.contains(&p.id));
    let p = match plan(obs, target) {
        Ok(p) => p,
        Err(PlanError::NoPersistence { .. }) => return Ok(false),
        Err(PlanError::NotSynced { .. }) | Err(PlanError::UnexpectedState(_)) if !all_synced => {
            return Ok(false)
        }
        Err(err) => return Err(format!("refused otherwise: {err}")),
    };
    let mut e = Ensemble::from_observed(obs).map_err(|err| err.to_string())?;
    for step in &p.steps {
        for a in &step.actions {
            let mut first_err: Option<String> = None;
            let out = e.apply(a, &mut |st| {
                if first_err.is_none() {
                    first_err = invariants(st)
                        .and_then(|()| data_holders_hold_a_quorum(st))
                        .err();
                }
            });
            if let Some(err) = first_err {
                return Err(format!("{a:?}: {err}"));
            }
            out.map_err(|err| format!("{a:?}: {err}"))?;
        }
        e.check_settled(&step.servers)?;
    }
    Ok(true)
}

fn ephemeral(mut obs: Observed) -> Observed {
    obs.storage = zkscale::plan::Storage::Ephemeral {
        what: "an emptyDir".into(),
    };
    obs
}

/// The checker can fail: the same model with persistence off, fed the plans made as if
/// members kept their data, breaks (7) or the model for 1→2 (the standalone's restart).
#[test]
fn persistence_off_checker_catches_a_plan_made_with_persistence() {
    let p = plan(&chart_obs(1), 2).unwrap();
    let mut e = Ensemble::from_observed(&ephemeral(chart_obs(1))).unwrap();
    let mut broke = false;
    for a in &p.steps[0].actions {
        let mut bad = false;
        let r = e.apply(a, &mut |st| {
            bad |= invariants(st)
                .and_then(|()| data_holders_hold_a_quorum(st))
                .is_err();
        });
        broke |= bad || r.is_err();
    }
    broke |= e.check_settled(&p.steps[0].servers).is_err();
    assert!(broke, "1→2 with empty restarts passed the checker");
    assert!(!check_ephemeral(&ephemeral(chart_obs(1)), 2).unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_ensembles_without_persistence_plan_safely_or_refuse(s in shape(), target in 1u32..=9) {
        let obs = ephemeral(observed(&s));
        let r = check_ephemeral(&obs, target);
        prop_assert!(r.is_ok(), "{:?} → {}: {}", s, target, r.unwrap_err());
        // Up from 2 or more members, every synced ensemble has a plan.
        let all_synced = obs.pods.iter().all(|p| obs.synced.contains(&p.id));
        if all_synced && s.n >= 2 && target > s.n {
            prop_assert!(r.unwrap(), "{:?} → {} refused", s, target);
        }
    }
}
