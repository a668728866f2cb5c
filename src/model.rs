//! Ensemble model: ZooKeeper server lists as the bitnami image and zoo.cfg spell them. Pure, no I/O.
//! (Skeleton: signatures are the contract; the implementation is being written.)

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("server entry {index} `{entry}`: {reason}")]
    BadEntry { index: usize, entry: String, reason: String },
    #[error("duplicate server id {id}")]
    DuplicateId { id: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Participant,
    Observer,
}

/// One server of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A parsed `ZOO_SERVERS` value or set of zoo.cfg `server.N` lines; formats back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList {
    members: Vec<Member>,
}

impl ServerList {
    pub fn parse_env(_s: &str) -> Result<Self, ModelError> {
        todo!()
    }
    pub fn to_env(&self) -> String {
        todo!()
    }
    pub fn members(&self) -> &[Member] {
        &self.members
    }
    /// ≤ 1 entry: the image runs ZooKeeper standalone.
    pub fn is_standalone(&self) -> bool {
        self.members.len() <= 1
    }
}
