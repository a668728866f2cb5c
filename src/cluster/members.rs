//! Reaching members for four-letter words: through the API server's port-forward (from anywhere
//! kubectl works) or straight to the pod IP (from inside the cluster).

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::Serialize;

use super::{LivePod, Target};
use crate::zk::{self, MemberObservation, ServerId, Timeouts};

/// The client port: the chart's `containerPorts.client` default, which the four-letter words,
/// the port-forward and a joining member's `reconfig` entry use.
pub const CLIENT_PORT: u16 = 2181;

/// How four-letter words reach a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connect {
    /// Through the API server (pods/portforward), from anywhere kubectl works.
    PortForward,
    /// Straight to the pod IP, from inside the cluster (a pipeline Job).
    Direct,
}

impl Target {
    /// `srvr` + `mntr` of the member in pod `pod`, reported as server `id`.
    #[tracing::instrument(level = "trace", skip(self, pod, timeouts), fields(pod = pod.map(|p| p.name.as_str())))]
    pub async fn observe(
        &self,
        pod: Option<&LivePod>,
        id: ServerId,
        connect: Connect,
        timeouts: Timeouts,
    ) -> MemberObservation {
        let Some(pod) = pod.filter(|p| p.running && !p.deleting) else {
            return MemberObservation {
                id,
                probe: zk::Probe::Unreachable {
                    error: "no running pod".into(),
                },
            };
        };
        match connect {
            Connect::Direct => {
                let Some(ip) = &pod.ip else {
                    return MemberObservation {
                        id,
                        probe: zk::Probe::Unreachable {
                            error: "pod has no IP".into(),
                        },
                    };
                };
                zk::observe_tcp(id, &format!("{ip}:{CLIENT_PORT}"), timeouts).await
            }
            Connect::PortForward => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
                let name = pod.name.clone();
                zk::observe_stream(
                    id,
                    || {
                        let api = api.clone();
                        let name = name.clone();
                        async move {
                            let fut = async {
                                let mut pf = api
                                    .portforward(&name, &[CLIENT_PORT])
                                    .await
                                    .map_err(std::io::Error::other)?;
                                pf.take_stream(CLIENT_PORT).ok_or_else(|| {
                                    std::io::Error::other("port-forward gave no stream")
                                })
                            };
                            match tokio::time::timeout(timeouts.connect, fut).await {
                                Ok(Ok(s)) => Ok(s),
                                Ok(Err(e)) => Err(zk::ZkError::Connect {
                                    addr: format!("pod/{name}"),
                                    source: e,
                                }),
                                Err(_) => Err(zk::ZkError::ConnectTimeout {
                                    addr: format!("pod/{name}"),
                                    after: timeouts.connect,
                                }),
                            }
                        }
                    },
                    timeouts.read,
                )
                .await
            }
        }
    }
}
