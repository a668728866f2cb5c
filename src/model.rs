//! Ensemble model: ZooKeeper server lists as the bitnami image and zoo.cfg spell them. Pure, no I/O.
//!
//! How the bitnami image (`libzookeeper.sh`, `zookeeper_validate` + `zookeeper_generate_conf`)
//! reads `ZOO_SERVERS`, which [`ServerList::parse_env`] mirrors:
//! - every `;`, `,` and space becomes a space, then bash `read -r -a` splits on blanks (space,
//!   tab): separators may be mixed and repeated, leading/trailing ones vanish. `read` stops at the
//!   first newline, so anything on a later line is silently ignored (we reject it).
//! - if the value contains `::` *anywhere*, every entry must match
//!   `^[^[:space:]]+:[0-9]+:[0-9]+(:observer|:participant)?::[0-9]+$` (role before `::id`),
//!   otherwise every entry must be `host:peer:election[:role]` and ids are positions 1..n.
//!   A mix fails validation at container start.
//! - the entry is split at *every* `::`, so a host containing `::` (IPv6 shorthand) breaks.
//! - ≤ 1 entry: no `server.N` lines at all, ZooKeeper runs standalone. Otherwise it writes
//!   `server.<id>=<entry without ::id>;<ZOO_PORT_NUMBER>`.
//! - `zookeeper_conf_set` replaces an existing `server.N=` line, so duplicate ids silently
//!   collapse (last wins); we reject them.

use std::collections::{BTreeMap, BTreeSet};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// `index` is the 1-based position of the entry in the list.
    #[error("server entry {index} `{entry}`: {reason}")]
    BadEntry {
        index: usize,
        entry: String,
        reason: String,
    },
    #[error("server entry {index} `{entry}`: bad port `{port}` (must be a number 1..=65535)")]
    BadPort {
        index: usize,
        entry: String,
        port: String,
    },
    #[error("server entry {index} `{entry}`: bad server id `{id}`: {reason}")]
    BadId {
        index: usize,
        entry: String,
        id: String,
        reason: String,
    },
    #[error("duplicate server id {id}")]
    DuplicateId { id: u32 },
    #[error("duplicate quorum address {address} (server ids {first} and {second})")]
    DuplicateAddress {
        address: String,
        first: u32,
        second: u32,
    },
    #[error(
        "server entry {positional} `{entry}` has no `::id` but entry {explicit} has one: the image \
         then requires `::id` on every entry and refuses to start{hint}",
        hint = if entry.chars().all(|c| c.is_ascii_digit()) {
            " (a `;` before it? `;` starts the client address of the entry before, and the \
             image separates entries by spaces only)"
        } else {
            ""
        }
    )]
    MixedIdStyles {
        positional: usize,
        explicit: usize,
        entry: String,
    },
    #[error(
        "ZOO_SERVERS continues after a line break (`{rest}`); the image reads only the first line"
    )]
    MultiLine { rest: String },
    #[error("zoo.cfg line {line} `{text}`: {reason}")]
    BadZooCfgLine {
        line: usize,
        text: String,
        reason: String,
    },
    #[error("no server with id {id} in the list")]
    UnknownId { id: u32 },
    #[error("cannot work out how members are addressed: {reason}")]
    Addressing { reason: String },
    #[error("cannot infer minServerId: {reason}")]
    MinServerId { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Participant,
    Observer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Observer => "observer",
        }
    }
}

/// One server of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: u32,
    /// Quorum host exactly as written (pod DNS name, Service name, IP).
    pub host: String,
    pub peer_port: u16,
    pub election_port: u16,
    /// Role as written; `None` when the entry does not say (a participant).
    pub role: Option<Role>,
    /// zoo.cfg client part after `;` (`[addr:]port`), verbatim.
    pub client: Option<String>,
}

impl Member {
    /// A participant without a client part, the way the chart writes members.
    pub fn new(id: u32, host: impl Into<String>, peer_port: u16, election_port: u16) -> Self {
        Member {
            id,
            host: host.into(),
            peer_port,
            election_port,
            role: None,
            client: None,
        }
    }

    /// `host:peer:election`, the address the quorum and election protocols use.
    pub fn quorum_address(&self) -> String {
        format!("{}:{}:{}", self.host, self.peer_port, self.election_port)
    }

    /// Votes in elections and counts for quorums (everything but observers).
    pub fn is_voter(&self) -> bool {
        self.role != Some(Role::Observer)
    }

    /// `host:peer:election[:role]`: the part both syntaxes share.
    fn core(&self) -> String {
        match self.role {
            Some(r) => format!("{}:{}", self.quorum_address(), r.as_str()),
            None => self.quorum_address(),
        }
    }

    /// Identity of the address for duplicate checks (DNS names are case-insensitive).
    fn address_key(&self) -> (String, u16, u16) {
        (
            self.host.to_ascii_lowercase(),
            self.peer_port,
            self.election_port,
        )
    }
}

/// A parsed `ZOO_SERVERS` value or set of zoo.cfg `server.N` lines; formats back exactly.
///
/// The list remembers how it was written (verbatim entry text, separators, leading/trailing
/// blanks, explicit `::id` or positional ids) so `parse_env(s)?.to_env() == s`, and lists derived
/// with [`ServerList::with_member_added`] / [`ServerList::without_member`] keep that style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList {
    members: Vec<Member>,
    style: Style,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Style {
    /// Verbatim `ZOO_SERVERS` entry per member (`None`: render it).
    raw_env: Vec<Option<String>>,
    /// Verbatim zoo.cfg value (after `server.N=`) per member (`None`: render it).
    raw_cfg: Vec<Option<String>>,
    /// Separator runs between entries: `members.len() - 1` of them.
    seps: Vec<String>,
    leading: String,
    trailing: String,
    /// `host:peer:election::id` (true) or positional ids 1..n (false).
    explicit_ids: bool,
}

impl Style {
    fn chart(n: usize) -> Self {
        Style {
            raw_env: vec![None; n],
            raw_cfg: vec![None; n],
            seps: vec![" ".to_string(); n.saturating_sub(1)],
            leading: String::new(),
            trailing: String::new(),
            explicit_ids: true,
        }
    }
}

/// Separators after the image's `${ZOO_SERVERS//[;, ]/ }` and bash word splitting.
fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '\t' | ',' | ';')
}

/// Decimal digits only (leading zeros allowed, as bash/grep and Java accept them).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.len() > 18 {
        return Some(u64::MAX);
    }
    Some(if t.is_empty() { 0 } else { t.parse().ok()? })
}

struct Core {
    host: String,
    peer_port: u16,
    election_port: u16,
    role: Option<Role>,
}

/// Parses `host:peer:election[:role]`. `ci_role`: zoo.cfg (ZooKeeper lower-cases the role);
/// the image's regex only takes lower case.
fn parse_core(index: usize, entry: &str, core: &str, ci_role: bool) -> Result<Core, ModelError> {
    let bad = |reason: &str| ModelError::BadEntry {
        index,
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (mut rest, mut role) = (core, None);
    if let Some((r, last)) = core.rsplit_once(':') {
        let l = if ci_role {
            last.to_ascii_lowercase()
        } else {
            last.to_string()
        };
        match l.as_str() {
            "participant" => (rest, role) = (r, Some(Role::Participant)),
            "observer" => (rest, role) = (r, Some(Role::Observer)),
            _ if !last.is_empty() && last.bytes().all(|b| b.is_ascii_alphabetic()) => {
                return Err(bad(&format!(
                    "unknown role `{last}` (expected `participant` or `observer`{})",
                    if ci_role { "" } else { ", lower case" }
                )))
            }
            _ => {}
        }
    }
    let Some((rest, election)) = rest.rsplit_once(':') else {
        return Err(bad("expected host:peerPort:electionPort"));
    };
    let Some((host, peer)) = rest.rsplit_once(':') else {
        return Err(bad("expected host:peerPort:electionPort"));
    };
    let port = |p: &str| -> Result<u16, ModelError> {
        match parse_digits(p) {
            Some(v) if (1..=65535).contains(&v) => Ok(v as u16),
            _ => Err(ModelError::BadPort {
                index,
                entry: entry.to_string(),
                port: p.to_string(),
            }),
        }
    };
    let (peer_port, election_port) = (port(peer)?, port(election)?);
    // zoo.cfg (`ci_role`) is read by ZooKeeper itself, which takes `[fd00::1]`: the image's
    // split at `::` applies only to `ZOO_SERVERS`.
    let bracketed_v6 = ci_role
        && host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    if ci_role && !bracketed_v6 && host.parse::<std::net::Ipv6Addr>().is_ok() {
        // ZooKeeper splits an unbracketed entry at every `:` and refuses it.
        return Err(bad(&format!(
            "an IPv6 address goes in brackets in zoo.cfg, as ZooKeeper reads it: [{host}]"
        )));
    }
    if !bracketed_v6 {
        check_host(host).map_err(|r| bad(&r))?;
    }
    Ok(Core {
        host: host.to_string(),
        peer_port,
        election_port,
        role,
    })
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if let Some(c) = host.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("host contains {c:?}"));
    }
    if host.chars().any(|c| c == ',' || c == ';') {
        return Err("host contains a list separator (`,` or `;`)".into());
    }
    if host.contains("::") {
        return Err("`::` in the host: the image splits entries at every `::`".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']') && host.len() > 2) {
        return Err("`:` in the host (an IPv6 address must be in brackets)".into());
    }
    Ok(())
}

fn check_member(index: usize, m: &Member) -> Result<(), ModelError> {
    let entry = m.core();
    check_host(&m.host).map_err(|reason| ModelError::BadEntry {
        index,
        entry: entry.clone(),
        reason,
    })?;
    for p in [m.peer_port, m.election_port] {
        if p == 0 {
            return Err(ModelError::BadPort {
                index,
                entry: entry.clone(),
                port: "0".into(),
            });
        }
    }
    if m.id == 0 {
        return Err(ModelError::BadId {
            index,
            entry,
            id: "0".into(),
            reason: "server ids start at 1".into(),
        });
    }
    Ok(())
}

/// Duplicate ids and duplicate quorum addresses.
fn check_unique(members: &[Member]) -> Result<(), ModelError> {
    let mut ids = BTreeSet::new();
    let mut addrs: BTreeMap<(String, u16, u16), u32> = BTreeMap::new();
    for m in members {
        if !ids.insert(m.id) {
            return Err(ModelError::DuplicateId { id: m.id });
        }
        if let Some(first) = addrs.insert(m.address_key(), m.id) {
            return Err(ModelError::DuplicateAddress {
                address: m.quorum_address(),
                first,
                second: m.id,
            });
        }
    }
    Ok(())
}

impl ServerList {
    /// Parses a `ZOO_SERVERS` value exactly as the bitnami image accepts it (see module docs).
    /// An empty or blank value is an empty list (standalone).
    pub fn parse_env(s: &str) -> Result<Self, ModelError> {
        // `read -r` consumes one line: later lines must hold nothing the image would drop.
        let (line, after) = match s.find('\n') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        if after.chars().any(|c| !(is_sep(c) || c == '\n')) {
            return Err(ModelError::MultiLine {
                rest: after.trim().to_string(),
            });
        }
        // Tokenize into leading separators, entries, separator runs, trailing separators.
        let mut entries: Vec<&str> = Vec::new();
        let mut seps: Vec<String> = Vec::new();
        let start = line.find(|c| !is_sep(c)).unwrap_or(line.len());
        let leading = line[..start].to_string();
        let mut rest = &line[start..];
        let mut trailing = String::new();
        while !rest.is_empty() {
            let end = rest.find(is_sep).unwrap_or(rest.len());
            entries.push(&rest[..end]);
            rest = &rest[end..];
            let sep_end = rest.find(|c| !is_sep(c)).unwrap_or(rest.len());
            if sep_end == rest.len() {
                trailing = rest.to_string();
                rest = "";
            } else {
                seps.push(rest[..sep_end].to_string());
                rest = &rest[sep_end..];
            }
        }
        trailing.push_str(after);

        let explicit_ids = s.contains("::");
        let first_explicit = entries.iter().position(|e| e.contains("::")).map(|i| i + 1);
        let mut members = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            members.push(parse_env_entry(i + 1, entry, first_explicit)?);
        }
        check_unique(&members)?;
        let n = members.len();
        Ok(ServerList {
            members,
            style: Style {
                raw_env: entries.iter().map(|e| Some(e.to_string())).collect(),
                raw_cfg: vec![None; n],
                seps,
                leading,
                trailing,
                explicit_ids,
            },
        })
    }

    /// The `ZOO_SERVERS` value: the parsed text verbatim, new entries in the list's style.
    pub fn to_env(&self) -> String {
        let mut out = self.style.leading.clone();
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.style.seps[i - 1]);
            }
            match &self.style.raw_env[i] {
                Some(raw) => out.push_str(raw),
                None if self.style.explicit_ids => {
                    out.push_str(&format!("{}::{}", m.core(), m.id));
                }
                None => out.push_str(&m.core()),
            }
        }
        out.push_str(&self.style.trailing);
        out
    }

    /// Reads the `server.N=` lines of a zoo.cfg (or of the `conf` four-letter word's output),
    /// ignoring every other line. Values: `host:peer:election[:role][;[clientAddr:]clientPort]`.
    pub fn parse_zoo_cfg(text: &str) -> Result<Self, ModelError> {
        let mut members = Vec::new();
        let mut raw_cfg = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
                continue;
            }
            let Some((key, value)) = t.split_once('=') else {
                continue;
            };
            let Some(id_txt) = key.trim().strip_prefix("server.") else {
                continue;
            };
            let bad = |reason: String| ModelError::BadZooCfgLine {
                line: n + 1,
                text: t.to_string(),
                reason,
            };
            let id = match parse_digits(id_txt) {
                Some(0) => return Err(bad("server ids start at 1".into())),
                Some(v) if v <= u64::from(u32::MAX) => v as u32,
                _ => return Err(bad(format!("`{id_txt}` is not a server id"))),
            };
            let value = value.trim();
            let (addr, client) = match value.split_once(';') {
                Some((a, c)) if c.trim().is_empty() => {
                    return Err(bad(format!("empty client address after `;` in `{a};`")))
                }
                Some((a, c)) => (a, Some(c.to_string())),
                None => (value, None),
            };
            if addr.contains('|') {
                return Err(bad(
                    "several addresses per server (`|`) are not supported".into()
                ));
            }
            let core =
                parse_core(members.len() + 1, value, addr, true).map_err(|e| bad(e.to_string()))?;
            members.push(Member {
                id,
                host: core.host,
                peer_port: core.peer_port,
                election_port: core.election_port,
                role: core.role,
                client,
            });
            raw_cfg.push(Some(value.to_string()));
        }
        check_unique(&members)?;
        let mut style = Style::chart(members.len());
        style.raw_cfg = raw_cfg;
        Ok(ServerList { members, style })
    }

    /// `server.N=...` lines (zoo.cfg syntax, client part only when the member has one).
    pub fn to_zoo_cfg_lines(&self) -> Vec<String> {
        self.members
            .iter()
            .zip(&self.style.raw_cfg)
            .map(|(m, raw)| match raw {
                Some(v) => format!("server.{}={}", m.id, v),
                None => match &m.client {
                    Some(c) => format!("server.{}={};{}", m.id, m.core(), c),
                    None => format!("server.{}={}", m.id, m.core()),
                },
            })
            .collect()
    }

    /// The `server.N` lines the bitnami image writes for this `ZOO_SERVERS` value: none when
    /// standalone, else `server.<id>=<entry without ::id>;<clientPort>` (entry text verbatim).
    pub fn image_zoo_cfg_lines(&self, client_port: u16) -> Vec<String> {
        if self.is_standalone() {
            return Vec::new();
        }
        self.members
            .iter()
            .zip(&self.style.raw_env)
            .map(|(m, raw)| {
                let core = match raw {
                    Some(r) if self.style.explicit_ids => r
                        .rsplit_once("::")
                        .map_or(r.as_str(), |(c, _)| c)
                        .to_string(),
                    Some(r) => r.clone(),
                    None => m.core(),
                };
                format!("server.{}={};{}", m.id, core, client_port)
            })
            .collect()
    }

    /// A list in the chart's style (`host:peer:election::id`, single spaces).
    pub fn from_members(members: Vec<Member>) -> Result<Self, ModelError> {
        for (i, m) in members.iter().enumerate() {
            check_member(i + 1, m)?;
        }
        check_unique(&members)?;
        let style = Style::chart(members.len());
        Ok(ServerList { members, style })
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Members that vote (non-observers).
    pub fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_voter())
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn ids(&self) -> BTreeSet<u32> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// ≤ 1 entry: the image runs ZooKeeper standalone.
    pub fn is_standalone(&self) -> bool {
        self.members.len() <= 1
    }

    /// Whether entries carry `::id` (else ids are positions 1..n).
    pub fn has_explicit_ids(&self) -> bool {
        self.style.explicit_ids
    }

    /// Same servers (ids, quorum addresses, roles), whatever the spelling and order.
    pub fn same_ensemble(&self, other: &ServerList) -> bool {
        let key = |l: &ServerList| {
            let mut v: Vec<_> = l
                .members
                .iter()
                .map(|m| (m.id, m.address_key(), m.is_voter()))
                .collect();
            v.sort();
            v
        };
        key(self) == key(other)
    }

    /// This list plus `member`, in this list's style: a new entry gets the last separator used
    /// and the list's id style. A positional list whose new member is not id n+1 switches to
    /// explicit `::id` (existing entries keep their text and gain their id).
    pub fn with_member_added(&self, member: Member) -> Result<ServerList, ModelError> {
        check_member(self.members.len() + 1, &member)?;
        let mut out = self.clone();
        if !out.style.explicit_ids && member.id as usize != out.members.len() + 1 {
            out.make_explicit();
        }
        if !out.members.is_empty() {
            let sep = out.style.seps.last().cloned().unwrap_or_else(|| " ".into());
            out.style.seps.push(sep);
        }
        out.members.push(member);
        out.style.raw_env.push(None);
        out.style.raw_cfg.push(None);
        check_unique(&out.members)?;
        Ok(out)
    }

    /// This list without server `id`, in this list's style (the separator next to it goes too).
    /// Removing a positional entry other than the last switches to explicit `::id` so the
    /// remaining members keep their ids.
    pub fn without_member(&self, id: u32) -> Result<ServerList, ModelError> {
        let i = self
            .members
            .iter()
            .position(|m| m.id == id)
            .ok_or(ModelError::UnknownId { id })?;
        let mut out = self.clone();
        if !out.style.explicit_ids && i + 1 != out.members.len() {
            out.make_explicit();
        }
        out.members.remove(i);
        out.style.raw_env.remove(i);
        out.style.raw_cfg.remove(i);
        if !out.style.seps.is_empty() {
            let s = if i < out.style.seps.len() { i } else { i - 1 };
            out.style.seps.remove(s);
        }
        Ok(out)
    }

    fn make_explicit(&mut self) {
        for (m, raw) in self.members.iter().zip(self.style.raw_env.iter_mut()) {
            if let Some(r) = raw {
                *r = format!("{r}::{}", m.id);
            }
        }
        self.style.explicit_ids = true;
    }

    /// `minServerId` as the chart set it: `id − ordinal`, the same for every member whose host
    /// is the pod DNS name of StatefulSet `sts_name`.
    pub fn infer_min_server_id(&self, sts_name: &str) -> Result<u32, ModelError> {
        let pairs: Vec<(u32, &Member)> = self
            .members
            .iter()
            .filter_map(|m| ordinal_of(m, sts_name).map(|o| (o, m)))
            .collect();
        if pairs.is_empty() {
            return Err(ModelError::MinServerId {
                reason: format!("no member is addressed as a pod of StatefulSet `{sts_name}`"),
            });
        }
        infer_min_server_id(&pairs)
    }
}

/// `minServerId` from `(ordinal, member)` pairs: `id − ordinal`, which must agree for all.
pub fn infer_min_server_id(members: &[(u32, &Member)]) -> Result<u32, ModelError> {
    let mut found: Option<(u32, u32)> = None;
    for &(ord, m) in members {
        if m.id <= ord {
            return Err(ModelError::MinServerId {
                reason: format!("server id {} is not above its ordinal {ord}", m.id),
            });
        }
        let min = m.id - ord;
        match found {
            Some((f, fid)) if f != min => {
                return Err(ModelError::MinServerId {
                    reason: format!(
                        "server {fid} implies {f} but server {} (ordinal {ord}) implies {min}",
                        m.id
                    ),
                })
            }
            _ => found = Some((min, m.id)),
        }
    }
    found.map(|(f, _)| f).ok_or(ModelError::MinServerId {
        reason: "no members".into(),
    })
}

fn parse_env_entry(
    index: usize,
    entry: &str,
    first_explicit: Option<usize>,
) -> Result<Member, ModelError> {
    let (core, id) = match first_explicit {
        Some(explicit) => {
            let Some((core, id_txt)) = entry.rsplit_once("::") else {
                return Err(ModelError::MixedIdStyles {
                    positional: index,
                    explicit,
                    entry: entry.to_string(),
                });
            };
            let bad_id = |reason: &str| ModelError::BadId {
                index,
                entry: entry.to_string(),
                id: id_txt.to_string(),
                reason: reason.to_string(),
            };
            let id = match parse_digits(id_txt) {
                Some(0) => return Err(bad_id("server ids start at 1")),
                Some(v) if v <= u64::from(u32::MAX) => v as u32,
                Some(_) => return Err(bad_id("too large")),
                None if id_txt.ends_with("participant") || id_txt.ends_with("observer") => {
                    return Err(bad_id(
                        "the role goes before `::id` (`host:2888:3888:observer::4`)",
                    ))
                }
                None => return Err(bad_id(
                    "expected `::<decimal id>` at the end (any `::` in ZOO_SERVERS, even in an \
                         IPv6 address, makes the image require `host:peer:election::id` entries)",
                )),
            };
            if core.contains("::") {
                return Err(ModelError::BadEntry {
                    index,
                    entry: entry.to_string(),
                    reason: "more than one `::`: the image splits entries at every `::`".into(),
                });
            }
            (core, id)
        }
        None => (entry, index as u32),
    };
    let c = parse_core(index, entry, core, false)?;
    Ok(Member {
        id,
        host: c.host,
        peer_port: c.peer_port,
        election_port: c.election_port,
        role: c.role,
        client: None,
    })
}

/// How member hosts are built from pod ordinals: `<prefix><ordinal><suffix>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Addressing {
    /// The pod's own DNS name through the StatefulSet's headless Service:
    /// `<sts>-<ordinal>.<headless>[.<ns>[.svc.<domain>]]`; `suffix` (from the first `.`) verbatim.
    PodDns { sts: String, suffix: String },
    /// A name per member that is not the pod's own (e.g. one Service per member:
    /// `zk-0-quorum.zk-test.svc.cluster.local`, `coord-member-2`). The pod cannot bind that
    /// address, so the quorum must listen on all IPs (`ZOO_LISTEN_ALLIPS_ENABLED=yes`).
    /// `offset` is what the number in the name adds to the ordinal: 0 when names count
    /// ordinals, `minServerId` when they carry the server id (`<sts>-member-<id>`, as a
    /// migration from hosts names them).
    PerMember {
        prefix: String,
        suffix: String,
        offset: u32,
    },
}

/// Whether `suffix` (after `<sts>-<ordinal>`) is `.<headless service>...` of a pod DNS name
/// rather than `.<namespace>.svc...` of a Service named like a pod.
fn pod_dns_suffix(suffix: &str) -> bool {
    let Some(rest) = suffix.strip_prefix('.') else {
        return false;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if labels[0].is_empty() {
        return false;
    }
    // `<pod>.<svc>.<ns>.svc.<domain>`: three labels before `svc`. Without `svc` (short forms such
    // as `zk-0.zk-headless`) we take the first label as the headless Service.
    match labels.iter().position(|l| l.eq_ignore_ascii_case("svc")) {
        Some(i) => i == 2,
        None => true,
    }
}

/// Ordinal of a member whose host is the pod DNS name of StatefulSet `sts_name`
/// (`<sts>-<ordinal>.<headless>...`); `None` for any other host.
pub fn ordinal_of(member: &Member, sts_name: &str) -> Option<u32> {
    let rest = member.host.strip_prefix(sts_name)?.strip_prefix('-')?;
    let dot = rest.find('.')?;
    let (num, suffix) = rest.split_at(dot);
    let ord = canonical_number(num)?;
    pod_dns_suffix(suffix).then_some(ord)
}

/// A decimal as `u32::to_string` writes it (no sign, no leading zeros).
fn canonical_number(s: &str) -> Option<u32> {
    let v: u32 = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

impl Addressing {
    /// Infers the addressing from existing members and their pod ordinals: the unique
    /// `<prefix><ordinal><suffix>` pattern that fits every member (the ordinal standing alone
    /// between non-digits). Pod DNS names of `sts_name` are preferred; hosts with no common
    /// pattern (IPs, unrelated names) are an error: supply a template instead.
    pub fn infer(members: &[(u32, &Member)], sts_name: &str) -> Result<Addressing, ModelError> {
        if members.is_empty() {
            return Err(ModelError::Addressing {
                reason: "no members to learn from".into(),
            });
        }
        let mut common: Option<BTreeSet<(String, String)>> = None;
        for &(ord, m) in members {
            let cands = splits_around(&m.host, ord);
            common = Some(match common {
                None => cands,
                Some(c) => c.intersection(&cands).cloned().collect(),
            });
        }
        let common = common.unwrap_or_default();
        let sts_prefix = format!("{sts_name}-");
        if let Some((_, suffix)) = common
            .iter()
            .find(|(p, s)| *p == sts_prefix && pod_dns_suffix(s))
        {
            return Ok(Addressing::PodDns {
                sts: sts_name.to_string(),
                suffix: suffix.clone(),
            });
        }
        let hosts: Vec<String> = members
            .iter()
            .map(|(o, m)| format!("{} (ordinal {o})", m.host))
            .collect();
        match common.len() {
            1 => {
                let (prefix, suffix) = common.into_iter().next().unwrap_or_default();
                Ok(Addressing::PerMember {
                    prefix,
                    suffix,
                    offset: 0,
                })
            }
            0 => Err(ModelError::Addressing {
                reason: format!(
                    "hosts {} do not share a `<prefix><ordinal><suffix>` pattern; supply a \
                     template containing `{{ordinal}}`",
                    hosts.join(", ")
                ),
            }),
            _ => Err(ModelError::Addressing {
                reason: format!(
                    "hosts {} fit several patterns ({}); supply a template containing `{{ordinal}}`",
                    hosts.join(", "),
                    common
                        .iter()
                        .map(|(p, s)| format!("{p}{{ordinal}}{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// From a caller's template with one `{ordinal}`, e.g. `zk-{ordinal}.zk-hs.ns.svc.cluster.local`.
    pub fn from_template(template: &str, sts_name: &str) -> Result<Addressing, ModelError> {
        let bad = |reason: &str| ModelError::Addressing {
            reason: format!("template `{template}`: {reason}"),
        };
        let Some((prefix, suffix)) = template.split_once("{ordinal}") else {
            return Err(bad("no `{ordinal}` in it"));
        };
        if suffix.contains("{ordinal}") {
            return Err(bad("more than one `{ordinal}`"));
        }
        check_host(&format!("{prefix}0{suffix}")).map_err(|r| bad(&r))?;
        if prefix == format!("{sts_name}-") && pod_dns_suffix(suffix) {
            return Ok(Addressing::PodDns {
                sts: sts_name.to_string(),
                suffix: suffix.to_string(),
            });
        }
        Ok(Addressing::PerMember {
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            offset: 0,
        })
    }

    /// [`Addressing::infer`] for names that carry the server id rather than the ordinal
    /// (`id = ordinal + min_server_id`): `(id, member)` pairs in, a per-member pattern out.
    pub fn infer_by_id(members: &[&Member], min_server_id: u32) -> Result<Addressing, ModelError> {
        let pairs: Vec<(u32, &Member)> = members.iter().map(|m| (m.id, *m)).collect();
        match Addressing::infer(&pairs, "")? {
            Addressing::PerMember { prefix, suffix, .. } => Ok(Addressing::PerMember {
                prefix,
                suffix,
                offset: min_server_id,
            }),
            pod => Ok(pod),
        }
    }

    fn parts(&self) -> (String, &str, u32) {
        match self {
            Addressing::PodDns { sts, suffix } => (format!("{sts}-"), suffix, 0),
            Addressing::PerMember {
                prefix,
                suffix,
                offset,
            } => (prefix.clone(), suffix, *offset),
        }
    }

    /// Host of the member running in pod `ordinal`.
    pub fn address_for(&self, ordinal: u32) -> String {
        let (p, s, offset) = self.parts();
        format!("{p}{}{s}", ordinal + offset)
    }

    /// Inverse of [`Addressing::address_for`].
    pub fn ordinal_of_host(&self, host: &str) -> Option<u32> {
        let (p, s, offset) = self.parts();
        canonical_number(host.strip_prefix(p.as_str())?.strip_suffix(s)?)?.checked_sub(offset)
    }

    /// True when the host is the pod's own DNS name (it can bind it); false for per-member
    /// names, which need `quorumListenOnAllIPs` (`ZOO_LISTEN_ALLIPS_ENABLED=yes`).
    pub fn is_pod_own_address(&self) -> bool {
        matches!(self, Addressing::PodDns { .. })
    }

    /// The pattern with `{ordinal}` in place of the number.
    pub fn template(&self) -> String {
        let (p, s, offset) = self.parts();
        if offset > 0 {
            return format!("{p}{{ordinal + {offset}}}{s}");
        }
        format!("{p}{{ordinal}}{s}")
    }
}

/// Every way to write `host` as `<prefix><ordinal><suffix>` with non-digits around the number.
fn splits_around(host: &str, ordinal: u32) -> BTreeSet<(String, String)> {
    let num = ordinal.to_string();
    let mut out = BTreeSet::new();
    for (i, _) in host.match_indices(&num) {
        let (before, after) = (&host[..i], &host[i + num.len()..]);
        let digit_before = before.chars().last().is_some_and(|c| c.is_ascii_digit());
        let digit_after = after.chars().next().is_some_and(|c| c.is_ascii_digit());
        if !digit_before && !digit_after {
            out.insert((before.to_string(), after.to_string()));
        }
    }
    out
}

impl Serialize for ServerList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ServerList", 2)?;
        st.serialize_field("env", &self.to_env())?;
        st.serialize_field("members", &self.members)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART3: &str = "zk-zookeeper-0.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::1 zk-zookeeper-1.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::2 zk-zookeeper-2.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888::3 ";

    fn rt(s: &str) -> ServerList {
        let l = ServerList::parse_env(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(l.to_env(), s);
        l
    }

    #[test]
    fn chart_value_round_trips() {
        let l = rt(CHART3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.members()[2].id, 3);
        assert_eq!(
            l.members()[0].quorum_address(),
            "zk-zookeeper-0.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888"
        );
        assert!(!l.is_standalone());
        assert_eq!(l.infer_min_server_id("zk-zookeeper"), Ok(1));
    }

    #[test]
    fn separators_roles_positional_ipv4() {
        let l = rt(" a:1:2::1,,b:1:2:observer::2 ;\tc:1:2:participant::7;");
        assert_eq!(
            l.members().iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 2, 7]
        );
        assert_eq!(l.members()[1].role, Some(Role::Observer));
        assert_eq!(l.members()[2].role, Some(Role::Participant));
        assert_eq!(l.voters().count(), 2);
        let p = rt("10.0.0.1:2888:3888;10.0.0.2:2888:3888:observer, 10.0.0.3:2888:3888");
        assert!(!p.has_explicit_ids());
        assert_eq!(p.members()[2].id, 3);
        assert_eq!(p.members()[1].role, Some(Role::Observer));
        let s = rt("a:2888:3888::5 \n");
        assert!(s.is_standalone());
        assert!(rt("").is_standalone());
        assert!(rt(" , ").is_empty());
        rt("[2001:db8:0:0:0:0:0:1]:2888:3888::1 b:2888:3888::2");
        rt("a:02888:3888::01");
    }

    #[test]
    fn errors() {
        use ModelError::*;
        let e = |s| ServerList::parse_env(s).unwrap_err();
        assert!(matches!(
            e("a:1:2::1 b:1:2"),
            MixedIdStyles {
                positional: 2,
                explicit: 1,
                ..
            }
        ));
        // The entry is quoted; a bare number points at a `;` that split an entry.
        let msg = e("h:2888:3888::1;2181 h2:2888:3888::2").to_string();
        assert!(msg.contains("`2181`") && msg.contains("`;`"), "{msg}");
        assert!(matches!(e("a:1:2::0"), BadId { index: 1, .. }));
        assert!(matches!(e("a:1:2::x"), BadId { .. }));
        assert!(matches!(e("a:1:2::1:observer"), BadId { .. }));
        assert!(matches!(e("a:1:2::1 b:1:2::1"), DuplicateId { id: 1 }));
        assert!(matches!(e("a:1:2::1 A:1:2::2"), DuplicateAddress { .. }));
        assert!(matches!(e("a:1:70000::1"), BadPort { .. }));
        assert!(matches!(e("a:0:2::1"), BadPort { .. }));
        assert!(matches!(e("a:x:2::1"), BadPort { .. }));
        assert!(matches!(e("a:2888::1"), BadEntry { index: 1, .. }));
        assert!(matches!(e("a:1:2:Observer::1"), BadEntry { .. }));
        assert!(matches!(e("[fe80::1]:1:2::1"), BadEntry { .. }));
        assert!(matches!(e("[::1]:1:2"), BadId { .. }));
        assert!(matches!(e("x:y:1:2::1"), BadEntry { .. }));
        assert!(matches!(e("a:1:2::1\nb:1:2::2"), MultiLine { .. }));
        assert!(matches!(e("a:1:2::1\r\n"), BadId { .. }));
        assert!(e("a:1:2::1 b:2:x::2").to_string().contains("entry 2"));
    }

    #[test]
    fn add_remove_keep_style() {
        let l = rt("a-0:2888:3888::1 a-1:2888:3888::2 ");
        let l3 = l
            .with_member_added(Member::new(3, "a-2", 2888, 3888))
            .unwrap();
        assert_eq!(
            l3.to_env(),
            "a-0:2888:3888::1 a-1:2888:3888::2 a-2:2888:3888::3 "
        );
        assert_eq!(l3.without_member(3).unwrap().to_env(), l.to_env());
        assert_eq!(
            l3.without_member(1).unwrap().to_env(),
            "a-1:2888:3888::2 a-2:2888:3888::3 "
        );
        let p = rt("x:1:2,y:1:2");
        assert_eq!(
            p.with_member_added(Member::new(3, "z", 1, 2))
                .unwrap()
                .to_env(),
            "x:1:2,y:1:2,z:1:2"
        );
        // a positional list that can no longer be positional switches to explicit ids
        assert_eq!(
            p.with_member_added(Member::new(9, "z", 1, 2))
                .unwrap()
                .to_env(),
            "x:1:2::1,y:1:2::2,z:1:2::9"
        );
        assert_eq!(p.without_member(1).unwrap().to_env(), "y:1:2::2");
        assert_eq!(p.without_member(2).unwrap().to_env(), "x:1:2");
        assert!(matches!(
            l.with_member_added(Member::new(2, "b", 1, 2)),
            Err(ModelError::DuplicateId { id: 2 })
        ));
        assert!(matches!(
            l.with_member_added(Member::new(9, "a-1", 2888, 3888)),
            Err(ModelError::DuplicateAddress { .. })
        ));
        assert!(matches!(
            l.without_member(7),
            Err(ModelError::UnknownId { id: 7 })
        ));
        let one = rt("a-0:2888:3888::1 ");
        assert_eq!(
            one.with_member_added(Member::new(2, "a-1", 2888, 3888))
                .unwrap()
                .to_env(),
            "a-0:2888:3888::1 a-1:2888:3888::2 "
        );
        assert_eq!(l.without_member(2).unwrap().to_env(), "a-0:2888:3888::1 ");
    }

    #[test]
    fn zoo_cfg() {
        let cfg = "tickTime=2000\n# server.9=commented:1:2\nserver.1=a:2888:3888;2181\n\
                   server.2 = b:2888:3888:OBSERVER;0.0.0.0:2181\nserver.3=c:2888:3888\nclientPort=2181\n";
        let l = ServerList::parse_zoo_cfg(cfg).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l.members()[1].role, Some(Role::Observer));
        assert_eq!(l.members()[1].client.as_deref(), Some("0.0.0.0:2181"));
        assert_eq!(
            l.to_zoo_cfg_lines(),
            [
                "server.1=a:2888:3888;2181",
                "server.2=b:2888:3888:OBSERVER;0.0.0.0:2181",
                "server.3=c:2888:3888"
            ]
        );
        assert_eq!(
            l.to_env(),
            "a:2888:3888::1 b:2888:3888:observer::2 c:2888:3888::3"
        );
        let env = rt(CHART3);
        assert_eq!(
            env.image_zoo_cfg_lines(2181)[0],
            "server.1=zk-zookeeper-0.zk-zookeeper-headless.zk-test.svc.cluster.local:2888:3888;2181"
        );
        let back = ServerList::parse_zoo_cfg(&env.image_zoo_cfg_lines(2181).join("\n")).unwrap();
        assert!(back.same_ensemble(&env));
        assert!(rt("a:1:2::1").image_zoo_cfg_lines(2181).is_empty());
        assert!(ServerList::parse_zoo_cfg("server.0=a:1:2").is_err());
        assert!(ServerList::parse_zoo_cfg("server.x=a:1:2").is_err());
        assert!(ServerList::parse_zoo_cfg("server.1=a:1:2|b:1:2").is_err());
        assert!(matches!(
            ServerList::parse_zoo_cfg("server.1=a:1:2\nserver.1=b:1:2"),
            Err(ModelError::DuplicateId { id: 1 })
        ));
    }

    #[test]
    fn addressing() {
        let l = rt(CHART3);
        let pairs: Vec<(u32, &Member)> = l.members().iter().zip(0..).map(|(m, o)| (o, m)).collect();
        let a = Addressing::infer(&pairs, "zk-zookeeper").unwrap();
        assert!(a.is_pod_own_address());
        assert_eq!(
            a.address_for(7),
            "zk-zookeeper-7.zk-zookeeper-headless.zk-test.svc.cluster.local"
        );
        assert_eq!(a.ordinal_of_host(&l.members()[2].host), Some(2));
        assert_eq!(ordinal_of(&l.members()[1], "zk-zookeeper"), Some(1));
        assert_eq!(ordinal_of(&l.members()[1], "zk"), None);

        let svc = rt("zk-0-quorum.zk-test.svc.cluster.local:2888:3888::1");
        let a = Addressing::infer(&[(0, &svc.members()[0])], "zk").unwrap();
        assert!(!a.is_pod_own_address());
        assert_eq!(a.address_for(3), "zk-3-quorum.zk-test.svc.cluster.local");
        // a Service named like a pod (`<name>.<ns>.svc`) is not the pod's DNS name
        let s2 = rt("zk-0.zk-test.svc.cluster.local:2888:3888::1");
        assert_eq!(ordinal_of(&s2.members()[0], "zk"), None);
        assert!(!Addressing::infer(&[(0, &s2.members()[0])], "zk")
            .unwrap()
            .is_pod_own_address());

        let m = rt("coord-member-1:1:2::11 coord-member-2:1:2::12");
        let pairs: Vec<(u32, &Member)> = vec![(1, &m.members()[0]), (2, &m.members()[1])];
        let a = Addressing::infer(&pairs, "coord").unwrap();
        assert_eq!(a.template(), "coord-member-{ordinal}");
        assert_eq!(infer_min_server_id(&pairs), Ok(10));

        let ips = rt("10.0.0.5:1:2::1 10.0.0.9:1:2::2");
        let pairs: Vec<(u32, &Member)> = vec![(0, &ips.members()[0]), (1, &ips.members()[1])];
        assert!(matches!(
            Addressing::infer(&pairs, "zk"),
            Err(ModelError::Addressing { .. })
        ));
        // Names carrying the server id (a migration's Services): ordinal = id − minServerId.
        let mig = rt("zk-member-1.ns.svc.cluster.local:2888:3888::1 \
                      zk-member-2.ns.svc.cluster.local:2888:3888::2");
        let members: Vec<&Member> = mig.members().iter().collect();
        let a = Addressing::infer_by_id(&members, 1).unwrap();
        assert!(!a.is_pod_own_address());
        assert_eq!(a.address_for(0), "zk-member-1.ns.svc.cluster.local");
        assert_eq!(a.address_for(4), "zk-member-5.ns.svc.cluster.local");
        assert_eq!(
            a.ordinal_of_host("zk-member-2.ns.svc.cluster.local"),
            Some(1)
        );
        assert_eq!(a.ordinal_of_host("zk-member-0.ns.svc.cluster.local"), None);
        assert_eq!(a.template(), "zk-member-{ordinal + 1}.ns.svc.cluster.local");
        let t = Addressing::from_template("zk-{ordinal}.zk-hs", "zk").unwrap();
        assert!(t.is_pod_own_address());
        assert!(Addressing::from_template("zk", "zk").is_err());
    }
}
