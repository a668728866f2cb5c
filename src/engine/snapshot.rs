//! One look at the ensemble: the live Kubernetes objects and, when asked, every member's own
//! answers (`srvr` + `mntr`), with the server id each pod runs as. Every decision of the engine
//! is taken on a fresh [`Snapshot`]; nothing is remembered between them.

use std::collections::BTreeSet;

use crate::cluster::{Live, LivePod};
use crate::model::{self, Addressing, ServerList};
use crate::plan::{Observed, PodState};
use crate::zk::session::{self, Permission, Reconfigurable};
use crate::zk::{self, Baseline, Gate, MemberObservation, Mode, Probe, Verdict, ZkError};

use super::method::{past_3829, ConfigLook};

use super::{Engine, EngineError};

/// The Kubernetes objects of one moment, and the members' answers when they were asked.
#[derive(Clone)]
pub struct Snapshot {
    pub live: Live,
    pub addressing: Addressing,
    pub min_server_id: u32,
    /// `(ordinal, id, observation)` for every pod that exists; empty when members were not asked.
    pub members: Vec<(u32, u32, MemberObservation)>,
    /// What the leader says about reconfiguration, when asked (or why it could not be asked).
    pub config: Option<Result<ConfigLook, String>>,
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
        let mut min_server_id = live
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
            match Addressing::infer(&by_id, sts_name) {
                Ok(a) => a,
                // Names that carry the server id (`<sts>-member-<id>`, as `kubectl zkscale
                // migrate` creates them): ids are contiguous from minServerId, the lowest.
                Err(e) => {
                    let lowest = servers.ids().into_iter().min().unwrap_or(1);
                    let min = live.zk.min_server_id.unwrap_or(lowest);
                    let members: Vec<&model::Member> = servers.members().iter().collect();
                    let a = Addressing::infer_by_id(&members, min).map_err(|_| e)?;
                    min_server_id = min;
                    a
                }
            }
        };
        Ok(Snapshot {
            live,
            addressing,
            min_server_id,
            members: Vec::new(),
            config: None,
        })
    }

    /// The committed configuration, when the look asked and the members run with it.
    pub fn committed(&self) -> Option<&ServerList> {
        match &self.config {
            Some(Ok(c)) => c.committed.as_ref().map(|c| &c.servers),
            _ => None,
        }
    }

    /// Every serving member's version is past ZOOKEEPER-3829, or which is not.
    pub fn versions(&self) -> Result<(), String> {
        let old: Vec<String> = self
            .members
            .iter()
            .filter_map(|(_, id, m)| match &m.probe {
                Probe::Serving { srvr, .. } if !past_3829(srvr.release()) => {
                    Some(format!("server {id} runs {}", srvr.release()))
                }
                _ => None,
            })
            .collect();
        if old.is_empty() {
            Ok(())
        } else {
            Err(old.join(", "))
        }
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
        self.verdict_of(None, baseline, lag)
    }

    /// [`Snapshot::verdict`] for the list without server `id`, as if it were not a member (the
    /// members' own configuration still counts it).
    pub fn verdict_without(&self, id: u32, lag: u64) -> Verdict {
        self.verdict_of(Some(id), None, lag)
    }

    fn verdict_of(&self, without: Option<u32>, baseline: Option<Baseline>, lag: u64) -> Verdict {
        let voters: Vec<u32> = self
            .live
            .zk
            .servers
            .ids()
            .into_iter()
            .filter(|v| Some(*v) != without)
            .collect();
        let obs: Vec<MemberObservation> = self
            .members
            .iter()
            .filter(|(_, id, _)| voters.contains(id))
            .map(|(_, _, m)| m.clone())
            .collect();
        let mut gate = Gate::new(voters)
            .with_max_zxid_lag(lag)
            .with_config_size(self.live.zk.servers.len());
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
        let committed = self.committed();
        for (ordinal, id, obs) in &self.members {
            // Members outside the StatefulSet (a migration's hosts) are not the planner's.
            let Some(p) = live.pods.get(ordinal) else {
                continue;
            };
            if p.deleting {
                continue;
            }
            let running = matches!(obs.probe, Probe::Serving { .. } | Probe::NotServing);
            // A running member of a reconfigurable ensemble runs the committed configuration,
            // whatever list it started with; a joiner not in it yet runs its own.
            let view = match (&p.servers_env, committed) {
                (_, Some(c)) if running && c.get(*id).is_some() => c.clone(),
                (Some(env), _) => ServerList::parse_env(env)?,
                (None, _) => live.zk.servers.clone(),
            };
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
            committed: committed.cloned(),
            storage: live.storage(),
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
        config: bool,
        reuse: bool,
    ) -> Result<Snapshot, EngineError> {
        let writes = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        if members && reuse {
            if let Ok(last) = self.last_look.lock() {
                if let Some((at, w, snap)) = last.as_ref() {
                    if *w == writes && at.elapsed() < REUSE && (!config || snap.config.is_some()) {
                        tracing::trace!("look reused");
                        return Ok(snap.clone());
                    }
                }
            }
        }
        let live = self.target.read().await?;
        let mut snap = Snapshot::of(live, self.target.name())?;
        if members {
            let timeouts = zk::Timeouts::default().within(self.opts.timeout);
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
            // Members still on their hosts, under the ordinal their pod will have.
            let external: Vec<(u32, String)> = match self.external.lock() {
                Ok(e) => e.iter().map(|(id, a)| (*id, a.clone())).collect(),
                Err(_) => Vec::new(),
            };
            let in_pods: BTreeSet<u32> = snap.members.iter().map(|(_, id, _)| *id).collect();
            let outside = external
                .into_iter()
                .filter(|(id, _)| !in_pods.contains(id) && *id >= snap.min_server_id)
                .map(|(id, addr)| {
                    let ordinal = id - snap.min_server_id;
                    async move { (ordinal, id, zk::observe_tcp(id, &addr, timeouts).await) }
                });
            snap.members
                .extend(futures::future::join_all(outside).await);
            if config {
                snap.config = Some(self.config_look(&snap).await);
            }
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

impl Engine<'_> {
    /// Asks the serving leader about reconfiguration: whether it is enabled (a `reconfig` that
    /// cannot apply), the committed configuration, and whether this run's identity may change
    /// it. One session, through the same connection kind as the four-letter words.
    async fn config_look(&self, snap: &Snapshot) -> Result<ConfigLook, String> {
        let leaders = snap.serving_leaders();
        let [(leader, srvr, _)] = leaders.as_slice() else {
            return Err(format!("{} serving leaders", leaders.len()));
        };
        let pod = snap
            .members
            .iter()
            .find(|(_, id, _)| id == leader)
            .and_then(|(o, _, _)| snap.live.pods.get(o))
            .ok_or_else(|| format!("leader {leader} has no pod"))?;
        let identity = self.identity().await.map_err(|e| e.to_string())?;
        let tunnel = self
            .target
            .tunnel(pod, self.opts.connect)
            .await
            .map_err(|e| e.to_string())?;
        let addr = tunnel.addr();
        let wait = (zk::Timeouts::default().connect + std::time::Duration::from_secs(5))
            .min(self.opts.timeout);
        let (client, refused) = match session::connect(addr, identity.as_ref(), wait).await {
            Ok(c) => (c, None),
            // A wrong password ends the session: ask the rest anonymously, and say why.
            Err(ZkError::Session { reason, .. })
                if identity.is_some() && reason.contains("authentication") =>
            {
                let c = session::connect(addr, None, wait)
                    .await
                    .map_err(|e| e.to_string())?;
                (
                    c,
                    Some(Permission::No {
                        why: format!(
                            "authentication failed for user {}",
                            identity.as_ref().map_or("", |i| i.user())
                        ),
                    }),
                )
            }
            Err(e) => return Err(e.to_string()),
        };
        let ask = async {
            let reconfigurable = if srvr.mode == Mode::Standalone {
                Reconfigurable::Standalone
            } else {
                session::reconfigurable(&client, addr).await?
            };
            let committed = match reconfigurable {
                Reconfigurable::Yes => Some(session::committed(&client, addr).await?),
                _ => None,
            };
            let permission = match refused {
                Some(p) => p,
                None => session::permission(&client, addr).await?,
            };
            Ok::<_, ZkError>(ConfigLook {
                reconfigurable,
                committed,
                permission,
                versions: snap.versions(),
            })
        };
        match tokio::time::timeout(wait, ask).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the leader did not answer within {wait:?}")),
        }
    }
}
