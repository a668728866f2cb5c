//! The engine's decisions on scenarios (see [`super::fixtures`]): what is "nothing to do", what
//! the planner is told, and when each named condition is met, with the reason when it is not.

use super::conditions;
use super::fixtures::{ensemble, servers_env, Scenario};
use super::nothing_to_do;
use super::wait::{Check, Look};
use crate::plan::{self, Action, Expect};

const FIRST: Look = Look {
    n: 0,
    overdue: false,
};
pub(super) const LATER: Look = Look {
    n: 3,
    overdue: false,
};

/// The test of `cond` on `s`: `Ok(detail)` when met, `Err(why not)`.
pub(super) fn check<T>(
    cond: super::wait::Condition<'_, T>,
    s: &Scenario,
    look: Look,
) -> Result<String, String> {
    let mut test = cond.test;
    match test(&s.snapshot(), look) {
        Check::Met(_, detail) => Ok(detail),
        Check::NotYet(why) => Err(why),
        Check::Stop(e) => Err(format!("stopped: {e}")),
    }
}

#[test]
fn nothing_to_do_only_when_size_list_pods_and_template_all_match() {
    let live = ensemble(3).live();
    assert!(nothing_to_do(&live, 3, false));
    assert!(!nothing_to_do(&live, 4, false), "another size");
    assert!(!nothing_to_do(&live, 3, true), "a new template");
    assert!(!nothing_to_do(&ensemble(3).outdated(1).live(), 3, false));
    assert!(!nothing_to_do(
        &ensemble(3).operation("{}").live(),
        3,
        false
    ));
    // A step under way: replicas 4 with the 4-list while the old pods still run the 3-list.
    let mid = ensemble(3).statefulset(4, 4).new_pod(3).live();
    assert!(!nothing_to_do(&mid, 4, false));
    // `kubectl scale` left the list stale: replicas 3, list of 2.
    assert!(!nothing_to_do(
        &ensemble(2).statefulset(3, 2).live(),
        3,
        false
    ));
}

#[test]
fn the_planner_is_told_ids_views_leader_synced_and_outdated() {
    let s = ensemble(3).leader(2).outdated(0);
    let obs = s.snapshot().observed("zk-zookeeper").unwrap();
    assert_eq!(obs.leader, Some(2));
    assert_eq!(obs.synced, [1, 2, 3].into());
    assert_eq!(obs.replicas, 3);
    assert_eq!(obs.outdated, [0].into());
    let ids: Vec<(u32, u32, usize)> = obs
        .pods
        .iter()
        .map(|p| (p.ordinal, p.id, p.view.len()))
        .collect();
    assert_eq!(ids, [(0, 1, 3), (1, 2, 3), (2, 3, 3)]);

    // Synced means the one definition: a little behind under writes is synced, far is not.
    let obs = ensemble(3)
        .lagging(0, 100)
        .lagging(1, 5_000)
        .snapshot()
        .observed("zk-zookeeper")
        .unwrap();
    assert_eq!(obs.synced, [1, 3].into());
    // A pod being deleted is not a member any more; a pod not answering is not running.
    let obs = ensemble(3)
        .deleting(0)
        .unreachable(1)
        .snapshot()
        .observed("zk-zookeeper")
        .unwrap();
    let pods: Vec<(u32, bool)> = obs.pods.iter().map(|p| (p.ordinal, p.running)).collect();
    assert_eq!(pods, [(1, false), (2, true)]);
}

#[test]
fn a_pod_runs_as_the_id_its_own_list_gives_it() {
    // Mid-step: pod 3 is new (4-list), pods 0..2 still run the 3-list; ids by address.
    let snap = ensemble(3).statefulset(4, 4).new_pod(3).snapshot();
    let ids: Vec<u32> = snap.live.pods.values().map(|p| snap.pod_id(p)).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(snap.live.zk.servers_env, servers_env(4));
}

#[test]
fn snapshot_to_plan_of_a_settled_ensemble() {
    let obs = ensemble(3).snapshot().observed("zk-zookeeper").unwrap();
    let p = plan::plan(&obs, 4).unwrap();
    assert_eq!((p.from, p.to, p.steps.len()), (3, 4, 1));
    assert!(matches!(
        p.steps[0].actions[0],
        Action::ApplySpec { replicas: 4, .. }
    ));
    assert!(
        plan::plan(&obs, 3).unwrap().is_empty(),
        "nothing to do plans nothing"
    );
    // Mid-step 2→3 (pod 2 new on the 3-list, the others still on the 2-list): the planner
    // finishes that step first.
    let obs = ensemble(3)
        .leader(2)
        .pod_list(0, 2)
        .pod_list(1, 2)
        .snapshot()
        .observed("zk-zookeeper")
        .unwrap();
    let p = plan::plan(&obs, 3).unwrap();
    assert_eq!((p.from, p.steps.len(), p.steps[0].resumed), (2, 1, true));
    assert!(p.steps[0]
        .actions
        .iter()
        .all(|a| matches!(a, Action::Restart { ordinal: 0 | 1, .. })));
    // An outdated pod at an unchanged size: a roll-out of its own.
    let obs = ensemble(3)
        .outdated(0)
        .snapshot()
        .observed("zk-zookeeper")
        .unwrap();
    let p = plan::plan(&obs, 3).unwrap();
    assert_eq!((p.steps.len(), p.steps[0].from, p.steps[0].to), (1, 3, 3));
}

#[test]
fn healthy_gate_exact_first_then_tolerates_writes_in_flight() {
    let quiet = ensemble(3);
    assert!(check(conditions::healthy("g", None, None), &quiet, FIRST)
        .unwrap()
        .starts_with("healthy: voters 1, 2, 3, leader 3"));
    let writing = ensemble(3).lagging(0, 40);
    let first = check(conditions::healthy("g", None, None), &writing, FIRST).unwrap_err();
    assert!(first.contains("unhealthy"), "{first}");
    // Writes in flight: the first look at a member vouches for nothing, the next one (its
    // tree not seen to differ) passes.
    let mut gate = conditions::healthy("g", None, None);
    let snap = writing.snapshot();
    let first_seen = (gate.test)(&snap, LATER);
    assert!(
        matches!(&first_seen, Check::NotYet(why) if why.contains("one look only")),
        "a lagging member passed on its first look"
    );
    assert!(matches!((gate.test)(&snap, LATER), Check::Met(..)));
    // Far behind is unhealthy on any look.
    assert!(check(
        conditions::healthy("g", None, None),
        &ensemble(3).lagging(0, 5_000),
        LATER
    )
    .is_err());
    // Fewer znodes than before the step: history lost.
    let before = crate::zk::Baseline {
        znode_count: 5_000,
        leader_zxid: crate::zk::Zxid(1),
    };
    let why = check(conditions::healthy("g", Some(before), None), &quiet, LATER).unwrap_err();
    assert!(why.contains("below"), "{why}");
}

#[test]
fn a_member_follows_only_the_one_leader_synced() {
    let follow = |s: &Scenario| check(conditions::member(0, 1, Expect::Follow, None), s, FIRST);
    assert!(follow(&ensemble(3)).is_ok());
    // The member is the leader itself: synced by definition.
    assert!(follow(&ensemble(3).leader(1)).is_ok());
    assert_eq!(
        follow(&ensemble(3).not_serving(0)).unwrap_err(),
        "not serving"
    );
    assert!(follow(&ensemble(3).unreachable(0))
        .unwrap_err()
        .starts_with("unreachable"));
    let why = follow(&ensemble(3).lagging(0, 5_000)).unwrap_err();
    assert!(
        why.starts_with("zxid 0x") && why.contains("behind leader 3"),
        "{why}"
    );
    let why = follow(&ensemble(3).missing_znodes(0, 600)).unwrap_err();
    assert_eq!(why, "605 znodes, leader has 1205");
    let why = follow(&ensemble(3).synced_followers(1)).unwrap_err();
    assert_eq!(why, "leader 3 counts 1 synced followers of 2 following");
    // Moving leadership: met only once another server leads.
    let moved = |s: &Scenario| check(conditions::member(2, 3, Expect::Follow, Some(3)), s, FIRST);
    assert_eq!(moved(&ensemble(3)).unwrap_err(), "server 3 still leads");
    assert!(moved(&ensemble(3).leader(2)).is_ok());
    // Deferred: up is enough; standalone: must say so.
    assert!(check(
        conditions::member(0, 1, Expect::Deferred, None),
        &ensemble(3).not_serving(0),
        FIRST
    )
    .is_ok());
    assert!(check(
        conditions::member(0, 1, Expect::Standalone, None),
        &ensemble(1),
        FIRST
    )
    .is_ok());
    assert_eq!(
        check(
            conditions::member(0, 1, Expect::Standalone, None),
            &ensemble(3),
            FIRST
        )
        .unwrap_err(),
        "mode follower"
    );
}

#[test]
fn kubernetes_conditions() {
    let recreated = |s: &Scenario| {
        check(
            conditions::recreated("zk-zookeeper-1", 1, "uid-1".into()),
            s,
            FIRST,
        )
    };
    assert_eq!(
        recreated(&ensemble(3)).unwrap_err(),
        "old pod still terminating"
    );
    assert_eq!(
        recreated(&ensemble(3).no_pod(1)).unwrap_err(),
        "no running pod yet"
    );
    assert_eq!(
        recreated(&ensemble(3).recreated(1).pending(1)).unwrap_err(),
        "no running pod yet"
    );
    assert!(recreated(&ensemble(3).recreated(1)).is_ok());
    let gone = |s: &Scenario| {
        check(
            conditions::gone("pod 2 gone", |l| l.pods.contains_key(&2)),
            s,
            FIRST,
        )
    };
    assert_eq!(gone(&ensemble(3)).unwrap_err(), "still there");
    assert!(gone(&ensemble(3).no_pod(2)).is_ok());
    let caught_up = |s: &Scenario| check(conditions::controller_caught_up(), s, FIRST);
    assert!(caught_up(&ensemble(3)).is_ok());
    assert_eq!(
        caught_up(&ensemble(3).controller_behind()).unwrap_err(),
        "status.observedGeneration behind"
    );
}

#[test]
fn healthy_but_one_member_for_a_rebuild() {
    // Whole: met as the full verdict.
    assert!(check(
        conditions::healthy_but("g", 2, Some(3)),
        &ensemble(3),
        FIRST
    )
    .is_ok());
    // Server 2 down: the others are whole around the leader.
    let s = ensemble(3).unreachable(1);
    assert!(check(conditions::healthy("g", None, Some(3)), &s, FIRST).is_err());
    let detail = check(conditions::healthy_but("g", 2, Some(3)), &s, FIRST).unwrap();
    assert!(detail.contains("server 2 left aside"), "{detail}");
    // ... but not when another one is missing too, nor for another member.
    let s = ensemble(5).leader(1).unreachable(1).unreachable(2);
    assert!(check(conditions::healthy_but("g", 2, Some(5)), &s, LATER).is_err());
    let s = ensemble(3).unreachable(1);
    assert!(check(conditions::healthy_but("g", 3, Some(3)), &s, LATER).is_err());
    // The leader counting the down member as synced is not whole either way.
    let s = ensemble(3).not_serving(1).synced_followers(2);
    assert!(check(conditions::healthy_but("g", 2, Some(3)), &s, LATER).is_err());
}

#[test]
fn a_rebuilt_member_needs_a_new_claim() {
    let s = ensemble(3);
    let cond = || conditions::claim_replaced("zk-zookeeper-1", 1, "claim-uid-1".into());
    assert!(check(cond(), &s, FIRST)
        .unwrap_err()
        .contains("old claim is still there"));
    let cond = conditions::claim_replaced("zk-zookeeper-1", 1, "an-older-uid".into());
    assert!(check(cond, &s, FIRST).is_ok());
}

/// Issue 23, defect 3: the `zkscale.io/operation` annotation never decides whether a step is
/// under way (so it can never skip the health gate before a new template): only the cluster's
/// state does, and a settled ensemble with a stale annotation gets the full gate, which a
/// member down fails.
#[test]
fn a_stale_operation_annotation_is_no_step_under_way() {
    use super::template::step_under_way;
    let stale = r#"{"target":4,"step":"3→4","holder":"gone","at":"2026-01-01T00:00:00Z"}"#;
    assert_eq!(step_under_way(&ensemble(3).operation(stale).live()), None);
    // ... nor with a member down: then the gate must refuse, annotation or not.
    let down = ensemble(3).operation(stale).unreachable(1);
    assert_eq!(step_under_way(&down.live()), None);
    let why = check(
        conditions::healthy("before the new template", None, None),
        &down,
        LATER,
    )
    .unwrap_err();
    assert!(why.contains("unhealthy"), "{why}");
    // A step really under way is seen without any annotation.
    let mid = ensemble(3).statefulset(4, 4).new_pod(3);
    assert!(step_under_way(&mid.live()).is_some());
    let mid = ensemble(3).leader(2).pod_list(0, 2).pod_list(1, 2);
    assert!(step_under_way(&mid.live())
        .unwrap()
        .contains("another member list"));
    assert!(step_under_way(&ensemble(3).statefulset(4, 3).live())
        .unwrap()
        .contains("replicas 4"));
    assert!(step_under_way(&ensemble(3).no_pod(2).live())
        .unwrap()
        .contains("no pod"));
    // ... and the planner resumes exactly such a step.
    let obs = mid.snapshot().observed("zk-zookeeper").unwrap();
    assert!(plan::plan(&obs, 3).unwrap().steps[0].resumed);
}

/// Issue 23, defect 5: after a source member was stopped, a failure before its pod exists
/// never leaves it stopped with only the error: without a pod (the StatefulSet not grown) it
/// starts again on its host; with a pod (or replicas grown) the pod goes first (never two
/// servers with one id); with the cluster unreadable, nothing starts and the message says
/// where the member is and how to resume (exit 4).
#[test]
fn a_failure_after_a_source_stopped_moves_it_back_or_says_where_it_is() {
    use super::migrate::{after_stop, stopped_on_host, AfterStop};
    // Two members moved into pods 0 and 1; server 3's pod would be pod 2.
    assert_eq!(
        after_stop(Some(&ensemble(2).live()), 2),
        AfterStop::StartAgain
    );
    // The StatefulSet grew before the error (the write landed, its answer did not).
    assert_eq!(
        after_stop(Some(&ensemble(2).statefulset(3, 3).live()), 2),
        AfterStop::TakeOut
    );
    // Its pod is there already.
    assert_eq!(
        after_stop(Some(&ensemble(2).new_pod(2).live()), 2),
        AfterStop::TakeOut
    );
    assert_eq!(after_stop(None, 2), AfterStop::Unknown);
    let why = stopped_on_host(3, "zk3.example.org", "HTTP 500");
    assert!(
        why.starts_with(
            "server 3 is stopped on its host zk3.example.org; re-run the same command to resume"
        ),
        "{why}"
    );
    assert!(why.contains("HTTP 500"), "{why}");
    let e = super::EngineError::Stopped {
        size: 3,
        reason: why,
    };
    assert_eq!(crate::exit::Exit::of_error(&e), crate::exit::Exit::Stopped);
    assert_eq!(crate::exit::Exit::Stopped as i32, 4);
}

/// Issue 23, item 15: a follower one znode short at the leader's zxid (ZooKeeper left it
/// diverged). One look is not enough to say so (members are asked at different moments), but
/// it keeps the gate shut, a lagging look under writes does not open it, and the third look
/// stops the run at its size naming the pod and the rebuild that replaces its copy.
#[test]
fn a_diverged_follower_keeps_the_gate_shut_then_stops_it_naming_the_rebuild() {
    let diverged = ensemble(3).missing_znodes(1, 1).snapshot();
    // Writes in flight: the same follower seen behind (no comparable point in history).
    let writing = ensemble(3).lagging(1, 40).snapshot();
    let mut cond = conditions::healthy("post-step 2→3", None, Some(3));
    let mut look =
        |snap: &super::snapshot::Snapshot, n: u32| (cond.test)(snap, Look { n, overdue: false });
    let Check::NotYet(why) = look(&diverged, 0) else {
        panic!("a mismatch passed the gate")
    };
    assert!(why.contains("member 2 has"), "{why}");
    let Check::NotYet(why) = look(&writing, 1) else {
        panic!("a lagging look passed a suspect member")
    };
    assert!(why.contains("server 2:"), "{why}");
    assert!(matches!(look(&diverged, 2), Check::NotYet(_)));
    let Check::Stop(e) = look(&diverged, 3) else {
        panic!("a persistent divergence was not confirmed")
    };
    let msg = e.to_string();
    assert!(msg.starts_with("stopped at 3 member(s)"), "{msg}");
    assert!(msg.contains("server 2 (pod zk-zookeeper-1)"), "{msg}");
    assert!(msg.contains("rebuild zk-zookeeper-1`"), "{msg}");
    assert_eq!(
        crate::exit::Exit::of_error(&e),
        crate::exit::Exit::Stopped,
        "{msg}"
    );
}

/// The same evidence refuted by an equal look (sampling skew): the gate passes, never stops.
#[test]
fn a_mismatch_refuted_by_an_equal_look_passes() {
    let skewed = ensemble(3).missing_znodes(0, 1).snapshot();
    let equal = ensemble(3).snapshot();
    let mut cond = conditions::healthy("g", None, None);
    for n in 0..10 {
        assert!(matches!(
            (cond.test)(&skewed, Look { n, overdue: false }),
            Check::NotYet(_)
        ));
        assert!(matches!(
            (cond.test)(&equal, Look { n, overdue: false }),
            Check::Met(..)
        ));
    }
}

/// A rebuild's gate leaves its own member aside, diverged or not: that copy is being replaced.
#[test]
fn a_rebuild_gate_does_not_stop_on_the_member_it_rebuilds() {
    let diverged = ensemble(3).missing_znodes(1, 1).snapshot();
    let mut cond = conditions::healthy_but("g", 2, Some(3));
    for n in 0..5 {
        match (cond.test)(&diverged, Look { n, overdue: false }) {
            Check::Met(_, detail) => assert!(detail.contains("server 2 left aside"), "{detail}"),
            Check::NotYet(why) => panic!("look {n}: {why}"),
            Check::Stop(e) => panic!("look {n}: {e}"),
        }
    }
    // Another member diverged stops it.
    let other = ensemble(3).missing_znodes(0, 1).snapshot();
    let mut cond = conditions::healthy_but("g", 2, Some(3));
    let stops = (0..5).any(|n| {
        matches!(
            (cond.test)(&other, Look { n, overdue: false }),
            Check::Stop(_)
        )
    });
    assert!(stops);
}
