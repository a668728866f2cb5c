//! The ZooKeeper client protocol, for what four-letter words cannot do: read the committed
//! configuration (`/zookeeper/config`), tell whether the ensemble can be reconfigured and by
//! whom, and change it (`reconfig`). One short session per use, to an address the cluster layer
//! provides (a pod IP, or the local end of a port-forward).

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use zookeeper_client as zkc;

use super::ZkError;
use crate::model::{Member, ServerList};

/// Who `reconfig` runs as: a `digest` user (the superuser, or one granted WRITE on
/// `/zookeeper/config`). The password is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    user: String,
    password: String,
}

impl Identity {
    pub fn digest(user: impl Into<String>, password: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            password: password.into(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

/// The committed configuration and its version (the zxid that committed it, which `reconfig`
/// takes to refuse a change based on a stale read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub servers: ServerList,
    pub version: i64,
}

/// What the leader says to a `reconfig` that cannot apply (its version matches no
/// configuration): ZooKeeper checks whether reconfiguration is enabled and whether it runs in
/// quorum mode before the version, and the version before anything else, so nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconfigurable {
    Yes,
    /// `reconfigEnabled=false`: the static configuration rules.
    Disabled,
    /// A standalone server: nothing to reconfigure.
    Standalone,
}

/// Whether this session may call `reconfig` (ZooKeeper checks the caller last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "may")]
pub enum Permission {
    /// The session is the superuser's.
    Super,
    /// The session's digest user has WRITE on `/zookeeper/config`.
    Acl { user: String },
    /// Not as far as ZooKeeper tells (it may still run with `skipACL`, which no answer shows).
    No { why: String },
}

/// Why a `reconfig` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum Refusal {
    /// `NewConfigNoQuorum`: a quorum of the new configuration is not synced with the leader.
    NoQuorum,
    /// `ReconfigInProgress`: another reconfiguration is not committed yet.
    InProgress,
    /// `BadVersion`: the configuration changed since it was read.
    BadVersion,
    Disabled,
    Standalone,
    /// `NoAuth`: the session may not write `/zookeeper/config`.
    NoAuth,
    Other {
        code: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NoQuorum => {
                "NewConfigNoQuorum: a quorum of the new configuration is not synced with the leader"
            }
            Refusal::InProgress => "ReconfigInProgress: another reconfiguration is not committed yet",
            Refusal::BadVersion => "BadVersion: the configuration changed since it was read",
            Refusal::Disabled => "ReconfigDisabled: the members run with reconfigEnabled=false",
            Refusal::Standalone => "the server runs standalone, which ZooKeeper cannot reconfigure",
            Refusal::NoAuth => {
                "NoAuth: the identity may not write /zookeeper/config (not the superuser, no WRITE ACL)"
            }
            Refusal::Other { code } => return write!(f, "ZooKeeper error {code}"),
        })
    }
}

impl Refusal {
    fn of(e: &zkc::Error) -> Option<Refusal> {
        Some(match e {
            // The crate knows neither code by name (ZooKeeper's -13 and -14).
            zkc::Error::UnexpectedErrorCode(-13) => Refusal::NoQuorum,
            zkc::Error::UnexpectedErrorCode(-14) => Refusal::InProgress,
            zkc::Error::BadVersion => Refusal::BadVersion,
            zkc::Error::ReconfigDisabled => Refusal::Disabled,
            zkc::Error::Unimplemented => Refusal::Standalone,
            zkc::Error::NoAuth => Refusal::NoAuth,
            zkc::Error::BadArguments(_) | zkc::Error::UnexpectedErrorCode(_) => Refusal::Other {
                code: e.to_string(),
            },
            _ => return None,
        })
    }
}

/// One change of membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `server.<id>=<entry>` becomes a voter.
    Join {
        id: u32,
        entry: String,
    },
    Leave {
        id: u32,
    },
}

impl Change {
    pub fn id(&self) -> u32 {
        match self {
            Change::Join { id, .. } | Change::Leave { id } => *id,
        }
    }

    /// Whether `committed` already has it (a run that died after the call).
    pub fn done_in(&self, committed: &ServerList) -> bool {
        match self {
            Change::Join { id, .. } => committed.get(*id).is_some(),
            Change::Leave { id } => committed.get(*id).is_none(),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Join { id, entry } => write!(f, "add server.{id}={entry}"),
            Change::Leave { id } => write!(f, "remove server {id}"),
        }
    }
}

/// The joining member's `reconfig` entry. ZooKeeper requires a client address in it, and on
/// commit a member whose client address differs from the one it runs with rebinds (or closes)
/// its client port, so the entry must say exactly what the joiner runs with:
/// - members on the image's default (`ZOO_SERVERS` entries get `;<clientPort>`: all
///   interfaces), which ZooKeeper shows as `;0.0.0.0:<port>` in the committed configuration:
///   the joiner has the same, `0.0.0.0:<client_port>`;
/// - members whose client address comes from `clientPortAddress` (the committed entries show
///   none, or their own addresses): the only per-pod address such a setting can hold is the
///   pod's IP, `<pod_ip>:<client_port>`.
pub fn join_entry(
    member: &Member,
    committed: &ServerList,
    pod_ip: Option<&str>,
    client_port: u16,
) -> Result<String, String> {
    let core = format!("{}:participant", member.quorum_address());
    let clients: Vec<&str> = committed
        .members()
        .iter()
        .filter_map(|m| m.client.as_deref())
        .collect();
    let wildcard = |c: &&str| c.starts_with("0.0.0.0:") || c.parse::<u16>().is_ok();
    match (clients.iter().any(wildcard), clients.iter().all(wildcard)) {
        (true, true) => Ok(format!("{core};0.0.0.0:{client_port}")),
        (true, false) => Err(format!(
            "the committed members' client addresses ({}) mix all-interfaces and specific ones, \
             so the new member's own cannot be told",
            clients.join(", ")
        )),
        (false, _) => match pod_ip {
            Some(ip) => Ok(format!("{core};{ip}:{client_port}")),
            None => Err("the new member's pod has no IP yet".into()),
        },
    }
}

/// A session to `addr` (as `identity` when given), bounded by `timeout`.
pub async fn connect(
    addr: &str,
    identity: Option<&Identity>,
    timeout: Duration,
) -> Result<zkc::Client, ZkError> {
    let mut c = zkc::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(timeout)
        .with_fail_eagerly();
    if let Some(i) = identity {
        c = c.with_auth("digest", format!("{}:{}", i.user, i.password).as_bytes());
    }
    match tokio::time::timeout(timeout, c.connect(addr)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(session_error(addr, e)),
        Err(_) => Err(ZkError::ConnectTimeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

fn session_error(addr: &str, e: zkc::Error) -> ZkError {
    ZkError::Session {
        addr: addr.to_string(),
        reason: match e {
            zkc::Error::AuthFailed => "authentication failed (wrong user or password)".into(),
            e => e.to_string(),
        },
    }
}

/// The committed configuration, as the member `client` is connected to has it (after a
/// `sync`, so a follower's is the leader's).
pub async fn committed(client: &zkc::Client, addr: &str) -> Result<Committed, ZkError> {
    client
        .sync("/zookeeper/config")
        .await
        .map_err(|e| session_error(addr, e))?;
    let (data, stat) = client
        .get_config()
        .await
        .map_err(|e| session_error(addr, e))?;
    parse_committed(&String::from_utf8_lossy(&data), stat.mzxid).map_err(|reason| {
        ZkError::Session {
            addr: addr.to_string(),
            reason: format!("/zookeeper/config: {reason}"),
        }
    })
}

/// `/zookeeper/config` text (`server.N=…` lines, `version=<hex>`) with its znode's mzxid.
pub fn parse_committed(text: &str, mzxid: i64) -> Result<Committed, String> {
    let servers = ServerList::parse_zoo_cfg(text).map_err(|e| e.to_string())?;
    if servers.is_empty() {
        return Err("no server lines".into());
    }
    // The text names its version too; when both are there they must agree.
    if let Some(v) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version="))
        .and_then(|v| i64::from_str_radix(v.trim(), 16).ok())
    {
        if v != mzxid && mzxid != 0 {
            return Err(format!(
                "version {v:#x} in the text, {mzxid:#x} on the znode"
            ));
        }
        return Ok(Committed {
            servers,
            version: v,
        });
    }
    Ok(Committed {
        servers,
        version: mzxid,
    })
}

/// See [`Reconfigurable`]. Version 0 never names a configuration: the first one an ensemble
/// establishes takes the zxid of its NEWLEADER, which is not 0.
pub async fn reconfigurable(client: &zkc::Client, addr: &str) -> Result<Reconfigurable, ZkError> {
    let none: [&str; 0] = [];
    let probe = zkc::EnsembleUpdate::Incremental {
        joinings: none.iter().copied(),
        leavings: none.iter().copied(),
    };
    match client.update_ensemble(probe, Some(0)).await {
        Err(zkc::Error::BadVersion) => Ok(Reconfigurable::Yes),
        Err(zkc::Error::ReconfigDisabled) => Ok(Reconfigurable::Disabled),
        Err(zkc::Error::Unimplemented) => Ok(Reconfigurable::Standalone),
        Ok(_) => Err(ZkError::Session {
            addr: addr.to_string(),
            reason: "a reconfig from version 0 was accepted".into(),
        }),
        Err(e) => Err(session_error(addr, e)),
    }
}

/// See [`Permission`]: the superuser shows in `whoami` (ZooKeeper 3.7+); otherwise the digest
/// user must have WRITE in `/zookeeper/config`'s ACL.
pub async fn permission(client: &zkc::Client, addr: &str) -> Result<Permission, ZkError> {
    let users = client
        .list_auth_users()
        .await
        .map_err(|e| session_error(addr, e))?;
    if users.iter().any(|u| u.scheme() == "super") {
        return Ok(Permission::Super);
    }
    let digest: Vec<&str> = users
        .iter()
        .filter(|u| u.scheme() == "digest")
        .map(|u| u.user())
        .collect();
    let (acl, _) = client
        .get_acl("/zookeeper/config")
        .await
        .map_err(|e| session_error(addr, e))?;
    let writer = acl.iter().find_map(|a| {
        let user = a.id().split(':').next().unwrap_or("");
        (a.scheme() == "digest"
            && digest.contains(&user)
            && a.permission().has(zkc::Permission::WRITE))
        .then(|| user.to_string())
    });
    Ok(match (writer, digest.as_slice()) {
        (Some(user), _) => Permission::Acl { user },
        (None, []) => Permission::No {
            why: "no identity given".into(),
        },
        (None, users) => Permission::No {
            why: format!(
                "digest user {} is not the superuser and has no WRITE on /zookeeper/config",
                users.join(", ")
            ),
        },
    })
}

/// `change` from configuration `version`; the new committed configuration. A refusal comes
/// back as [`ZkError::Reconfig`]; a lost connection as another error (the change may or may
/// not have committed: read the configuration again).
pub async fn reconfig(
    client: &zkc::Client,
    addr: &str,
    change: &Change,
    version: i64,
) -> Result<Committed, ZkError> {
    let id = change.id().to_string();
    let entry;
    let (joinings, leavings): (Vec<&str>, Vec<&str>) = match change {
        Change::Join { id, entry: e } => {
            entry = format!("server.{id}={e}");
            (vec![entry.as_str()], vec![])
        }
        Change::Leave { .. } => (vec![], vec![id.as_str()]),
    };
    let update = zkc::EnsembleUpdate::Incremental {
        joinings: joinings.iter().copied(),
        leavings: leavings.iter().copied(),
    };
    match client.update_ensemble(update, Some(version)).await {
        Ok((data, stat)) => {
            parse_committed(&String::from_utf8_lossy(&data), stat.mzxid).map_err(|reason| {
                ZkError::Session {
                    addr: addr.to_string(),
                    reason: format!("reconfig answer: {reason}"),
                }
            })
        }
        Err(e) => Err(match Refusal::of(&e) {
            Some(r) => ZkError::Reconfig(r),
            None => session_error(addr, e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_text_parses_with_its_version() {
        let text = "server.1=zk-0.zk-hs:2888:3888:participant;0.0.0.0:2181\n\
                    server.2=zk-1.zk-hs:2888:3888:participant;0.0.0.0:2181\n\
                    version=100000000\n";
        let c = parse_committed(text, 0x1_0000_0000).unwrap();
        assert_eq!(c.version, 0x1_0000_0000);
        assert_eq!(c.servers.ids(), [1, 2].into());
        assert!(parse_committed(text, 5).is_err());
        assert!(parse_committed("version=1\n", 1).is_err());
        // Without a version line the znode's mzxid is the version.
        let c = parse_committed("server.1=a:1:2\nserver.2=b:1:2\n", 7).unwrap();
        assert_eq!(c.version, 7);
    }

    #[test]
    fn the_join_entry_says_what_the_joiner_runs_with() {
        let m = Member::new(3, "zk-2.zk-hs", 2888, 3888);
        let image = ServerList::parse_zoo_cfg(
            "server.1=zk-0.zk-hs:2888:3888:participant;0.0.0.0:2181\nserver.2=zk-1.zk-hs:2888:3888:participant;0.0.0.0:2181\n",
        )
        .unwrap();
        assert_eq!(
            join_entry(&m, &image, Some("10.0.0.3"), 2181).unwrap(),
            "zk-2.zk-hs:2888:3888:participant;0.0.0.0:2181"
        );
        let from_static = ServerList::parse_zoo_cfg(
            "server.1=a:2888:3888:participant\nserver.2=b:2888:3888:participant;10.0.0.2:2181\n",
        )
        .unwrap();
        assert_eq!(
            join_entry(&m, &from_static, Some("10.0.0.3"), 2181).unwrap(),
            "zk-2.zk-hs:2888:3888:participant;10.0.0.3:2181"
        );
        assert!(join_entry(&m, &from_static, None, 2181).is_err());
        let mixed = ServerList::parse_zoo_cfg(
            "server.1=a:2888:3888;0.0.0.0:2181\nserver.2=b:2888:3888;10.0.0.2:2181\n",
        )
        .unwrap();
        assert!(join_entry(&m, &mixed, Some("10.0.0.3"), 2181)
            .unwrap_err()
            .contains("10.0.0.2:2181"));
    }

    #[test]
    fn changes_know_when_they_are_done() {
        let l = ServerList::parse_zoo_cfg("server.1=a:1:2\nserver.2=b:1:2\n").unwrap();
        assert!(Change::Leave { id: 3 }.done_in(&l));
        assert!(!Change::Leave { id: 2 }.done_in(&l));
        assert!(Change::Join {
            id: 2,
            entry: "b:1:2".into()
        }
        .done_in(&l));
        assert_eq!(
            Change::Join {
                id: 3,
                entry: "c:1:2:participant".into()
            }
            .to_string(),
            "add server.3=c:1:2:participant"
        );
    }

    #[test]
    fn identities_hide_the_password() {
        let i = Identity::digest("super", "s3cret");
        assert!(!format!("{i:?}").contains("s3cret"));
    }
}
