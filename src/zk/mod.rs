//! ZooKeeper adapter: four-letter words (`srvr`, `mntr`, `ruok`, the only ones the bitnami chart
//! whitelists), their parsers, and the ensemble health verdict that gates every scaling step.
//!
//! - [`wire`]: send a four-letter word over any byte stream (TCP, a Kubernetes port-forward).
//! - [`parse`]: pure parsers for ZooKeeper 3.8 and 3.9 answers.
//! - [`verdict`]: pure health verdict over per-member observations.
//! - [`divergence`]: pure, over several looks: whether a follower's tree differs from the leader's.
//! - [`observe`]: gather observations and poll until healthy.
//! - [`session`]: the client protocol, for the committed configuration and `reconfig`.

pub mod divergence;
pub mod observe;
pub mod parse;
pub mod session;
pub mod verdict;
pub mod wire;

use std::time::Duration;

use thiserror::Error;

pub use divergence::{Diverged, Divergence, Finding};
pub use observe::{
    observe_all_tcp, observe_stream, observe_tcp, server_list_tcp, wait_healthy, Timeouts,
};
pub use parse::{
    parse_mntr, parse_ruok, parse_srvr, Latency, Mntr, Mode, ProposalSizes, Served, Srvr, Zxid,
};
pub use verdict::{
    follower_synced, quorum, verdict, zxid_caught_up, Baseline, Failure, Gate, MemberObservation,
    MemberSummary, Probe, ServerId, Verdict,
};
pub use wire::{connect_tcp, four_letter, query_addr, FourLetter};

/// Errors of the ZooKeeper layer.
#[derive(Debug, Error)]
pub enum ZkError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {addr}: no answer within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("`{cmd}`: {source}")]
    Io {
        cmd: FourLetter,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}`: no complete answer within {after:?}")]
    ReadTimeout { cmd: FourLetter, after: Duration },
    #[error("`{cmd}`: answer longer than {limit} bytes")]
    TooLong { cmd: FourLetter, limit: usize },
    #[error("`{cmd}` is not in the server's 4lw.commands.whitelist")]
    NotWhitelisted { cmd: FourLetter },
    #[error("`{cmd}` answer: {reason}")]
    Parse { cmd: FourLetter, reason: String },
    #[error("ZooKeeper session to {addr}: {reason}")]
    Session { addr: String, reason: String },
    #[error("reconfig refused: {0}")]
    Reconfig(session::Refusal),
}
