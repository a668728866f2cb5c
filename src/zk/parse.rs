//! Pure parsers for the answers of `srvr`, `mntr` and `ruok` (ZooKeeper 3.8 and 3.9).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FourLetter, ZkError};

/// What a server answers to `srvr` and `mntr` while it has no quorum (`LOOKING`), is still
/// syncing with a leader, or is shutting down.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// An answer from a server that may not be serving requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "answer", rename_all = "snake_case")]
pub enum Served<T> {
    Serving(T),
    NotServing,
}

/// A ZooKeeper transaction id: epoch (leader generation) in the high 32 bits, counter in the low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The leader epoch that wrote this transaction.
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// Transactions in the epoch; 0 right after an election, before the first write.
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl FromStr for Zxid {
    type Err = String;
    /// `0x…` as `srvr` prints it.
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| format!("zxid `{s}` is not 0x-prefixed hex"))?;
        u64::from_str_radix(hex, 16)
            .map(Zxid)
            .map_err(|e| format!("zxid `{s}`: {e}"))
    }
}

/// JSON carries zxids as `"0x…"` strings: exact, and readable next to server logs.
impl Serialize for Zxid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts what [`Serialize`] writes.
impl<'de> Deserialize<'de> for Zxid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A server's role: `srvr`'s `Mode:` and `mntr`'s `zk_server_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
    /// `readonlymode.enabled` and partitioned from the quorum.
    ReadOnly,
    /// Anything else a future version may print, verbatim.
    Other(String),
}

impl Mode {
    pub fn as_str(&self) -> &str {
        match self {
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::Standalone => "standalone",
            Mode::ReadOnly => "read-only",
            Mode::Other(s) => s,
        }
    }
}

impl FromStr for Mode {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "leader" => Mode::Leader,
            "follower" => Mode::Follower,
            "observer" => Mode::Observer,
            "standalone" => Mode::Standalone,
            "read-only" | "readonly" => Mode::ReadOnly,
            other => Mode::Other(other.to_string()),
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `Latency min/avg/max` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub min: u64,
    pub avg: f64,
    pub max: u64,
}

/// `Proposal sizes last/min/max` in bytes (leader only; -1 before the first proposal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProposalSizes {
    pub last: i64,
    pub min: i64,
    pub max: i64,
}

/// The answer to `srvr` from a serving server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Srvr {
    /// `Zookeeper version:` verbatim, e.g. `3.9.3-c26634f…, built on 2024-10-17 23:21 UTC`.
    pub version: String,
    pub latency: Option<Latency>,
    pub received: Option<u64>,
    pub sent: Option<u64>,
    pub connections: Option<u64>,
    pub outstanding: Option<u64>,
    /// The last transaction this server applied.
    pub zxid: Zxid,
    pub mode: Mode,
    pub node_count: u64,
    pub proposal_sizes: Option<ProposalSizes>,
}

impl Srvr {
    /// The release, `3.9.3` of `3.9.3-c26634f…, built on …`.
    pub fn release(&self) -> &str {
        release_of(&self.version)
    }
}

fn release_of(version: &str) -> &str {
    let end = version.find(['-', ',', ' ']).unwrap_or(version.len());
    &version[..end]
}

fn is_not_serving(text: &str) -> bool {
    text.trim_start().starts_with(NOT_SERVING)
}

fn bad(cmd: FourLetter, reason: impl Into<String>) -> ZkError {
    ZkError::Parse {
        cmd,
        reason: reason.into(),
    }
}

fn num<T: FromStr>(cmd: FourLetter, key: &str, value: &str) -> Result<T, ZkError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| bad(cmd, format!("`{key}: {value}`: {e}")))
}

fn triple<A: FromStr, B: FromStr, C: FromStr>(
    cmd: FourLetter,
    key: &str,
    value: &str,
) -> Result<(A, B, C), ZkError>
where
    A::Err: fmt::Display,
    B::Err: fmt::Display,
    C::Err: fmt::Display,
{
    let parts: Vec<&str> = value.trim().split('/').collect();
    match parts[..] {
        [a, b, c] => Ok((num(cmd, key, a)?, num(cmd, key, b)?, num(cmd, key, c)?)),
        _ => Err(bad(
            cmd,
            format!("`{key}: {value}`: expected three /-separated values"),
        )),
    }
}

/// Parses a `srvr` answer. Lines it does not know are ignored; the version, zxid, mode and node
/// count must be there.
pub fn parse_srvr(text: &str) -> Result<Served<Srvr>, ZkError> {
    const CMD: FourLetter = FourLetter::Srvr;
    if is_not_serving(text) {
        return Ok(Served::NotServing);
    }
    let (mut version, mut zxid, mut mode, mut node_count) = (None, None, None, None);
    let mut srvr_latency = None;
    let (mut received, mut sent, mut connections, mut outstanding, mut proposal_sizes) =
        (None, None, None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Zookeeper version" => version = Some(value.to_string()),
            "Latency min/avg/max" => {
                let (min, avg, max) = triple(CMD, key, value)?;
                srvr_latency = Some(Latency { min, avg, max });
            }
            "Received" => received = Some(num(CMD, key, value)?),
            "Sent" => sent = Some(num(CMD, key, value)?),
            "Connections" => connections = Some(num(CMD, key, value)?),
            "Outstanding" => outstanding = Some(num(CMD, key, value)?),
            "Zxid" => zxid = Some(value.parse::<Zxid>().map_err(|e| bad(CMD, e))?),
            "Mode" => mode = Some(value.parse::<Mode>().unwrap_or_else(|never| match never {})),
            "Node count" => node_count = Some(num(CMD, key, value)?),
            "Proposal sizes last/min/max" => {
                let (last, min, max) = triple(CMD, key, value)?;
                proposal_sizes = Some(ProposalSizes { last, min, max });
            }
            _ => {}
        }
    }
    let missing = |what: &str| bad(CMD, format!("no `{what}:` line in {:?}", truncate(text)));
    Ok(Served::Serving(Srvr {
        version: version.ok_or_else(|| missing("Zookeeper version"))?,
        latency: srvr_latency,
        received,
        sent,
        connections,
        outstanding,
        zxid: zxid.ok_or_else(|| missing("Zxid"))?,
        mode: mode.ok_or_else(|| missing("Mode"))?,
        node_count: node_count.ok_or_else(|| missing("Node count"))?,
        proposal_sizes,
    }))
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

/// The answer to `mntr`: every `key<TAB>value` line, with typed accessors for the ones the
/// verdict uses. Accessors return `None` when the key is absent (role-specific keys such as
/// `zk_synced_followers` exist on the leader only) or its value is not a number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Mntr {
    values: BTreeMap<String, String>,
}

impl Mntr {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `zk_version`, verbatim.
    pub fn version(&self) -> Option<&str> {
        self.get("zk_version")
    }
    /// The release, `3.9.3` of `zk_version`.
    pub fn release(&self) -> Option<&str> {
        self.version().map(release_of)
    }
    /// `zk_server_state` (always present: the parser requires it).
    pub fn server_state(&self) -> Mode {
        self.get("zk_server_state")
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|never| match never {})
    }
    /// `zk_peer_state`, e.g. `leading - broadcast`, `following - broadcast`; absent standalone.
    pub fn peer_state(&self) -> Option<&str> {
        self.get("zk_peer_state")
    }
    pub fn znode_count(&self) -> Option<u64> {
        self.get_u64("zk_znode_count")
    }
    pub fn ephemerals_count(&self) -> Option<u64> {
        self.get_u64("zk_ephemerals_count")
    }
    pub fn approximate_data_size(&self) -> Option<u64> {
        self.get_u64("zk_approximate_data_size")
    }
    pub fn num_alive_connections(&self) -> Option<u64> {
        self.get_u64("zk_num_alive_connections")
    }
    pub fn outstanding_requests(&self) -> Option<u64> {
        self.get_u64("zk_outstanding_requests")
    }
    /// Leader only: voting followers in sync (a member whose server list the leader does not
    /// count as a voter is a non-voting follower instead).
    pub fn synced_followers(&self) -> Option<u64> {
        self.get_u64("zk_synced_followers")
    }
    /// Leader only.
    pub fn synced_non_voting_followers(&self) -> Option<u64> {
        self.get_u64("zk_synced_non_voting_followers")
    }
    /// Leader only.
    pub fn synced_observers(&self) -> Option<u64> {
        self.get_u64("zk_synced_observers")
    }
    /// Leader only: connected learners (followers and observers, synced or not).
    pub fn learners(&self) -> Option<u64> {
        self.get_u64("zk_learners")
    }
    /// Leader only, ZooKeeper ≤ 3.5 (3.8 and 3.9 print `zk_learners` instead).
    pub fn followers(&self) -> Option<u64> {
        self.get_u64("zk_followers")
    }
    /// Leader only: pending client `sync()` calls — not about follower sync.
    pub fn pending_syncs(&self) -> Option<u64> {
        self.get_u64("zk_pending_syncs")
    }
    /// Quorum members only: voters in the server's own view of the ensemble.
    pub fn quorum_size(&self) -> Option<u64> {
        self.get_u64("zk_quorum_size")
    }
    pub fn uptime_ms(&self) -> Option<u64> {
        self.get_u64("zk_uptime")
    }
}

/// Parses a `mntr` answer (`key<TAB>value` lines; `zk_server_state` must be there).
pub fn parse_mntr(text: &str) -> Result<Served<Mntr>, ZkError> {
    const CMD: FourLetter = FourLetter::Mntr;
    if is_not_serving(text) {
        return Ok(Served::NotServing);
    }
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once('\t')
            .ok_or_else(|| bad(CMD, format!("line without a tab: {:?}", truncate(line))))?;
        values.insert(key.trim().to_string(), value.trim().to_string());
    }
    if !values.contains_key("zk_server_state") {
        return Err(bad(
            CMD,
            format!("no zk_server_state in {:?}", truncate(text)),
        ));
    }
    Ok(Served::Serving(Mntr { values }))
}

/// `ruok` is answered `imok` by a running server (serving or not: it says nothing about quorum);
/// anything else, including nothing, is not ok.
pub fn parse_ruok(text: &str) -> bool {
    text.trim() == "imok"
}

#[cfg(test)]
mod tests {
    //! Fixtures are answers captured from real servers: ZooKeeper 3.9.3 (Maven Central jars) and
    //! 3.8.0 (Debian 12's package), started by tests/support/zk_ensemble.rs.
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("fixtures/", $name))
        };
    }

    fn srvr(text: &str) -> Srvr {
        match parse_srvr(text).unwrap() {
            Served::Serving(s) => s,
            Served::NotServing => panic!("not serving"),
        }
    }

    fn mntr(text: &str) -> Mntr {
        match parse_mntr(text).unwrap() {
            Served::Serving(m) => m,
            Served::NotServing => panic!("not serving"),
        }
    }

    #[test]
    fn srvr_standalone_39() {
        let s = srvr(fixture!("3.9.3-standalone.srvr"));
        assert_eq!(s.release(), "3.9.3");
        assert!(s
            .version
            .starts_with("3.9.3-c26634f34490bb0ea7a09cc51e05ede3b4e320ee, built on"));
        assert_eq!(s.mode, Mode::Standalone);
        assert_eq!(s.zxid, Zxid(0x35));
        assert_eq!(s.node_count, 56);
        assert!(s.latency.is_some());
        assert!(s.received.unwrap() >= 1);
        assert_eq!(s.connections, Some(1));
        assert_eq!(s.outstanding, Some(0));
        assert_eq!(s.proposal_sizes, None);
    }

    #[test]
    fn srvr_standalone_38() {
        let s = srvr(fixture!("3.8.0-standalone.srvr"));
        assert_eq!(s.release(), "3.8.0");
        assert!(
            s.version.starts_with("3.8.0-${mvngit.commit.id}, built on"),
            "{}",
            s.version
        );
        assert_eq!(s.mode, Mode::Standalone);
        assert_eq!(s.zxid, Zxid(0x35));
        assert_eq!(s.node_count, 56);
    }

    #[test]
    fn srvr_leader_and_follower() {
        for (leader, follower, release) in [
            (
                fixture!("3.9.3-leader.srvr"),
                fixture!("3.9.3-follower.srvr"),
                "3.9.3",
            ),
            (
                fixture!("3.8.0-leader.srvr"),
                fixture!("3.8.0-follower.srvr"),
                "3.8.0",
            ),
        ] {
            let (l, f) = (srvr(leader), srvr(follower));
            assert_eq!((l.release(), f.release()), (release, release));
            assert_eq!((&l.mode, &f.mode), (&Mode::Leader, &Mode::Follower));
            assert_eq!(l.zxid, Zxid(0x1_0000_0035), "{release}");
            assert_eq!(l.zxid, f.zxid, "{release}: quiet ensemble after writes");
            assert_eq!((l.zxid.epoch(), l.zxid.counter()), (1, 0x35));
            assert_eq!(l.node_count, f.node_count);
            assert_eq!(
                l.proposal_sizes.map(|p| p.last > 0),
                Some(true),
                "{release}"
            );
            assert_eq!(f.proposal_sizes, None);
        }
    }

    #[test]
    fn not_serving_srvr_and_mntr() {
        for text in [
            fixture!("3.9.3-not-serving.txt"),
            fixture!("3.8.0-not-serving.txt"),
        ] {
            assert_eq!(parse_srvr(text).unwrap(), Served::NotServing);
            assert_eq!(parse_mntr(text).unwrap(), Served::NotServing);
        }
    }

    #[test]
    fn mntr_standalone() {
        for (text, release) in [
            (fixture!("3.9.3-standalone.mntr"), "3.9.3"),
            (fixture!("3.8.0-standalone.mntr"), "3.8.0"),
        ] {
            let m = mntr(text);
            assert_eq!(m.release(), Some(release));
            assert_eq!(m.server_state(), Mode::Standalone);
            assert_eq!(m.znode_count(), Some(56));
            assert_eq!(m.peer_state(), None, "{release}");
            assert_eq!(m.quorum_size(), None, "{release}");
            assert_eq!(m.synced_followers(), None);
            assert!(m.len() > 300, "{release}: {} keys", m.len());
        }
    }

    #[test]
    fn mntr_leader() {
        for (text, release) in [
            (fixture!("3.9.3-leader.mntr"), "3.9.3"),
            (fixture!("3.8.0-leader.mntr"), "3.8.0"),
        ] {
            let m = mntr(text);
            assert_eq!(m.release(), Some(release));
            assert_eq!(m.server_state(), Mode::Leader);
            assert_eq!(m.peer_state(), Some("leading - broadcast"));
            assert_eq!(m.synced_followers(), Some(2), "{release}");
            assert_eq!(m.synced_non_voting_followers(), Some(0));
            assert_eq!(m.synced_observers(), Some(0));
            assert_eq!(m.learners(), Some(2));
            assert_eq!(m.followers(), None, "zk_followers is gone since 3.6");
            assert_eq!(m.pending_syncs(), Some(0));
            assert_eq!(m.quorum_size(), Some(3));
            assert_eq!(m.znode_count(), Some(56));
            assert_eq!(m.get_f64("zk_avg_latency").map(|v| v >= 0.0), Some(true));
        }
    }

    #[test]
    fn mntr_follower() {
        for (text, release) in [
            (fixture!("3.9.3-follower.mntr"), "3.9.3"),
            (fixture!("3.8.0-follower.mntr"), "3.8.0"),
        ] {
            let m = mntr(text);
            assert_eq!(m.server_state(), Mode::Follower, "{release}");
            assert_eq!(m.peer_state(), Some("following - broadcast"));
            assert_eq!(m.synced_followers(), None);
            assert_eq!(m.learners(), None);
            assert_eq!(m.quorum_size(), Some(3));
        }
    }

    #[test]
    fn keys_only_in_39() {
        let (m39, m38) = (
            mntr(fixture!("3.9.3-leader.mntr")),
            mntr(fixture!("3.8.0-leader.mntr")),
        );
        for key in ["zk_snapshot_error_count", "zk_restore_error_count"] {
            assert!(m39.get(key).is_some() && m38.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn ruok() {
        assert!(parse_ruok(fixture!("3.9.3-ruok.txt")));
        assert!(parse_ruok(fixture!("3.8.0-ruok.txt")));
        assert!(!parse_ruok(""));
        assert!(!parse_ruok("imnotok"));
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(parse_srvr("").is_err());
        assert!(
            parse_srvr("Zookeeper version: 3.9.3\nZxid: 12\nMode: leader\nNode count: 5\n")
                .is_err()
        );
        assert!(parse_srvr("Zookeeper version: 3.9.3\nZxid: 0x12\nMode: leader\n").is_err());
        assert!(parse_srvr(
            "Zookeeper version: 3.9.3\nZxid: 0x1\nMode: leader\nNode count: 5\nReceived: x\n"
        )
        .is_err());
        assert!(parse_mntr("").is_err());
        assert!(parse_mntr("zk_version 3.9.3\n").is_err());
        assert!(
            parse_mntr("zk_version\t3.9.3\n").is_err(),
            "no zk_server_state"
        );
    }

    #[test]
    fn unknown_mode_and_minimal_srvr() {
        let s = srvr("Zookeeper version: 4.0.0\nZxid: 0xff\nMode: wizard\nNode count: 7\n");
        assert_eq!(s.mode, Mode::Other("wizard".into()));
        assert_eq!(s.release(), "4.0.0");
        assert_eq!(s.latency, None);
        assert_eq!(
            serde_json::to_value(s.zxid).unwrap(),
            serde_json::json!("0xff")
        );
    }
}
