//! Wake-ups for the engine's waits: watches on the StatefulSet and its pods wake a waiting loop
//! as soon as either changes, instead of it sleeping a fixed interval. What no watch reports (a
//! member's own ZooKeeper state) the loop still polls, on its own short interval.
//!
//! Best effort by design: a watch that cannot run (RBAC without `watch`, a flaky connection)
//! retries with backoff in the background and the loop falls back to its timer, so a wait is
//! never slower than polling, only faster.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Live, Target};

/// Running watches; dropping it stops them.
pub struct Changes {
    notify: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Target {
    /// Starts watching this StatefulSet and the pods it selects (`live` gives the selector).
    pub fn watch_changes(&self, live: &Live) -> Changes {
        let notify = Arc::new(Notify::new());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod_config = watcher::Config::default().labels(&live.pod_selector());
        let sts = self.statefulsets();
        let sts_config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let tasks = vec![
            tokio::spawn(forward(watcher(pods, pod_config), notify.clone(), "pods")),
            tokio::spawn(forward(
                watcher(sts, sts_config),
                notify.clone(),
                "statefulset",
            )),
        ];
        Changes { notify, tasks }
    }
}

/// Every event of `stream` wakes the loop (a permit is kept when nobody waits, so a change
/// that lands while the loop is busy makes its next wait return at once).
async fn forward<K, S>(stream: S, notify: Arc<Notify>, what: &'static str)
where
    K: Send,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream.default_backoff());
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => notify.notify_one(),
            Err(e) => {
                tracing::debug!(watch = what, error = %e, "watch failed; retrying with backoff")
            }
        }
    }
}

impl Changes {
    /// Returns at the next change, or after `within` at the latest.
    pub async fn next(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.notify.notified()).await;
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
