//! The bed's ZooKeeper image (tests/bed/node/image.sh builds it): this binary is its
//! entrypoint, run script and health check, so the bitnami contract exists once, in `zoo`, for
//! both the runner's JVMs and the containers on a real node.
//!
//! - `image-entrypoint CMD...` (`/opt/bitnami/scripts/zookeeper/entrypoint.sh`, `/entrypoint.sh`):
//!   when CMD is the run script, initialise as libzookeeper.sh does, then exec CMD.
//!   Initialising: zoo.cfg in `ZOO_CONF_DIR` from the environment unless one is there already
//!   (the image keeps an existing one: the chart mounts the conf dir on an emptyDir, so a
//!   restarted container keeps its zoo.cfg and ZooKeeper's `zoo.cfg.dynamic.*`, a recreated pod
//!   does not); the JVM flags in `java.env` next to it; `myid` on a fresh data dir from
//!   `ZOO_SERVER_ID` (exported by the chart's setup.sh).
//! - `image-run` (`/opt/bitnami/scripts/zookeeper/run.sh`, `/run.sh`): exec the JVM in the
//!   foreground with the saved flags.
//! - `image-healthcheck` (`/opt/bitnami/scripts/zookeeper/healthcheck.sh`, which the chart's
//!   probes call): `ruok` to the client port on localhost within `ZOO_HC_TIMEOUT` seconds.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::zoo;

const BASE_DIR: &str = "/opt/bitnami/zookeeper";
const RUN_SCRIPTS: [&str; 2] = ["/opt/bitnami/scripts/zookeeper/run.sh", "/run.sh"];

fn env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn conf_dir(env: &BTreeMap<String, String>) -> PathBuf {
    PathBuf::from(zoo::zoo_env(
        env,
        "ZOO_CONF_DIR",
        "/opt/bitnami/zookeeper/conf",
    ))
}

fn info(msg: impl AsRef<str>) {
    eprintln!("zookeeper {}", msg.as_ref());
}

/// Refuses what the bed's image does not implement, rather than run a member configured
/// differently from what the pod spec asks.
fn unsupported(env: &BTreeMap<String, String>) -> Result<()> {
    for key in [
        "ZOO_ENABLE_AUTH",
        "ZOO_ENABLE_QUORUM_AUTH",
        "ZOO_TLS_CLIENT_ENABLE",
        "ZOO_TLS_QUORUM_ENABLE",
        "ZOO_ENABLE_PROMETHEUS_METRICS",
    ] {
        if matches!(
            zoo::zoo_env(env, key, "no").to_ascii_lowercase().as_str(),
            "yes" | "true" | "1"
        ) {
            bail!("{key}=yes is not implemented by the test bed's image");
        }
    }
    Ok(())
}

pub fn entrypoint(cmd: &[String]) -> Result<()> {
    let Some(program) = cmd.first() else {
        bail!("usage: image-entrypoint COMMAND [ARGS...]");
    };
    if cmd.len() == 1 && RUN_SCRIPTS.contains(&program.as_str()) {
        initialise(&env())?;
    }
    let err = Command::new(program).args(&cmd[1..]).exec();
    Err(err).with_context(|| format!("exec {program}"))
}

fn initialise(env: &BTreeMap<String, String>) -> Result<()> {
    unsupported(env)?;
    let conf = conf_dir(env);
    let cfg_file = conf.join("zoo.cfg");
    let data_dir = PathBuf::from(zoo::zoo_env(env, "ZOO_DATA_DIR", "/bitnami/zookeeper/data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    if cfg_file.exists() {
        info("keeps the zoo.cfg already in its conf dir (a restarted container)");
    } else {
        let log_dir = zoo::zoo_env(env, "ZOO_DATA_LOG_DIR", "");
        let log_dir = (!log_dir.is_empty()).then(|| PathBuf::from(log_dir));
        if let Some(d) = &log_dir {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let cfg = zoo::zoo_cfg(env, &data_dir, log_dir.as_deref(), zoo::Listen::Container)?;
        std::fs::create_dir_all(&conf)?;
        write_atomic(&cfg_file, &(cfg.join("\n") + "\n"))?;
        write_atomic(&conf.join("java.env"), &(jvm_args(env).join("\n") + "\n"))?;
        info(format!("wrote {}", cfg_file.display()));
    }
    let id = match zoo::read_myid(&data_dir)? {
        Some(id) => id,
        None => {
            let id = zoo::zoo_env(env, "ZOO_SERVER_ID", "1")
                .parse()
                .context("ZOO_SERVER_ID")?;
            zoo::write_myid(&data_dir, id)?;
            id
        }
    };
    info(format!("server id {id}, data {}", data_dir.display()));
    Ok(())
}

/// The JVM's flags as the image gives them: `JVMFLAGS`, the heap from `ZOO_HEAP_SIZE` unless
/// `JVMFLAGS` sets both bounds, and libzookeeper.sh's election port bind retry.
fn jvm_args(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = zoo::jvm_flags(env);
    let sets_heap =
        args.iter().any(|a| a.starts_with("-Xmx")) && args.iter().any(|a| a.starts_with("-Xms"));
    if !sets_heap {
        let heap = zoo::zoo_env(env, "ZOO_HEAP_SIZE", "1024");
        args.push(format!("-Xmx{heap}m"));
        args.push(format!("-Xms{heap}m"));
    }
    args.push("-Dzookeeper.electionPortBindRetry=0".into());
    args.push(format!(
        "-Dorg.slf4j.simpleLogger.defaultLogLevel={}",
        zoo::log_level(env)
    ));
    args.push("-Dorg.slf4j.simpleLogger.showDateTime=true".into());
    args
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn run() -> Result<()> {
    let env = env();
    let conf = conf_dir(&env);
    let flags = std::fs::read_to_string(conf.join("java.env"))
        .with_context(|| format!("{}/java.env (run the entrypoint first)", conf.display()))?;
    let mut args: Vec<String> = flags
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    args.extend([
        "-cp".into(),
        format!("{BASE_DIR}/lib/*"),
        "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
        conf.join("zoo.cfg").display().to_string(),
    ]);
    let err = Command::new("java").args(&args).exec();
    Err(err).context("exec java")
}

pub fn healthcheck() -> Result<()> {
    let env = env();
    unsupported(&env)?;
    let port = zoo::client_port(&env)?;
    let secs: u64 = zoo::zoo_env(&env, "ZOO_HC_TIMEOUT", "5")
        .parse()
        .context("ZOO_HC_TIMEOUT")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ok = rt.block_on(zoo::ruok(
        Ipv4Addr::LOCALHOST,
        port,
        Duration::from_secs(secs.max(1)),
    ));
    if !ok {
        bail!("Zookeeper healthcheck failed.");
    }
    info("healthcheck succeeded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn heap_from_zoo_heap_size_unless_jvmflags_sets_both_bounds() {
        let a = jvm_args(&env(&[("ZOO_HEAP_SIZE", "256")]));
        assert!(a.contains(&"-Xmx256m".to_string()) && a.contains(&"-Xms256m".to_string()));
        let a = jvm_args(&env(&[("JVMFLAGS", "-Xmx64m -Xms16m -Dx=1")]));
        assert_eq!(
            a.iter().filter(|f| f.starts_with("-Xm")).count(),
            2,
            "{a:?}"
        );
        assert!(a.contains(&"-Dx=1".to_string()));
        let a = jvm_args(&env(&[("JVMFLAGS", "-Xmx64m")]));
        assert!(a.contains(&"-Xmx1024m".to_string()), "{a:?}");
    }

    #[test]
    fn what_the_image_does_not_implement_is_refused() {
        assert!(unsupported(&env(&[("ZOO_ENABLE_AUTH", "no")])).is_ok());
        let e = unsupported(&env(&[("ZOO_TLS_CLIENT_ENABLE", "yes")])).unwrap_err();
        assert!(e.to_string().contains("ZOO_TLS_CLIENT_ENABLE"));
    }

    #[test]
    fn only_the_run_script_initialises() {
        // Another command is exec'd untouched (and a missing one is a clear error).
        let e = entrypoint(&["/nonexistent-zkscale-cmd".to_string()]).unwrap_err();
        assert!(format!("{e:#}").contains("exec /nonexistent-zkscale-cmd"));
        assert!(entrypoint(&[]).is_err());
    }
}
