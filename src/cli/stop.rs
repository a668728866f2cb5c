//! Stopping a run between steps, at a size where the ensemble is whole: SIGINT/SIGTERM (a
//! second one stops at once), and for the post-renderer the Helm process that ran it going
//! away (nobody would apply its output).

use std::time::Duration;

use crate::engine::Cancel;

pub fn watch(cancel: Cancel, watch_parent: bool) {
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if !first {
                eprintln!("kubectl-zkscale: {name} again: stopping now; re-run to resume");
                std::process::exit(130);
            }
            eprintln!(
                "kubectl-zkscale: {name}: stopping after the current step (again to stop now)"
            );
            on_signal.cancel(name);
            first = false;
        }
    });
    if watch_parent {
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if std::os::unix::process::parent_id() != parent {
                    cancel.cancel(format!(
                        "the process that ran the post-renderer (pid {parent}) is gone"
                    ));
                    return;
                }
            }
        });
    }
}
