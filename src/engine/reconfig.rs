//! A step's `reconfig` call: to the serving leader, from the committed configuration read in
//! the same session, so a run that died after the call finds it made and does not repeat it.

use std::time::{Duration, Instant};

use crate::cluster::members::CLIENT_PORT;
use crate::plan::Step;
use crate::zk::session::{self, Change, Committed, Identity, Refusal};
use crate::zk::ZkError;

use super::snapshot::Snapshot;
use super::wait::MEMBER_POLL;
use super::{Engine, EngineError, Event};

/// A `reconfig` that did not happen, or of which that cannot be told.
pub(super) struct NotMade {
    pub error: EngineError,
    /// ZooKeeper refused it: the configuration is certainly without the change.
    pub refused: bool,
}

/// How long a refusal that clears by itself (another reconfiguration committing, the
/// configuration read just before a change) is retried.
const RETRY_FOR: Duration = Duration::from_secs(30);

impl Engine<'_> {
    /// Adds server `id` (`join`, with its entry from `step.servers`) to the committed
    /// configuration, or removes it. Returns once the configuration has it; an error says
    /// whether ZooKeeper refused the change (so it is certainly not made) or whether that could
    /// not be told (no session to the leader, or no leader, until the timeout).
    pub(super) async fn reconfigure(
        &self,
        step: &Step,
        id: u32,
        join: bool,
    ) -> Result<(), NotMade> {
        let start = Instant::now();
        let unknown = |error: EngineError| NotMade {
            error,
            refused: false,
        };
        let identity = self.identity().await.map_err(unknown)?;
        let mut said = false;
        loop {
            let snap = self.snapshot(true, false, false).await.map_err(unknown)?;
            let stop = |reason: String| EngineError::Stopped {
                size: step.from,
                reason,
            };
            let leader = match snap.serving_leaders().as_slice() {
                [(l, _, _)] => *l,
                _ if start.elapsed() < self.opts.timeout => {
                    tokio::time::sleep(MEMBER_POLL).await;
                    continue;
                }
                _ => {
                    return Err(unknown(stop(format!(
                        "no single serving leader to reconfigure after {:?}",
                        self.opts.timeout
                    ))))
                }
            };
            let attempt = self.reconfig_once(&snap, leader, step, id, join, identity.as_ref());
            match attempt.await {
                Ok((change, None)) => {
                    self.emit(Event::Action {
                        description: format!("reconfig: {change}: already committed"),
                    });
                    return Ok(());
                }
                Ok((change, Some((from, new)))) => {
                    self.wrote();
                    self.emit(Event::Action {
                        description: format!(
                            "reconfig: {change} (configuration {from:#x} → {:#x}, {} voter(s))",
                            new.version,
                            new.servers.voters().count()
                        ),
                    });
                    return Ok(());
                }
                Err(ZkError::Reconfig(r @ (Refusal::InProgress | Refusal::BadVersion)))
                    if start.elapsed() < RETRY_FOR.min(self.opts.timeout) =>
                {
                    tracing::debug!(refusal = %r, "reconfig refused for now; again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(ZkError::Reconfig(r)) => {
                    return Err(NotMade {
                        error: stop(format!(
                            "reconfig of server {id} refused by leader {leader}: {r}"
                        )),
                        refused: true,
                    })
                }
                // The session or the port-forward broke: whether the change committed is told
                // by the next read of the configuration.
                Err(e) if start.elapsed() < self.opts.timeout => {
                    if !said {
                        self.emit(Event::Warning {
                            message: format!("reconfig through leader {leader}: {e}; trying again"),
                        });
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(unknown(stop(format!(
                        "reconfig of server {id} not confirmed after {:?}: {e}",
                        self.opts.timeout
                    ))))
                }
            }
        }
    }

    /// One attempt through `leader`: the committed configuration, then the change unless it is
    /// in already (`None`); else `(version it was made from, new configuration)`.
    async fn reconfig_once(
        &self,
        snap: &Snapshot,
        leader: u32,
        step: &Step,
        id: u32,
        join: bool,
        identity: Option<&Identity>,
    ) -> Result<(Change, Option<(i64, Committed)>), ZkError> {
        let session_err = |addr: &str, reason: String| ZkError::Session {
            addr: addr.to_string(),
            reason,
        };
        let pod = snap
            .members
            .iter()
            .find(|(_, i, _)| *i == leader)
            .and_then(|(o, _, _)| snap.live.pods.get(o))
            .ok_or_else(|| session_err("the leader", format!("leader {leader} has no pod")))?;
        let tunnel = self
            .target
            .tunnel(pod, self.opts.connect)
            .await
            .map_err(|e| session_err(&pod.name, e.to_string()))?;
        let addr = tunnel.addr();
        let wait = crate::zk::Timeouts::default().connect + Duration::from_secs(5);
        let client = session::connect(addr, identity, wait).await?;
        let committed = session::committed(&client, addr).await?;
        let change = if join {
            let member = step.servers.get(id).ok_or_else(|| {
                session_err(addr, format!("server {id} is not in the step's list"))
            })?;
            let ip = snap
                .live
                .pods
                .values()
                .find(|p| snap.pod_id(p) == id)
                .and_then(|p| p.ip.as_deref());
            let entry = session::join_entry(member, &committed.servers, ip, CLIENT_PORT)
                .map_err(|reason| session_err(addr, reason))?;
            Change::Join { id, entry }
        } else {
            Change::Leave { id }
        };
        if change.done_in(&committed.servers) {
            return Ok((change, None));
        }
        let new = session::reconfig(&client, addr, &change, committed.version).await?;
        Ok((change, Some((committed.version, new))))
    }
}
