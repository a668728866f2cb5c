//! The admission guard (charts/zkscale-guard) on the bed, for one test's namespace only: the
//! guard is cluster-scoped, so it is bound to a label of that namespace and removed when done,
//! and other tests never meet it.

#![allow(dead_code)]

use std::path::Path;

use super::bed::Bed;

pub fn guard_chart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/zkscale-guard")
        .to_str()
        .unwrap()
        .to_string()
}

/// The guard installed for namespace `ns` (matched by a label), removed when dropped.
pub struct Guard<'b> {
    bed: &'b Bed,
    ns: String,
}

impl<'b> Guard<'b> {
    pub fn install(bed: &'b Bed, ns: &str, actions: &str) -> Guard<'b> {
        Self::install_with(bed, ns, actions, &[])
    }

    /// [`Guard::install`] with more chart values (`--set` arguments, e.g. `overrideAnnotation=…`).
    pub fn install_with(bed: &'b Bed, ns: &str, actions: &str, sets: &[&str]) -> Guard<'b> {
        bed.kubectl(&[
            "label",
            "ns",
            ns,
            &format!("zkscale-guard-test={ns}"),
            "--overwrite",
        ]);
        let ns_selector =
            format!(r#"namespaceSelector={{"matchLabels":{{"zkscale-guard-test":"{ns}"}}}}"#);
        let actions = format!("validationActions={{{actions}}}");
        let chart = guard_chart();
        let args: Vec<&str> = [
            "upgrade",
            "--install",
            "zkscale-guard",
            &chart,
            "-n",
            ns,
            "--set-json",
            &ns_selector,
            "--set",
            &actions,
        ]
        .into_iter()
        .chain(sets.iter().flat_map(|v| ["--set", *v]))
        .collect();
        bed.helm(&args);
        // A policy takes effect once the API server has compiled it; wait for both statuses.
        super::bed::wait_for(
            "the guard's policies compiled",
            std::time::Duration::from_secs(60),
            || {
                for policy in ["zkscale-guard", "zkscale-guard-scale"] {
                    let g = bed.kubectl(&[
                        "get",
                        "validatingadmissionpolicy",
                        policy,
                        "-o",
                        "jsonpath={.status.observedGeneration}",
                    ]);
                    if g.is_empty() {
                        return Err(format!("{policy}: no status yet"));
                    }
                }
                Ok(())
            },
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
        Guard { bed, ns: ns.into() }
    }
}

impl Guard<'_> {
    /// Waits until the API server refuses a `kubectl scale` of StatefulSet `sts` (asked as a
    /// server-side dry run, which runs admission and changes nothing): a compiled policy and
    /// its binding reach the admission chain a moment after their status says so.
    pub fn wait_refusing_scale(&self, sts: &str, replicas: u32) {
        let ns = self.ns.clone();
        super::bed::wait_for(
            &format!("the guard refusing kubectl scale of {sts}"),
            std::time::Duration::from_secs(60),
            || match self.bed.kubectl_try(&[
                "scale",
                "sts",
                sts,
                "-n",
                &ns,
                &format!("--replicas={replicas}"),
                "--dry-run=server",
            ]) {
                Err(e) if e.contains("zkscale guard") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self
            .bed
            .helm_try(&["uninstall", "zkscale-guard", "-n", &self.ns, "--wait"]);
    }
}
