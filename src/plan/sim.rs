//! The ensemble model the planner runs every candidate step through: pods with the list each
//! started with (its view), who leads, who may lack committed data, elections and outages,
//! following the ZooKeeper behaviour documented in [`super`]. Serving leaders that lack data,
//! or two serving at once, are recorded as violations; the property tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::ServerList;

use super::{quorum, Action, Expect, Observed, PlanError, PodState};

/// The voters of a server list and whether it makes ZooKeeper run standalone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub voters: BTreeSet<u32>,
    pub standalone: bool,
}

impl View {
    pub fn of(list: &ServerList) -> View {
        View {
            voters: list.voters().map(|m| m.id).collect(),
            standalone: list.is_standalone(),
        }
    }
    pub fn quorum(&self) -> usize {
        quorum(self.voters.len())
    }
    pub fn has(&self, id: u32) -> bool {
        self.voters.contains(&id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Down,
    Looking,
    Following(u32),
    Leading,
    Standalone,
}

/// A pod in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    pub ordinal: u32,
    pub id: u32,
    /// The list it started with, and its view.
    pub list: ServerList,
    pub view: View,
    pub state: PeerState,
    /// Holds every committed transaction. False for empty volumes and for servers that were
    /// down or not following while some leader served (it may have committed without them).
    pub up_to_date: bool,
}

/// Abstract ensemble: pods, their views, leadership and who may lack committed data.
/// Elections and joins follow the rules in the module docs; the state is settled after every
/// change. Serving leaders that lack data, or two serving at once, are recorded as violations.
#[derive(Debug, Clone)]
pub struct Ensemble {
    pub(super) pods: BTreeMap<u32, SimMember>,
    pub(super) spec: ServerList,
    pub(super) replicas: u32,
    pub(super) min_server_id: u32,
    pub(super) violations: Vec<String>,
    pub(super) elections: u32,
    pub(super) outages: u32,
    pub(super) serving: Option<u32>,
    /// A restarted member keeps its data (false: it comes back empty, see
    /// [`super::Storage`]).
    pub(super) keeps_data: bool,
}

impl Ensemble {
    /// The model of an observed state. Refuses states the planner must not act on: no leader,
    /// observers, or members that are not synced although they could follow the leader
    /// (they are still syncing). Unsynced members that cannot follow it (their list lacks it,
    /// e.g. mid-step) are taken as LOOKING and lacking data.
    pub fn from_observed(obs: &Observed) -> Result<Ensemble, PlanError> {
        if obs.servers.is_empty() {
            return Err(PlanError::EmptyServerList);
        }
        let has_observer = |l: &ServerList| l.voters().count() != l.len();
        if has_observer(&obs.servers) || obs.pods.iter().any(|p| has_observer(&p.view)) {
            return Err(PlanError::Observers);
        }
        let leader = obs.leader.ok_or(PlanError::NoLeader)?;
        let mut pods = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for p in &obs.pods {
            if !ids.insert(p.id) {
                return Err(PlanError::UnexpectedState(format!(
                    "two pods run server id {}",
                    p.id
                )));
            }
            let view = View::of(&p.view);
            let synced = p.running && obs.synced.contains(&p.id);
            let state = if !p.running || (!view.standalone && !view.has(p.id)) {
                PeerState::Down
            } else if p.id == leader && view.standalone {
                PeerState::Standalone
            } else if p.id == leader {
                PeerState::Leading
            } else if synced {
                if !view.has(leader) {
                    return Err(PlanError::UnexpectedState(format!(
                        "server {} is reported synced with leader {leader}, which is not in its list",
                        p.id
                    )));
                }
                PeerState::Following(leader)
            } else {
                PeerState::Looking
            };
            let sim = SimMember {
                ordinal: p.ordinal,
                id: p.id,
                list: p.view.clone(),
                view,
                state,
                up_to_date: synced || (p.id == leader && p.running),
            };
            if pods.insert(p.ordinal, sim).is_some() {
                return Err(PlanError::UnexpectedState(format!(
                    "two pods with ordinal {}",
                    p.ordinal
                )));
            }
        }
        if !pods.values().any(|p| {
            p.id == leader && matches!(p.state, PeerState::Leading | PeerState::Standalone)
        }) {
            return Err(PlanError::UnexpectedState(format!(
                "leader {leader} has no running pod listing it"
            )));
        }
        let mut e = Ensemble {
            pods,
            spec: obs.servers.clone(),
            replicas: obs.replicas,
            min_server_id: obs.min_server_id,
            violations: Vec::new(),
            elections: 0,
            outages: 0,
            serving: Some(leader),
            keeps_data: obs.storage.keeps_data(),
        };
        let syncing: Vec<u32> = e
            .pods
            .values()
            .filter(|p| p.state == PeerState::Looking && e.can_join(p, leader))
            .map(|p| p.id)
            .collect();
        if !syncing.is_empty() {
            return Err(PlanError::NotSynced { ids: syncing });
        }
        e.settle();
        if e.serving != Some(leader) || !e.violations.is_empty() {
            return Err(PlanError::UnexpectedState(format!(
                "leader {leader} does not hold a quorum of synced followers in its list {}",
                e.violations.join("; ")
            )));
        }
        Ok(e)
    }

    pub fn pods(&self) -> impl Iterator<Item = &SimMember> {
        self.pods.values()
    }
    pub fn spec(&self) -> &ServerList {
        &self.spec
    }
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// Id of the serving leader (or standalone server), if exactly one serves.
    pub fn serving_leader(&self) -> Option<u32> {
        self.serving
    }
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
    /// Leader changes (including re-elections after an outage) so far.
    pub fn elections(&self) -> u32 {
        self.elections
    }
    /// Settled states in which nobody served.
    pub fn outages(&self) -> u32 {
        self.outages
    }

    /// This state as the engine would observe it (for re-planning mid-way).
    pub fn observed(&self, base: &Observed) -> Observed {
        let synced = self
            .pods
            .values()
            .filter(|p| p.up_to_date)
            .filter(|p| match p.state {
                PeerState::Leading | PeerState::Standalone => true,
                PeerState::Following(l) => Some(l) == self.serving,
                _ => false,
            })
            .map(|p| p.id)
            .collect();
        Observed {
            servers: self.spec.clone(),
            addressing: base.addressing.clone(),
            min_server_id: self.min_server_id,
            sts_name: base.sts_name.clone(),
            replicas: self.replicas,
            pods: self
                .pods
                .values()
                .map(|p| PodState {
                    ordinal: p.ordinal,
                    id: p.id,
                    view: p.list.clone(),
                    running: p.state != PeerState::Down,
                })
                .collect(),
            leader: self.serving,
            synced,
            // The model does not track templates; the engine observes them again.
            outdated: BTreeSet::new(),
            committed: None,
            storage: base.storage.clone(),
        }
    }

    /// Executes one action; `observe` sees every settled intermediate state. Returns the
    /// outcome of starts/restarts.
    pub fn apply(
        &mut self,
        action: &Action,
        observe: &mut dyn FnMut(&Ensemble),
    ) -> Result<Option<Expect>, String> {
        match action {
            Action::ApplySpec { replicas, servers } => {
                self.spec = servers.clone();
                self.replicas = *replicas;
                // The controller deletes pods at or above replicas and creates missing ones
                // below it from the new template, with empty volumes.
                self.pods.retain(|&o, _| o < *replicas);
                for o in 0..*replicas {
                    if !self.pods.contains_key(&o) {
                        self.create(o);
                        self.start(o, true);
                    }
                }
                self.settle();
                observe(self);
                Ok(None)
            }
            Action::StartNew { ordinal, id, .. } => {
                let mark = self.elections + self.outages;
                match self.pods.get(ordinal).map(|p| p.state) {
                    None if *ordinal < self.replicas => {
                        self.create(*ordinal);
                        self.start(*ordinal, true);
                    }
                    None => {
                        return Err(format!(
                            "no pod {ordinal} to start (replicas {})",
                            self.replicas
                        ))
                    }
                    Some(PeerState::Down) => self.start(*ordinal, true),
                    Some(_) => {}
                }
                if self.pods[ordinal].id != *id {
                    return Err(format!(
                        "pod {ordinal} gets server id {}, not {id}",
                        self.pods[ordinal].id
                    ));
                }
                self.settle();
                observe(self);
                self.outcome(*ordinal, mark).map(Some)
            }
            Action::Restart { ordinal, id, .. } | Action::MoveLeadership { ordinal, id } => {
                let Some(p) = self.pods.get(ordinal) else {
                    return Err(format!("no pod {ordinal} to restart"));
                };
                if p.id != *id {
                    return Err(format!("pod {ordinal} runs server {}, not {id}", p.id));
                }
                let mark = self.elections + self.outages;
                self.stop(*ordinal);
                self.settle();
                observe(self);
                // Without persistence the pod comes back on an empty volume: it must sync
                // from a leader that has the data before it holds any.
                self.start(*ordinal, !self.keeps_data);
                self.settle();
                observe(self);
                if matches!(action, Action::MoveLeadership { .. }) && self.serving == Some(*id) {
                    return Err(format!(
                        "server {id} is elected again after moving leadership"
                    ));
                }
                self.outcome(*ordinal, mark).map(Some)
            }
            Action::Reconfig { ordinal, id, join } => {
                self.reconfig(*ordinal, *id, *join)?;
                self.settle();
                observe(self);
                Ok(None)
            }
            Action::Remove { ordinal, .. } => {
                if *ordinal < self.replicas {
                    return Err(format!(
                        "remove pod {ordinal} while replicas is {}",
                        self.replicas
                    ));
                }
                if self.pods.remove(ordinal).is_some() {
                    self.settle();
                    observe(self);
                }
                Ok(None)
            }
        }
    }

    /// One `reconfig` (dynamic reconfiguration): the leader's configuration with the member
    /// added (it must be a synced non-voting follower) or removed, refused as ZooKeeper would
    /// (`NewConfigNoQuorum`) unless a quorum of the new voters is synced with the leader. Every
    /// running member adopts it; a removed member stays a non-voting follower until its pod
    /// goes; a removed leader hands leadership to the highest synced voter left.
    fn reconfig(&mut self, ordinal: u32, id: u32, join: bool) -> Result<(), String> {
        let leader = self.serving.ok_or("no serving leader to reconfigure")?;
        let p = self
            .pods
            .get(&ordinal)
            .ok_or_else(|| format!("no pod {ordinal} to reconfigure"))?;
        if p.id != id {
            return Err(format!("pod {ordinal} runs server {}, not {id}", p.id));
        }
        let synced_with = |p: &SimMember, l: u32| {
            p.up_to_date
                && (p.state == PeerState::Following(l)
                    || (p.id == l && p.state == PeerState::Leading))
        };
        let current = self
            .pods
            .values()
            .find(|p| p.id == leader)
            .map(|p| p.list.clone())
            .ok_or("the leader has no pod")?;
        let new = if join {
            if !synced_with(p, leader) {
                return Err(format!(
                    "server {id} is not a synced follower of leader {leader}"
                ));
            }
            let m = self
                .spec
                .get(id)
                .ok_or_else(|| format!("server {id} is not in the StatefulSet's list"))?;
            current
                .with_member_added(m.clone())
                .map_err(|e| e.to_string())?
        } else {
            current.without_member(id).map_err(|e| e.to_string())?
        };
        let view = View::of(&new);
        let synced = self
            .pods
            .values()
            .filter(|p| view.has(p.id) && synced_with(p, leader))
            .count();
        if view.standalone || synced < view.quorum() {
            return Err(format!(
                "NewConfigNoQuorum: {synced} synced of {} voters",
                view.voters.len()
            ));
        }
        let next = if !join && id == leader {
            let next = self
                .pods
                .values()
                .filter(|p| view.has(p.id) && synced_with(p, leader))
                .map(|p| p.id)
                .max()
                .ok_or("no synced voter to hand leadership to")?;
            Some(next)
        } else {
            None
        };
        for p in self
            .pods
            .values_mut()
            .filter(|p| p.state != PeerState::Down)
        {
            p.list = new.clone();
            p.view = view.clone();
            match next {
                Some(next) if p.id == next => p.state = PeerState::Leading,
                Some(next) if p.id == leader || p.state == PeerState::Following(leader) => {
                    p.state = PeerState::Following(next)
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn outcome(&self, ordinal: u32, mark: u32) -> Result<Expect, String> {
        let p = &self.pods[&ordinal];
        Ok(match p.state {
            PeerState::Down => {
                return Err(format!(
                    "server {} would not start: its id is not in its list",
                    p.id
                ))
            }
            PeerState::Looking => Expect::Deferred,
            PeerState::Standalone => Expect::Standalone,
            _ if self.elections + self.outages > mark => Expect::Election,
            _ => Expect::Follow,
        })
    }

    fn create(&mut self, ordinal: u32) {
        let sim = SimMember {
            ordinal,
            id: ordinal + self.min_server_id,
            list: self.spec.clone(),
            view: View::of(&self.spec),
            state: PeerState::Down,
            up_to_date: false,
        };
        self.pods.insert(ordinal, sim);
    }

    fn stop(&mut self, ordinal: u32) {
        if let Some(p) = self.pods.get_mut(&ordinal) {
            p.state = PeerState::Down;
        }
    }

    /// Starts the pod with the template's list; `empty`: a fresh volume.
    fn start(&mut self, ordinal: u32, empty: bool) {
        let spec = self.spec.clone();
        let Some(p) = self.pods.get_mut(&ordinal) else {
            return;
        };
        p.view = View::of(&spec);
        p.list = spec;
        if empty {
            p.up_to_date = false;
        }
        p.state = if p.view.standalone {
            PeerState::Standalone
        } else if p.view.has(p.id) {
            PeerState::Looking
        } else {
            PeerState::Down // ZooKeeper refuses to start when its id is not listed
        };
    }

    /// Would `p` (LOOKING) follow the running leader `leader` (FLE's out-of-election check)?
    pub(super) fn can_join(&self, p: &SimMember, leader: u32) -> bool {
        if p.view.standalone || !p.view.has(leader) {
            return false;
        }
        let support = self
            .pods
            .values()
            .filter(|q| q.ordinal != p.ordinal && p.view.has(q.id))
            .filter(|q| {
                (q.id == leader && q.state == PeerState::Leading)
                    || q.state == PeerState::Following(leader)
            })
            .count();
        support >= p.view.quorum()
    }

    pub(super) fn settle(&mut self) {
        while self.drop_unsupported() || self.join_leaders() || self.elect() {}
        self.account();
    }

    /// Leaders without a quorum of their view step down; their followers start looking.
    fn drop_unsupported(&mut self) -> bool {
        let mut changed = false;
        let leaders: Vec<(u32, View)> = self
            .pods
            .values()
            .filter(|p| p.state == PeerState::Leading)
            .map(|p| (p.id, p.view.clone()))
            .collect();
        for (l, view) in leaders {
            let support = self
                .pods
                .values()
                .filter(|p| view.has(p.id))
                .filter(|p| p.id == l || p.state == PeerState::Following(l))
                .count();
            if support < view.quorum() {
                for p in self.pods.values_mut().filter(|p| p.id == l) {
                    p.state = PeerState::Looking;
                }
                changed = true;
            }
        }
        let leading: BTreeSet<u32> = self
            .pods
            .values()
            .filter(|p| p.state == PeerState::Leading)
            .map(|p| p.id)
            .collect();
        for p in self.pods.values_mut() {
            if let PeerState::Following(l) = p.state {
                if !leading.contains(&l) {
                    p.state = PeerState::Looking;
                    changed = true;
                }
            }
        }
        changed
    }

    /// LOOKING servers join a running leader when their own view allows it.
    fn join_leaders(&mut self) -> bool {
        let leaders: Vec<(u32, bool)> = self
            .pods
            .values()
            .filter(|p| p.state == PeerState::Leading)
            .map(|p| (p.id, p.up_to_date))
            .collect();
        let looking: Vec<u32> = self
            .pods
            .values()
            .filter(|p| p.state == PeerState::Looking)
            .map(|p| p.ordinal)
            .collect();
        for o in looking {
            for &(l, data) in &leaders {
                if self.can_join(&self.pods[&o], l) {
                    let p = self.pods.get_mut(&o).expect("looking pod exists");
                    p.state = PeerState::Following(l);
                    p.up_to_date = data; // syncs to the leader's history
                    return true;
                }
            }
        }
        false
    }

    /// One election round among LOOKING servers: each prefers the best (up to date, id) server
    /// it may vote for; a server preferred by itself and by a quorum of its view leads, and
    /// supporters whose own view sees a quorum follow it.
    fn elect(&mut self) -> bool {
        let looking: Vec<&SimMember> = self
            .pods
            .values()
            .filter(|p| p.state == PeerState::Looking && p.view.has(p.id))
            .collect();
        let key = |p: &SimMember| (p.up_to_date, p.id);
        let pref: BTreeMap<u32, u32> = looking
            .iter()
            .map(|p| {
                let best = looking
                    .iter()
                    .filter(|q| p.view.has(q.id))
                    .max_by_key(|q| key(q))
                    .map_or(p.id, |q| q.id);
                (p.id, best)
            })
            .collect();
        let mut cands: Vec<&SimMember> = looking.clone();
        cands.sort_by_key(|p| std::cmp::Reverse(key(p)));
        for c in cands {
            if pref[&c.id] != c.id {
                continue;
            }
            let sup: Vec<&SimMember> = looking
                .iter()
                .copied()
                .filter(|p| pref[&p.id] == c.id)
                .collect();
            if sup.iter().filter(|p| c.view.has(p.id)).count() < c.view.quorum() {
                continue;
            }
            let (leader, data) = (c.id, c.up_to_date);
            let followers: Vec<u32> = sup
                .iter()
                .filter(|p| p.id != leader)
                .filter(|p| sup.iter().filter(|q| p.view.has(q.id)).count() >= p.view.quorum())
                .map(|p| p.ordinal)
                .collect();
            for p in self.pods.values_mut() {
                if p.id == leader {
                    p.state = PeerState::Leading;
                } else if followers.contains(&p.ordinal) {
                    p.state = PeerState::Following(leader);
                    p.up_to_date = data;
                }
            }
            return true;
        }
        false
    }

    /// Records violations, elections and outages; while an up-to-date leader serves it may
    /// commit, so everyone outside its group may now lack data.
    fn account(&mut self) {
        let serving: Vec<(u32, bool)> = self
            .pods
            .values()
            .filter(|p| matches!(p.state, PeerState::Leading | PeerState::Standalone))
            .map(|p| (p.id, p.up_to_date))
            .collect();
        if serving.len() > 1 {
            let ids: Vec<u32> = serving.iter().map(|s| s.0).collect();
            self.violations.push(format!(
                "split brain: servers {ids:?} serve at the same time"
            ));
        }
        for &(id, data) in &serving {
            if !data {
                self.violations.push(format!(
                    "server {id} serves without all committed data: data loss"
                ));
            }
        }
        let Some(&(leader, data)) = serving.first() else {
            self.outages += 1;
            self.serving = None;
            return;
        };
        if self.serving != Some(leader) {
            self.elections += 1;
            self.serving = Some(leader);
        }
        if data {
            for p in self.pods.values_mut() {
                if p.id != leader && p.state != PeerState::Following(leader) {
                    p.up_to_date = false;
                }
            }
        }
    }

    /// End of a step: replicas and pods match `list`, all run it, one leader, all synced.
    pub fn check_settled(&self, list: &ServerList) -> Result<(), String> {
        if !self.violations.is_empty() {
            return Err(self.violations.join("; "));
        }
        if self.replicas as usize != list.len() || self.pods.len() != list.len() {
            return Err(format!(
                "{} replicas and {} pods for {} servers",
                self.replicas,
                self.pods.len(),
                list.len()
            ));
        }
        let leader = self.serving.ok_or("nobody serves at the end of the step")?;
        for p in self.pods.values() {
            if list.get(p.id).is_none() || !p.list.same_ensemble(list) {
                return Err(format!("pod {} does not run the step's list", p.ordinal));
            }
            let ok = match p.state {
                PeerState::Leading | PeerState::Standalone => p.id == leader,
                PeerState::Following(l) => l == leader,
                _ => false,
            };
            if !ok || !p.up_to_date {
                return Err(format!(
                    "server {} is {:?}, not synced with leader {leader}",
                    p.id, p.state
                ));
            }
        }
        Ok(())
    }
}
