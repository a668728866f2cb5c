//! Gathering observations (`srvr` + `mntr` per member) and polling until healthy.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::parse::{parse_mntr, parse_srvr, Served};
use super::verdict::{verdict, Gate, MemberObservation, Probe, ServerId, Verdict};
use super::wire::{connect_tcp, four_letter, FourLetter};
use super::ZkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Bounds one whole four-letter exchange.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(5),
        }
    }
}

impl Timeouts {
    /// These, each no longer than `limit` (`--timeout`: a look never outlasts it).
    pub fn within(self, limit: Duration) -> Timeouts {
        Timeouts {
            connect: self.connect.min(limit),
            read: self.read.min(limit),
        }
    }
}

/// Observes one member: `srvr` and `mntr` at once, each on a fresh stream from `connect`
/// (ZooKeeper closes the connection after each word; asking both together halves the time a
/// look takes through a port-forward, and leaves less time for the member to change role
/// between the two answers). Errors become [`Probe::Unreachable`].
pub async fn observe_stream<C, Fut, S>(
    id: ServerId,
    connect: C,
    read_timeout: Duration,
) -> MemberObservation
where
    C: Fn() -> Fut,
    Fut: Future<Output = Result<S, ZkError>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let word = |w: FourLetter| {
        let stream = connect();
        async move { four_letter(stream.await?, w, read_timeout).await }
    };
    let (srvr, mntr) = tokio::join!(word(FourLetter::Srvr), word(FourLetter::Mntr));
    let probe = (|| {
        let srvr = match parse_srvr(&srvr?)? {
            Served::NotServing => return Ok(Probe::NotServing),
            Served::Serving(s) => s,
        };
        let mntr = match parse_mntr(&mntr?)? {
            Served::NotServing => return Ok(Probe::NotServing),
            Served::Serving(m) => m,
        };
        Ok::<_, ZkError>(Probe::Serving { srvr, mntr })
    })();
    MemberObservation {
        id,
        probe: probe.unwrap_or_else(|e| Probe::Unreachable {
            error: e.to_string(),
        }),
    }
}

/// [`observe_stream`] over TCP to `addr` (`host:port`).
pub async fn observe_tcp(id: ServerId, addr: &str, timeouts: Timeouts) -> MemberObservation {
    observe_stream(id, || connect_tcp(addr, timeouts.connect), timeouts.read).await
}

/// Observes every `(id, host:port)` concurrently; the result is in `members` order.
pub async fn observe_all_tcp(
    members: &[(ServerId, String)],
    timeouts: Timeouts,
) -> Vec<MemberObservation> {
    let mut tasks = JoinSet::new();
    for (i, (id, addr)) in members.iter().cloned().enumerate() {
        tasks.spawn(async move { (i, observe_tcp(id, &addr, timeouts).await) });
    }
    let mut out: Vec<Option<MemberObservation>> = vec![None; members.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, obs)) => out[i] = Some(obs),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {} // cancelled: only if the runtime shuts down
        }
    }
    out.into_iter()
        .zip(members)
        .map(|(obs, (id, _))| {
            obs.unwrap_or_else(|| MemberObservation {
                id: *id,
                probe: Probe::Unreachable {
                    error: "observation cancelled".into(),
                },
            })
        })
        .collect()
}

/// Observes (`observe` gathers one round for all members) every `interval` until the verdict is
/// healthy or `timeout` has passed; returns the last verdict either way (check `healthy`).
pub async fn wait_healthy<F, Fut>(
    gate: &Gate,
    timeout: Duration,
    interval: Duration,
    mut observe: F,
) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<MemberObservation>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let v = verdict(gate, &observe().await);
        if v.healthy || Instant::now() + interval > deadline {
            return v;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The server list a member runs with, from its `conf` (`server.N=` lines; 3.5+ print them
/// under `membership:`). An error says why it could not be read (`conf` not whitelisted, no
/// answer); an empty list is a standalone server.
pub async fn server_list_tcp(
    addr: &str,
    timeouts: Timeouts,
) -> Result<crate::model::ServerList, ZkError> {
    let conn = connect_tcp(addr, timeouts.connect).await?;
    let text = four_letter(conn, FourLetter::Conf, timeouts.read).await?;
    crate::model::ServerList::parse_zoo_cfg(&text).map_err(|e| ZkError::Parse {
        cmd: FourLetter::Conf,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const SRVR: &str = "Zookeeper version: 3.9.3-x, built on 2024-10-17 23:21 UTC\nLatency min/avg/max: 0/0.0/0\n\
                        Received: 1\nSent: 0\nConnections: 1\nOutstanding: 0\nZxid: 0x34\nMode: standalone\nNode count: 56\n";
    const MNTR: &str = "zk_version\t3.9.3-x\nzk_server_state\tstandalone\nzk_znode_count\t56\n";

    /// A fake member over in-memory pipes: answers each word from a table.
    fn connector(
        answers: &'static [(&'static str, &'static str)],
    ) -> impl Fn() -> std::future::Ready<Result<DuplexStream, ZkError>> {
        move || {
            let (client, mut server) = duplex(4096);
            tokio::spawn(async move {
                let mut word = [0u8; 4];
                server.read_exact(&mut word).await.unwrap();
                let word = std::str::from_utf8(&word).unwrap().to_string();
                let answer = answers
                    .iter()
                    .find(|(w, _)| *w == word)
                    .map(|(_, a)| *a)
                    .unwrap_or("");
                server.write_all(answer.as_bytes()).await.unwrap();
            });
            std::future::ready(Ok(client))
        }
    }

    #[tokio::test]
    async fn observes_over_any_stream() {
        let obs = observe_stream(
            1,
            connector(&[("srvr", SRVR), ("mntr", MNTR)]),
            Duration::from_secs(1),
        )
        .await;
        let Probe::Serving { srvr, mntr } = &obs.probe else {
            panic!("{obs:?}")
        };
        assert_eq!((srvr.node_count, mntr.znode_count()), (56, Some(56)));
        const NOT: &str = "This ZooKeeper instance is not currently serving requests\n";
        let obs = observe_stream(
            2,
            connector(&[("srvr", SRVR), ("mntr", NOT)]),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(obs.probe, Probe::NotServing);
        let obs =
            observe_stream(3, connector(&[("srvr", "garbage")]), Duration::from_secs(1)).await;
        assert!(
            matches!(&obs.probe, Probe::Unreachable { error } if error.contains("srvr")),
            "{obs:?}"
        );
    }

    #[tokio::test]
    async fn wait_gives_up_at_the_deadline_with_the_last_verdict() {
        let mut rounds = 0;
        let started = Instant::now();
        let v = wait_healthy(
            &Gate::new([1]),
            Duration::from_millis(200),
            Duration::from_millis(20),
            || {
                rounds += 1;
                std::future::ready(vec![MemberObservation {
                    id: 1,
                    probe: Probe::NotServing,
                }])
            },
        )
        .await;
        assert!(!v.healthy);
        assert!(rounds >= 3, "{rounds}");
        assert!(started.elapsed() < Duration::from_secs(1));
        let all = observe_all_tcp(&[(7, "127.0.0.1:1".into())], Timeouts::default()).await;
        assert!(matches!(
            &all[0],
            MemberObservation {
                id: 7,
                probe: Probe::Unreachable { .. }
            }
        ));
    }
}
