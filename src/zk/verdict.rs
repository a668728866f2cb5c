//! The ensemble health verdict: pure, over one observation per member.
//!
//! Healthy means: every expected voter answers and serves; exactly one leader (a 1-voter
//! ensemble: `Mode: standalone`); the leader counts every other voter as a synced voting
//! follower; every follower is at the leader's zxid with the leader's znode count; and nothing
//! went backwards against the baseline taken before the step.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::parse::{Mntr, Mode, Srvr, Zxid};

/// `myid` / `server.N`; the same numbers as [`crate::model::Member::id`].
pub type ServerId = u32;

pub use crate::plan::quorum;

/// What reaching one member gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Connect, I/O, timeout, whitelist or parse error, as text.
    Unreachable {
        error: String,
    },
    /// `This ZooKeeper instance is not currently serving requests` (to `srvr` or `mntr`).
    NotServing,
    Serving {
        srvr: Srvr,
        mntr: Mntr,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberObservation {
    pub id: ServerId,
    pub probe: Probe,
}

/// The ensemble before a step: a step must not lose znodes or go back in history.
/// (Assumes clients do not delete znodes during the step.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub znode_count: u64,
    pub leader_zxid: Zxid,
}

/// What the verdict checks the observations against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Expected voters: the server ids of the StatefulSet's server list.
    pub voters: Vec<ServerId>,
    pub baseline: Option<Baseline>,
    /// How far (in transactions of the same epoch) a follower may trail the leader. 0: equal
    /// zxids, right for a quiet ensemble; under client writes, members are queried at slightly
    /// different moments, so allow a little.
    pub max_zxid_lag: u64,
    /// The number of voters in the members' own configuration (`zk_quorum_size`), when it is
    /// not `voters.len()`: a verdict on the rest of an ensemble without one member.
    pub config_size: Option<usize>,
}

impl Gate {
    pub fn new(voters: impl IntoIterator<Item = ServerId>) -> Self {
        Gate {
            voters: voters.into_iter().collect(),
            baseline: None,
            max_zxid_lag: 0,
            config_size: None,
        }
    }
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = Some(baseline);
        self
    }
    pub fn with_max_zxid_lag(mut self, lag: u64) -> Self {
        self.max_zxid_lag = lag;
        self
    }
    pub fn with_config_size(mut self, voters: usize) -> Self {
        self.config_size = Some(voters);
        self
    }
}

/// One failed condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    NoVoters,
    NotObserved {
        id: ServerId,
    },
    Unreachable {
        id: ServerId,
        error: String,
    },
    NotServing {
        id: ServerId,
    },
    /// A 1-voter ensemble whose member is not `standalone`.
    NotStandalone {
        id: ServerId,
        mode: Mode,
    },
    /// A voter of a multi-voter ensemble that is neither leader nor follower.
    NotVoting {
        id: ServerId,
        mode: Mode,
    },
    /// `srvr` and `mntr` disagree: the member changed role between the two queries.
    Changing {
        id: ServerId,
        srvr: Mode,
        mntr: Mode,
    },
    NoLeader,
    /// Several members say `Mode: leader`. `real` is the one whose synced followers make a
    /// quorum of the expected voters, when exactly one does.
    MultipleLeaders {
        ids: Vec<ServerId>,
        real: Option<ServerId>,
    },
    LeaderNotAVoter {
        id: ServerId,
    },
    LeaderMetricMissing {
        id: ServerId,
        metric: String,
    },
    /// The leader does not count every other voter as a synced voting follower
    /// (`zk_synced_followers` − `zk_synced_non_voting_followers`).
    SyncedFollowers {
        leader: ServerId,
        synced: u64,
        expected: u64,
    },
    /// Followers the leader syncs but does not let vote: members whose own server list has them
    /// while the leader's does not (a step half done).
    NonVotingFollowers {
        leader: ServerId,
        count: u64,
    },
    /// A member's own server list has another number of voters (`zk_quorum_size`).
    QuorumSize {
        id: ServerId,
        voters: u64,
        expected: u64,
    },
    ZxidMismatch {
        id: ServerId,
        zxid: Zxid,
        leader: ServerId,
        leader_zxid: Zxid,
    },
    ZnodeCountMismatch {
        id: ServerId,
        count: u64,
        leader: ServerId,
        leader_count: u64,
    },
    ZnodeCountBelowBaseline {
        id: ServerId,
        count: u64,
        baseline: u64,
    },
    LeaderZxidBelowBaseline {
        id: ServerId,
        zxid: Zxid,
        baseline: Zxid,
    },
}

struct Ids<'a>(&'a [ServerId]);

impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Failure::*;
        match self {
            NoVoters => write!(f, "no expected voters"),
            NotObserved { id } => write!(f, "member {id} was not observed"),
            Unreachable { id, error } => write!(f, "member {id} unreachable: {error}"),
            NotServing { id } => write!(f, "member {id} is not serving requests (no quorum, or still syncing)"),
            NotStandalone { id, mode } => {
                write!(f, "member {id} is `Mode: {mode}`, expected `standalone` for a 1-member ensemble")
            }
            NotVoting { id, mode } => write!(f, "member {id} is `Mode: {mode}`, expected leader or follower"),
            Changing { id, srvr, mntr } => {
                write!(f, "member {id} changed role between srvr ({srvr}) and mntr ({mntr})")
            }
            NoLeader => write!(f, "no leader"),
            MultipleLeaders { ids, real: Some(real) } => write!(
                f,
                "members {} all say `Mode: leader`; only {real} has a quorum of synced followers",
                Ids(ids)
            ),
            MultipleLeaders { ids, real: None } => write!(
                f,
                "members {} all say `Mode: leader`; not exactly one has a quorum of synced followers",
                Ids(ids)
            ),
            LeaderNotAVoter { id } => write!(f, "leader {id} is not an expected voter"),
            LeaderMetricMissing { id, metric } => write!(f, "leader {id} does not report {metric}"),
            SyncedFollowers { leader, synced, expected } => {
                write!(f, "leader {leader} has {synced} synced voting followers, expected {expected}")
            }
            NonVotingFollowers { leader, count } => write!(
                f,
                "leader {leader} has {count} synced non-voting followers (members not in its server list)"
            ),
            QuorumSize { id, voters, expected } => {
                write!(f, "member {id}'s server list has {voters} voters, expected {expected}")
            }
            ZxidMismatch { id, zxid, leader, leader_zxid } => {
                write!(f, "member {id} is at zxid {zxid}, leader {leader} at {leader_zxid}")
            }
            ZnodeCountMismatch { id, count, leader, leader_count } => {
                write!(f, "member {id} has {count} znodes, leader {leader} has {leader_count}")
            }
            ZnodeCountBelowBaseline { id, count, baseline } => write!(
                f,
                "znode count below baseline: member {id} has {count} znodes, {baseline} before the step (data loss)"
            ),
            LeaderZxidBelowBaseline { id, zxid, baseline } => write!(
                f,
                "leader zxid below baseline: leader {id} at {zxid}, {baseline} before the step (history lost)"
            ),
        }
    }
}

/// One member as the verdict saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberSummary {
    pub id: ServerId,
    pub voter: bool,
    /// `leader`, `follower`, `standalone`, … or `not serving` / `unreachable`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zxid: Option<Zxid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub znode_count: Option<u64>,
    /// Leader only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_followers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub healthy: bool,
    /// The leader (the standalone member of a 1-voter ensemble); `None` if there is none or it
    /// is ambiguous.
    pub leader: Option<ServerId>,
    pub voters: Vec<ServerId>,
    /// The leader's zxid and znode count.
    pub zxid: Option<Zxid>,
    pub znode_count: Option<u64>,
    pub failures: Vec<Failure>,
    pub members: Vec<MemberSummary>,
}

impl Verdict {
    /// One line for humans.
    pub fn summary(&self) -> String {
        let voters = Ids(&self.voters);
        match (self.healthy, self.leader, self.zxid, self.znode_count) {
            (true, Some(leader), Some(zxid), Some(count)) if self.voters.len() == 1 => {
                format!("healthy: standalone member {leader} at zxid {zxid}, {count} znodes")
            }
            (true, Some(leader), Some(zxid), Some(count)) => {
                let followers = self.voters.len() - 1;
                let plural = if followers == 1 { "" } else { "s" };
                format!(
                    "healthy: voters {voters}, leader {leader}, {followers} follower{plural} in sync at zxid {zxid}, \
                     {count} znodes"
                )
            }
            _ => {
                let failures: Vec<String> = self.failures.iter().map(ToString::to_string).collect();
                format!("unhealthy (voters {voters}): {}", failures.join("; "))
            }
        }
    }

    /// The baseline to check the next step against; only from a healthy verdict.
    pub fn baseline(&self) -> Option<Baseline> {
        match (self.healthy, self.znode_count, self.zxid) {
            (true, Some(znode_count), Some(leader_zxid)) => Some(Baseline {
                znode_count,
                leader_zxid,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

fn summarize(obs: &MemberObservation, voter: bool) -> MemberSummary {
    let mut s = MemberSummary {
        id: obs.id,
        voter,
        state: String::new(),
        zxid: None,
        znode_count: None,
        synced_followers: None,
        error: None,
    };
    match &obs.probe {
        Probe::Unreachable { error } => {
            s.state = "unreachable".into();
            s.error = Some(error.clone());
        }
        Probe::NotServing => s.state = "not serving".into(),
        Probe::Serving { srvr, mntr } => {
            s.state = srvr.mode.to_string();
            s.zxid = Some(srvr.zxid);
            s.znode_count = Some(srvr.node_count);
            s.synced_followers = mntr.synced_followers();
        }
    }
    s
}

/// A serving member whose `srvr` and `mntr` agree on its role.
#[derive(Clone, Copy)]
struct Live<'a> {
    id: ServerId,
    srvr: &'a Srvr,
    mntr: &'a Mntr,
}

/// A leader's synced *voting* followers: `zk_synced_followers` counts non-voting ones too.
fn voting_followers(mntr: &Mntr) -> Option<u64> {
    let synced = mntr.synced_followers()?;
    Some(synced.saturating_sub(mntr.synced_non_voting_followers().unwrap_or(0)))
}

/// Whether a follower has caught up with its leader: the one definition of "synced" that the
/// gate, the engine's waits, the planner's input and `status` all use. At the leader's zxid (or
/// within `max_lag` transactions of it in the same epoch, for writes in flight between the two
/// questions; or with nothing to apply since a new leader's election), holding the leader's
/// znodes (less at most `max_lag`: a transaction creates at most one).
pub fn follower_synced(follower: &Srvr, leader: &Srvr, max_lag: u64) -> bool {
    follower.mode == Mode::Follower
        && zxid_caught_up(follower.zxid, leader.zxid, max_lag)
        && follower.node_count.saturating_add(max_lag) >= leader.node_count
}

/// The zxid part of [`follower_synced`].
pub fn zxid_caught_up(follower: Zxid, leader: Zxid, max_lag: u64) -> bool {
    zxid_matches(follower, leader, max_lag).0
}

/// Whether follower zxid `f` matches leader zxid `l`, and whether their znode counts must then be
/// equal (same point in history).
fn zxid_matches(f: Zxid, l: Zxid, max_lag: u64) -> (bool, bool) {
    if f == l {
        return (true, true);
    }
    if f.epoch() == l.epoch() {
        return (l.0.abs_diff(f.0) <= max_lag, false);
    }
    // Right after an election the leader is at (new epoch, 0) while followers that had nothing
    // to apply still show the last zxid of an older epoch, until the first write. Nothing was
    // written since, so their trees must be equal.
    if f < l && l.counter() == 0 {
        return (true, true);
    }
    (false, false)
}

/// Judges an ensemble. Observations of members that are not expected voters are only used to
/// spot a second leader (e.g. an old member still leading an outdated quorum during a step).
pub fn verdict(gate: &Gate, observations: &[MemberObservation]) -> Verdict {
    let mut voters = gate.voters.clone();
    voters.sort_unstable();
    voters.dedup();
    let n = voters.len();
    let is_voter = |id: ServerId| voters.binary_search(&id).is_ok();

    let mut by_id: BTreeMap<ServerId, &MemberObservation> = BTreeMap::new();
    for obs in observations {
        by_id.entry(obs.id).or_insert(obs);
    }
    let members: Vec<MemberSummary> = by_id
        .values()
        .map(|o| summarize(o, is_voter(o.id)))
        .collect();

    let mut failures = Vec::new();
    let mut live: BTreeMap<ServerId, Live<'_>> = BTreeMap::new();
    for (&id, obs) in &by_id {
        if let Probe::Serving { srvr, mntr } = &obs.probe {
            let state = mntr.server_state();
            if state != srvr.mode {
                if is_voter(id) {
                    failures.push(Failure::Changing {
                        id,
                        srvr: srvr.mode.clone(),
                        mntr: state,
                    });
                }
                continue;
            }
            live.insert(id, Live { id, srvr, mntr });
        }
    }

    if n == 0 {
        failures.push(Failure::NoVoters);
    }
    for &id in &voters {
        match by_id.get(&id).map(|o| &o.probe) {
            None => failures.push(Failure::NotObserved { id }),
            Some(Probe::Unreachable { error }) => failures.push(Failure::Unreachable {
                id,
                error: error.clone(),
            }),
            Some(Probe::NotServing) => failures.push(Failure::NotServing { id }),
            Some(Probe::Serving { .. }) => {
                let Some(m) = live.get(&id) else { continue };
                let mode = &m.srvr.mode;
                if n == 1 && *mode != Mode::Standalone {
                    failures.push(Failure::NotStandalone {
                        id,
                        mode: mode.clone(),
                    });
                } else if n > 1 && !matches!(mode, Mode::Leader | Mode::Follower) {
                    failures.push(Failure::NotVoting {
                        id,
                        mode: mode.clone(),
                    });
                }
                if let Some(size) = m.mntr.quorum_size() {
                    let expected = gate.config_size.unwrap_or(n) as u64;
                    if n > 1 && size != expected {
                        failures.push(Failure::QuorumSize {
                            id,
                            voters: size,
                            expected,
                        });
                    }
                }
            }
        }
    }

    // Who leads.
    let claims: Vec<Live<'_>> = live
        .values()
        .filter(|m| m.srvr.mode == Mode::Leader)
        .copied()
        .collect();
    let leader: Option<Live<'_>> = if n == 1 {
        for c in claims.iter().filter(|c| !is_voter(c.id)) {
            failures.push(Failure::LeaderNotAVoter { id: c.id });
        }
        live.get(&voters[0])
            .filter(|m| m.srvr.mode == Mode::Standalone)
            .copied()
    } else if n == 0 {
        None
    } else {
        match claims.len() {
            0 => {
                failures.push(Failure::NoLeader);
                None
            }
            1 => {
                if !is_voter(claims[0].id) {
                    failures.push(Failure::LeaderNotAVoter { id: claims[0].id });
                }
                Some(claims[0])
            }
            _ => {
                let with_quorum: Vec<&Live<'_>> = claims
                    .iter()
                    .filter(|c| is_voter(c.id))
                    .filter(|c| {
                        voting_followers(c.mntr).is_some_and(|s| s as usize + 1 >= quorum(n))
                    })
                    .collect();
                let real = match with_quorum[..] {
                    [only] => Some(*only),
                    _ => None,
                };
                failures.push(Failure::MultipleLeaders {
                    ids: claims.iter().map(|c| c.id).collect(),
                    real: real.map(|r| r.id),
                });
                real
            }
        }
    };

    if let Some(l) = leader {
        if n > 1 {
            match voting_followers(l.mntr) {
                None => failures.push(Failure::LeaderMetricMissing {
                    id: l.id,
                    metric: "zk_synced_followers".into(),
                }),
                Some(synced) if synced != n as u64 - 1 => failures.push(Failure::SyncedFollowers {
                    leader: l.id,
                    synced,
                    expected: n as u64 - 1,
                }),
                Some(_) => {}
            }
            match l.mntr.synced_non_voting_followers() {
                Some(count) if count > 0 => failures.push(Failure::NonVotingFollowers {
                    leader: l.id,
                    count,
                }),
                _ => {}
            }
            for f in voters.iter().filter_map(|id| live.get(id)) {
                if f.srvr.mode != Mode::Follower {
                    continue;
                }
                let (zxid_ok, same_tree) =
                    zxid_matches(f.srvr.zxid, l.srvr.zxid, gate.max_zxid_lag);
                if !zxid_ok {
                    failures.push(Failure::ZxidMismatch {
                        id: f.id,
                        zxid: f.srvr.zxid,
                        leader: l.id,
                        leader_zxid: l.srvr.zxid,
                    });
                } else if same_tree && f.srvr.node_count != l.srvr.node_count {
                    failures.push(Failure::ZnodeCountMismatch {
                        id: f.id,
                        count: f.srvr.node_count,
                        leader: l.id,
                        leader_count: l.srvr.node_count,
                    });
                }
            }
        }
        if let Some(b) = gate.baseline {
            if l.srvr.node_count < b.znode_count {
                failures.push(Failure::ZnodeCountBelowBaseline {
                    id: l.id,
                    count: l.srvr.node_count,
                    baseline: b.znode_count,
                });
            }
            // (e, 0) is a new leader's epoch before its first commit: it names no transaction, and
            // members keep reporting the previous epoch's last zxid, so it proves nothing lost.
            if b.leader_zxid.counter() > 0 && l.srvr.zxid < b.leader_zxid {
                failures.push(Failure::LeaderZxidBelowBaseline {
                    id: l.id,
                    zxid: l.srvr.zxid,
                    baseline: b.leader_zxid,
                });
            }
        }
    }

    Verdict {
        healthy: failures.is_empty(),
        leader: leader.map(|l| l.id),
        voters,
        zxid: leader.map(|l| l.srvr.zxid),
        znode_count: leader.map(|l| l.srvr.node_count),
        failures,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::parse::{parse_mntr, parse_srvr, Served};

    /// A serving member built from srvr/mntr text, the way the servers print them.
    fn member(
        id: ServerId,
        mode: &str,
        zxid: u64,
        nodes: u64,
        leader: Option<(u64, u64, u64)>,
    ) -> MemberObservation {
        let srvr = format!(
            "Zookeeper version: 3.9.3-x, built on 2024-10-17 23:21 UTC\nLatency min/avg/max: 0/0.0/0\n\
             Received: 1\nSent: 0\nConnections: 1\nOutstanding: 0\nZxid: {zxid:#x}\nMode: {mode}\nNode count: {nodes}\n"
        );
        let mut mntr =
            format!("zk_version\t3.9.3-x\nzk_server_state\t{mode}\nzk_znode_count\t{nodes}\n");
        if let Some((synced, non_voting, quorum_size)) = leader {
            mntr += &format!(
                "zk_synced_followers\t{synced}\nzk_synced_non_voting_followers\t{non_voting}\nzk_quorum_size\t{quorum_size}\n"
            );
        }
        let (Served::Serving(srvr), Served::Serving(mntr)) =
            (parse_srvr(&srvr).unwrap(), parse_mntr(&mntr).unwrap())
        else {
            unreachable!()
        };
        MemberObservation {
            id,
            probe: Probe::Serving { srvr, mntr },
        }
    }
    fn leader(id: ServerId, zxid: u64, nodes: u64, synced: u64) -> MemberObservation {
        member(id, "leader", zxid, nodes, Some((synced, 0, 0)))
    }
    fn follower(id: ServerId, zxid: u64, nodes: u64) -> MemberObservation {
        member(id, "follower", zxid, nodes, None)
    }
    fn down(id: ServerId) -> MemberObservation {
        MemberObservation {
            id,
            probe: Probe::Unreachable {
                error: "connection refused".into(),
            },
        }
    }
    fn not_serving(id: ServerId) -> MemberObservation {
        MemberObservation {
            id,
            probe: Probe::NotServing,
        }
    }
    fn kinds(v: &Verdict) -> Vec<String> {
        v.failures
            .iter()
            .map(|f| {
                serde_json::to_value(f).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// Drop the `zk_quorum_size` key the helper writes as 0 for "not reported".
    fn strip_quorum_size(mut o: MemberObservation) -> MemberObservation {
        if let Probe::Serving { mntr, .. } = &mut o.probe {
            let text: String = mntr
                .iter()
                .filter(|(k, _)| *k != "zk_quorum_size")
                .map(|(k, v)| format!("{k}\t{v}\n"))
                .collect();
            let Served::Serving(m) = parse_mntr(&text).unwrap() else {
                unreachable!()
            };
            *mntr = m;
        }
        o
    }
    fn obs(list: Vec<MemberObservation>) -> Vec<MemberObservation> {
        list.into_iter().map(strip_quorum_size).collect()
    }

    #[test]
    fn healthy_three() {
        let o = obs(vec![
            follower(1, 0x1_0000_0005, 9),
            follower(2, 0x1_0000_0005, 9),
            leader(3, 0x1_0000_0005, 9, 2),
        ]);
        let v = verdict(&Gate::new([1, 2, 3]), &o);
        assert!(v.healthy, "{v}");
        assert_eq!(v.leader, Some(3));
        assert_eq!(v.zxid, Some(Zxid(0x1_0000_0005)));
        assert_eq!(
            v.summary(),
            "healthy: voters 1, 2, 3, leader 3, 2 followers in sync at zxid 0x100000005, 9 znodes"
        );
        assert_eq!(
            v.baseline(),
            Some(Baseline {
                znode_count: 9,
                leader_zxid: Zxid(0x1_0000_0005)
            })
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["healthy"], true);
        assert_eq!(json["zxid"], "0x100000005");
        assert_eq!(json["members"][2]["state"], "leader");
    }

    #[test]
    fn standalone() {
        let v = verdict(
            &Gate::new([1]),
            &obs(vec![member(1, "standalone", 0x34, 56, None)]),
        );
        assert!(v.healthy, "{v}");
        assert_eq!(v.leader, Some(1));
        assert_eq!(
            v.summary(),
            "healthy: standalone member 1 at zxid 0x34, 56 znodes"
        );
        // A 1-voter gate over a member that is still part of a quorum.
        let v = verdict(&Gate::new([1]), &obs(vec![leader(1, 0x1_0000_0000, 5, 1)]));
        assert_eq!(kinds(&v), ["not_standalone"]);
        // A multi-voter gate over a member still standalone.
        let v = verdict(
            &Gate::new([1, 2]),
            &obs(vec![
                member(1, "standalone", 0x34, 56, None),
                not_serving(2),
            ]),
        );
        assert_eq!(kinds(&v), ["not_voting", "not_serving", "no_leader"]);
    }

    #[test]
    fn member_down_and_not_serving() {
        let o = obs(vec![
            down(1),
            follower(2, 0x1_0000_0005, 9),
            leader(3, 0x1_0000_0005, 9, 1),
        ]);
        let v = verdict(&Gate::new([1, 2, 3]), &o);
        assert!(!v.healthy);
        assert_eq!(kinds(&v), ["unreachable", "synced_followers"]);
        assert_eq!(
            v.failures[0].to_string(),
            "member 1 unreachable: connection refused"
        );
        assert_eq!(
            v.failures[1].to_string(),
            "leader 3 has 1 synced voting followers, expected 2"
        );
        let v = verdict(
            &Gate::new([1, 2, 3]),
            &[not_serving(1), not_serving(2), not_serving(3)],
        );
        assert_eq!(
            kinds(&v),
            ["not_serving", "not_serving", "not_serving", "no_leader"]
        );
        assert_eq!(v.leader, None);
        assert!(
            v.summary()
                .starts_with("unhealthy (voters 1, 2, 3): member 1 is not serving"),
            "{v}"
        );
        let v = verdict(&Gate::new([1, 2]), &[down(1)]);
        assert_eq!(kinds(&v), ["unreachable", "not_observed", "no_leader"]);
    }

    #[test]
    fn two_leaders_the_one_with_quorum_is_real() {
        // Mixed-config moment: old leader 3 still leads {3}; new quorum {1,2,4} led by 4.
        let o = obs(vec![
            follower(1, 0x2_0000_0001, 9),
            follower(2, 0x2_0000_0001, 9),
            leader(3, 0x1_0000_0007, 9, 0),
            leader(4, 0x2_0000_0001, 9, 2),
        ]);
        let v = verdict(&Gate::new([1, 2, 3, 4]), &o);
        assert_eq!(v.leader, Some(4));
        assert_eq!(
            v.failures,
            [
                Failure::MultipleLeaders {
                    ids: vec![3, 4],
                    real: Some(4)
                },
                Failure::SyncedFollowers {
                    leader: 4,
                    synced: 2,
                    expected: 3
                }
            ]
        );
        assert_eq!(
            v.failures[0].to_string(),
            "members 3, 4 all say `Mode: leader`; only 4 has a quorum of synced followers"
        );
        // Neither has a quorum.
        let o = obs(vec![
            leader(1, 0x1_0000_0001, 9, 1),
            leader(3, 0x1_0000_0007, 9, 1),
        ]);
        let v = verdict(&Gate::new([1, 2, 3, 4]), &o);
        assert_eq!(v.leader, None);
        assert!(v.failures.contains(&Failure::MultipleLeaders {
            ids: vec![1, 3],
            real: None
        }));
    }

    /// Replaces a member's mntr keys (after zk_server_state) with `extra`.
    fn with_mntr(mut o: MemberObservation, extra: &str) -> MemberObservation {
        if let Probe::Serving { srvr, mntr } = &mut o.probe {
            let text = format!("zk_server_state\t{}\n{extra}", srvr.mode);
            let Served::Serving(m) = parse_mntr(&text).unwrap() else {
                unreachable!()
            };
            *mntr = m;
        }
        o
    }

    /// Numbers as ZooKeeper 3.9.3 reported them at the mixed-config moment of a 3 → 4 step:
    /// member 4 started with the 4-list joined leader 3 (3-list) as a non-voting follower, and
    /// `zk_synced_followers` counts it.
    #[test]
    fn mixed_config_moment() {
        let z = 0x1_0000_0021;
        let o = vec![
            with_mntr(follower(1, z, 36), "zk_quorum_size\t3\n"),
            with_mntr(follower(2, z, 36), "zk_quorum_size\t3\n"),
            with_mntr(
                leader(3, z, 36, 0),
                "zk_synced_followers\t3\nzk_synced_non_voting_followers\t1\nzk_quorum_size\t3\n",
            ),
            with_mntr(follower(4, z, 36), "zk_quorum_size\t4\n"),
        ];
        let v = verdict(&Gate::new([1, 2, 3, 4]), &o);
        assert_eq!(
            v.failures,
            [
                Failure::QuorumSize {
                    id: 1,
                    voters: 3,
                    expected: 4
                },
                Failure::QuorumSize {
                    id: 2,
                    voters: 3,
                    expected: 4
                },
                Failure::QuorumSize {
                    id: 3,
                    voters: 3,
                    expected: 4
                },
                Failure::SyncedFollowers {
                    leader: 3,
                    synced: 2,
                    expected: 3
                },
                Failure::NonVotingFollowers {
                    leader: 3,
                    count: 1
                },
            ]
        );
        assert_eq!(
            v.failures[0].to_string(),
            "member 1's server list has 3 voters, expected 4"
        );
        assert_eq!(
            v.failures[4].to_string(),
            "leader 3 has 1 synced non-voting followers (members not in its server list)"
        );
        // Against the old voters only the stray non-voting follower is wrong.
        let v = verdict(&Gate::new([1, 2, 3]), &o);
        assert_eq!(
            v.failures,
            [Failure::NonVotingFollowers {
                leader: 3,
                count: 1
            }]
        );
    }

    #[test]
    fn zxid_rules() {
        let gate = Gate::new([1, 2, 3]);
        // Same epoch, behind: mismatch names both.
        let o = obs(vec![
            follower(1, 0x1_0000_0004, 9),
            follower(2, 0x1_0000_0005, 9),
            leader(3, 0x1_0000_0005, 9, 2),
        ]);
        let v = verdict(&gate, &o);
        assert_eq!(
            v.failures,
            [Failure::ZxidMismatch {
                id: 1,
                zxid: Zxid(0x1_0000_0004),
                leader: 3,
                leader_zxid: Zxid(0x1_0000_0005)
            }]
        );
        assert_eq!(
            v.failures[0].to_string(),
            "member 1 is at zxid 0x100000004, leader 3 at 0x100000005"
        );
        // ... within a tolerated lag (client writes), counts are not compared.
        let o = obs(vec![
            follower(1, 0x1_0000_0004, 8),
            follower(2, 0x1_0000_0005, 9),
            leader(3, 0x1_0000_0005, 9, 2),
        ]);
        assert!(verdict(&gate.clone().with_max_zxid_lag(2), &o).healthy);
        // Leader right after an election (counter 0), followers still at the old epoch's zxid.
        let o = obs(vec![
            follower(1, 0x1_0000_0033, 56),
            follower(2, 0, 56),
            leader(3, 0x2_0000_0000, 56, 2),
        ]);
        assert!(verdict(&gate, &o).healthy);
        // ... but their trees must be equal.
        let o = obs(vec![
            follower(1, 0x1_0000_0033, 56),
            follower(2, 0, 5),
            leader(3, 0x2_0000_0000, 56, 2),
        ]);
        assert_eq!(kinds(&verdict(&gate, &o)), ["znode_count_mismatch"]);
        // An older epoch once the leader wrote in its own: not following this leader.
        let o = obs(vec![
            follower(1, 0x1_0000_0033, 56),
            follower(2, 0x2_0000_0001, 57),
            leader(3, 0x2_0000_0001, 57, 2),
        ]);
        assert_eq!(kinds(&verdict(&gate, &o)), ["zxid_mismatch"]);
        // Equal zxids with different trees.
        let o = obs(vec![
            follower(1, 0x2_0000_0001, 50),
            follower(2, 0x2_0000_0001, 57),
            leader(3, 0x2_0000_0001, 57, 2),
        ]);
        assert_eq!(kinds(&verdict(&gate, &o)), ["znode_count_mismatch"]);
    }

    #[test]
    fn baseline_data_loss() {
        let base = Baseline {
            znode_count: 56,
            leader_zxid: Zxid(0x34),
        };
        // 1→3 jump where the empty pair won: new epoch, so the zxid went *up*; only the count tells.
        let o = obs(vec![
            follower(1, 0x1_0000_0000, 5),
            follower(2, 0x1_0000_0000, 5),
            leader(3, 0x1_0000_0000, 5, 2),
        ]);
        let v = verdict(&Gate::new([1, 2, 3]).with_baseline(base), &o);
        assert_eq!(
            v.failures,
            [Failure::ZnodeCountBelowBaseline {
                id: 3,
                count: 5,
                baseline: 56
            }]
        );
        assert!(v.failures[0]
            .to_string()
            .starts_with("znode count below baseline"));
        assert_eq!(v.baseline(), None);
        // The engine may store a baseline (e.g. in an annotation) and read it back.
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(json, r#"{"znode_count":56,"leader_zxid":"0x34"}"#);
        assert_eq!(serde_json::from_str::<Baseline>(&json).unwrap(), base);
        // History going back.
        let o = obs(vec![member(1, "standalone", 0x20, 56, None)]);
        let v = verdict(&Gate::new([1]).with_baseline(base), &o);
        assert_eq!(kinds(&v), ["leader_zxid_below_baseline"]);
        // Kept.
        let o = obs(vec![
            follower(1, 0x1_0000_0000, 56),
            follower(2, 0x34, 56),
            leader(3, 0x1_0000_0000, 56, 2),
        ]);
        assert!(verdict(&Gate::new([1, 2, 3]).with_baseline(base), &o).healthy);
    }

    #[test]
    fn quorum_size_names_an_outdated_server_list() {
        let o = vec![
            member(1, "follower", 0x1_0000_0005, 9, Some((0, 0, 4))),
            member(2, "follower", 0x1_0000_0005, 9, Some((0, 0, 3))),
            member(3, "leader", 0x1_0000_0005, 9, Some((2, 0, 3))),
        ];
        let v = verdict(&Gate::new([1, 2, 3]), &o);
        assert_eq!(
            v.failures,
            [Failure::QuorumSize {
                id: 1,
                voters: 4,
                expected: 3
            }]
        );
    }

    #[test]
    fn changing_between_queries_and_leader_outside_voters() {
        let mut o = obs(vec![
            follower(1, 0x1_0000_0005, 9),
            leader(2, 0x1_0000_0005, 9, 1),
        ]);
        if let Probe::Serving { srvr, .. } = &mut o[0].probe {
            srvr.mode = Mode::Leader;
        }
        let v = verdict(&Gate::new([1, 2]), &o);
        assert_eq!(
            v.failures,
            [Failure::Changing {
                id: 1,
                srvr: Mode::Leader,
                mntr: Mode::Follower
            }]
        );
        let o = obs(vec![
            follower(1, 0x1_0000_0005, 9),
            follower(2, 0x1_0000_0005, 9),
            leader(9, 0x1_0000_0005, 9, 2),
        ]);
        let v = verdict(&Gate::new([1, 2]), &o);
        assert_eq!(kinds(&v), ["leader_not_a_voter", "synced_followers"]);
        assert!(!verdict(&Gate::new(Vec::<ServerId>::new()), &[]).healthy);
    }
}
