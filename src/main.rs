//! `kubectl-zkscale`: the kubectl plugin and Helm post-renderer front ends over one engine.
//! Parse, set up the debug trail, run; the exit code is decided once, from the result.

use std::process::ExitCode;

use clap::Parser;
use zkscale::cli::{self, Cli};
use zkscale::exit::Exit;

fn main() -> ExitCode {
    // `kubectl zkscale <TAB>`: kubectl runs `kubectl_complete-zkscale <args…>` (a link to this
    // binary) for the candidates; `kubectl-zkscale __complete <args…>` does the same.
    // `args_os`: an argument that is not UTF-8 is clap's to refuse (exit 2), not a panic here.
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let called_as = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    let words = match (called_as, args.get(1).map(String::as_str)) {
        (Some(name), _) if name.starts_with("kubectl_complete-") => Some(&args[1..]),
        (_, Some("__complete")) => Some(&args[2..]),
        _ => None,
    };
    if let Some(words) = words {
        // Written, not println!: a closed or full stdout is an error to say, not a panic.
        let mut text = cli::complete(words).join("\n");
        text.push('\n');
        return match cli::print_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kubectl-zkscale: cannot write the completions: {e}");
                Exit::Failed.into()
            }
        };
    }
    let (job, flags) = match Cli::parse().resolve() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl-zkscale: {e}");
            return Exit::Usage.into();
        }
    };
    zkscale::telemetry::init(flags.verbosity());
    match cli::run(job, flags) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("kubectl-zkscale: {e}");
            Exit::of(&e).into()
        }
    }
}
