//! `kubectl zkscale status`: one row per member and the verdict.

use serde::Serialize;

use crate::zk::{self, Mode, Probe, Verdict};

use super::{Engine, EngineError};

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The pod; `-` for a member of the list that runs outside the StatefulSet.
    pub pod: String,
    /// `None` outside the StatefulSet.
    pub ordinal: Option<u32>,
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
    /// Where a member outside the StatefulSet runs: `on host <address> (Service <name>)` during
    /// a migration (the address its Service's EndpointSlice holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
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
                    ordinal: Some(*ordinal),
                    server_id: member.map(|m| m.id).or(Some(*id)),
                    address: member.map(|m| m.quorum_address()),
                    ready: pod.ready,
                    mode,
                    zxid,
                    znode_count: count,
                    synced,
                    version,
                    location: None,
                })
            })
            .collect::<Vec<_>>();
        let mut members = members;
        // Members of the list without a pod: during a migration, the ones still on hosts.
        let in_pods: Vec<u32> = snap.members.iter().map(|(_, id, _)| *id).collect();
        for m in snap.live.zk.servers.members() {
            if in_pods.contains(&m.id) {
                continue;
            }
            let svc = crate::plan::migrate::service_name(self.statefulset(), m.id);
            let names_service = m.host == svc || m.host.starts_with(&format!("{svc}."));
            let location = if names_service {
                match self.target.member_host(&svc).await {
                    Ok(Some(ip)) => format!("on host {ip} (Service {svc})"),
                    Ok(None) => format!("no pod, no host (Service {svc} has no host address)"),
                    Err(e) => format!("on a host (Service {svc}; its address not read: {e})"),
                }
            } else {
                "missing: no pod runs it".to_string()
            };
            members.push(MemberStatus {
                pod: "-".into(),
                ordinal: None,
                server_id: Some(m.id),
                address: Some(m.quorum_address()),
                ready: false,
                mode: "-".into(),
                zxid: None,
                znode_count: None,
                synced: None,
                version: None,
                location: Some(location),
            });
        }
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
