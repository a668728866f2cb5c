//! The one wait loop: a named [`Condition`] tested on fresh snapshots until it is met or its
//! time is up. Waits on Kubernetes objects wake on watch events (the StatefulSet and its pods;
//! a timer is only the fallback); waits on the members' own state poll ZooKeeper on a short
//! interval, since nothing announces it. Every gate and wait of a run goes through here, so a
//! line is printed the same way for each, and a timeout stops the run the same way.

use std::time::{Duration, Instant};

use super::snapshot::Snapshot;
use super::{Engine, EngineError, Event};

/// How often a wait on the members' own answers asks them again.
pub const MEMBER_POLL: Duration = Duration::from_millis(200);
/// The latest a wait on Kubernetes objects looks again without a watch event.
pub const OBJECT_POLL: Duration = Duration::from_secs(2);

/// What a test says about one snapshot.
pub enum Check<T> {
    /// Met: the value, and the detail the passed line shows.
    Met(T, String),
    /// Not yet, and why (shown if the time runs out).
    NotYet(String),
    /// Give up now with this error.
    Stop(EngineError),
}

/// Where a test is in its wait: the number of looks so far (0 for the first) and whether the
/// time is up (a last look: a test may then return its own error instead of the timeout's).
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub n: u32,
    pub overdue: bool,
}

/// How a wait reports itself.
pub enum Kind {
    /// A health gate: its line shows the verdict; on timeout the run stops at `size` (the
    /// StatefulSet's replicas when `None`).
    Gate { size: Option<u32> },
    /// A wait for one thing to happen; on timeout the run stops at the list's size.
    Wait,
    /// No lines (planning): the test decides what a timeout means.
    Quiet,
}

type Test<'a, T> = Box<dyn FnMut(&Snapshot, Look) -> Check<T> + Send + 'a>;

/// A named test over snapshots.
pub struct Condition<'a, T> {
    pub name: String,
    /// Whether the test reads the members' own answers (then they are asked each look).
    pub members: bool,
    /// Whether the test reads what the leader says about reconfiguration ([`Snapshot::config`]):
    /// one ZooKeeper session per look, so only planning asks.
    pub config: bool,
    pub kind: Kind,
    pub test: Test<'a, T>,
}

impl<'a, T> Condition<'a, T> {
    pub fn new(
        name: impl Into<String>,
        members: bool,
        kind: Kind,
        test: impl FnMut(&Snapshot, Look) -> Check<T> + Send + 'a,
    ) -> Self {
        Condition {
            name: name.into(),
            members,
            config: false,
            kind,
            test: Box::new(test),
        }
    }

    /// Each look also asks the leader about reconfiguration (implies `members`).
    pub fn with_config(mut self) -> Self {
        self.members = true;
        self.config = true;
        self
    }
}

impl Engine<'_> {
    /// Tests `cond` until it is met or `timeout` has passed.
    pub(super) async fn until<T>(
        &self,
        mut cond: Condition<'_, T>,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        let start = Instant::now();
        let mut n = 0;
        loop {
            let snap = match self.snapshot(cond.members, cond.config, n == 0).await {
                Ok(s) => s,
                // The API server away for a moment (restarting, overloaded): look again, up to
                // the same timeout; the condition itself is not the problem.
                Err(e) if e.is_transient() && start.elapsed() < timeout => {
                    tracing::debug!(wait = %cond.name, error = %e, "look failed; again");
                    tokio::time::sleep(OBJECT_POLL.min(MEMBER_POLL * 5)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let overdue = start.elapsed() > timeout;
            let look = Look { n, overdue };
            n += 1;
            let line = |passed: bool, detail: String| Event::Gate {
                name: cond.name.clone(),
                passed,
                elapsed_ms: start.elapsed().as_millis() as u64,
                detail,
            };
            match (cond.test)(&snap, look) {
                Check::Met(value, detail) => {
                    if !matches!(cond.kind, Kind::Quiet) {
                        self.emit(line(true, detail));
                    }
                    tracing::debug!(wait = %cond.name, looks = n, "met");
                    return Ok(value);
                }
                Check::Stop(e) => return Err(e),
                Check::NotYet(why) if overdue => {
                    if !matches!(cond.kind, Kind::Quiet) {
                        self.emit(line(false, why.clone()));
                    }
                    return Err(match cond.kind {
                        Kind::Gate { size } => EngineError::Stopped {
                            size: size.unwrap_or_else(|| snap.live.replicas()),
                            reason: format!(
                                "gate `{}` not passed after {timeout:?}: {why}",
                                cond.name
                            ),
                        },
                        Kind::Wait | Kind::Quiet => EngineError::Stopped {
                            size: snap.live.zk.servers.len() as u32,
                            reason: format!(
                                "timed out after {timeout:?} waiting for {}: {why}",
                                cond.name
                            ),
                        },
                    });
                }
                Check::NotYet(why) => {
                    tracing::trace!(wait = %cond.name, look = n, %why, "not yet");
                    let changes = self
                        .changes
                        .get_or_init(|| self.target.watch_changes(&snap.live));
                    let within = if cond.members {
                        MEMBER_POLL
                    } else {
                        OBJECT_POLL
                    };
                    changes.next(within).await;
                }
            }
        }
    }
}
