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
    let result = engine_job(job, &flags, &reporter).await;
    if let (Err(e), Output::Json) = (&result, output) {
        json_line(&serde_json::json!({
            "event": "result", "ok": false, "exit_code": Exit::of(e).code(), "error": e.to_string(),
        }));
    }
    result
}

/// One JSON object on stdout; a reader that went away does not stop the run.
fn json_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}").and_then(|_| out.flush());
}

async fn engine_job(job: Job, flags: &Flags, reporter: &Reporter) -> anyhow::Result<Exit> {
    let output = flags.output();
    let (client, namespace) = cluster::connect(&flags.access()).await?;
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
    let opts = flags.options(holder(), false);
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
        Job::Migrate(args) => migrate(&engine, args, output).await,
        Job::PostRender { .. }
        | Job::Completions(_)
        | Job::Guard { .. }
        | Job::Version(_)
        | Job::Usage => {
            unreachable!("dispatched elsewhere")
        }
    }
}

/// `migrate` (and `migrate plan`): the sources from the flags, then the engine.
async fn migrate(
    engine: &Engine<'_>,
    args: super::MigrateArgs,
    output: Output,
) -> anyhow::Result<Exit> {
    use crate::engine::{EngineError, Migration};
    use crate::plan::migrate::{parse_from, sources_from_zoo_cfg, with_cluster_ips, Layout};
    let sources = match &args.from_zoo_cfg {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                EngineError::Refused(format!("--from-zoo-cfg {}: {e}", path.display()))
            })?;
            sources_from_zoo_cfg(&text).map_err(EngineError::from)?
        }
        None => parse_from(&args.from).map_err(EngineError::from)?,
    };
    let sources = with_cluster_ips(sources, &args.host_ip).map_err(EngineError::from)?;
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
