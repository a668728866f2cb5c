//! The kubectl front end: `kubectl zkscale --to N` (and `--dry-run`), `plan --to N`, `status`,
//! `rebuild <pod>…`, `migrate`.

use std::io::Write;

use super::{holder, stop, Flags, Job};
use crate::cluster;
use crate::engine::Engine;
use crate::exit::Exit;
use crate::report::{table, Output, Reporter};

pub async fn run(job: Job, flags: Flags) -> anyhow::Result<Exit> {
    let output = flags.output();
    let reporter = Reporter::new(output);
    // A command that only looks (status, a plan, a dry run, the guard's check) ends within
    // --timeout as a whole, however slowly the API server or the members answer; a command
    // that changes the ensemble is bounded per API call (the client's read timeout) and per gate.
    let read_only = match &job {
        Job::Status | Job::Plan(_) | Job::Guard { check: true, .. } => true,
        Job::Rebuild { dry_run, .. } => *dry_run,
        Job::Migrate(args) => args.dry_run,
        _ => false,
    };
    let timeout = flags.timeout();
    let planning = match &job {
        Job::Plan(_) => true,
        Job::Rebuild { dry_run, .. } => *dry_run,
        Job::Migrate(args) => args.dry_run,
        _ => false,
    };
    let deadline = read_only.then(|| tokio::time::Instant::now() + timeout);
    let result = engine_job(job, &flags, &reporter, deadline).await;
    let result = match result {
        Err(e) if planning => Err(plan_failure(e)),
        r => r,
    };
    if let (Err(e), Output::Json) = (&result, output) {
        json_line(&serde_json::json!({
            "event": "result", "ok": false, "exit_code": Exit::of(e).code(), "error": e.to_string(),
        }));
    }
    result
}

/// A plan or dry run changes nothing, so nothing is "stopped at a size" nor to be resumed: a
/// plan that cannot be made is refused (exit 3) in its own words. Other errors (the API) stay.
fn plan_failure(e: anyhow::Error) -> anyhow::Error {
    use crate::engine::EngineError;
    match e.downcast::<EngineError>() {
        Ok(EngineError::Stopped { reason, .. }) => {
            EngineError::Refused(format!("no plan: {reason}")).into()
        }
        Ok(other) => other.into(),
        Err(e) => e,
    }
}

/// One JSON object on stdout; a reader that went away does not stop the run.
fn json_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}").and_then(|_| out.flush());
}

/// `deadline`: a command that only looks ends by then (the first contact keeps its own bound,
/// which says where it failed; everything after it runs within what is left).
async fn engine_job(
    job: Job,
    flags: &Flags,
    reporter: &Reporter,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<Exit> {
    // A migration's sources are input like any flag: checked before the cluster is contacted.
    let sources = match &job {
        Job::Migrate(args) => Some(migrate_sources(args)?),
        _ => None,
    };
    // A pod's name ends in its ordinal, digits only, whatever the StatefulSet is called.
    if let Job::Rebuild { pods, .. } = &job {
        for p in pods {
            let ordinal = p.rsplit_once('-').map(|(_, o)| o).unwrap_or_default();
            if !crate::engine::plain_ordinal(ordinal) {
                return Err(crate::engine::EngineError::Refused(format!(
                    "`{}` is not a StatefulSet's pod (<statefulset>-<ordinal>, the ordinal \
                     digits only)",
                    p.escape_debug()
                ))
                .into());
            }
        }
    }
    let (client, namespace) = cluster::connect(&flags.access()).await?;
    let Some(deadline) = deadline else {
        return connected(job, flags, reporter, client, namespace, sources, None).await;
    };
    let timeout = flags.timeout();
    match tokio::time::timeout_at(
        deadline,
        connected(
            job,
            flags,
            reporter,
            client,
            namespace,
            sources,
            Some(deadline),
        ),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "no complete answer within {timeout:?} (--timeout): the API server or the members \
             answer too slowly"
        )),
    }
}

async fn connected(
    job: Job,
    flags: &Flags,
    reporter: &Reporter,
    client: kube::Client,
    namespace: String,
    sources: Option<Vec<crate::plan::migrate::Source>>,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<Exit> {
    let output = flags.output();
    if let Job::Guard { .. } = job {
        let coverage = crate::guard::coverage(&client, &namespace).await;
        if output == Output::Json {
            json_line(&serde_json::to_value(&coverage).unwrap_or_default());
        } else {
            table::print(&format!("{namespace}: guard {coverage}"));
        }
        return Ok(match coverage {
            c if c.denies() => Exit::Ok,
            crate::guard::Coverage::Unknown { .. } => Exit::Failed,
            _ => Exit::Unhealthy,
        });
    }
    let mut opts = flags.options(holder(), false);
    if let Some(deadline) = deadline {
        // The command as a whole ends by its deadline (see `run`): its waits get most of what
        // is left, so that a wait that times out is said as such, not as the deadline.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        opts.timeout = left.mul_f64(0.8);
    }
    stop::watch(opts.cancel.clone(), false);
    let engine = Engine::new(client, namespace, opts, reporter).await?;
    match job {
        Job::Status => {
            let s = engine.status().await?;
            table::print_status(&s, output);
            Ok(if s.verdict.healthy {
                Exit::Ok
            } else {
                Exit::Unhealthy
            })
        }
        Job::Plan(to) => {
            let p = engine.plan(to).await?;
            if output == Output::Json {
                table::print(&serde_json::to_string_pretty(&p).unwrap_or_default());
            } else {
                table::print_plan(&p);
            }
            Ok(Exit::Ok)
        }
        Job::Scale(to) => {
            if let Some(reason) = &flags.care.force {
                eprintln!("kubectl-zkscale: WARNING: --force given ({reason}): the pre-step health gate may be overridden");
            }
            let v = engine.scale(to).await?;
            print_result(&engine, output, &v);
            Ok(Exit::Ok)
        }
        Job::Rebuild {
            pods,
            dry_run: true,
        } => {
            let order = engine.rebuild_plan(&pods).await?;
            let pod = |o: u32| format!("{}-{o}", engine.statefulset());
            if output == Output::Json {
                let v: Vec<_> = order
                    .iter()
                    .map(|r| serde_json::json!({"pod": pod(r.ordinal), "ordinal": r.ordinal, "id": r.id}))
                    .collect();
                table::print(&serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for (i, r) in order.iter().enumerate() {
                    table::print(&format!(
                        "{}. {} (server {}): delete its claim and pod; it comes back empty and syncs from the leader",
                        i + 1,
                        pod(r.ordinal),
                        r.id
                    ));
                }
            }
            Ok(Exit::Ok)
        }
        Job::Rebuild { pods, .. } => {
            let v = engine.rebuild(&pods).await?;
            print_result(&engine, output, &v);
            Ok(Exit::Ok)
        }
        Job::Migrate(args) => {
            let sources = sources.expect("read above for a migration");
            migrate(&engine, args, sources, output).await
        }
        Job::PostRender { .. }
        | Job::Completions(_)
        | Job::Guard { .. }
        | Job::Version(_)
        | Job::Usage => {
            unreachable!("dispatched elsewhere")
        }
    }
}

/// The source members from `--from`/`--from-zoo-cfg` and `--host-ip`, every value checked
/// (`plan::migrate::check_sources`): no cluster call, no command run before this passed.
fn migrate_sources(
    args: &super::MigrateArgs,
) -> Result<Vec<crate::plan::migrate::Source>, crate::engine::EngineError> {
    use crate::engine::EngineError;
    use crate::plan::migrate::{
        check_host, check_sources, parse_from, sources_from_zoo_cfg, with_cluster_ips, Layout,
        MAX_ZOO_CFG,
    };
    let sources = match &args.from_zoo_cfg {
        Some(path) => {
            let text = read_bounded(path, MAX_ZOO_CFG).map_err(|e| {
                EngineError::Refused(format!("--from-zoo-cfg {}: {e}", path.display()))
            })?;
            sources_from_zoo_cfg(&text)?
        }
        None => parse_from(&args.from)?,
    };
    let sources = with_cluster_ips(sources, &args.host_ip)?;
    check_sources(&sources)?;
    // The cluster domain goes into every member's address (ZOO_SERVERS, zoo.cfg lines).
    if args.cluster_domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(EngineError::Refused(format!(
            "--cluster-domain {}: a DNS domain, not an address",
            args.cluster_domain
        )));
    }
    check_host(&args.cluster_domain)
        .map_err(|e| EngineError::Refused(format!("--cluster-domain: {e}")))?;
    // The ids' shape (count, gaps, a standalone's id) needs no cluster either: checked now with
    // a short stand-in name (the Service names' length is checked again with the real one).
    Layout::new(sources.clone(), "zk", "default", &args.cluster_domain)?;
    Ok(sources)
}

/// A small regular file's text, at most `max` bytes: anything else (a FIFO, a device such as
/// `/dev/zero`, a directory, a larger file) is refused without reading it, and never blocks
/// (the file is opened non-blocking, its type checked on the open handle).
pub(super) fn read_bounded(path: &std::path::Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("larger than {max} bytes: not a zoo.cfg"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes: not a zoo.cfg"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

/// `migrate` (and `migrate plan`): the checked sources, then the engine.
async fn migrate(
    engine: &Engine<'_>,
    args: super::MigrateArgs,
    sources: Vec<crate::plan::migrate::Source>,
    output: Output,
) -> anyhow::Result<Exit> {
    use crate::engine::{EngineError, Migration};
    use crate::plan::migrate::Layout;
    let layout = Layout::new(
        sources,
        engine.statefulset(),
        engine.namespace(),
        &args.cluster_domain,
    )
    .map_err(EngineError::from)?;
    let m = Migration {
        layout,
        stop_cmd: args.stop_cmd,
        start_cmd: args.start_cmd,
    };
    if args.dry_run {
        let p = engine.migrate_plan(&m).await?;
        if output == Output::Json {
            table::print(&serde_json::to_string_pretty(&p).unwrap_or_default());
        } else {
            table::print_migrate_plan(&p);
        }
        return Ok(Exit::Ok);
    }
    let v = engine.migrate(&m).await?;
    print_result(engine, output, &v);
    // What to commit so that the next `helm upgrade` (through the post-renderer, which keeps
    // the live member list naming the Services) renders this StatefulSet again.
    let values = m.layout.values();
    if output == Output::Json {
        json_line(&serde_json::json!({"event": "values", "values": values}));
    } else {
        table::print(&format!(
            "chart values to commit (helm upgrade with --post-renderer zkscale keeps the \
             member list):\n{values}"
        ));
    }
    Ok(Exit::Ok)
}

/// The last line of a run that changed the ensemble: its final verdict.
fn print_result(engine: &Engine<'_>, output: Output, v: &crate::zk::Verdict) {
    if output == Output::Json {
        json_line(
            &serde_json::json!({"event": "result", "ok": true, "exit_code": 0, "verdict": v}),
        );
    } else {
        table::print(&format!(
            "{}/{}: {}",
            engine.namespace(),
            engine.statefulset(),
            v.summary()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;

    #[test]
    fn a_plan_that_cannot_be_made_is_refused_not_stopped() {
        let stopped: anyhow::Error = EngineError::Stopped {
            size: 3,
            reason: "timed out after 4s waiting for a plan: server 2 does not answer".into(),
        }
        .into();
        let e = plan_failure(stopped);
        let text = e.to_string();
        assert_eq!(Exit::of(&e), Exit::Refused, "{text}");
        assert!(
            text.contains("no plan: timed out")
                && !text.contains("re-run")
                && !text.contains("stopped at"),
            "{text}"
        );
        let api: anyhow::Error = anyhow::anyhow!("HTTP 500");
        assert_eq!(Exit::of(&plan_failure(api)), Exit::Failed);
    }
}
