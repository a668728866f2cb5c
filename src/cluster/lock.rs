//! The Lease that keeps two runs apart: one per StatefulSet (`<name>-zkscale`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use super::{ClusterError, Target, FIELD_MANAGER};

/// Lease times are `MicroTime`: the API server wants exactly six fractional digits.
fn micro_time(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A Lease per StatefulSet (`<name>-zkscale`) so two runs never work on one ensemble at once.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

impl Lock {
    pub const DURATION: Duration = Duration::from_secs(30);

    /// Takes the lease, or refuses with who holds it and since when; an expired lease is taken over.
    #[tracing::instrument(level = "debug", skip(target), fields(sts = %target.name), err)]
    pub async fn acquire(target: &Target, holder: String) -> Result<Lock, ClusterError> {
        let name = format!("{}-zkscale", target.name);
        let api: Api<Lease> = Api::namespaced(target.client.clone(), &target.namespace);
        let lock = Lock {
            api,
            name,
            holder,
            duration: Self::DURATION,
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let spec = json!({
            "holderIdentity": lock.holder,
            "leaseDurationSeconds": lock.duration.as_secs(),
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        });
        match lock.api.get_opt(&lock.name).await? {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": { "name": lock.name, "labels": { "app.kubernetes.io/managed-by": FIELD_MANAGER } },
                    "spec": spec,
                }))
                .expect("valid lease");
                match lock
                    .api
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..Default::default()
                        },
                        &lease,
                    )
                    .await
                {
                    Ok(_) => Ok(lock),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Box::pin(Self::acquire(target, lock.holder)).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Some(existing) => {
                let s = existing.spec.clone().unwrap_or_default();
                let holder = s.holder_identity.clone().unwrap_or_default();
                let renew = s.renew_time.as_ref().map(|t| t.0);
                let secs = s.lease_duration_seconds.unwrap_or(30) as i64;
                let expires = renew.map(|r| r + k8s_openapi::jiff::SignedDuration::from_secs(secs));
                let live_holder =
                    !holder.is_empty() && holder != lock.holder && expires.is_some_and(|e| e > now);
                if live_holder {
                    return Err(ClusterError::LockHeld {
                        namespace: target.namespace.clone(),
                        name: target.name.clone(),
                        holder,
                        since: s
                            .acquire_time
                            .map(|t| t.0.to_string())
                            .unwrap_or_else(|| "?".into()),
                        expires: expires.map(|e| e.to_string()).unwrap_or_default(),
                    });
                }
                let patch = json!({ "metadata": { "resourceVersion": existing.resource_version() }, "spec": spec });
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match lock.api.patch(&lock.name, &pp, &Patch::Merge(patch)).await {
                    Ok(_) => Ok(lock),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Box::pin(Self::acquire(target, lock.holder)).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Renews the lease; fails if another run took it (ours had expired).
    #[tracing::instrument(level = "trace", skip(self), fields(lease = %self.name), err)]
    pub async fn renew(&self) -> Result<(), ClusterError> {
        let cur = self.api.get(&self.name).await?;
        if cur.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
            != Some(self.holder.as_str())
        {
            return Err(ClusterError::LockLost(self.name.clone()));
        }
        let patch = json!({
            "metadata": { "resourceVersion": cur.resource_version() },
            "spec": { "renewTime": micro_time(k8s_openapi::jiff::Timestamp::now()) },
        });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api
            .patch(&self.name, &pp, &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(lease = %self.name), err)]
    pub async fn release(self) -> Result<(), ClusterError> {
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
