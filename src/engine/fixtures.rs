//! Scenario builders for the engine's unit tests (in the spirit of controller-rs's
//! `fixtures.rs`): a settled, healthy ensemble in a few words, then one change at a time, so a
//! test reads as its sentence: `ensemble(3).leader(2).lagging(0, 900).snapshot()`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::cluster::{Live, LivePod};
use crate::manifest;
use crate::zk::{parse_mntr, parse_srvr, MemberObservation, Probe, Served};

use super::snapshot::Snapshot;

pub const STS: &str = "zk-zookeeper";
const NS: &str = "ns";
const ZXID: u64 = 0x2_0000_9000;
const NODES: u64 = 1205;

#[derive(Clone)]
enum Answer {
    Leader,
    Follower { behind: u64, nodes_behind: u64 },
    Standalone,
    NotServing,
    Unreachable,
}

#[derive(Clone)]
struct PodFx {
    /// Size of the list the pod started with.
    list: u32,
    current: bool,
    uid: String,
    running: bool,
    deleting: bool,
    answer: Answer,
}

#[derive(Clone)]
pub struct Scenario {
    replicas: u32,
    /// Size of the StatefulSet's list.
    servers: u32,
    pods: BTreeMap<u32, PodFx>,
    operation: Option<String>,
    controller_behind: bool,
    /// Followers the leader reports as synced; `None`: every follower.
    synced_followers: Option<u64>,
}

/// `n` members, settled and healthy: every pod current, started with the `n`-list, the last
/// one leading (a standalone server for `n` = 1), the others following at its zxid.
pub fn ensemble(n: u32) -> Scenario {
    let pods = (0..n)
        .map(|o| {
            let answer = match (n, o + 1 == n) {
                (1, _) => Answer::Standalone,
                (_, true) => Answer::Leader,
                _ => Answer::Follower {
                    behind: 0,
                    nodes_behind: 0,
                },
            };
            let pod = PodFx {
                list: n,
                current: true,
                uid: format!("uid-{o}"),
                running: true,
                deleting: false,
                answer,
            };
            (o, pod)
        })
        .collect();
    Scenario {
        replicas: n,
        servers: n,
        pods,
        operation: None,
        controller_behind: false,
        synced_followers: None,
    }
}

/// The `n`-member list as the chart renders it (pod DNS through the headless Service).
pub fn servers_env(n: u32) -> String {
    (0..n)
        .map(|o| {
            format!(
                "{STS}-{o}.{STS}-headless.{NS}.svc.cluster.local:2888:3888::{}",
                o + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Scenario {
    fn pod(&mut self, ordinal: u32) -> &mut PodFx {
        self.pods
            .get_mut(&ordinal)
            .expect("no such pod in the scenario")
    }

    /// Server `id` leads; every other serving voter follows.
    pub fn leader(mut self, id: u32) -> Self {
        for (o, p) in self.pods.iter_mut() {
            if matches!(p.answer, Answer::Leader | Answer::Follower { .. }) {
                p.answer = if o + 1 == id {
                    Answer::Leader
                } else {
                    Answer::Follower {
                        behind: 0,
                        nodes_behind: 0,
                    }
                };
            }
        }
        self
    }

    /// The follower in `ordinal` trails the leader by `by` transactions (and znodes).
    pub fn lagging(mut self, ordinal: u32, by: u64) -> Self {
        self.pod(ordinal).answer = Answer::Follower {
            behind: by,
            nodes_behind: by,
        };
        self
    }

    /// The follower in `ordinal` is at the leader's zxid but holds `by` znodes fewer.
    pub fn missing_znodes(mut self, ordinal: u32, by: u64) -> Self {
        self.pod(ordinal).answer = Answer::Follower {
            behind: 0,
            nodes_behind: by,
        };
        self
    }

    pub fn not_serving(mut self, ordinal: u32) -> Self {
        self.pod(ordinal).answer = Answer::NotServing;
        self
    }

    pub fn unreachable(mut self, ordinal: u32) -> Self {
        self.pod(ordinal).answer = Answer::Unreachable;
        self
    }

    /// The leader counts only `n` followers as synced.
    pub fn synced_followers(mut self, n: u64) -> Self {
        self.synced_followers = Some(n);
        self
    }

    pub fn no_pod(mut self, ordinal: u32) -> Self {
        self.pods.remove(&ordinal);
        self
    }

    /// A new pod in `ordinal`, started with the StatefulSet's list, not answering yet.
    pub fn new_pod(mut self, ordinal: u32) -> Self {
        let list = self.servers;
        self.pods.insert(
            ordinal,
            PodFx {
                list,
                current: true,
                uid: format!("uid-{ordinal}"),
                running: false,
                deleting: false,
                answer: Answer::Unreachable,
            },
        );
        self
    }

    pub fn recreated(mut self, ordinal: u32) -> Self {
        let p = self.pod(ordinal);
        p.uid = format!("uid-{ordinal}-new");
        self
    }

    pub fn deleting(mut self, ordinal: u32) -> Self {
        self.pod(ordinal).deleting = true;
        self
    }

    pub fn pending(mut self, ordinal: u32) -> Self {
        let p = self.pod(ordinal);
        p.running = false;
        p.answer = Answer::Unreachable;
        self
    }

    /// The pod in `ordinal` started with the `m`-member list.
    pub fn pod_list(mut self, ordinal: u32, m: u32) -> Self {
        self.pod(ordinal).list = m;
        self
    }

    /// The StatefulSet asks for `replicas` pods with the `m`-member list.
    pub fn statefulset(mut self, replicas: u32, m: u32) -> Self {
        self.replicas = replicas;
        self.servers = m;
        self
    }

    pub fn outdated(mut self, ordinal: u32) -> Self {
        self.pod(ordinal).current = false;
        self
    }

    pub fn operation(mut self, op: &str) -> Self {
        self.operation = Some(op.into());
        self
    }

    /// The controller has not seen the latest spec yet.
    pub fn controller_behind(mut self) -> Self {
        self.controller_behind = true;
        self
    }

    pub fn live(&self) -> Live {
        let mut annotations = serde_json::Map::new();
        if let Some(op) = &self.operation {
            annotations.insert(
                crate::cluster::OPERATION_ANNOTATION.into(),
                op.clone().into(),
            );
        }
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {
                "name": STS, "namespace": NS, "generation": 7, "annotations": annotations,
                "labels": {"app.kubernetes.io/name": "zookeeper", "helm.sh/chart": "zookeeper-13.7.4"},
            },
            "spec": {
                "replicas": self.replicas,
                "serviceName": format!("{STS}-headless"),
                "selector": {"matchLabels": {"app.kubernetes.io/name": "zookeeper"}},
                "updateStrategy": {"type": "OnDelete"},
                "template": {"spec": {"containers": [{
                    "name": "zookeeper", "image": "bitnami/zookeeper:3.9.3",
                    "env": [{"name": "ZOO_SERVERS", "value": servers_env(self.servers)}],
                    "volumeMounts": [{"name": "data", "mountPath": "/bitnami/zookeeper"}],
                }]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            },
            "status": {
                "replicas": self.replicas,
                "observedGeneration": if self.controller_behind { 6 } else { 7 },
                "updateRevision": "rev-new",
            },
        }))
        .expect("a StatefulSet");
        let zk = manifest::recognise_live(&sts)
            .expect("recognised")
            .expect("a bitnami ZooKeeper StatefulSet");
        let pods = self
            .pods
            .iter()
            .map(|(&o, p)| {
                let pod = LivePod {
                    ordinal: o,
                    name: format!("{STS}-{o}"),
                    uid: p.uid.clone(),
                    ip: Some(format!("127.100.0.{}", o + 1)),
                    ready: p.running,
                    running: p.running,
                    deleting: p.deleting,
                    // ZOO_SERVERS is in the template: a pod started with another list is from
                    // an older revision.
                    revision: Some(
                        if p.current && p.list == self.servers {
                            "rev-new"
                        } else {
                            "rev-old"
                        }
                        .into(),
                    ),
                    servers_env: Some(servers_env(p.list)),
                    image: Some("bitnami/zookeeper:3.9.3".into()),
                    // The template aside from ZOO_SERVERS (what the revisions' comparison gives).
                    template_current: p.current,
                    reconfig_env: Default::default(),
                };
                (o, pod)
            })
            .collect();
        let claims: std::collections::BTreeMap<u32, String> = self
            .pods
            .keys()
            .map(|o| (*o, format!("data-{STS}-{o}")))
            .collect();
        Live {
            update_revision: Some("rev-new".into()),
            sts,
            zk,
            namespace: NS.into(),
            name: STS.into(),
            pods,
            claim_uids: claims
                .keys()
                .map(|o| (*o, format!("claim-uid-{o}")))
                .collect(),
            claims,
        }
    }

    /// What the engine would see: the objects, and each pod's answers.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::of(self.live(), STS).expect("a snapshot");
        let followers = self
            .pods
            .values()
            .filter(|p| matches!(p.answer, Answer::Follower { .. }))
            .count() as u64;
        let synced = self.synced_followers.unwrap_or(followers);
        snap.members = snap
            .live
            .pods
            .values()
            .map(|pod| {
                let id = snap.pod_id(pod);
                let answer = &self.pods[&pod.ordinal].answer;
                (
                    pod.ordinal,
                    id,
                    observation(id, answer, synced, self.servers),
                )
            })
            .collect();
        snap
    }
}

fn observation(id: u32, answer: &Answer, synced: u64, voters: u32) -> MemberObservation {
    let serving = |mode: &str, zxid: u64, nodes: u64, leader: bool| {
        let srvr = format!(
            "Zookeeper version: 3.9.3-x, built on 2024-10-17 23:21 UTC\nZxid: {zxid:#x}\nMode: {mode}\nNode count: {nodes}\n"
        );
        let mut mntr =
            format!("zk_version\t3.9.3-x\nzk_server_state\t{mode}\nzk_znode_count\t{nodes}\n");
        if leader {
            mntr += &format!(
                "zk_synced_followers\t{synced}\nzk_synced_non_voting_followers\t0\nzk_quorum_size\t{voters}\n"
            );
        }
        let (Served::Serving(srvr), Served::Serving(mntr)) =
            (parse_srvr(&srvr).unwrap(), parse_mntr(&mntr).unwrap())
        else {
            unreachable!("serving answers")
        };
        Probe::Serving { srvr, mntr }
    };
    let probe = match answer {
        Answer::Leader => serving("leader", ZXID, NODES, true),
        Answer::Standalone => serving("standalone", ZXID, NODES, false),
        Answer::Follower {
            behind,
            nodes_behind,
        } => serving(
            "follower",
            ZXID - behind,
            NODES.saturating_sub(*nodes_behind),
            false,
        ),
        Answer::NotServing => Probe::NotServing,
        Answer::Unreachable => Probe::Unreachable {
            error: "connection refused".into(),
        },
    };
    MemberObservation { id, probe }
}
