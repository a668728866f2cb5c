//! The tests' ZooKeeper client: a session on one server through the maintained
//! `zookeeper-client` crate, with the few calls the tests make (write and count znodes, the
//! continuous writer). One server per session on purpose: reads then show that member's own
//! copy of the tree, which is what "every member kept its data" must look at.

use std::time::Duration;

pub use zookeeper_client::Error as ClientError;
use zookeeper_client::{Acls, Client, CreateMode};

pub struct ZkClient {
    inner: Client,
}

/// `/path` with open ACLs.
fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

impl ZkClient {
    /// A session on the server at `addr` (`host:port`) alone; fails at once when it does not
    /// serve (no retry on other servers).
    pub async fn connect(addr: &str, session_timeout: Duration) -> Result<Self, ClientError> {
        let inner = Client::connector()
            .with_session_timeout(session_timeout)
            .with_fail_eagerly()
            .connect(addr)
            .await?;
        Ok(ZkClient { inner })
    }

    pub async fn create(&self, path: &str, data: &[u8]) -> Result<(), ClientError> {
        self.inner.create(path, data, &persistent()).await.map(drop)
    }

    /// Creates `path` unless it exists.
    pub async fn ensure(&self, path: &str) -> Result<(), ClientError> {
        match self.create(path, b"").await {
            Ok(()) | Err(ClientError::NodeExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates every path (pipelined: the requests are all in flight at once).
    pub async fn create_many(&self, paths: &[String], data: &[u8]) -> Result<(), ClientError> {
        let options = persistent();
        let creates = paths.iter().map(|p| self.inner.create(p, data, &options));
        for r in futures::future::join_all(creates).await {
            r?;
        }
        Ok(())
    }

    pub async fn exists(&self, path: &str) -> Result<bool, ClientError> {
        Ok(self.inner.check_stat(path).await?.is_some())
    }

    pub async fn get_children(&self, path: &str) -> Result<Vec<String>, ClientError> {
        self.inner.list_children(path).await
    }

    /// Ends the session (dropping the last handle closes it).
    /// `/zookeeper/config` as this server has it (after a `sync`): its text.
    pub async fn config(&self) -> Result<String, ClientError> {
        self.inner.sync("/zookeeper/config").await?;
        let (data, _) = self.inner.get_config().await?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    pub async fn close(self) -> Result<(), ClientError> {
        drop(self.inner);
        Ok(())
    }
}
