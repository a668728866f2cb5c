//! The kubectl front end: `kubectl zkscale --to N` (and `--dry-run`), `plan --to N`, `status`.

use clap::CommandFactory;

use super::{holder, stop, Cli, Command};
use crate::cluster;
use crate::engine::Engine;
use crate::exit::Exit;
use crate::report::{table, Output, Reporter};

/// What the command line asks of the engine.
enum Job {
    Status,
    Plan(u32),
    Scale(u32),
}

pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let planning = cli.dry_run || matches!(cli.command, Some(Command::Plan { .. }));
    let job = match (&cli.command, cli.to) {
        (Some(Command::Status), _) => Job::Status,
        (Some(Command::Plan { to }), _) => Job::Plan(*to),
        (None, Some(to)) if planning => Job::Plan(to),
        (None, Some(to)) => Job::Scale(to),
        _ => {
            let _ = Cli::command().print_help();
            return Ok(Exit::Usage);
        }
    };
    let output = cli.global.output;
    let reporter = Reporter::new(output);
    let result = engine_job(&cli, job, &reporter).await;
    if let (Err(e), Output::Json) = (&result, output) {
        println!(
            "{}",
            serde_json::json!({"event": "result", "ok": false, "exit_code": Exit::of(e).code(), "error": e.to_string()})
        );
    }
    result
}

async fn engine_job(cli: &Cli, job: Job, reporter: &Reporter) -> anyhow::Result<Exit> {
    let output = cli.global.output;
    let (client, namespace) = cluster::connect(&cli.access()).await?;
    let opts = cli.options(holder(), false);
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
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            } else {
                table::print_plan(&p);
            }
            Ok(Exit::Ok)
        }
        Job::Scale(to) => {
            if let Some(reason) = &cli.force {
                eprintln!("kubectl-zkscale: WARNING: --force given ({reason}): the pre-step health gate may be overridden");
            }
            let v = engine.scale(to).await?;
            if output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "ok": true, "exit_code": 0, "verdict": v})
                );
            } else {
                println!(
                    "{}/{}: {}",
                    engine.namespace(),
                    engine.statefulset(),
                    v.summary()
                );
            }
            Ok(Exit::Ok)
        }
    }
}
