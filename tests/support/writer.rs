//! A client that keeps writing during a run: one persistent znode per write (`/w/n000042`),
//! reconnecting to whichever member answers. It records which writes were acknowledged and the
//! longest time without an acknowledged write, so a test can check "0 acknowledged writes lost".

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::zk_client::{ClientError, ZkClient};

pub struct Writer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<WriterReport>,
}

#[derive(Debug, Clone)]
pub struct WriterReport {
    /// Sequence numbers the ensemble acknowledged.
    pub acked: Vec<u64>,
    pub errors: u64,
    /// Longest stretch without an acknowledged write.
    pub longest_gap: Duration,
}

pub const ROOT: &str = "/w";

impl Writer {
    /// Starts writing; `addrs` gives the members' current client addresses (called on every
    /// reconnect, so restarted pods are found again).
    pub fn start<F>(addrs: F) -> Writer
    where
        F: Fn() -> Vec<String> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(write_loop(addrs, flag))
        });
        Writer { stop, handle }
    }

    pub fn stop(self) -> WriterReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("writer thread")
    }
}

async fn connect_any(addrs: &[String]) -> Option<ZkClient> {
    for a in addrs {
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_secs(3),
            ZkClient::connect(a, Duration::from_secs(10)),
        )
        .await
        {
            return Some(c);
        }
    }
    None
}

async fn write_loop<F: Fn() -> Vec<String>>(addrs: F, stop: Arc<AtomicBool>) -> WriterReport {
    let mut report = WriterReport {
        acked: Vec::new(),
        errors: 0,
        longest_gap: Duration::ZERO,
    };
    let mut client: Option<ZkClient> = None;
    let mut last_ok = Instant::now();
    let mut n = 0u64;
    let mut root_ready = false;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect_any(&addrs()).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let c = client.as_mut().unwrap();
        if !root_ready {
            match c.ensure(ROOT).await {
                Ok(()) => root_ready = true,
                Err(_) => {
                    client = None;
                    continue;
                }
            }
        }
        let path = format!("{ROOT}/n{n:06}");
        let res = tokio::time::timeout(Duration::from_secs(5), c.create(&path, b"w")).await;
        match res {
            // NODE_EXISTS on a retry: the earlier attempt was applied before the connection broke.
            Ok(Ok(_)) => {}
            Ok(Err(ClientError::NodeExists)) => {}
            _ => {
                report.errors += 1;
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        report.acked.push(n);
        report.longest_gap = report.longest_gap.max(last_ok.elapsed());
        last_ok = Instant::now();
        n += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    report
}

/// Acknowledged writes missing from the ensemble now (read through `addr`).
pub async fn lost(addr: &str, report: &WriterReport) -> Vec<u64> {
    let c = ZkClient::connect(addr, Duration::from_secs(10))
        .await
        .expect("connect for verification");
    let present: BTreeSet<u64> = c
        .get_children(ROOT)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.strip_prefix('n').and_then(|d| d.parse().ok()))
        .collect();
    c.close().await.ok();
    report
        .acked
        .iter()
        .copied()
        .filter(|n| !present.contains(n))
        .collect()
}
