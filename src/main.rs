//! `kubectl-zkscale`: the kubectl plugin and Helm post-renderer front ends.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in the README. Pipelines branch on these.
mod exit {
    /// Done (or nothing to do).
    pub const OK: u8 = 0;
    /// Unexpected failure (API error, I/O): see the message.
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's own code).
    #[allow(dead_code)]
    pub const USAGE: u8 = 2;
    /// Refused before changing anything: bad input, unhealthy ensemble, lock held.
    pub const REFUSED: u8 = 3;
}

#[derive(Parser, Debug)]
#[command(name = "kubectl-zkscale", version, about = "Scale a ZooKeeper ensemble on Kubernetes one safe step at a time")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Helm post-renderer: YAML stream on stdin, rewritten stream on stdout.
    PostRender {
        /// Never contact a cluster: rewrite from the manifests alone.
        #[arg(long)]
        offline: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PostRender { offline }) => post_render(offline),
        None => {
            eprintln!("kubectl-zkscale: scaling is not implemented yet; see `kubectl zkscale --help`");
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Reads all of stdin, writes the rewritten stream only when everything succeeded, so a failing
/// post-renderer leaves stdout empty and Helm aborts cleanly.
fn post_render(offline: bool) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("kubectl-zkscale post-render: reading stdin: {e}");
        return ExitCode::from(exit::FAILED);
    }
    let _ = offline;
    let out = input;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&out).and_then(|_| stdout.flush()) {
        eprintln!("kubectl-zkscale post-render: writing stdout: {e}");
        return ExitCode::from(exit::FAILED);
    }
    let _ = exit::REFUSED;
    ExitCode::from(exit::OK)
}
