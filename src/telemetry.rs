//! The debug trail: `tracing` on stderr, off unless asked for with `-v` (zkscale at debug),
//! `-vv` (trace) or `RUST_LOG` (any filter, e.g. `RUST_LOG=zkscale=trace,kube=debug`). The
//! lines a person reads (progress, results) do not go through here and never change with it.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(match verbose {
            0 => "off",
            1 => "zkscale=debug",
            _ => "zkscale=trace,kube=debug",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .try_init();
}
