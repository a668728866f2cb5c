//! Stand-ins for a Kubernetes API server on loopback, the kubeconfig that points at them, and
//! the checks every process test makes of the binary's output. Shared by the process tests
//! (`cli.rs`, `cli_hostile.rs`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn no_panic(o: &Output) {
    let e = stderr(o);
    assert!(
        !e.contains("panicked") && o.status.code() != Some(101),
        "{e}"
    );
}

/// A kubeconfig file with `text`.
pub fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// A kubeconfig for `server` with `user` (YAML flow mapping; no TLS verification: the fakes
/// are plain).
pub fn kubeconfig(dir: &Path, server: &str, user: &str) -> String {
    file(
        dir,
        &format!("kc-{}", server.replace([':', '/', '@'], "_")),
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}', insecure-skip-tls-verify: true}}\n\
             users:\n- name: u\n  user: {user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: ns}}\n\
             current-context: x\n"
        ),
    )
}

/// A TCP listener that accepts and then says nothing (a blackholed API server); counts
/// connections (none: nothing was asked).
pub fn silent() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (format!("https://{addr}"), n)
}
