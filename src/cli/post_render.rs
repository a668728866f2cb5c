//! The post-render front end: stdin in, [`crate::postrender::run`], stdout out only on success
//! (a failing post-renderer prints nothing, so Helm aborts without applying half a stream).

use std::io::{Read, Write};
use std::path::PathBuf;

use super::{holder, runtime, stop, Flags};
use crate::exit::Exit;
use crate::postrender::{self, Request, Settings};
use crate::report::PostRenderReporter;

pub fn run(request: Request, log_file: Option<PathBuf>, flags: &Flags) -> anyhow::Result<Exit> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| anyhow::anyhow!("post-render: reading stdin: {e}"))?;
    let local = matches!(request, Request::Offline | Request::Check);
    // No cluster, no log file: `--offline`/`--check` report on stderr only.
    let reporter = PostRenderReporter::new(if local { Some("-".into()) } else { log_file });
    let caller = if local { None } else { postrender::detect() };
    let holder = format!(
        "{} (post-render{})",
        holder(),
        caller
            .as_ref()
            .map(|c| format!(" of {}", c.describe()))
            .unwrap_or_default()
    );
    let settings = Settings {
        request,
        access: flags.access(),
        engine: flags.options(holder, true),
    };
    let result = runtime()?.block_on(async {
        if !local {
            stop::watch(settings.engine.cancel.clone(), true);
        }
        postrender::run(input, &settings, caller.as_ref(), &reporter).await
    });
    match result {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&output).and_then(|_| stdout.flush()) {
                reporter.line(&format!("ERROR: writing the manifests to Helm: {e}"));
                return Ok(Exit::Failed);
            }
            Ok(Exit::Ok)
        }
        Err(e) => {
            reporter.line(&format!("ERROR: {}", e.message()));
            if let Some(p) = &reporter.log_path {
                reporter.line(&format!("log: {}", p.display()));
            }
            Ok(Exit::of_error(&e))
        }
    }
}
