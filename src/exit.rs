//! Exit codes, decided once, here, from the typed errors of every layer (the README's table;
//! pipelines branch on them, so they are stable).

use std::process::ExitCode;

use crate::cluster::ClusterError;
use crate::engine::EngineError;
use crate::manifest::ManifestError;
use crate::model::ModelError;
use crate::plan::PlanError;
use crate::postrender::PostRenderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, or nothing to do; `status`: healthy.
    Ok = 0,
    /// Failed unexpectedly (API or I/O error): see the message.
    Failed = 1,
    /// Bad command line.
    Usage = 2,
    /// Refused before changing anything (bad input, unhealthy ensemble, lock held, stale claim).
    Refused = 3,
    /// Stopped at a safe size: a gate failed; fix the cause and re-run to resume.
    Stopped = 4,
    /// `status`: the ensemble is not healthy.
    Unhealthy = 5,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit for an error chain: the first error in it that a layer classifies (the
    /// outermost wins: a post-render error knows better than the cluster error it wraps).
    pub fn of(err: &anyhow::Error) -> Exit {
        err.chain().find_map(classify).unwrap_or(Exit::Failed)
    }

    /// [`Exit::of`] for one typed error (and what it wraps).
    pub fn of_error(err: &(dyn std::error::Error + 'static)) -> Exit {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(x) = classify(e) {
                return x;
            }
            cur = e.source();
        }
        Exit::Failed
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The one map from typed errors to exits.
fn classify(e: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if let Some(e) = e.downcast_ref::<PostRenderError>() {
        return Some(match e {
            PostRenderError::Manifest(_) | PostRenderError::Refused(_) => Exit::Refused,
            PostRenderError::Engine { source, .. } | PostRenderError::Before { source, .. } => {
                Exit::of_error(source.as_ref())
            }
            PostRenderError::Unreachable(_) => Exit::Failed,
        });
    }
    if let Some(e) = e.downcast_ref::<EngineError>() {
        return Some(match e {
            EngineError::Refused(_) | EngineError::Plan(_) | EngineError::Model(_) => Exit::Refused,
            EngineError::Stopped { .. } => Exit::Stopped,
            EngineError::Cluster(c) => cluster(c),
        });
    }
    if let Some(c) = e.downcast_ref::<ClusterError>() {
        return Some(cluster(c));
    }
    if e.is::<ManifestError>() || e.is::<PlanError>() || e.is::<ModelError>() {
        return Some(Exit::Refused);
    }
    if e.is::<clap::Error>() {
        return Some(Exit::Usage);
    }
    None
}

fn cluster(e: &ClusterError) -> Exit {
    match e {
        ClusterError::LockHeld { .. }
        | ClusterError::NotFound { .. }
        | ClusterError::NoneFound { .. }
        | ClusterError::Ambiguous { .. }
        | ClusterError::NotZooKeeper { .. } => Exit::Refused,
        _ => Exit::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_map_to_the_documented_codes() {
        let stopped = EngineError::Stopped {
            size: 2,
            reason: "x".into(),
        };
        assert_eq!(Exit::of(&anyhow::Error::new(stopped)).code(), 4);
        let refused = EngineError::Refused("x".into());
        assert_eq!(Exit::of(&anyhow::Error::new(refused)).code(), 3);
        let held = EngineError::Cluster(ClusterError::LockHeld {
            namespace: "n".into(),
            name: "s".into(),
            holder: "h".into(),
            since: "t".into(),
            expires: "t".into(),
        });
        assert_eq!(Exit::of(&anyhow::Error::new(held)).code(), 3);
        let conflict = EngineError::Cluster(ClusterError::Conflict("s".into()));
        assert_eq!(Exit::of(&anyhow::Error::new(conflict)).code(), 1);
        // Wrapped: the post-render error names the engine's, whose class wins.
        let wrapped = PostRenderError::Engine {
            namespace: "n".into(),
            name: "s".into(),
            source: Box::new(EngineError::Stopped {
                size: 1,
                reason: "x".into(),
            }),
        };
        assert_eq!(Exit::of_error(&wrapped), Exit::Stopped);
        assert_eq!(
            Exit::of_error(&PostRenderError::Unreachable("x".into())),
            Exit::Failed
        );
        // Context added at the edge does not hide the class.
        let e = anyhow::Error::new(PlanError::ZeroTarget).context("planning");
        assert_eq!(Exit::of(&e), Exit::Refused);
        assert_eq!(Exit::of(&anyhow::anyhow!("io")), Exit::Failed);
    }
}
