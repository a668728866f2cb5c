//! What a run reports as it goes: typed [`Event`]s, each with the line a person reads, and the
//! [`Progress`] sink both front ends implement (text on stderr or a terminal and a log file,
//! JSON on stdout).

use serde::Serialize;

use crate::plan;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Target {
        namespace: String,
        statefulset: String,
        from: u32,
        to: u32,
    },
    Plan {
        plan: plan::Plan,
    },
    Warning {
        message: String,
    },
    /// Context worth a line (which mode a post-render runs in, …).
    Note {
        message: String,
    },
    Step {
        from: u32,
        to: u32,
        resumed: bool,
    },
    Action {
        description: String,
    },
    Gate {
        name: String,
        passed: bool,
        elapsed_ms: u64,
        detail: String,
    },
    Done {
        size: u32,
        elapsed_ms: u64,
        znode_count: Option<u64>,
    },
}

pub trait Progress: Send + Sync {
    fn event(&self, event: &Event);
}

impl std::fmt::Display for Event {
    /// The line a person reads (the text output of both front ends).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = match self {
            Event::Target {
                namespace,
                statefulset,
                from,
                to,
            } => {
                format!("{namespace}/{statefulset}: {from} → {to} member(s)")
            }
            Event::Plan { plan } => {
                let steps: Vec<String> = plan
                    .steps
                    .iter()
                    .map(|s| {
                        if s.from == s.to {
                            format!("roll-out at {} ({} restart(s))", s.to, s.actions.len())
                        } else {
                            format!("{}→{}", s.from, s.to)
                        }
                    })
                    .collect();
                format!(
                    "plan: {}",
                    if steps.is_empty() {
                        "nothing to do".into()
                    } else {
                        steps.join(", ")
                    }
                )
            }
            Event::Warning { message } => format!("WARNING: {message}"),
            Event::Note { message } => message.clone(),
            Event::Step { from, to, resumed } if from == to => format!(
                "roll-out at {to} member(s): members on the old template restart, followers first, leader last{}",
                if *resumed { " (resuming)" } else { "" }
            ),
            Event::Step { from, to, resumed } => {
                format!(
                    "step {from}→{to}{}",
                    if *resumed {
                        " (resuming a step under way)"
                    } else {
                        ""
                    }
                )
            }
            Event::Action { description } => format!("  {description}"),
            Event::Gate {
                name,
                passed,
                elapsed_ms,
                detail,
            } => format!(
                "  {} {name} ({:.1}s){}{detail}",
                if *passed { "ok  " } else { "FAIL" },
                *elapsed_ms as f64 / 1000.0,
                if detail.is_empty() { "" } else { ": " }
            ),
            Event::Done {
                size,
                elapsed_ms,
                znode_count,
            } => format!(
                "done: {size} member(s) in {:.1}s{}",
                *elapsed_ms as f64 / 1000.0,
                znode_count
                    .map(|c| format!(", {c} znodes"))
                    .unwrap_or_default()
            ),
        };
        f.write_str(&line)
    }
}
