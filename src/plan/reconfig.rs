//! Steps through ZooKeeper's dynamic reconfiguration: one `reconfig` call per step, no member
//! restarts. Pure, no I/O; every step runs through the same [`Ensemble`] model as restarts.
//!
//! # ZooKeeper behaviour relied on (3.5.9+/3.6.2+/3.7+, `reconfigEnabled=true`)
//! - A running member's view is the committed configuration (`/zookeeper/config`), not the
//!   `ZOO_SERVERS` it started with: a member (re)starting from a static list (version 0) adopts
//!   any newer committed configuration from its peers. So on such an ensemble in quorum mode,
//!   restarting members with a new list changes nothing; `reconfig` is the only way.
//! - A server started with the committed list plus itself joins the leader as a non-voting
//!   follower (never more than one such joiner at a time). `reconfig -add` makes it a voter once
//!   a quorum of the new configuration is synced (else `NewConfigNoQuorum`): no election, the
//!   leader and the epoch stay.
//! - `reconfig -remove` of a follower leaves it a non-voting follower until its pod goes; of
//!   the leader, it hands leadership to a synced voter (a leadership change, no lost quorum).
//! - A single bitnami member runs standalone (the image writes no `server.N` line for a
//!   one-entry list) and ZooKeeper cannot reconfigure a standalone server; with the default
//!   `standaloneEnabled=true` a configuration keeps at least two voters. So 1→2 and 2→1 are
//!   restart steps (see [`super`]); everything from 2 members up is reconfig.
//!
//! # Step sequences
//! - **n→n+1**: ApplySpec(n+1, committed + new member): the template's list grows, so the new
//!   pod starts with the committed list plus itself; the running pods keep theirs (`OnDelete`).
//!   StartNew (clean joiner, [`Expect::Learner`]); Reconfig(join).
//! - **n→n−1**, the highest ordinal leaves: ApplySpec(n−1 list, replicas n), so any pod that
//!   restarts from here on comes back with the list the step ends in; Reconfig(leave);
//!   ApplySpec(n−1); Remove.
//!
//! After every step the StatefulSet's list equals the committed configuration, so a pod that
//! restarts for any reason (eviction, node loss) comes back with the right list.
//!
//! # Re-planning mid-step
//! With `S` the StatefulSet's list and `C` the committed one: `S = C + j` is an addition under
//! way (the `reconfig` not yet made); `C = S + x` a removal under way; `S = C` with a replica or
//! pod beyond `|S|` a removal whose pod is still going. Restart steps under way (1↔2) are
//! recognised by the restart planner.

use super::{
    best_step, check_target, grown, in_progress, leaver, newcomer, rollout, shrunk, simulate,
    Action, Ensemble, Expect, Method, Observed, PeerState, Plan, PlanError, Step,
};
use crate::model::{Addressing, ServerList};

/// Plans the way to `target` members, by `reconfig` wherever the ensemble allows it and by
/// restart for 1↔2 (see the module docs).
pub fn plan(obs: &Observed, target: u32) -> Result<Plan, PlanError> {
    super::without_persistence(obs, plan_dynamic(obs, target))
}

fn plan_dynamic(obs: &Observed, target: u32) -> Result<Plan, PlanError> {
    check_target(target)?;
    let mut steps = Vec::new();
    let mut e = match &obs.committed {
        None => {
            // Standalone (or a restart step under way): static rules apply.
            let ens = Ensemble::from_observed(obs)?;
            match in_progress(&ens)? {
                Some((old, new)) => {
                    let (step, next) = best_step(&ens, &old, &new, true, &obs.addressing)?;
                    steps.push(step);
                    next
                }
                None if ens.spec.len() == 1 => ens,
                None => {
                    return Err(PlanError::ReconfigUnavailable(
                        "the members run a static configuration (reconfigEnabled is off)".into(),
                    ))
                }
            }
        }
        Some(c) if c.voters().count() < 2 => {
            return Err(PlanError::ReconfigUnavailable(format!(
                "the committed configuration `{}` has fewer than two voters",
                c.to_env()
            )))
        }
        // 2→1 under way: the StatefulSet already lists one member, restarts finish it.
        Some(_) if obs.servers.is_standalone() => {
            let ens = Ensemble::from_observed(obs)?;
            let Some((old, new)) = in_progress(&ens)? else {
                return Err(PlanError::UnexpectedState(
                    "a standalone list in the StatefulSet, but members in quorum mode".into(),
                ));
            };
            let (step, next) = best_step(&ens, &old, &new, true, &obs.addressing)?;
            steps.push(step);
            next
        }
        Some(c) => {
            let ens = Ensemble::from_observed(obs)?;
            match resume(&ens, c, &obs.addressing)? {
                Some((step, next)) => {
                    steps.push(step);
                    next
                }
                None => ens,
            }
        }
    };
    let from = steps.first().map_or(e.spec.len() as u32, |s: &Step| s.from);
    while e.spec.len() as u32 != target {
        let cur = e.spec.clone();
        let n = cur.len() as u32;
        let (step, next) = match (n < target, n) {
            (true, 1) => {
                let new = grown(&e, &cur, &obs.addressing)?;
                best_step(&e, &cur, &new, false, &obs.addressing)?
            }
            (true, _) => add(&e, false, &obs.addressing)?,
            (false, 2) => {
                let new = shrunk(&e, &cur)?;
                best_step(&e, &cur, &new, false, &obs.addressing)?
            }
            (false, _) => remove(&e, false)?,
        };
        steps.push(step);
        e = next;
    }
    // Restart steps restart every member (rolling a new template out on the way); reconfig
    // steps restart nobody, so outdated members left at the end get a roll-out of their own.
    if steps.iter().all(|s| s.method == Method::Reconfig) {
        let outdated = obs
            .outdated
            .iter()
            .copied()
            .filter(|o| e.pods.contains_key(o))
            .collect();
        steps.extend(rollout(&e, &outdated)?);
    }
    Ok(Plan {
        from,
        to: target,
        steps,
        method_reason: String::new(),
    })
}

/// The step under way on an ensemble whose committed configuration is `c`, if any.
fn resume(
    e: &Ensemble,
    c: &ServerList,
    addressing: &Addressing,
) -> Result<Option<(Step, Ensemble)>, PlanError> {
    let s = &e.spec;
    let n = s.len() as u32;
    let beyond = e.replicas > n || e.pods.keys().any(|&o| o >= n);
    if s.same_ensemble(c) {
        return if beyond {
            remove(e, true).map(Some)
        } else {
            Ok(None)
        };
    }
    let (si, ci) = (s.ids(), c.ids());
    let same_addresses = si
        .intersection(&ci)
        .all(|id| s.get(*id).map(|m| m.quorum_address()) == c.get(*id).map(|m| m.quorum_address()));
    if same_addresses && ci.is_subset(&si) && si.len() == ci.len() + 1 {
        return add(e, true, addressing).map(Some);
    }
    if same_addresses && si.is_subset(&ci) && ci.len() == si.len() + 1 {
        return remove(e, true).map(Some);
    }
    Err(PlanError::UnexpectedState(format!(
        "the StatefulSet lists `{}` but the committed configuration is `{}`: not one step apart",
        s.to_env(),
        c.to_env()
    )))
}

/// n→n+1 by `reconfig` (resumed: from wherever the observed state is).
fn add(
    e: &Ensemble,
    resumed: bool,
    addressing: &Addressing,
) -> Result<(Step, Ensemble), PlanError> {
    let (cur, new) = if resumed {
        (committed_of(e)?, e.spec.clone())
    } else {
        (e.spec.clone(), grown(e, &e.spec, addressing)?)
    };
    let (from, to) = (cur.len() as u32, new.len() as u32);
    let fail = |reason: String| PlanError::Unsafe { from, to, reason };
    let (ordinal, id) = newcomer(e, &cur, &new, addressing)?;
    let mut next = e.clone();
    let (elections0, assumed_leader) = (next.elections, next.serving);
    let mut actions = Vec::new();
    if !next.spec.same_ensemble(&new) || next.replicas != to {
        let a = Action::ApplySpec {
            replicas: to,
            servers: new.clone(),
        };
        simulate(&mut next, &mut actions, a).map_err(fail)?;
    }
    let start = Action::StartNew {
        ordinal,
        id,
        expect: Expect::Learner,
    };
    simulate(&mut next, &mut actions, start).map_err(fail)?;
    // The model says whether it follows the leader without a vote; that is the learner here.
    if let Some(Action::StartNew { expect, .. }) = actions.last_mut() {
        if *expect != Expect::Follow {
            return Err(fail(format!(
                "new server {id} would not follow the leader ({expect:?})"
            )));
        }
        *expect = Expect::Learner;
    }
    let join = Action::Reconfig {
        ordinal,
        id,
        join: true,
    };
    simulate(&mut next, &mut actions, join).map_err(fail)?;
    next.check_settled(&new).map_err(fail)?;
    let step = Step {
        from,
        to,
        servers: new,
        actions,
        resumed,
        assumed_leader,
        predicted_elections: next.elections - elections0,
        method: Method::Reconfig,
    };
    Ok((step, next))
}

/// n→n−1 by `reconfig`, the highest ordinal leaving (resumed: from the observed state).
fn remove(e: &Ensemble, resumed: bool) -> Result<(Step, Ensemble), PlanError> {
    let committed = committed_of(e)?;
    let n = e.spec.len() as u32;
    // Resumed with the list already equal to the committed one: only the pod is left to go.
    let (cur, new) = if resumed && e.spec.same_ensemble(&committed) {
        let ordinal = n;
        let id = e
            .pods
            .get(&ordinal)
            .map_or(ordinal + e.min_server_id, |p| p.id);
        let mut next = e.clone();
        let mut actions = Vec::new();
        let fail = |reason: String| PlanError::Unsafe {
            from: n + 1,
            to: n,
            reason,
        };
        if next.replicas != n {
            let a = Action::ApplySpec {
                replicas: n,
                servers: e.spec.clone(),
            };
            simulate(&mut next, &mut actions, a).map_err(fail)?;
        }
        simulate(&mut next, &mut actions, Action::Remove { ordinal, id }).map_err(fail)?;
        next.check_settled(&e.spec).map_err(fail)?;
        let step = Step {
            from: n + 1,
            to: n,
            servers: e.spec.clone(),
            actions,
            resumed,
            assumed_leader: e.serving,
            predicted_elections: 0,
            method: Method::Reconfig,
        };
        return Ok((step, next));
    } else if resumed {
        (committed, e.spec.clone())
    } else {
        (e.spec.clone(), shrunk(e, &e.spec)?)
    };
    let (from, to) = (cur.len() as u32, new.len() as u32);
    let fail = |reason: String| PlanError::Unsafe { from, to, reason };
    let (ordinal, id) = leaver(e, &cur, &new)?;
    let mut next = e.clone();
    let (elections0, assumed_leader) = (next.elections, next.serving);
    let mut actions = Vec::new();
    let mut act = |next: &mut Ensemble, a: Action| simulate(next, &mut actions, a).map_err(fail);
    if !next.spec.same_ensemble(&new) {
        let replicas = next.replicas;
        act(
            &mut next,
            Action::ApplySpec {
                replicas,
                servers: new.clone(),
            },
        )?;
    }
    act(
        &mut next,
        Action::Reconfig {
            ordinal,
            id,
            join: false,
        },
    )?;
    act(
        &mut next,
        Action::ApplySpec {
            replicas: to,
            servers: new.clone(),
        },
    )?;
    act(&mut next, Action::Remove { ordinal, id })?;
    next.check_settled(&new).map_err(fail)?;
    let step = Step {
        from,
        to,
        servers: new,
        actions,
        resumed,
        assumed_leader,
        predicted_elections: next.elections - elections0,
        method: Method::Reconfig,
    };
    Ok((step, next))
}

/// The configuration the serving leader runs: the committed one.
fn committed_of(e: &Ensemble) -> Result<ServerList, PlanError> {
    let leader = e.serving.ok_or(PlanError::NoLeader)?;
    e.pods
        .values()
        .find(|p| p.id == leader && p.state == PeerState::Leading)
        .map(|p| p.list.clone())
        .ok_or_else(|| PlanError::UnexpectedState(format!("leader {leader} has no pod")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PodState;

    fn list(n: u32) -> ServerList {
        let env: Vec<String> = (0..n)
            .map(|o| format!("zk-{o}.zk-hs.ns.svc.cluster.local:2888:3888::{}", o + 1))
            .collect();
        ServerList::parse_env(&(env.join(" ") + " ")).unwrap()
    }

    /// A settled ensemble of `n` with reconfig (committed = list) led by `leader`.
    fn dynamic(n: u32, leader: u32) -> Observed {
        let addr =
            Addressing::from_template("zk-{ordinal}.zk-hs.ns.svc.cluster.local", "zk").unwrap();
        let mut o = Observed::settled(list(n), addr, 1, "zk", Some(leader)).unwrap();
        if n >= 2 {
            o.committed = Some(list(n));
        }
        o
    }

    fn kinds(p: &Plan) -> Vec<Vec<String>> {
        p.steps
            .iter()
            .map(|s| {
                let mut v = vec![format!("{}{}→{}", s.method.as_str(), s.from, s.to)];
                v.extend(s.actions.iter().map(|a| match a {
                    Action::ApplySpec { replicas, servers } => {
                        format!("spec{replicas}/{}", servers.len())
                    }
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
                }));
                v
            })
            .collect()
    }

    #[test]
    fn scale_up_adds_one_learner_per_step_without_restarts() {
        let p = plan(&dynamic(2, 2), 4).unwrap();
        assert_eq!(
            kinds(&p),
            [
                ["reconfig2→3", "spec3/3", "new2:Learner", "add2"],
                ["reconfig3→4", "spec4/4", "new3:Learner", "add3"],
            ]
        );
        assert!(p.steps.iter().all(|s| s.predicted_elections == 0));
        assert_eq!((p.from, p.to), (2, 4));
        // Every step ends with the StatefulSet's list equal to the committed one.
        assert_eq!(p.steps[1].servers.to_env(), list(4).to_env());
    }

    #[test]
    fn scale_down_removes_the_highest_and_counts_a_leader_hand_off() {
        let p = plan(&dynamic(5, 1), 3).unwrap();
        assert_eq!(
            kinds(&p),
            [
                ["reconfig5→4", "spec5/4", "drop4", "spec4/4", "remove4"],
                ["reconfig4→3", "spec4/3", "drop3", "spec3/3", "remove3"],
            ]
        );
        assert!(p.steps.iter().all(|s| s.predicted_elections == 0));
        // The leader is the highest: its removal hands leadership over, once.
        let p = plan(&dynamic(5, 5), 4).unwrap();
        assert_eq!(p.steps[0].predicted_elections, 1);
    }

    #[test]
    fn one_and_two_members_are_restart_steps() {
        let p = plan(&dynamic(1, 1), 3).unwrap();
        assert_eq!(
            kinds(&p),
            [
                vec![
                    "restart1→2",
                    "spec2/2",
                    "new1:Deferred",
                    "restart0:Election"
                ],
                vec!["reconfig2→3", "spec3/3", "new2:Learner", "add2"],
            ]
        );
        let p = plan(&dynamic(3, 3), 1).unwrap();
        assert_eq!(
            kinds(&p),
            [
                vec!["reconfig3→2", "spec3/2", "drop2", "spec2/2", "remove2"],
                vec![
                    "restart2→1",
                    "spec2/1",
                    "restart0:Standalone",
                    "spec1/1",
                    "remove1"
                ],
            ]
        );
    }

    #[test]
    fn a_static_ensemble_cannot_be_reconfigured() {
        let mut o = dynamic(3, 3);
        o.committed = None;
        assert!(matches!(
            plan(&o, 4),
            Err(PlanError::ReconfigUnavailable(_))
        ));
    }

    #[test]
    fn resumes_an_addition_before_and_after_the_reconfig() {
        // The template grew to 4 and pod 3 runs as a learner; the reconfig is not made.
        let mut o = dynamic(3, 3);
        o.servers = list(4);
        o.replicas = 4;
        o.pods.push(PodState {
            ordinal: 3,
            id: 4,
            view: list(4),
            running: true,
        });
        o.synced.insert(4);
        let p = plan(&o, 5).unwrap();
        assert_eq!(
            kinds(&p),
            [
                vec!["reconfig3→4", "new3:Learner", "add3"],
                vec!["reconfig4→5", "spec5/5", "new4:Learner", "add4"],
            ]
        );
        assert!(p.steps[0].resumed);
        // Its pod not even created yet.
        o.pods.pop();
        o.synced.remove(&4);
        o.replicas = 3;
        let p = plan(&o, 4).unwrap();
        assert_eq!(
            kinds(&p),
            [["reconfig3→4", "spec4/4", "new3:Learner", "add3"]]
        );
        // After the reconfig: committed = template, nothing left of the step.
        o.committed = Some(list(4));
        o.replicas = 4;
        for p in &mut o.pods {
            p.view = list(4);
        }
        o.pods.push(PodState {
            ordinal: 3,
            id: 4,
            view: list(4),
            running: true,
        });
        o.synced.insert(4);
        assert!(plan(&o, 4).unwrap().is_empty());
    }

    #[test]
    fn resumes_a_removal_at_each_point() {
        // Template shrunk, reconfig not made.
        let mut o = dynamic(4, 1);
        o.servers = list(3);
        let p = plan(&o, 3).unwrap();
        assert_eq!(kinds(&p), [["reconfig4→3", "drop3", "spec3/3", "remove3"]]);
        assert!(p.steps[0].resumed);
        // Reconfig made: the leaver is a non-voting follower until its pod goes.
        o.committed = Some(list(3));
        for p in o.pods.iter_mut().filter(|p| p.id != 4) {
            p.view = list(3);
        }
        let p = plan(&o, 3).unwrap();
        assert_eq!(kinds(&p), [["reconfig4→3", "spec3/3", "remove3"]]);
        // Replicas lowered, the pod still going.
        o.replicas = 3;
        let p = plan(&o, 3).unwrap();
        assert_eq!(kinds(&p), [["reconfig4→3", "remove3"]]);
    }

    #[test]
    fn refuses_lists_more_than_one_step_apart() {
        let mut o = dynamic(3, 3);
        o.servers = list(5);
        assert!(matches!(plan(&o, 5), Err(PlanError::UnexpectedState(_))));
    }

    #[test]
    fn outdated_members_roll_out_after_reconfig_steps() {
        let mut o = dynamic(3, 2);
        o.outdated = [0, 1, 2].into();
        let p = plan(&o, 4).unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[1].method, Method::Restart);
        assert_eq!((p.steps[1].from, p.steps[1].to), (4, 4));
        let restarts: Vec<_> = p.steps[1]
            .actions
            .iter()
            .map(|a| match a {
                Action::Restart { ordinal, .. } => *ordinal,
                _ => 99,
            })
            .collect();
        // Followers first, the leader (server 2, pod 1) last; the new pod is current.
        assert_eq!(restarts, [0, 2, 1]);
    }
}
