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
use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;

use super::{quorum, PlanError, MAX_ENSEMBLE};
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
        self.client_addr_of(self.client_port)
    }

    /// `host:port` (an IPv6 host in brackets, once).
    pub fn client_addr_of(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
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

/// The highest server id a migration takes: ZooKeeper documents ids 1 to 255 (a session id
/// carries its server's id in its top byte, so larger ids give colliding session ids).
pub const MAX_SERVER_ID: u32 = 255;

/// A number written with decimal digits only: no sign, no blank, no leading zero (except `0`
/// itself). `str::parse` takes `+1`, which is not what anyone types on purpose.
fn plain_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.len() <= 10;
    ok.then(|| s.parse().ok()).flatten()
}

/// A server id from 1 to [`MAX_SERVER_ID`].
fn server_id(s: &str) -> Result<u32, String> {
    plain_number::<u32>(s)
        .filter(|i| (1..=MAX_SERVER_ID).contains(i))
        .ok_or_else(|| format!("the id `{s}` is not a number from 1 to {MAX_SERVER_ID}"))
}

/// A TCP port from 1 to 65535, digits only.
fn port(s: &str) -> Result<u16, String> {
    plain_number::<u16>(s)
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{s}` is not a port from 1 to 65535"))
}

/// Checks a source member's host: an RFC 1123 DNS name (labels of letters, digits and `-`, not
/// starting or ending with `-`, at most 63 characters each and 253 in all; a last label that is
/// not all digits) or an IP literal (IPv6 without brackets or zone). This is what makes a host
/// safe where it goes: into `--stop-cmd`/`--start-cmd` (no shell metacharacter, no leading `-`
/// that ssh would read as an option; [`shell_quote`] quotes it as well), into an
/// EndpointSlice, a Service's message and the log. Every source host passes through here
/// ([`parse_from`], [`sources_from_zoo_cfg`], [`Layout::new`]).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let shown: String = host
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string();
    let bad = |why: &str| Err(format!("host `{shown}` {why}"));
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return bad("is empty");
    }
    if host.len() > 253 {
        return bad("is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return bad("is not a DNS name (a label is empty or longer than 63 characters)");
        }
        if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return bad(
                "is neither a DNS name (RFC 1123: letters, digits, `-` and `.`) nor an IP address",
            );
        }
        if l.starts_with('-') || l.ends_with('-') {
            return bad("is not a DNS name (a label starts or ends with `-`)");
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("is not an IP address (and a DNS name does not end in a number)");
    }
    Ok(())
}

/// `s` as one word for `sh -c`: in single quotes, each `'` written `'\''`. The one function
/// that makes a value safe in a `--stop-cmd`/`--start-cmd` (see [`source_command`]).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command line for `template` (`--stop-cmd`/`--start-cmd`) and `src`: `{id}` and `{host}`
/// replaced by the values, each shell-quoted ([`shell_quote`]; the host was checked by
/// [`check_host`] as it was read). Replaced in one pass, so a value is never read as a
/// placeholder.
pub fn source_command(template: &str, src: &Source) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{id}") {
            out.push_str(&shell_quote(&src.id.to_string()));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{host}") {
            out.push_str(&shell_quote(&src.host));
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Sources from `--from` entries `id=host:quorumPort:electionPort[:clientPort]` (several per
/// argument with `,`; an IPv6 host in brackets). Every value is checked here, before any
/// cluster call: ids ([`server_id`]), hosts ([`check_host`]), ports.
pub fn parse_from(entries: &[String]) -> Result<Vec<Source>, PlanError> {
    let bad = |e: &str, why: &str| {
        PlanError::Migrate(format!(
            "--from `{}`: {why} (expected id=host:quorumPort:electionPort[:clientPort])",
            e.escape_debug()
        ))
    };
    let mut out = Vec::new();
    for e in entries.iter().flat_map(|a| a.split(',')).map(str::trim) {
        if e.is_empty() {
            continue;
        }
        let (id, addr) = e.split_once('=').ok_or_else(|| bad(e, "no `=`"))?;
        let id = server_id(id.trim()).map_err(|w| bad(e, &w))?;
        // An IPv6 host in brackets: [::1]:2888:3888
        let (host, rest) = match addr.strip_prefix('[') {
            Some(r) => {
                let (h, p) = r.split_once("]:").ok_or_else(|| bad(e, "unclosed `[`"))?;
                h.parse::<Ipv6Addr>()
                    .map_err(|_| bad(e, "only an IPv6 address goes in brackets"))?;
                (h.to_string(), p)
            }
            None => addr
                .split_once(':')
                .map(|(h, p)| (h.to_string(), p))
                .ok_or_else(|| bad(e, "no ports"))?,
        };
        if host.is_empty() {
            return Err(bad(e, "empty host"));
        }
        check_host(&host).map_err(|w| bad(e, &w))?;
        let ports: Vec<u16> = rest
            .split(':')
            .map(port)
            .collect::<Result<_, _>>()
            .map_err(|w| bad(e, &w))?;
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

/// Applies `--host-ip ID=IP` entries (several per argument with `,`) to `sources`: each id once,
/// each address one an EndpointSlice can hold ([`endpoint_refusal`]).
pub fn with_cluster_ips(
    mut sources: Vec<Source>,
    entries: &[String],
) -> Result<Vec<Source>, PlanError> {
    let mut seen = BTreeSet::new();
    for e in entries.iter().flat_map(|a| a.split(',')).map(str::trim) {
        if e.is_empty() {
            continue;
        }
        let shown = e.escape_debug().to_string();
        let bad =
            |why: &str| PlanError::Migrate(format!("--host-ip `{shown}`: {why} (expected ID=IP)"));
        let (id, ip) = e.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let id = server_id(id.trim()).map_err(|w| bad(&w))?;
        if !seen.insert(id) {
            return Err(bad(&format!("server {id} is given twice")));
        }
        let ip: IpAddr = ip.trim().parse().map_err(|_| bad("not an IP address"))?;
        if let Some(what) = endpoint_refusal(ip) {
            return Err(bad(&format!(
                "{ip} is {what}, which an EndpointSlice cannot hold (nor a pod reach)"
            )));
        }
        let s = sources
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| bad("no source member with that id"))?;
        s.cluster_ip = Some(ip);
    }
    Ok(sources)
}

/// What is wrong with the sources as given, before any cluster call: at most [`MAX_ENSEMBLE`]
/// members (the planner's own cap: zkscale could not scale a larger ensemble afterwards),
/// unique ids, unique addresses (two ids on one `host:port` would be one server), valid hosts,
/// and an address an EndpointSlice can hold wherever it is already known (`--host-ip`, or the
/// host when it is an IP literal; a name is resolved by the run, and by `migrate plan`).
pub fn check_sources(sources: &[Source]) -> Result<(), PlanError> {
    let refuse = |why: String| Err(PlanError::Migrate(why));
    if sources.len() > MAX_ENSEMBLE as usize {
        return refuse(format!(
            "{} source members: zkscale manages ensembles of at most {MAX_ENSEMBLE}",
            sources.len()
        ));
    }
    let mut ids = BTreeSet::new();
    let mut addrs = std::collections::BTreeMap::new();
    for s in sources {
        if !ids.insert(s.id) {
            return refuse(format!("server id {} is given twice", s.id));
        }
        if !(1..=MAX_SERVER_ID).contains(&s.id) {
            return refuse(format!(
                "server id {} is not from 1 to {MAX_SERVER_ID}",
                s.id
            ));
        }
        check_host(&s.host).map_err(PlanError::Migrate)?;
        let host = match s.host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => s.host.trim_end_matches('.').to_ascii_lowercase(),
        };
        for (what, p) in [
            ("quorum", s.quorum_port),
            ("election", s.election_port),
            ("client", s.client_port),
        ] {
            if let Some((other, other_what)) = addrs.insert((host.clone(), p), (s.id, what)) {
                if other != s.id || other_what != what {
                    return refuse(format!(
                        "server {} ({what} port) and server {other} ({other_what} port) have the                          same address {}: every member needs its own",
                        s.id,
                        s.client_addr_of(p)
                    ));
                }
            }
        }
        if let Some(ip) = s.cluster_ip {
            if let Some(what) = endpoint_refusal(ip) {
                return refuse(format!("server {}'s --host-ip {ip} is {what}", s.id));
            }
        } else if let Ok(ip) = s.host.parse::<IpAddr>() {
            if let Some(what) = endpoint_refusal(ip) {
                return refuse(format!(
                    "server {}'s address {ip} is {what}, which an EndpointSlice cannot hold                      (nor a pod reach): give the address the cluster reaches that host at with                      --host-ip {}=<IP>",
                    s.id, s.id
                ));
            }
        }
    }
    Ok(())
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

/// The most of a `--from-zoo-cfg` file that is read (a zoo.cfg is a few hundred bytes; more is
/// not a zoo.cfg, and `/dev/zero` would never end).
pub const MAX_ZOO_CFG: u64 = 1 << 20;

/// Sources from a zoo.cfg: its `server.N=` lines, the client port from each line's `;[addr:]port`
/// or else the file's `clientPort` (the last one, as Java's `Properties` reads it; one that is
/// not a port is refused, not defaulted). Hosts as ZooKeeper reads them: `[fd00::1]` is the
/// IPv6 address `fd00::1` (the image's `::` rule is about `ZOO_SERVERS`, not zoo.cfg); each is
/// checked by [`check_host`].
pub fn sources_from_zoo_cfg(text: &str) -> Result<Vec<Source>, PlanError> {
    let list = ServerList::parse_zoo_cfg(text)?;
    let mut default_client = PORTS[0].1;
    for l in text.lines() {
        let l = l.trim();
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if k.trim() == "clientPort" {
            default_client = port(v.trim())
                .map_err(|w| PlanError::Migrate(format!("zoo.cfg `{}`: {w}", l.escape_debug())))?;
        }
    }
    let sources: Vec<Source> = list
        .members()
        .iter()
        .map(|m| {
            let bad = |why: String| PlanError::Migrate(format!("server.{}: {why}", m.id));
            if m.role == Some(Role::Observer) {
                return Err(bad("an observer: only participants are migrated".into()));
            }
            if m.id > MAX_SERVER_ID {
                return Err(bad(format!("ids go from 1 to {MAX_SERVER_ID}")));
            }
            let host = match m.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                Some(h) => {
                    h.parse::<Ipv6Addr>().map_err(|_| {
                        bad(format!("only an IPv6 address goes in brackets, not `{h}`"))
                    })?;
                    h.to_string()
                }
                None => m.host.clone(),
            };
            check_host(&host).map_err(bad)?;
            let client_port = match &m.client {
                Some(c) => {
                    let p = c.trim().rsplit(':').next().unwrap_or_default();
                    port(p).map_err(|w| bad(format!("client part `{}`: {w}", c.escape_debug())))?
                }
                None => default_client,
            };
            Ok(Source {
                id: m.id,
                host,
                quorum_port: m.peer_port,
                election_port: m.election_port,
                client_port,
                cluster_ip: None,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(sources)
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
        check_sources(&sources)?;
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
    fn hosts_are_dns_names_or_ip_literals() {
        for ok in [
            "h1",
            "zk-1.example.com",
            "zk-1.example.com.",
            "10.0.0.1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "a1",
            &format!("{}.b", "a".repeat(63)),
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "$(touch${IFS}/tmp/x)",
            "-oProxyCommand=x",
            "h1;id",
            "h1 h2",
            "h`id`",
            "h'x",
            "h\nx",
            "h\n",
            "a..b",
            ".a",
            "-a",
            "a-",
            "a_b",
            "1.2.3",
            "999.1.1.1",
            "010.0.0.1",
            "fe80::1%eth0",
            "[fd00::1]",
            "",
            ".",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(130)),
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_get_quoted_values_in_one_pass() {
        let src = Source {
            id: 2,
            host: "h2".into(),
            quorum_port: 2888,
            election_port: 3888,
            client_port: 2181,
            cluster_ip: None,
        };
        assert_eq!(
            source_command("ssh {host} sudo systemctl stop zk@{id} {x} {", &src),
            "ssh 'h2' sudo systemctl stop zk@'2' {x} {"
        );
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        // Whatever a value holds, `sh` reads it back as one word, unchanged.
        for v in ["$(id)", "a'b", "`x`", "-o x", "a\"b", "' ; id ; '"] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", shell_quote(v))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), v);
        }
    }

    #[test]
    fn input_is_refused_before_any_cluster_call() {
        let from = |e: &str| parse_from(&[e.to_string()]);
        for (bad, why) in [
            ("1=$(touch${IFS}/tmp/x):2888:3888", "neither a DNS name"),
            ("1=-oProxyCommand:2888:3888", "starts or ends with `-`"),
            ("+1=h:2888:3888", "not a number"),
            ("01=h:2888:3888", "not a number"),
            ("256=h:2888:3888", "from 1 to 255"),
            ("1=h:+2888:3888", "not a port"),
            ("1=[h1]:2888:3888", "only an IPv6 address"),
            ("1=fd00::1:2888:3888", "not a port"),
        ] {
            let e = from(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let two = parse_from(&["1=10.1.0.1:2888:3888,2=10.1.0.2:2888:3888".into()]).unwrap();
        let e = with_cluster_ips(two.clone(), &["1=198.18.0.1,1=198.18.0.2".into()]);
        assert!(e.unwrap_err().to_string().contains("given twice"));
        let e = with_cluster_ips(two.clone(), &["1=127.0.0.1".into()]);
        assert!(e.unwrap_err().to_string().contains("loopback"));
        // What `migrate plan` used to accept and the run refused.
        for (entries, why) in [
            (
                "1=127.0.0.1:2888:3888,2=h:2888:3888,3=i:2888:3888",
                "--host-ip 1=<IP>",
            ),
            (
                "1=169.254.0.1:2888:3888,2=h:2888:3888,3=i:2888:3888",
                "link-local",
            ),
            (
                "1=0.0.0.0:2888:3888,2=h:2888:3888,3=i:2888:3888",
                "unspecified",
            ),
            ("1=h:2888:3888,2=H.:2888:3888,3=i:2888:3888", "same address"),
            ("1=h:2888:3888:2181,2=i:2181:3888,3=j:2888:3888", "2"),
        ] {
            let s = parse_from(&[entries.into()]).unwrap();
            let e = check_sources(&s).unwrap_err().to_string();
            assert!(e.contains(why), "{entries}: {e}");
        }
        let same_host_other_ports =
            parse_from(&["1=h:2888:3888:2181,2=h:2889:3889:2182,3=h:2890:3890:2183".into()])
                .unwrap();
        assert_eq!(check_sources(&same_host_other_ports), Ok(()));
        let many: Vec<String> = (1..=16).map(|i| format!("{i}=h{i}:2888:3888")).collect();
        let e = check_sources(&parse_from(&many).unwrap()).unwrap_err();
        assert!(e.to_string().contains("at most 15"), "{e}");
    }

    #[test]
    fn zoo_cfg_sources_as_zookeeper_reads_them() {
        let cfg = "clientPort=2191\nserver.1=[fd00::1]:2888:3888\n\
                   server.2=[fd00::2]:2888:3888:participant;[fd00::2]:2182\nserver.3=h3:2888:3888\n";
        let s = sources_from_zoo_cfg(cfg).unwrap();
        assert_eq!(s[0].host, "fd00::1");
        assert_eq!(s[0].client_addr(), "[fd00::1]:2191");
        assert_eq!(s[1].client_addr(), "[fd00::2]:2182");
        assert_eq!(s[2].client_addr(), "h3:2191");
        for (bad, why) in [
            (
                "clientPort=0x99\nserver.1=a:2888:3888\n",
                "`0x99` is not a port",
            ),
            ("server.1=fd00::1:2888:3888\n", "goes in brackets"),
            ("server.1=[h1]:2888:3888\n", "only an IPv6 address"),
            ("server.1=$(id):2888:3888\n", "neither a DNS name"),
            ("server.1=a:2888:3888;x\n", "not a port"),
            ("server.300=a:2888:3888\n", "1 to 255"),
        ] {
            let e = sources_from_zoo_cfg(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn layout_refuses_what_cannot_move() {
        for (ids, why) in [
            (&[][..], "no source"),
            (&[2][..], "id 3 or more"),
            (&[1, 2][..], "grow the source to 3"),
            (&[1, 2, 4][..], "gap after 2"),
            (&[1, 1, 2][..], "given twice"),
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
