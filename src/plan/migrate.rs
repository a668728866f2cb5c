//! Migrating an ensemble from hosts into a StatefulSet (`kubectl zkscale migrate`). Pure: the
//! source members and the target, whether the move can be made, in which order, the server list
//! every member runs with, and the chart values that render the result again.
//!
//! Each member gets its own Service (`<statefulset>-member-<id>`), first pointing at its host,
//! then at the pod that carries its id. Every member's list names the Services, so a move
//! changes where one name leads and no member's configuration. One member moves at a time: its
//! source stops, the others (n − 1 ≥ q(n) of them) keep the quorum, and its pod starts empty
//! and can only join that quorum's leader and receive its state.
//!
//! The order is forced by the StatefulSet: it adds pods by ordinal, and an empty pod's id is
//! `ordinal + minServerId`, so members move by ascending id. "Followers first, the leader last"
//! holds when the leader has the highest id; otherwise the leader's move costs an election where
//! it stands, and the plan says how many to expect.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use super::{quorum, PlanError};
use crate::model::{Member, Role, ServerList};

/// The ports of a member's Service, as the chart's pods listen: client, quorum, election.
pub const PORTS: [(&str, u16); 3] = [
    ("tcp-client", 2181),
    ("tcp-follower", 2888),
    ("tcp-election", 3888),
];

/// One member of the source ensemble, where it runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub id: u32,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub client_port: u16,
    /// The address the cluster reaches the host at, when it is not `host` as resolved where
    /// zkscale runs (NAT, a separate service network): its Service's EndpointSlice holds it.
    pub cluster_ip: Option<IpAddr>,
}

impl Source {
    /// `host:port` of its client port, where zkscale asks it `srvr` and `mntr`.
    pub fn client_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.client_port)
        } else {
            format!("{}:{}", self.host, self.client_port)
        }
    }
}

/// Where a member's Service sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The source host (an EndpointSlice with its address); ports in [`PORTS`] order.
    Host { ip: IpAddr, ports: [u16; 3] },
    /// The pod that carries the member's id.
    Pod { pod: String },
}

/// A member's Service: its name and the address every member's list gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberService {
    pub id: u32,
    pub name: String,
    pub host: String,
}

/// The Service that carries member `id`'s address: `<statefulset>-member-<id>`.
pub fn service_name(statefulset: &str, id: u32) -> String {
    format!("{statefulset}-member-{id}")
}

/// Sources from `--from` entries `id=host:quorumPort:electionPort[:clientPort]` (several per
/// argument with `,`).
pub fn parse_from(entries: &[String]) -> Result<Vec<Source>, PlanError> {
    let bad = |e: &str, why: &str| {
        PlanError::Migrate(format!(
            "--from `{e}`: {why} (expected id=host:quorumPort:electionPort[:clientPort])"
        ))
    };
    let mut out = Vec::new();
    for e in entries.iter().flat_map(|a| a.split(',')).map(str::trim) {
        if e.is_empty() {
            continue;
        }
        let (id, addr) = e.split_once('=').ok_or_else(|| bad(e, "no `=`"))?;
        let id: u32 = id
            .trim()
            .parse()
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| bad(e, "the id is not a number from 1"))?;
        // An IPv6 host in brackets: [::1]:2888:3888
        let (host, rest) = match addr.strip_prefix('[') {
            Some(r) => r
                .split_once("]:")
                .map(|(h, p)| (h.to_string(), p))
                .ok_or_else(|| bad(e, "unclosed `[`"))?,
            None => addr
                .split_once(':')
                .map(|(h, p)| (h.to_string(), p))
                .ok_or_else(|| bad(e, "no ports"))?,
        };
        if host.is_empty() {
            return Err(bad(e, "empty host"));
        }
        let ports: Vec<u16> = rest
            .split(':')
            .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(e, "a port is not a number from 1 to 65535"))?;
        let (q, el, c) = match ports.as_slice() {
            [q, el] => (*q, *el, PORTS[0].1),
            [q, el, c] => (*q, *el, *c),
            _ => return Err(bad(e, "two or three ports")),
        };
        out.push(Source {
            id,
            host,
            quorum_port: q,
            election_port: el,
            client_port: c,
            cluster_ip: None,
        });
    }
    Ok(out)
}

/// Applies `--host-ip ID=IP` entries (several per argument with `,`) to `sources`.
pub fn with_cluster_ips(
    mut sources: Vec<Source>,
    entries: &[String],
) -> Result<Vec<Source>, PlanError> {
    for e in entries.iter().flat_map(|a| a.split(',')).map(str::trim) {
        if e.is_empty() {
            continue;
        }
        let bad =
            |why: &str| PlanError::Migrate(format!("--host-ip `{e}`: {why} (expected ID=IP)"));
        let (id, ip) = e.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| bad("the id is not a number"))?;
        let ip: IpAddr = ip.trim().parse().map_err(|_| bad("not an IP address"))?;
        let s = sources
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| bad("no source member with that id"))?;
        s.cluster_ip = Some(ip);
    }
    Ok(sources)
}

/// Why the API server would refuse `ip` in an EndpointSlice (and the cluster could not reach
/// it anyway), if it would.
pub fn endpoint_refusal(ip: IpAddr) -> Option<&'static str> {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("the unspecified address")
    } else if link_local {
        Some("a link-local address")
    } else {
        None
    }
}

/// Sources from a zoo.cfg: its `server.N=` lines, the client port from each line's `;[addr:]port`
/// or else the file's `clientPort`.
pub fn sources_from_zoo_cfg(text: &str) -> Result<Vec<Source>, PlanError> {
    let list = ServerList::parse_zoo_cfg(text)?;
    let default_client = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("clientPort="))
        .find_map(|v| v.trim().parse::<u16>().ok())
        .unwrap_or(PORTS[0].1);
    list.members()
        .iter()
        .map(|m| {
            if m.role == Some(Role::Observer) {
                return Err(PlanError::Migrate(format!(
                    "server.{} is an observer: only participants are migrated",
                    m.id
                )));
            }
            let client_port = match &m.client {
                Some(c) => c
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .ok_or_else(|| {
                        PlanError::Migrate(format!("server.{}: client part `{c}`", m.id))
                    })?,
                None => default_client,
            };
            Ok(Source {
                id: m.id,
                host: m.host.clone(),
                quorum_port: m.peer_port,
                election_port: m.election_port,
                client_port,
                cluster_ip: None,
            })
        })
        .collect()
}

/// The source ensemble and the StatefulSet it moves into.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub statefulset: String,
    pub namespace: String,
    pub cluster_domain: String,
    /// Every member of the ensemble in the StatefulSet, ascending: the order of the moves.
    pub ids: Vec<u32>,
    /// The members on hosts, by ascending id (for a standalone source, the one server).
    pub sources: Vec<Source>,
    /// The source is one standalone server: it becomes the highest of three members, the two
    /// others starting as empty pods, before it moves itself.
    pub standalone: bool,
}

impl Layout {
    /// Checks what a migration needs of the source: at least 3 members (one of them is away
    /// during each move), unique ids that map to ordinals (contiguous from the lowest, which is
    /// `minServerId`), and Service names Kubernetes accepts.
    pub fn new(
        mut sources: Vec<Source>,
        statefulset: &str,
        namespace: &str,
        cluster_domain: &str,
    ) -> Result<Layout, PlanError> {
        let refuse = |why: String| Err(PlanError::Migrate(why));
        sources.sort_by_key(|s| s.id);
        let ids: Vec<u32> = sources.iter().map(|s| s.id).collect();
        if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
            return refuse(format!("server ids {ids:?} are not unique"));
        }
        match ids.len() {
            0 => return refuse("no source members (give --from or --from-zoo-cfg)".into()),
            1 => {
                return Layout::standalone(
                    sources.remove(0),
                    statefulset,
                    namespace,
                    cluster_domain,
                )
            }
            2 => {
                return refuse(format!(
                    "while one of 2 members moves the other holds no quorum ({} votes needed): \
                     grow the source to 3 members first",
                    quorum(2)
                ))
            }
            _ => {}
        }
        let min = ids[0];
        if let Some(w) = ids.windows(2).find(|w| w[1] != w[0] + 1) {
            return refuse(format!(
                "server ids {ids:?} have a gap after {}: a StatefulSet gives an empty pod the id \
                 ordinal + minServerId, so ids must be contiguous from the lowest ({min}); \
                 renumbering members is not a move (their data is tied to their ids)",
                w[0]
            ));
        }
        Layout {
            statefulset: statefulset.to_string(),
            namespace: namespace.to_string(),
            cluster_domain: cluster_domain.to_string(),
            ids,
            sources,
            standalone: false,
        }
        .checked()
    }

    /// A standalone server (one process, no quorum): it cannot keep serving while it moves, and
    /// its data can reach a pod only through a quorum. So it becomes server `id`, the highest of
    /// three (`id − 2` and `id − 1` start as empty pods and can never outvote it: one of them
    /// waits for it, the other joins its quorum), then moves like any member. The one restart
    /// that turns it into a member is the downtime; its id must be ≥ 3.
    pub fn standalone(
        source: Source,
        statefulset: &str,
        namespace: &str,
        cluster_domain: &str,
    ) -> Result<Layout, PlanError> {
        let id = source.id;
        if id < 3 {
            return Err(PlanError::Migrate(format!(
                "a standalone source becomes the highest of 3 members (the two empty pods take the \
                 ids below it): give it id 3 or more (`--from 3=...`), not {id}"
            )));
        }
        Layout {
            statefulset: statefulset.to_string(),
            namespace: namespace.to_string(),
            cluster_domain: cluster_domain.to_string(),
            ids: vec![id - 2, id - 1, id],
            sources: vec![source],
            standalone: true,
        }
        .checked()
    }

    fn checked(self) -> Result<Layout, PlanError> {
        let longest = self.service(self.ids[self.ids.len() - 1]).name;
        if longest.len() > 63 {
            return Err(PlanError::Migrate(format!(
                "Service name {longest} is longer than 63 characters"
            )));
        }
        Ok(self)
    }

    pub fn min_server_id(&self) -> u32 {
        self.ids[0]
    }

    pub fn size(&self) -> u32 {
        self.ids.len() as u32
    }

    /// The pod that carries server `id`.
    pub fn ordinal(&self, id: u32) -> u32 {
        id - self.min_server_id()
    }

    pub fn pod(&self, id: u32) -> String {
        format!("{}-{}", self.statefulset, self.ordinal(id))
    }

    pub fn source(&self, id: u32) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    pub fn service(&self, id: u32) -> MemberService {
        let name = service_name(&self.statefulset, id);
        let host = format!(
            "{name}.{}.svc.{}",
            self.namespace,
            self.cluster_domain.trim_end_matches('.')
        );
        MemberService { id, name, host }
    }

    /// The list every member runs with, sources and pods alike: the Services, the chart's ports.
    pub fn servers(&self) -> ServerList {
        let members = self
            .ids
            .iter()
            .map(|&id| Member::new(id, self.service(id).host, PORTS[1].1, PORTS[2].1))
            .collect();
        ServerList::from_members(members).expect("ids checked unique in Layout::new")
    }

    /// The member whose pod comes next when the StatefulSet has `replicas` pods (they carry
    /// the lowest ids); `None` when all are in pods.
    pub fn next(&self, replicas: u32) -> Option<u32> {
        self.ids.get(replicas as usize).copied()
    }

    /// Whether server `id` in a source's own list names its Service (any of the names cluster
    /// DNS answers for it).
    pub fn names_service(&self, member: &Member) -> bool {
        let svc = self.service(member.id);
        let ns = &self.namespace;
        let short = [
            svc.name.clone(),
            format!("{}.{ns}", svc.name),
            format!("{}.{ns}.svc", svc.name),
            svc.host.clone(),
        ];
        short.iter().any(|h| h.eq_ignore_ascii_case(&member.host))
            && member.peer_port == PORTS[1].1
            && member.election_port == PORTS[2].1
    }

    /// What is wrong with a source member's own list (its `conf`), if anything: it must hold the
    /// same ids, each naming its Service, or a move would change its configuration.
    pub fn check_source_list(&self, id: u32, list: &ServerList) -> Result<(), String> {
        let want: BTreeSet<u32> = self.ids.iter().copied().collect();
        let have: BTreeSet<u32> = list.ids().into_iter().collect();
        if want != have {
            return Err(format!(
                "server {id} runs with ids {have:?}, the migration moves {want:?}"
            ));
        }
        let wrong: Vec<String> = list
            .members()
            .iter()
            .filter(|m| !self.names_service(m))
            .map(|m| {
                format!(
                    "server.{}={}:{}:{}",
                    m.id, m.host, m.peer_port, m.election_port
                )
            })
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "server {id} runs with {} instead of the members' Services",
                wrong.join(", ")
            ))
        }
    }

    /// The zoo.cfg lines the source must run with before the first move: the `server.N=`
    /// lines, and quorum on all IPs (a member's own entry now names a Service, whose address is
    /// not the host's own; a host that cannot bind it cannot take part).
    pub fn source_lines(&self) -> Vec<String> {
        self.servers()
            .members()
            .iter()
            .map(|m| format!("server.{}={}", m.id, m.quorum_address()))
            .chain(["quorumListenOnAllIPs=true".to_string()])
            .chain(self.standalone.then(|| {
                format!(
                    "# and `{}` in dataDir/myid: the standalone becomes server {}",
                    self.ids[2], self.ids[2]
                )
            }))
            .collect()
    }

    /// Elections the remaining moves cost, from `replicas` pods on, with `leader` leading: one
    /// each time the member that moves leads. After an election the highest id among the others
    /// is assumed to lead (ZooKeeper's vote order at equal zxids).
    pub fn elections(&self, replicas: u32, leader: Option<u32>) -> u32 {
        let ids = &self.ids;
        let mut current = leader;
        let mut n = 0;
        for &id in ids.iter().skip(replicas as usize) {
            if current == Some(id) {
                n += 1;
                current = ids.iter().copied().filter(|&i| i != id).max();
            }
        }
        n
    }

    /// Chart values that render the migrated StatefulSet again: the size, the ids, quorum on all
    /// IPs, and the Services (kept by the release through `extraDeploy`). The member list itself
    /// is not a chart value: zkscale's post-renderer keeps the live one (it names the Services).
    pub fn values(&self) -> String {
        let mut v = format!(
            "replicaCount: {}\nminServerId: {}\nlistenOnAllIPs: true\nextraDeploy:\n",
            self.size(),
            self.min_server_id()
        );
        for &id in &self.ids {
            let svc = self.service(id);
            v.push_str(&format!(
                "  - apiVersion: v1\n    kind: Service\n    metadata:\n      name: {}\n      \
                 labels:\n        zkscale.io/migration: {}\n        zkscale.io/server-id: \"{}\"\n    \
                 spec:\n      publishNotReadyAddresses: true\n      selector:\n        \
                 statefulset.kubernetes.io/pod-name: {}\n      ports:\n",
                svc.name,
                self.statefulset,
                id,
                self.pod(id)
            ));
            for (name, port) in PORTS {
                v.push_str(&format!(
                    "        - {{ name: {name}, port: {port}, targetPort: {port} }}\n"
                ));
            }
        }
        v
    }
}

/// What `migrate plan` shows: every member, where it is, the order and the elections to expect.
#[derive(Debug, Clone, Serialize)]
pub struct MigratePlan {
    pub layout: Layout,
    /// Members already in pods (the lowest ids).
    pub moved: Vec<u32>,
    /// The moves left, in order.
    pub order: Vec<u32>,
    pub leader: Option<u32>,
    pub elections: u32,
    /// `ZOO_SERVERS` for the StatefulSet (and the `server.N=` lines for the sources).
    pub servers_env: String,
    pub source_lines: Vec<String>,
    /// What the namespace's NetworkPolicies would block between the hosts and the pods, and
    /// the chart values that admit them (see [`super::netpol`]); `None`: nothing blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<String>,
}

impl MigratePlan {
    /// `leader`: the member leading a quorum now, if one does (a standalone source serving
    /// alone leads none: it has yet to become a member, which costs an election).
    pub fn new(layout: Layout, replicas: u32, leader: Option<u32>) -> Result<Self, PlanError> {
        if replicas > layout.size() {
            return Err(PlanError::Migrate(format!(
                "{} has {replicas} replicas, more than the {} members to move",
                layout.statefulset,
                layout.size()
            )));
        }
        let ids = layout.ids.clone();
        Ok(MigratePlan {
            moved: ids[..replicas as usize].to_vec(),
            order: ids[replicas as usize..].to_vec(),
            leader,
            elections: match (layout.standalone, leader) {
                // Forming the quorum of three elects the former standalone (it has the data),
                // whose own move then costs one more.
                (true, None) => 1 + layout.elections(replicas, layout.ids.last().copied()),
                _ => layout.elections(replicas, leader),
            },
            servers_env: layout.servers().to_env(),
            source_lines: layout.source_lines(),
            network_policy: None,
            layout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(ids: &[u32]) -> Vec<Source> {
        ids.iter()
            .map(|&id| Source {
                id,
                host: format!("10.0.0.{id}"),
                quorum_port: 2888,
                election_port: 3888,
                client_port: 2181,
                cluster_ip: None,
            })
            .collect()
    }

    fn layout(ids: &[u32]) -> Result<Layout, PlanError> {
        Layout::new(sources(ids), "zk", "prod", "cluster.local")
    }

    #[test]
    fn from_entries_and_zoo_cfg() {
        let s = parse_from(&["1=10.0.0.1:2888:3888, 2=h2:2888:3888:2182".into()]).unwrap();
        assert_eq!(s[0].client_port, 2181);
        assert_eq!(s[1].host, "h2");
        assert_eq!(s[1].client_port, 2182);
        assert_eq!(s[0].client_addr(), "10.0.0.1:2181");
        let v6 = parse_from(&["3=[fd00::3]:2888:3888".into()]).unwrap();
        assert_eq!(v6[0].host, "fd00::3");
        assert_eq!(v6[0].client_addr(), "[fd00::3]:2181");
        for bad in [
            "x=h:1:2",
            "0=h:1:2",
            "1=h",
            "1=h:1",
            "1=h:1:2:3:4",
            "1=:1:2",
            "1=h:0:2",
            "h:1:2",
        ] {
            assert!(parse_from(&[bad.into()]).is_err(), "{bad}");
        }
        let cfg = "tickTime=2000\nclientPort=2191\nserver.1=a:2888:3888\n\
                   server.2=b:2888:3888:participant;0.0.0.0:2182\nserver.3=c:2888:3888\n";
        let s = sources_from_zoo_cfg(cfg).unwrap();
        assert_eq!(
            s.iter().map(|s| s.client_port).collect::<Vec<_>>(),
            [2191, 2182, 2191]
        );
        assert!(sources_from_zoo_cfg("server.1=a:1:2:observer\n").is_err());

        let s = with_cluster_ips(s, &["1=198.18.0.1, 3=fd00::3".into()]).unwrap();
        assert_eq!(s[0].cluster_ip, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(s[1].cluster_ip, None);
        assert_eq!(s[2].cluster_ip, Some("fd00::3".parse().unwrap()));
        for bad in ["9=1.2.3.4", "1=nope", "1", "x=1.2.3.4"] {
            assert!(with_cluster_ips(s.clone(), &[bad.into()]).is_err(), "{bad}");
        }
        for (ip, refused) in [
            ("127.0.0.5", true),
            ("::1", true),
            ("0.0.0.0", true),
            ("169.254.1.1", true),
            ("fe80::1", true),
            ("10.1.2.3", false),
            ("198.18.0.1", false),
        ] {
            assert_eq!(
                endpoint_refusal(ip.parse().unwrap()).is_some(),
                refused,
                "{ip}"
            );
        }
    }

    #[test]
    fn layout_refuses_what_cannot_move() {
        for (ids, why) in [
            (&[][..], "no source"),
            (&[2][..], "id 3 or more"),
            (&[1, 2][..], "grow the source to 3"),
            (&[1, 2, 4][..], "gap after 2"),
            (&[1, 1, 2][..], "not unique"),
        ] {
            let e = layout(ids).unwrap_err().to_string();
            assert!(e.contains(why), "{ids:?}: {e}");
        }
        let long = Layout::new(sources(&[1, 2, 3]), &"z".repeat(60), "p", "cluster.local");
        assert!(long.unwrap_err().to_string().contains("63"));
        let l = layout(&[13, 11, 12]).unwrap();
        assert_eq!(l.min_server_id(), 11);
        assert_eq!(l.pod(13), "zk-2");
        assert_eq!(l.next(0), Some(11));
        assert_eq!(l.next(3), None);
    }

    #[test]
    fn servers_name_the_services_and_sources_are_checked() {
        let l = layout(&[1, 2, 3]).unwrap();
        assert_eq!(
            l.servers().to_env(),
            "zk-member-1.prod.svc.cluster.local:2888:3888::1 \
             zk-member-2.prod.svc.cluster.local:2888:3888::2 \
             zk-member-3.prod.svc.cluster.local:2888:3888::3"
        );
        assert_eq!(
            l.source_lines()[1],
            "server.2=zk-member-2.prod.svc.cluster.local:2888:3888"
        );
        assert_eq!(l.source_lines()[3], "quorumListenOnAllIPs=true");
        let good = ServerList::parse_zoo_cfg(
            "server.1=zk-member-1.prod.svc.cluster.local:2888:3888:participant;0.0.0.0:2181\n\
             server.2=zk-member-2.prod:2888:3888\nserver.3=ZK-MEMBER-3:2888:3888\n",
        )
        .unwrap();
        assert_eq!(l.check_source_list(1, &good), Ok(()));
        let hosts = ServerList::parse_zoo_cfg(
            "server.1=10.0.0.1:2888:3888\nserver.2=zk-member-2:2888:3888\nserver.3=zk-member-3:2888:3888\n",
        )
        .unwrap();
        let e = l.check_source_list(2, &hosts).unwrap_err();
        assert!(e.contains("server.1=10.0.0.1:2888:3888"), "{e}");
        let fewer = ServerList::parse_zoo_cfg(
            "server.1=zk-member-1:2888:3888\nserver.2=zk-member-2:2888:3888\n",
        )
        .unwrap();
        assert!(l.check_source_list(1, &fewer).unwrap_err().contains("ids"));
        let ports = ServerList::parse_zoo_cfg(
            "server.1=zk-member-1:2889:3888\nserver.2=zk-member-2:2888:3888\nserver.3=zk-member-3:2888:3888\n",
        )
        .unwrap();
        assert!(l.check_source_list(1, &ports).is_err());
    }

    #[test]
    fn elections_follow_the_id_order() {
        let l = layout(&[1, 2, 3, 4, 5]).unwrap();
        // The leader has the highest id: it moves last, one election.
        assert_eq!(l.elections(0, Some(5)), 1);
        // The lowest id leads: its move elects 5 (highest), whose own move elects 4.
        assert_eq!(l.elections(0, Some(1)), 2);
        assert_eq!(l.elections(0, Some(3)), 2);
        // Resumed after the leader moved: only the new leader's move is left.
        assert_eq!(l.elections(3, Some(5)), 1);
        assert_eq!(l.elections(5, Some(5)), 0);
        assert_eq!(l.elections(0, None), 0);
        let p = MigratePlan::new(l.clone(), 2, Some(5)).unwrap();
        assert_eq!(p.moved, [1, 2]);
        assert_eq!(p.order, [3, 4, 5]);
        assert!(MigratePlan::new(l, 6, None).is_err());
    }

    #[test]
    fn a_standalone_source_becomes_the_highest_of_three() {
        let l = Layout::new(sources(&[5]), "zk", "prod", "cluster.local").unwrap();
        assert!(l.standalone);
        assert_eq!(l.ids, [3, 4, 5]);
        assert_eq!(l.min_server_id(), 3);
        assert_eq!(l.pod(5), "zk-2");
        assert!(l.source(3).is_none() && l.source(5).is_some());
        assert_eq!(l.servers().len(), 3);
        assert!(l.source_lines()[4].contains("`5` in dataDir/myid"));
        // Not formed yet: the formation elects 5, whose move elects another.
        let p = MigratePlan::new(l.clone(), 0, None).unwrap();
        assert_eq!((p.order.clone(), p.elections), (vec![3, 4, 5], 2));
        // Formed, 5 leading, both pods in: its move is left.
        let p = MigratePlan::new(l, 2, Some(5)).unwrap();
        assert_eq!((p.order, p.elections), (vec![5], 1));
    }

    #[test]
    fn values_render_the_result() {
        let l = layout(&[10, 11, 12]).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&l.values()).unwrap();
        assert_eq!(v["replicaCount"], 3);
        assert_eq!(v["minServerId"], 10);
        assert_eq!(v["listenOnAllIPs"], true);
        let svcs = v["extraDeploy"].as_sequence().unwrap();
        assert_eq!(svcs.len(), 3);
        assert_eq!(svcs[2]["metadata"]["name"], "zk-member-12");
        assert_eq!(
            svcs[2]["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
            "zk-2"
        );
        assert_eq!(svcs[0]["spec"]["ports"][1]["port"], 2888);
    }
}
