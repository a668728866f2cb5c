//! How a run reports: progress lines for a person (stderr with a spinner on a terminal, or JSON
//! events on stdout), the post-renderer's sinks (stderr, the terminal, a log file), and the
//! tables of `plan` and `status`. All of them implement or feed [`crate::engine::Progress`].

pub mod log;
pub mod table;
pub mod terminal;

pub use log::PostRenderReporter;
pub use terminal::Reporter;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}
