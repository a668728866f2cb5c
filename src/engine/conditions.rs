//! The named conditions the engine waits for (in the spirit of kube-runtime's
//! `wait::conditions`): each is a [`Condition`] the one loop in [`super::wait`] tests.

use crate::cluster::{self, Live};
use crate::plan::Expect;
use crate::zk::{self, Baseline, Diverged, Divergence, Finding, Mode, Probe, Verdict};

use super::snapshot::{Snapshot, WRITE_LAG};
use super::wait::{Check, Condition, Kind};
use super::EngineError;

/// The full health verdict for the StatefulSet's list (see [`zk::verdict`]), compared with
/// `baseline` when given. Exact zxids on the first look; under steady client writes members are
/// asked at slightly different moments, so from the second look on a small lag within the
/// leader's epoch is accepted (znode counts are then held to the baseline, not to each other).
/// Across the looks, a follower whose tree differs from the leader's ([`zk::Divergence`]) keeps
/// the gate shut, and once confirmed stops the run naming the member and its rebuild: a lagging
/// look must not pass a member that ZooKeeper will never bring level.
pub fn healthy<'a>(
    name: &str,
    baseline: Option<Baseline>,
    size: Option<u32>,
) -> Condition<'a, Verdict> {
    let mut divergence = Divergence::new();
    Condition::new(name, true, Kind::Gate { size }, move |snap, look| {
        let lag = if look.n == 0 { 0 } else { WRITE_LAG };
        let v = snap.verdict(baseline, lag);
        let finding = divergence.look(v.leader, &voter_observations(snap), None);
        judge(snap, v, finding, size, None)
    })
}

/// [`healthy`], or healthy but for server `id`: it may be down or out of sync (the member a
/// rebuild replaces), while the rest of the list is whole around one leader.
pub fn healthy_but<'a>(name: &str, id: u32, size: Option<u32>) -> Condition<'a, Verdict> {
    let mut divergence = Divergence::new();
    Condition::new(name, true, Kind::Gate { size }, move |snap, look| {
        let lag = if look.n == 0 { 0 } else { WRITE_LAG };
        let all = snap.verdict(None, lag);
        let finding = divergence.look(all.leader, &voter_observations(snap), Some(id));
        if all.healthy {
            return judge(snap, all, finding, size, None);
        }
        let rest = snap.verdict_without(id, lag);
        if rest.healthy {
            judge(snap, rest, finding, size, Some(id))
        } else if only_about(&all, id) {
            // The member serves and follows, counted synced by the leader (so the verdict
            // without it fails on the leader's count), and only its own tree or zxid is off:
            // the member a rebuild replaces because its copy differs.
            let mut v = all;
            v.failures.clear();
            v.healthy = true;
            judge(snap, v, finding, size, Some(id))
        } else {
            match judge(snap, rest, finding, size, Some(id)) {
                stop @ Check::Stop(_) => stop,
                _ => Check::NotYet(all.summary()),
            }
        }
    })
}

/// Whether every failure of `v` is server `id`'s own tree or zxid against the leader's.
fn only_about(v: &Verdict, id: u32) -> bool {
    !v.failures.is_empty()
        && v.failures.iter().all(|f| {
            matches!(f, zk::Failure::ZnodeCountMismatch { id: x, .. }
                | zk::Failure::ZxidMismatch { id: x, .. } if *x == id)
        })
}

/// The observations of the StatefulSet list's members.
fn voter_observations(snap: &Snapshot) -> Vec<zk::MemberObservation> {
    let voters = snap.live.zk.servers.ids();
    snap.members
        .iter()
        .filter(|(_, id, _)| voters.contains(id))
        .map(|(_, _, m)| m.clone())
        .collect()
}

/// A verdict and the divergence evidence of the same look: met only when healthy with nothing
/// suspect; a confirmed divergence stops the run (exit 4) at the size it is at, whole around
/// the leader, saying which pod to rebuild. `aside`: the member the gate leaves out.
fn judge(
    snap: &Snapshot,
    v: Verdict,
    finding: Finding,
    size: Option<u32>,
    aside: Option<u32>,
) -> Check<Verdict> {
    match finding {
        Finding::Diverged(d) => Check::Stop(EngineError::Stopped {
            size: size.unwrap_or_else(|| snap.live.replicas()),
            reason: diverged_reason(snap, &d),
        }),
        Finding::Unverified(ids) if v.healthy => Check::NotYet(format!(
            "{}; but server(s) {ids:?} seen serving in one look only: looking again to compare their trees",
            v.summary()
        )),
        Finding::Suspect(s) if v.healthy => {
            let s: Vec<String> = s
                .iter()
                .map(|(id, why)| format!("server {id}: {why}"))
                .collect();
            Check::NotYet(format!(
                "{}; but a tree may differ from the leader's, looking again: {}",
                v.summary(),
                s.join("; ")
            ))
        }
        _ if v.healthy => {
            let detail = match aside {
                Some(id) => format!("{} (server {id} left aside)", v.summary()),
                None => v.summary(),
            };
            Check::Met(v, detail)
        }
        _ => Check::NotYet(v.summary()),
    }
}

/// What a confirmed divergence tells the operator. The pod name is `<statefulset>-<ordinal>`
/// from the API server's own objects (names it validated as DNS labels), so it is safe to print
/// as a command.
pub(super) fn diverged_reason(snap: &Snapshot, d: &Diverged) -> String {
    let pod = snap
        .members
        .iter()
        .find(|(_, id, _)| *id == d.id)
        .map(|(ordinal, _, _)| format!("{}-{ordinal}", snap.live.name));
    let what = match &pod {
        Some(pod) => format!("server {} (pod {pod})", d.id),
        None => format!("server {}", d.id),
    };
    let fix = match &pod {
        Some(pod) => format!(
            "replace its copy from the leader with `kubectl zkscale -n {} rebuild {pod}`",
            snap.live.namespace
        ),
        None => format!("replace server {}'s copy from the leader", d.id),
    };
    format!(
        "{what} holds another tree than leader {}, and ZooKeeper does not repair that by itself \
         (the member serves its own copy to its clients): {}. Not healthy: {fix}",
        d.leader, d.why
    )
}

/// The claim of pod `ordinal` is another than the one with `old_uid` (which is gone).
pub fn claim_replaced<'a>(pod: &str, ordinal: u32, old_uid: String) -> Condition<'a, ()> {
    Condition::new(
        format!("{pod} on a new, empty claim"),
        false,
        Kind::Wait,
        move |snap, _| {
            into_check(match snap.live.claim_uids.get(&ordinal) {
                Some(u) if *u != old_uid => Ok(()),
                Some(_) => Err("the old claim is still there".into()),
                None => Err("no claim yet (the old one is being deleted)".into()),
            })
        },
    )
}

/// The member in pod `ordinal` (server `id`) meets `expect` (see [`Expect`]); with
/// `not_leader`, that server must no longer lead.
pub fn member<'a>(
    ordinal: u32,
    id: u32,
    expect: Expect,
    not_leader: Option<u32>,
) -> Condition<'a, ()> {
    let name = match expect {
        Expect::Follow => format!("server {id} follows the leader, synced"),
        Expect::Election => format!("a leader after the election; server {id} in it, synced"),
        Expect::Deferred => format!("server {id} up (waits for the rest of the step)"),
        Expect::Standalone => format!("server {id} serves standalone"),
        Expect::Learner => format!("server {id} follows the leader without a vote, caught up"),
    };
    Condition::new(name, true, Kind::Wait, move |snap, _| {
        let r = match expect {
            Expect::Deferred => match snap.probe(ordinal) {
                Some(Probe::Serving { .. } | Probe::NotServing) => Ok(()),
                Some(Probe::Unreachable { error }) => Err(error.clone()),
                None => Err("no pod".into()),
            },
            Expect::Standalone => match snap.probe(ordinal) {
                Some(Probe::Serving { srvr, .. }) if srvr.mode == Mode::Standalone => Ok(()),
                other => Err(describe(other)),
            },
            // A learner is a forwarding follower like any other (the leader counts it in
            // zk_synced_followers, and in zk_synced_non_voting_followers).
            Expect::Follow | Expect::Election | Expect::Learner => {
                in_sync(snap, ordinal, id, not_leader)
            }
        };
        into_check(r)
    })
}

/// One member serves as leader and it is not server `other`, with every serving follower
/// synced (after `other` left the configuration: a hand-off when it led).
pub fn led_by_another<'a>(other: u32) -> Condition<'a, ()> {
    Condition::new(
        format!("a leader other than server {other}"),
        true,
        Kind::Wait,
        move |snap, _| {
            let leaders = snap.serving_leaders();
            into_check(match leaders.as_slice() {
                [(l, _, _)] if *l == other => Err(format!("server {other} still leads")),
                [(l, _, m)] => {
                    let followers = snap
                        .members
                        .iter()
                        .filter(|(_, _, o)| matches!(&o.probe, Probe::Serving { srvr, .. } if srvr.mode == Mode::Follower))
                        .count() as u64;
                    let synced = m.synced_followers().unwrap_or(0);
                    if synced >= followers {
                        Ok(())
                    } else {
                        Err(format!(
                            "leader {l} counts {synced} synced followers of {followers} following"
                        ))
                    }
                }
                other => Err(format!("{} serving leaders", other.len())),
            })
        },
    )
}

/// The pod in `ordinal` was recreated (another UID than `old_uid`) and runs.
pub fn recreated<'a>(pod: &str, ordinal: u32, old_uid: String) -> Condition<'a, ()> {
    Condition::new(
        format!("{pod} recreated"),
        false,
        Kind::Wait,
        move |snap, _| {
            into_check(match snap.live.pods.get(&ordinal) {
                Some(p) if p.uid != old_uid && p.running => Ok(()),
                Some(p) if p.uid == old_uid => Err("old pod still terminating".into()),
                _ => Err("no running pod yet".into()),
            })
        },
    )
}

/// `present` no longer holds for the live objects (a pod, a claim).
pub fn gone<'a>(
    what: impl Into<String>,
    present: impl Fn(&Live) -> bool + Send + 'a,
) -> Condition<'a, ()> {
    Condition::new(what, false, Kind::Wait, move |snap, _| {
        into_check(if present(&snap.live) {
            Err("still there".into())
        } else {
            Ok(())
        })
    })
}

/// The StatefulSet controller has seen the latest spec, so pods on an older template show as
/// outdated.
pub fn controller_caught_up<'a>() -> Condition<'a, ()> {
    Condition::new(
        "the StatefulSet controller sees the new template",
        false,
        Kind::Wait,
        |snap, _| {
            into_check(if cluster::observed_latest(&snap.live.sts) {
                Ok(())
            } else {
                Err("status.observedGeneration behind".into())
            })
        },
    )
}

fn into_check(r: Result<(), String>) -> Check<()> {
    match r {
        Ok(()) => Check::Met((), String::new()),
        Err(why) => Check::NotYet(why),
    }
}

pub(super) fn describe(probe: Option<&Probe>) -> String {
    match probe {
        None => "no pod".into(),
        Some(Probe::Unreachable { error }) => format!("unreachable: {error}"),
        Some(Probe::NotServing) => "not serving".into(),
        Some(Probe::Serving { srvr, .. }) => format!("mode {}", srvr.mode.as_str()),
    }
}

/// The member follows the one serving leader (or is it) and is synced with it
/// ([`zk::follower_synced`]), and the leader counts every serving follower as synced. `Mode`
/// alone is not enough: during a step an old member can still say `leader` while the others
/// elected another, hence "exactly one".
pub(super) fn in_sync(
    snap: &Snapshot,
    ordinal: u32,
    id: u32,
    not_leader: Option<u32>,
) -> Result<(), String> {
    let leaders = snap.serving_leaders();
    let [(leader, lsrvr, lmntr)] = leaders.as_slice() else {
        return Err(format!("{} serving leaders", leaders.len()));
    };
    if not_leader == Some(*leader) {
        return Err(format!("server {leader} still leads"));
    }
    let followers = snap
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
    match snap.probe(ordinal) {
        Some(Probe::Serving { srvr, .. }) if srvr.mode == Mode::Follower => {
            if zk::follower_synced(srvr, lsrvr, WRITE_LAG) {
                Ok(())
            } else if !zk::zxid_caught_up(srvr.zxid, lsrvr.zxid, WRITE_LAG) {
                Err(format!(
                    "zxid {} behind leader {leader}'s {}",
                    srvr.zxid, lsrvr.zxid
                ))
            } else {
                Err(format!(
                    "{} znodes, leader has {}",
                    srvr.node_count, lsrvr.node_count
                ))
            }
        }
        other => Err(describe(other)),
    }
}
