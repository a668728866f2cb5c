//! Demo helper (not part of the product): writes or counts the demo's znodes under `/data`.
//!   zk_data write <host:port> <count>
//!   zk_data count <host:port>
//! Uses the tests' ZooKeeper client (the `zookeeper-client` crate).

#[path = "../tests/support/zk_client.rs"]
#[allow(dead_code)] // the tests use more of it than this helper
mod zk_client;

use std::time::Duration;

use zk_client::ZkClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: zk_data write <host:port> <count> | zk_data count <host:port>";
    let (cmd, addr) = match args.as_slice() {
        [cmd, addr, ..] => (cmd.as_str(), addr.as_str()),
        _ => return Err(usage.into()),
    };
    let c = ZkClient::connect(addr, Duration::from_secs(10)).await?;
    match cmd {
        "write" => {
            let n: usize = args.get(2).ok_or(usage)?.parse()?;
            c.ensure("/data").await?;
            let paths: Vec<String> = (0..n).map(|i| format!("/data/n{i}")).collect();
            c.create_many(&paths, b"demo").await?;
            println!("wrote {n} znodes under /data");
        }
        "count" => {
            let n = if c.exists("/data").await? {
                c.get_children("/data").await?.len()
            } else {
                0
            };
            println!("{n}");
        }
        _ => return Err(usage.into()),
    }
    c.close().await.ok();
    Ok(())
}
