//! The debug trail: `tracing` on stderr, off unless asked for with `-v` (zkscale at debug),
//! `-vv` (trace) or `RUST_LOG` (any filter, e.g. `RUST_LOG=zkscale=trace,kube=debug`). The
//! lines a person reads (progress, results) do not go through here and never change with it.
//!
//! Whatever the filter asks for, [`allowed`] caps what the libraries below may say: that is
//! what keeps credentials out of the trail.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// The filter `-v` count `verbose` or a `RUST_LOG` value asks for.
pub fn filter_directives(verbose: u8, rust_log: Option<&str>) -> String {
    match rust_log {
        Some(f) if !f.trim().is_empty() => f.to_string(),
        _ => match verbose {
            0 => "off".into(),
            1 => "zkscale=debug".into(),
            _ => "zkscale=trace,kube=debug".into(),
        },
    }
}

/// The cap on every filter, `RUST_LOG=trace` included: the client library logs a response body
/// it cannot decode (a Secret's data: the reconfig password) at warn, response headers and
/// Status bodies at debug and trace, all under `kube_client::client`; only its errors pass, and
/// its request spans (`kube_client::client::builder`: method and URL; the URL has no userinfo,
/// see `cluster::connect`). HTTP and TLS internals (hyper, h2, rustls, tower) and the ZooKeeper
/// client (its connect request holds the session password) pass at info and above. This is the one function that makes the debug trail safe for credentials.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    allowed_target(meta.target(), *meta.level())
}

fn allowed_target(target: &str, level: Level) -> bool {
    let under = |prefix: &str| {
        target == prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with("::"))
    };
    if under("kube_client::client") && !under("kube_client::client::builder") {
        return level <= Level::ERROR;
    }
    // zookeeper_client logs its connect request at debug, session password included.
    if [
        "hyper",
        "hyper_util",
        "h2",
        "rustls",
        "tower",
        "tower_http",
        "zookeeper_client",
    ]
    .iter()
    .any(|p| under(p))
    {
        return level <= Level::INFO;
    }
    true
}

pub fn init(verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let env = EnvFilter::builder().parse_lossy(filter_directives(verbose, rust_log.as_deref()));
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .with_filter(env.and(filter_fn(allowed)));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_whatever_the_filter() {
        // Where kube logs bodies and headers.
        for level in [Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(!allowed_target("kube_client::client", level));
            assert!(!allowed_target("kube_client::client::auth", level));
        }
        assert!(allowed_target("kube_client::client", Level::ERROR));
        assert!(allowed_target("kube_client::client::builder", Level::DEBUG));
        assert!(!allowed_target("hyper::proto::h1", Level::TRACE));
        assert!(!allowed_target("h2::codec", Level::DEBUG));
        assert!(!allowed_target("zookeeper_client::session", Level::DEBUG));
        assert!(allowed_target("zkscale::engine", Level::TRACE));
        assert!(allowed_target("kube_runtime::watcher", Level::DEBUG));
        // A prefix is a module path, not a string prefix.
        assert!(allowed_target("hyperfoo", Level::TRACE));
        assert_eq!(filter_directives(0, Some(" ")), "off");
        assert_eq!(filter_directives(2, None), "zkscale=trace,kube=debug");
    }
}
