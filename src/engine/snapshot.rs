//! One look at the ensemble: the live Kubernetes objects and, when asked, every member's own
//! answers (`srvr` + `mntr`), with the server id each pod runs as. Every decision of the engine
//! is taken on a fresh [`Snapshot`]; nothing is remembered between them.

use std::collections::BTreeSet;

use crate::cluster::{Live, LivePod};
use crate::model::{self, Addressing, ServerList};
use crate::plan::{Observed, PodState};
use crate::zk::{self, Baseline, Gate, MemberObservation, Mode, Probe, Verdict};

use super::{Engine, EngineError};

/// The Kubernetes objects of one moment, and the members' answers when they were asked.
#[derive(Clone)]
pub struct Snapshot {
    pub live: Live,
    pub addressing: Addressing,
    pub min_server_id: u32,
    /// `(ordinal, id, observation)` for every pod that exists; empty when members were not asked.
    pub members: Vec<(u32, u32, MemberObservation)>,
}

impl Snapshot {
    /// From `live` alone: ids and addressing as the StatefulSet's list and the pods' own lists
    /// give them.
    pub fn of(live: Live, sts_name: &str) -> Result<Snapshot, EngineError> {
        let servers = &live.zk.servers;
        let ordinals: Vec<(u32, &model::Member)> = servers
            .members()
            .iter()
            .filter_map(|m| model::ordinal_of(m, sts_name).map(|o| (o, m)))
            .collect();
        let min_server_id = live
            .zk
            .min_server_id
            .or_else(|| servers.infer_min_server_id(sts_name).ok())
            .unwrap_or(1);
        let addressing = if ordinals.len() == servers.len() {
            Addressing::infer(&ordinals, sts_name)?
        } else {
            // Per-member Services or other hosts: ordinals from ids.
            let by_id: Vec<(u32, &model::Member)> = servers
                .members()
                .iter()
                .filter_map(|m| m.id.checked_sub(min_server_id).map(|o| (o, m)))
                .collect();
            Addressing::infer(&by_id, sts_name)?
        };
        Ok(Snapshot {
            live,
            addressing,
            min_server_id,
            members: Vec::new(),
        })
    }

    /// A pod's server id: its entry in its own list (by address), else what setup.sh gives a
    /// new pod.
    pub fn pod_id(&self, pod: &LivePod) -> u32 {
        pod.servers_env
            .as_deref()
            .and_then(|env| ServerList::parse_env(env).ok())
            .and_then(|list| {
                list.members()
                    .iter()
                    .find(|m| self.addressing.ordinal_of_host(&m.host) == Some(pod.ordinal))
                    .map(|m| m.id)
            })
            .unwrap_or(pod.ordinal + self.min_server_id)
    }

    pub fn obs(&self, ordinal: u32) -> Option<&MemberObservation> {
        self.members
            .iter()
            .find(|(o, _, _)| *o == ordinal)
            .map(|(_, _, m)| m)
    }

    pub fn probe(&self, ordinal: u32) -> Option<&Probe> {
        self.obs(ordinal).map(|o| &o.probe)
    }

    /// Members that serve as leader (or standalone), by their own word: during a step an old
    /// member can still say `leader` while the others elected another.
    pub fn serving_leaders(&self) -> Vec<(u32, &zk::Srvr, &zk::Mntr)> {
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

    /// The health verdict for the StatefulSet's list.
    pub fn verdict(&self, baseline: Option<Baseline>, lag: u64) -> Verdict {
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

    /// The planner's input: each pod's id, its own list (view) and whether it runs; the one
    /// leader and the members synced with it; the pods on an older template.
    pub fn observed(&self, sts_name: &str) -> Result<Observed, EngineError> {
        let live = &self.live;
        let verdict = self.verdict(None, u64::MAX);
        let leaders = self.serving_leaders();
        let leader = verdict.leader.or(match leaders.as_slice() {
            [(id, _, _)] => Some(*id),
            _ => None,
        });
        let leader_srvr = leaders
            .iter()
            .find(|(id, _, _)| Some(*id) == leader)
            .map(|(_, s, _)| *s);
        let mut synced = BTreeSet::new();
        let mut pods = Vec::new();
        for (ordinal, id, obs) in &self.members {
            let p = &live.pods[ordinal];
            if p.deleting {
                continue;
            }
            let view = match &p.servers_env {
                Some(env) => ServerList::parse_env(env)?,
                None => live.zk.servers.clone(),
            };
            let running = matches!(obs.probe, Probe::Serving { .. } | Probe::NotServing);
            if let (Probe::Serving { srvr, .. }, Some(l)) = (&obs.probe, leader_srvr) {
                if Some(*id) == leader || zk::follower_synced(srvr, l, WRITE_LAG) {
                    synced.insert(*id);
                }
            }
            pods.push(PodState {
                ordinal: p.ordinal,
                id: *id,
                view,
                running,
            });
        }
        Ok(Observed {
            servers: live.zk.servers.clone(),
            addressing: self.addressing.clone(),
            min_server_id: self.min_server_id,
            sts_name: sts_name.to_string(),
            replicas: live.replicas(),
            pods,
            leader,
            synced,
            outdated: live
                .pods
                .values()
                .filter(|p| !p.deleting && !live.pod_current(p.ordinal))
                .map(|p| p.ordinal)
                .collect(),
        })
    }
}

/// Largest zxid lag (transactions, same epoch) accepted while clients keep writing: members are
/// asked at slightly different moments.
pub const WRITE_LAG: u64 = 500;

/// How old a look may be and still serve as the first look of the next wait.
const REUSE: std::time::Duration = std::time::Duration::from_millis(200);

impl Engine<'_> {
    /// A fresh snapshot; with `members`, every pod's ZooKeeper is asked too (concurrently:
    /// members are few, and a poll should be short). With `reuse`, the last look that asked
    /// the members serves if it is younger than [`REUSE`] and no write came after it.
    pub(super) async fn snapshot(
        &self,
        members: bool,
        reuse: bool,
    ) -> Result<Snapshot, EngineError> {
        let writes = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        if members && reuse {
            if let Ok(last) = self.last_look.lock() {
                if let Some((at, w, snap)) = last.as_ref() {
                    if *w == writes && at.elapsed() < REUSE {
                        tracing::trace!("look reused");
                        return Ok(snap.clone());
                    }
                }
            }
        }
        let live = self.target.read().await?;
        let mut snap = Snapshot::of(live, self.target.name())?;
        if members {
            let timeouts = zk::Timeouts::default();
            let futs = snap.live.pods.values().map(|pod| {
                let id = snap.pod_id(pod);
                async move {
                    let o = self
                        .target
                        .observe(Some(pod), id, self.opts.connect, timeouts)
                        .await;
                    (pod.ordinal, id, o)
                }
            });
            snap.members = futures::future::join_all(futs).await;
            if let Ok(mut last) = self.last_look.lock() {
                *last = Some((std::time::Instant::now(), writes, snap.clone()));
            }
        }
        Ok(snap)
    }

    /// Records that the engine changed something: looks taken before are stale.
    pub(super) fn wrote(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
