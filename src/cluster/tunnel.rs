//! A member's client port as a `host:port` for clients that dial it themselves (the ZooKeeper
//! client behind `reconfig`): the pod IP from inside the cluster, or a loopback listener whose
//! every connection is a port-forward through the API server, as `kubectl port-forward` does.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;

use super::members::CLIENT_PORT;
use super::{ClusterError, Connect, LivePod, Target};

/// A reachable address for one pod's client port; the forwarding (if any) ends when dropped.
pub struct Tunnel {
    addr: String,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Tunnel {
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}

impl Target {
    /// The client port of `pod`, reachable by `connect`.
    pub async fn tunnel(&self, pod: &LivePod, connect: Connect) -> Result<Tunnel, ClusterError> {
        match connect {
            Connect::Direct => {
                let ip = pod.ip.as_ref().ok_or_else(|| ClusterError::Unreachable {
                    server: format!("pod/{}", pod.name),
                    cause: "the pod has no IP".into(),
                })?;
                Ok(Tunnel {
                    addr: format!("{ip}:{CLIENT_PORT}"),
                    forwarder: None,
                })
            }
            Connect::PortForward => {
                let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(|e| ClusterError::Unreachable {
                        server: "127.0.0.1".into(),
                        cause: format!("no local port for the port-forward: {e}"),
                    })?;
                let local = listener
                    .local_addr()
                    .map_err(|e| ClusterError::Unreachable {
                        server: "127.0.0.1".into(),
                        cause: e.to_string(),
                    })?;
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
                let name = pod.name.clone();
                let forwarder = tokio::spawn(async move {
                    while let Ok((mut conn, _)) = listener.accept().await {
                        let (api, name) = (api.clone(), name.clone());
                        tokio::spawn(async move {
                            let Ok(mut pf) = api.portforward(&name, &[CLIENT_PORT]).await else {
                                return; // the client sees the connection close and retries
                            };
                            if let Some(mut upstream) = pf.take_stream(CLIENT_PORT) {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                            }
                        });
                    }
                });
                Ok(Tunnel {
                    addr: local.to_string(),
                    forwarder: Some(forwarder),
                })
            }
        }
    }
}
