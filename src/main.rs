//! `kubectl-zkscale`: the kubectl plugin and Helm post-renderer front ends over one engine.
//! Parse, set up the debug trail, run; the exit code is decided once, from the result.

use std::process::ExitCode;

use clap::Parser;
use zkscale::cli::{self, Cli};
use zkscale::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    zkscale::telemetry::init(cli.verbosity());
    match cli::run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("kubectl-zkscale: {e}");
            Exit::of(&e).into()
        }
    }
}
