//! `kubectl zkscale rebuild <pod>…`: members recreated on an empty claim with their own server
//! id, one at a time, members that are down first and the leader last; each syncs the whole
//! tree from the leader before the next one goes. Which members may go, and in which order, is
//! [`crate::plan::rebuild`]'s decision, taken again from a fresh look before each one.
//!
//! Per member: a gate (the ensemble healthy, or healthy but for this member: one with a lost
//! disk is usually down); the operation annotation names the member and its claim's UID; the
//! claim is deleted (it stays, terminating, while its pod exists), then the pod. The StatefulSet
//! controller creates the pod again once the old claim is gone, and with it a new, empty claim,
//! so the image's setup.sh gives the member its id from the ordinal. Gates: the member follows
//! the leader, synced; then the ensemble is healthy with no fewer znodes than before.
//!
//! A run killed after the deletions finds the annotation naming a claim that no longer exists
//! and carries on with the waits rather than deleting the new, empty claim again.

use crate::plan::rebuild::{rebuild_order, Rebuild};
use crate::plan::{Expect, PlanError};
use crate::zk::Verdict;

use super::conditions;
use super::wait::{Check, Condition, Kind};
use super::{Engine, EngineError, Event, REFUSE_AFTER};

impl Engine<'_> {
    /// The members in `pods` in the order they would be rebuilt, from one look (transient
    /// states waited out for up to 30 s, then refused).
    pub async fn rebuild_plan(&self, pods: &[String]) -> Result<Vec<Rebuild>, EngineError> {
        let ordinals = self.ordinals_of(pods)?;
        let live = self.target.read().await?;
        live.storage()
            .check(crate::plan::Change::Rebuild, None)
            .map_err(|e| EngineError::Refused(format!("{}: {e}", self.statefulset())))?;
        if live.claim_template().is_none() {
            return Err(EngineError::Refused(format!(
                "{} has no volume claim template: a member's data does not outlive its pod, so \
                 deleting the pod already brings it back empty",
                self.statefulset()
            )));
        }
        let name = self.statefulset().to_string();
        let cond = Condition::new("a rebuild plan", true, Kind::Quiet, move |snap, look| {
            let obs = match snap.observed(&name) {
                Ok(o) => o,
                Err(e) => return Check::Stop(e),
            };
            match rebuild_order(&obs, &ordinals) {
                Ok(order) => Check::Met(order, String::new()),
                // An election, a member catching up: wait them out before refusing.
                Err(
                    e @ (PlanError::NoLeader
                    | PlanError::NoSpare { .. }
                    | PlanError::UnexpectedState(_)),
                ) if !look.overdue => Check::NotYet(e.to_string()),
                Err(e) => Check::Stop(e.into()),
            }
        });
        self.until(cond, REFUSE_AFTER.min(self.opts.timeout)).await
    }

    /// Rebuilds the members in `pods` (see the module docs); the last gate's verdict.
    pub async fn rebuild(&self, pods: &[String]) -> Result<Verdict, EngineError> {
        self.with_lock(self.rebuilding(pods)).await
    }

    async fn rebuilding(&self, pods: &[String]) -> Result<Verdict, EngineError> {
        let first = self.rebuild_plan(pods).await?;
        let n = self.target.read().await?.zk.servers.len() as u32;
        let names = |order: &[Rebuild]| {
            order
                .iter()
                .map(|r| format!("{}-{} (server {})", self.statefulset(), r.ordinal, r.id))
                .collect::<Vec<_>>()
                .join(", then ")
        };
        self.emit(Event::Note {
            message: format!(
                "{}/{}: rebuild {} on empty claims, each synced before the next",
                self.namespace(),
                self.statefulset(),
                names(&first)
            ),
        });
        if let Ok(live) = self.target.read().await {
            let message = format!("rebuild {} ({})", names(&first), self.opts.holder);
            self.record(&live, false, "Rebuilding", &message).await;
        }
        let mut remaining: Vec<u32> = first.iter().map(|r| r.ordinal).collect();
        let mut next = first[0];
        loop {
            let v = self
                .rebuild_one(next, n, remaining.len() == first.len())
                .await?;
            remaining.retain(|o| *o != next.ordinal);
            if remaining.is_empty() {
                self.emit(Event::Done {
                    size: n,
                    elapsed_ms: self.start.elapsed().as_millis() as u64,
                    znode_count: v.baseline().map(|b| b.znode_count),
                });
                return Ok(v);
            }
            if let Some(why) = self.opts.cancel.reason() {
                return Err(EngineError::Stopped {
                    size: n,
                    reason: format!("interrupted ({why}) between two rebuilt members"),
                });
            }
            // Again from a fresh look: leadership may have moved, another member failed.
            let pods: Vec<String> = remaining
                .iter()
                .map(|o| format!("{}-{o}", self.statefulset()))
                .collect();
            next = match self.rebuild_plan(&pods).await {
                Ok(order) => order[0],
                Err(e) => {
                    return Err(EngineError::Stopped {
                        size: n,
                        reason: e.into_reason(),
                    })
                }
            };
        }
    }

    /// One member: gate, delete its claim and pod (unless an earlier run did), wait for it to
    /// come back empty and sync, gate.
    async fn rebuild_one(&self, r: Rebuild, n: u32, first: bool) -> Result<Verdict, EngineError> {
        let pod = format!("{}-{}", self.statefulset(), r.ordinal);
        self.emit(Event::Note {
            message: format!("rebuild {pod} (server {})", r.id),
        });
        let before = format!("before rebuilding {pod}");
        let wait = if first {
            REFUSE_AFTER.min(self.opts.timeout)
        } else {
            self.opts.timeout
        };
        let pre = match self
            .until(conditions::healthy_but(&before, r.id, Some(n)), wait)
            .await
        {
            Ok(v) => v,
            Err(e) if first => {
                return Err(EngineError::Refused(format!(
                    "the ensemble is not whole without server {}: {}",
                    r.id,
                    e.into_reason()
                )))
            }
            Err(e) => return Err(e),
        };
        let live = self.target.read().await?;
        let current = live.claim_uids.get(&r.ordinal).cloned();
        let earlier = live
            .operation()
            .and_then(super::annotation::parse_operation::<super::annotation::RebuildOp>)
            .filter(|op| op.rebuild == pod && Some(&op.claim) != current.as_ref());
        let old_claim = match (earlier, current) {
            // An earlier run deleted the claim: what is there now is the new one, or none yet.
            (Some(op), _) => {
                self.emit(Event::Note {
                    message: format!(
                        "{pod}: its old claim was deleted by an earlier run; waiting for it to sync"
                    ),
                });
                op.claim
            }
            (None, Some(uid)) => {
                let claim = live.claims.get(&r.ordinal).cloned().unwrap_or_default();
                let op = serde_json::json!({
                    "target": n, "step": format!("rebuild {pod}"), "rebuild": pod,
                    "claim": uid, "holder": self.opts.holder,
                    "at": k8s_openapi::jiff::Timestamp::now().to_string(),
                });
                self.target.set_operation(&op.to_string()).await?;
                self.emit(Event::Action {
                    description: format!(
                        "rebuild server {}: delete claim {claim} and pod {pod}; it comes back on an \
                         empty claim and syncs from the leader",
                        r.id
                    ),
                });
                self.target.delete_claim(&claim).await?;
                if let Some(p) = live.pods.get(&r.ordinal) {
                    self.target.delete_pod(p).await?;
                }
                self.wrote();
                uid
            }
            (None, None) => {
                return Err(EngineError::Stopped {
                    size: n,
                    reason: format!(
                        "{pod} has no claim and no record of this run deleting one: look at what \
                         deleted it, then re-run"
                    ),
                })
            }
        };
        self.until(
            conditions::claim_replaced(&pod, r.ordinal, old_claim),
            self.opts.timeout,
        )
        .await?;
        self.until(
            conditions::member(r.ordinal, r.id, Expect::Follow, None),
            self.opts.timeout,
        )
        .await?;
        let after = format!("after rebuilding {pod}");
        self.gate(&after, pre.baseline(), Some(n), self.opts.timeout)
            .await
    }

    /// Ordinals of the StatefulSet's pods named in `pods`.
    fn ordinals_of(&self, pods: &[String]) -> Result<Vec<u32>, EngineError> {
        let prefix = format!("{}-", self.statefulset());
        pods.iter()
            .map(|p| {
                let name = p.strip_prefix("pod/").unwrap_or(p);
                name.strip_prefix(&prefix)
                    // The controller spells ordinals with digits only (no sign: `str::parse`
                    // takes `+1`) and without leading zeros.
                    .filter(|o| crate::engine::plain_ordinal(o))
                    .and_then(|o| o.parse::<u32>().ok())
                    .ok_or_else(|| {
                        EngineError::Refused(format!(
                            "`{p}` is not a pod of StatefulSet {} (expected {prefix}<ordinal>)",
                            self.statefulset()
                        ))
                    })
            })
            .collect()
    }
}
