//! `kubectl zkscale status`: one row per member and the verdict.

use serde::Serialize;

use crate::zk::{self, Mode, Probe, Verdict};

use super::{Engine, EngineError};

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub pod: String,
    pub ordinal: u32,
    pub server_id: Option<u32>,
    pub address: Option<String>,
    pub ready: bool,
    pub mode: String,
    pub zxid: Option<String>,
    pub znode_count: Option<u64>,
    /// Synced with the one leader ([`zk::follower_synced`], exact: status asks once); the leader
    /// itself counts as synced.
    pub synced: Option<bool>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub namespace: String,
    pub statefulset: String,
    pub replicas: u32,
    pub servers: String,
    pub members: Vec<MemberStatus>,
    pub verdict: Verdict,
    pub operation: Option<String>,
    /// Whether the admission guard covers the namespace (unknown when RBAC forbids reading it).
    pub guard: crate::guard::Coverage,
    /// How steps would change membership (`--method` as given), and why.
    pub membership: String,
}

impl Engine<'_> {
    pub async fn status(&self) -> Result<Status, EngineError> {
        let snap = self.snapshot(true, true, false).await?;
        let verdict = snap.verdict(None, 0);
        let leaders = snap.serving_leaders();
        let leader = leaders
            .iter()
            .find(|(id, _, _)| Some(*id) == verdict.leader)
            .map(|(_, s, _)| *s);
        let members = snap
            .members
            .iter()
            // Pods only: members outside the StatefulSet are a migration's, which reports them.
            .filter_map(|(ordinal, id, o)| {
                let pod = snap.live.pods.get(ordinal)?;
                let member = snap.live.zk.servers.get(*id);
                let (mode, zxid, count, version, synced) = match &o.probe {
                    Probe::Serving { srvr, .. } => (
                        srvr.mode.as_str().to_string(),
                        Some(srvr.zxid.to_string()),
                        Some(srvr.node_count),
                        Some(srvr.release().to_string()),
                        Some(match srvr.mode {
                            Mode::Leader | Mode::Standalone => true,
                            _ => leader.is_some_and(|l| zk::follower_synced(srvr, l, 0)),
                        }),
                    ),
                    Probe::NotServing => ("not serving".into(), None, None, None, Some(false)),
                    Probe::Unreachable { error } => {
                        (format!("unreachable: {error}"), None, None, None, None)
                    }
                };
                Some(MemberStatus {
                    pod: pod.name.clone(),
                    ordinal: *ordinal,
                    server_id: member.map(|m| m.id).or(Some(*id)),
                    address: member.map(|m| m.quorum_address()),
                    ready: pod.ready,
                    mode,
                    zxid,
                    znode_count: count,
                    synced,
                    version,
                })
            })
            .collect();
        Ok(Status {
            namespace: self.namespace().to_string(),
            statefulset: self.statefulset().to_string(),
            replicas: snap.live.replicas(),
            servers: snap.live.zk.servers_env.clone(),
            members,
            verdict,
            operation: snap.live.operation().map(super::annotation::shown),
            guard: crate::guard::coverage(self.target.client(), self.namespace()).await,
            membership: match &snap.config {
                Some(Ok(look)) => super::method::describe(
                    self.opts.method,
                    look,
                    &snap.live.template_reconfig_env(),
                ),
                Some(Err(why)) => format!("unknown: {why}"),
                None => "unknown".into(),
            },
        })
    }
}
