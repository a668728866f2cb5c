//! Rebuilding members (`kubectl zkscale rebuild <pod>…`): a member whose disk is lost or
//! corrupt is recreated with an empty claim and the same server id, and syncs the whole data
//! tree from the leader (a snapshot). Pure: which members, in which order, or why not.
//!
//! Why it is safe when these checks pass: while one member is down the others hold a quorum
//! (n ≥ 3, and the other members synced with the one leader number at least q(n)), so every
//! committed transaction survives on them; the empty member can only join that quorum's leader
//! and receive its state, never form a quorum of its own (one empty member at a time, and the
//! next one only after the previous one is synced). Its id comes from its ordinal (the image's
//! setup.sh gives an empty volume `ordinal + minServerId`), so that mapping must hold for it.

use std::collections::BTreeSet;

use super::{quorum, Observed, PlanError};

/// One member to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rebuild {
    pub ordinal: u32,
    pub id: u32,
}

/// The members in `ordinals` in the order to rebuild them (members that do not run first,
/// then followers, the leader last), or why the ensemble cannot spare them.
pub fn rebuild_order(obs: &Observed, ordinals: &[u32]) -> Result<Vec<Rebuild>, PlanError> {
    let refuse = |why: String| Err(PlanError::Rebuild(why));
    let n = obs.servers.len() as u32;
    let wanted: BTreeSet<u32> = ordinals.iter().copied().collect();
    if wanted.is_empty() {
        return refuse("no member named".into());
    }
    match n {
        0 => return Err(PlanError::EmptyServerList),
        1 => return refuse(
            "a single member holds the only copy of the data: rebuilt empty, it would lose it all"
                .into(),
        ),
        2 => {
            return refuse(format!(
                "while one of 2 members is down the other holds no quorum ({} votes needed): \
                 scale to 3 first (`kubectl zkscale --to 3`), then rebuild",
                quorum(2)
            ))
        }
        _ => {}
    }
    if obs.replicas != n {
        return Err(PlanError::UnexpectedState(format!(
            "a step is under way (replicas {} for a list of {n}): finish it first with `kubectl zkscale --to N`",
            obs.replicas
        )));
    }
    let mut todo = Vec::new();
    for &ordinal in &wanted {
        if ordinal >= n {
            return refuse(format!(
                "pod {}-{ordinal} is not a member: the ensemble has {n}, in pods 0..{}",
                obs.sts_name,
                n - 1
            ));
        }
        let id = ordinal + obs.min_server_id;
        let member = obs
            .servers
            .members()
            .iter()
            .find(|m| obs.addressing.ordinal_of_host(&m.host) == Some(ordinal))
            .or_else(|| obs.servers.get(id));
        match member {
            Some(m) if m.id == id => {}
            Some(m) => {
                return refuse(format!(
                    "pod {}-{ordinal} runs server {}, but an empty pod there starts as server {id} \
                     (ordinal + minServerId {}): it would rejoin as another member",
                    obs.sts_name, m.id, obs.min_server_id
                ))
            }
            None => {
                return refuse(format!(
                    "no member of the list lives in pod {}-{ordinal}",
                    obs.sts_name
                ))
            }
        }
        todo.push(Rebuild { ordinal, id });
    }
    // Any other pod started with another list: a size step is half done.
    if obs.committed.is_none() {
        if let Some(p) = obs.pods.iter().find(|p| {
            p.running && !wanted.contains(&p.ordinal) && !p.view.same_ensemble(&obs.servers)
        }) {
            return Err(PlanError::UnexpectedState(format!(
                "pod {}-{} runs with another member list than the StatefulSet's (a step under way): \
                 finish it first with `kubectl zkscale --to N`",
                obs.sts_name, p.ordinal
            )));
        }
    }
    let leader = obs.leader.ok_or(PlanError::NoLeader)?;
    let running = |o: u32| obs.pods.iter().any(|p| p.ordinal == o && p.running);
    // Down members first (they add redundancy back), then followers, the leader last.
    todo.sort_by_key(|r| (running(r.ordinal), r.id == leader, r.ordinal));
    // Each in turn, the ones before it synced again by then.
    let mut synced = obs.synced.clone();
    for r in &todo {
        let others = synced.iter().filter(|&&id| id != r.id).count();
        if others < quorum(n as usize) {
            let missing: Vec<u32> = obs
                .servers
                .ids()
                .into_iter()
                .filter(|id| *id != r.id && !synced.contains(id))
                .collect();
            return Err(PlanError::NoSpare {
                id: r.id,
                others,
                needed: quorum(n as usize),
                missing,
            });
        }
        synced.insert(r.id);
    }
    Ok(todo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::chart_led_by as ensemble;

    fn down(mut obs: Observed, ordinal: u32) -> Observed {
        let id = ordinal + 1;
        obs.synced.remove(&id);
        for p in obs.pods.iter_mut().filter(|p| p.ordinal == ordinal) {
            p.running = false;
        }
        obs
    }

    fn order(obs: &Observed, ordinals: &[u32]) -> Result<Vec<u32>, String> {
        rebuild_order(obs, ordinals)
            .map(|v| v.iter().map(|r| r.ordinal).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn followers_first_leader_last_down_members_before_all() {
        let obs = ensemble(5, 3);
        assert_eq!(order(&obs, &[2, 0, 4]).unwrap(), [0, 4, 2]);
        assert_eq!(order(&obs, &[2, 2]).unwrap(), [2]);
        let obs = down(ensemble(5, 3), 4);
        assert_eq!(order(&obs, &[2, 4, 1]).unwrap(), [4, 1, 2]);
    }

    #[test]
    fn too_small_to_spare_a_member() {
        assert!(order(&ensemble(1, 1), &[0])
            .unwrap_err()
            .contains("only copy"));
        assert!(order(&ensemble(2, 2), &[0]).unwrap_err().contains("--to 3"));
        assert!(order(&ensemble(3, 3), &[2]).is_ok());
    }

    #[test]
    fn the_others_must_hold_a_quorum() {
        // 3 members, one down: rebuilding it is fine, rebuilding another is not.
        let obs = down(ensemble(3, 3), 0);
        assert_eq!(order(&obs, &[0]).unwrap(), [0]);
        let e = order(&obs, &[1]).unwrap_err();
        assert!(e.contains("not synced: [1]"), "{e}");
        // Both: the down one first; then the ensemble is whole again for the second.
        assert_eq!(order(&obs, &[1, 0]).unwrap(), [0, 1]);
        // 5 members, two down: each of them in turn, but no healthy one before they are back.
        let obs = down(down(ensemble(5, 1), 3), 4);
        assert_eq!(order(&obs, &[3, 4]).unwrap(), [3, 4]);
        assert!(order(&obs, &[1]).is_err());
        // 5 members, three down: no quorum among the rest for any of them.
        let obs = down(down(down(ensemble(5, 1), 2), 3), 4);
        assert!(order(&obs, &[4]).is_err());
    }

    #[test]
    fn names_and_ids() {
        let obs = ensemble(3, 1);
        assert!(order(&obs, &[3]).unwrap_err().contains("not a member"));
        assert!(order(&obs, &[]).unwrap_err().contains("no member"));
        // minServerId says an empty pod 1 would start as server 5, the list has 2 there.
        let mut obs = ensemble(3, 1);
        obs.min_server_id = 4;
        assert!(order(&obs, &[1])
            .unwrap_err()
            .contains("rejoin as another member"));
    }

    #[test]
    fn refused_mid_step_or_without_a_leader() {
        let mut obs = ensemble(3, 1);
        obs.replicas = 4;
        assert!(order(&obs, &[1]).unwrap_err().contains("under way"));
        let mut obs = ensemble(3, 1);
        obs.pods[0].view = obs.servers.without_member(3).unwrap();
        assert!(order(&obs, &[1]).unwrap_err().contains("under way"));
        // The pod to rebuild may be the one with the odd list: it comes back with the current one.
        assert!(order(&obs, &[0]).is_ok());
        let mut obs = ensemble(3, 1);
        obs.leader = None;
        assert_eq!(rebuild_order(&obs, &[1]).unwrap_err(), PlanError::NoLeader);
    }
}
