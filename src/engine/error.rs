//! The engine's error: what stopped a run, and where it left the ensemble.

use thiserror::Error;

use crate::cluster::ClusterError;
use crate::model::ModelError;
use crate::plan::PlanError;

#[derive(Debug, Error)]
pub enum EngineError {
    /// Nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    /// A gate failed; the ensemble was left at a size where it is whole.
    #[error("stopped at {size} member(s): {reason}. Fix the cause and re-run the same command to resume")]
    Stopped { size: u32, reason: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
    #[error("server list: {0}")]
    Model(#[from] ModelError),
}

impl EngineError {
    /// The API server was away or overloaded (see [`ClusterError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Cluster(c) if c.is_transient())
    }

    /// What went wrong, without a `Stopped`'s own "stopped at …; re-run" framing: for wrapping
    /// it into another outcome.
    pub(crate) fn into_reason(self) -> String {
        match self {
            EngineError::Stopped { reason, .. } => reason,
            other => other.to_string(),
        }
    }
}
