//! The tables a person reads: `plan` and `status`.

use std::io::Write;

use super::Output;
use crate::engine::Status;

/// One line (or block) on stdout; a reader that went away (`… | head`) is not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

/// [`print`] with `format!` arguments.
macro_rules! out {
    ($($arg:tt)*) => {
        print(&format!($($arg)*))
    };
}

/// `plan` as text: the steps and each step's actions.
/// `migrate plan` for people: where each member is, the order, the elections to expect, and
/// the lines the source must run with.
pub fn print_migrate_plan(p: &crate::plan::migrate::MigratePlan) {
    let l = &p.layout;
    out!(
        "{}/{}: {} member(s) from hosts, {} in pods already",
        l.namespace,
        l.statefulset,
        l.size(),
        p.moved.len()
    );
    for &id in &l.ids {
        let svc = l.service(id);
        let at = match l.source(id) {
            _ if p.moved.contains(&id) => format!("in {}", l.pod(id)),
            Some(s) if l.standalone => format!("on {} (standalone now)", s.client_addr()),
            Some(s) => format!("on {}", s.client_addr()),
            None => format!("new, empty, in {}", l.pod(id)),
        };
        let lead = if p.leader == Some(id) {
            " (leader)"
        } else {
            ""
        };
        out!("  server {id}{lead}: {at}; Service {}", svc.name);
    }
    if l.standalone {
        out!(
            "a standalone source: the first pod waits for it, it restarts once as server {} of 3 \
             (the only downtime: stop, start, election), the second pod joins, then it moves",
            l.ids[2]
        );
    }
    if p.order.is_empty() {
        out!("nothing to move");
    } else {
        out!(
            "moves, one at a time: {} (elections expected: {})",
            p.order
                .iter()
                .map(|id| format!("server {id} → {}", l.pod(*id)))
                .collect::<Vec<_>>()
                .join(", "),
            p.elections
        );
    }
    out!("every source member must run with:");
    for line in &p.source_lines {
        out!("  {line}");
    }
    if let Some(advice) = &p.network_policy {
        out!("{advice}");
    }
}

pub fn print_plan(p: &crate::plan::Plan) {
    if p.steps.is_empty() {
        out!("nothing to do: already {} member(s)", p.to);
        return;
    }
    out!(
        "{} → {} member(s) in {} step(s):",
        p.from,
        p.to,
        p.steps.len()
    );
    if !p.method_reason.is_empty() {
        out!("method: {}", p.method_reason);
    }
    for s in &p.steps {
        out!(
            "step {}→{} by {}{} (predicted elections: {})",
            s.from,
            s.to,
            s.method.as_str(),
            if s.resumed {
                " (resumes a step under way)"
            } else {
                ""
            },
            s.predicted_elections
        );
        for a in &s.actions {
            out!("  {}", serde_json::to_string(a).unwrap_or_default());
        }
    }
}

/// `status` as a table (or JSON).
pub fn print_status(s: &Status, output: Output) {
    if output == Output::Json {
        out!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    out!(
        "{}/{}: {} replica(s), ZOO_SERVERS `{}`",
        s.namespace,
        s.statefulset,
        s.replicas,
        s.servers.trim_end()
    );
    if let Some(op) = &s.operation {
        out!("operation in progress: {op}");
    }
    let rows: Vec<[String; 10]> = s
        .members
        .iter()
        .map(|m| {
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                m.pod.clone(),
                m.ordinal
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.server_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(&m.address),
                m.ready.to_string(),
                m.location.clone().unwrap_or_else(|| m.mode.clone()),
                opt(&m.zxid),
                m.znode_count
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.synced
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(&m.version),
            ]
        })
        .collect();
    let header = [
        "POD",
        "ORD",
        "ID",
        "QUORUM ADDRESS",
        "READY",
        "MODE",
        "ZXID",
        "ZNODES",
        "SYNCED",
        "VERSION",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out!("{}", line(&header.map(String::from)));
    for r in &rows {
        out!("{}", line(r));
    }
    out!("verdict: {}", s.verdict.summary());
    out!("membership: {}", s.membership);
    out!("guard: {}", s.guard);
}
