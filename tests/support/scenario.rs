//! The e2e tests' opening in one sentence: a fresh namespace with a bitnami ensemble of `n`
//! members holding `k` znodes, installed the way the test needs (plain Helm, Helm with the
//! zkscale post-renderer, or rendered and applied as a GitOps tool would):
//!
//! ```ignore
//! let zk = bed.ensemble("pr-a").members(1).znodes(200).with(Helm::v4).up().await;
//! ```

use super::bed::{Bed, Namespace};
use super::chart::{sts_field, wait_healthy, wait_rolled, write_znodes};
use super::helm::{text, Helm};

/// How the chart goes in.
enum Via {
    /// `helm install` without a post-renderer (the bed's Helm 4).
    PlainHelm,
    /// `helm install --post-renderer zkscale` (or the Helm 3 executable form).
    PostRenderer(fn(&Bed) -> Helm),
    /// `helm template --post-renderer zkscale | kubectl apply --server-side -f -`.
    Applied(fn(&Bed) -> Helm),
}

pub struct EnsembleBuilder<'b> {
    bed: &'b Bed,
    prefix: String,
    members: usize,
    fixture: Option<String>,
    znodes: usize,
    via: Via,
    env: Vec<(String, String)>,
}

/// A running ensemble in its own namespace (deleted when dropped).
pub struct TestEnsemble<'b> {
    pub bed: &'b Bed,
    namespace: Namespace<'b>,
    helm: Option<Helm>,
    pub members: usize,
}

impl Bed {
    /// An ensemble in a new namespace named after `prefix`: by default 1 member of the 13.7.4
    /// chart, installed with plain Helm, 200 znodes under `/data`.
    pub fn ensemble(&self, prefix: &str) -> EnsembleBuilder<'_> {
        EnsembleBuilder {
            bed: self,
            prefix: prefix.into(),
            members: 1,
            fixture: None,
            znodes: 200,
            via: Via::PlainHelm,
            env: Vec::new(),
        }
    }
}

impl<'b> EnsembleBuilder<'b> {
    /// `n` members, from the `bitnami-zookeeper-13.7.4-replicas-<n>` fixture unless one is given.
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    pub fn fixture(mut self, fixture: &str) -> Self {
        self.fixture = Some(fixture.into());
        self
    }

    pub fn znodes(mut self, k: usize) -> Self {
        self.znodes = k;
        self
    }

    /// An env var for the ZooKeeper container, as the chart's `extraEnvVars` gives it.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Installed by `helm install` with zkscale as the post-renderer.
    pub fn with(mut self, helm: fn(&Bed) -> Helm) -> Self {
        self.via = Via::PostRenderer(helm);
        self
    }

    /// Rendered with the post-renderer and applied with `kubectl apply --server-side`.
    pub fn applied(mut self, helm: fn(&Bed) -> Helm) -> Self {
        self.via = Via::Applied(helm);
        self
    }

    pub async fn up(self) -> TestEnsemble<'b> {
        let bed = self.bed;
        let namespace = bed.namespace(&self.prefix);
        let ns = namespace.name.clone();
        let fixture = self
            .fixture
            .unwrap_or_else(|| format!("bitnami-zookeeper-13.7.4-replicas-{}", self.members));
        let chart = bed.chart_with_env(&fixture, &ns, &self.env);
        let helm = match self.via {
            Via::PlainHelm => {
                bed.helm(&["install", "zk", chart.to_str().unwrap(), "-n", &ns]);
                None
            }
            Via::PostRenderer(make) => {
                let helm = make(bed);
                let out = helm.with_chart("install", &chart, &ns, &[]);
                assert!(out.status.success(), "helm install: {}", text(&out));
                // A fresh install passes through, with the one setting upgrades rely on.
                assert_eq!(sts_field(bed, &ns, ".spec.updateStrategy.type"), "OnDelete");
                Some(helm)
            }
            Via::Applied(make) => {
                let helm = make(bed);
                render_and_apply(bed, &helm, &ns, &fixture);
                Some(helm)
            }
        };
        wait_rolled(bed, &ns, self.members);
        wait_healthy(bed, &ns, self.members).await;
        if self.znodes > 0 {
            write_znodes(bed, &ns, self.znodes).await;
        }
        TestEnsemble {
            bed,
            namespace,
            helm,
            members: self.members,
        }
    }
}

impl TestEnsemble<'_> {
    pub fn ns(&self) -> &str {
        &self.namespace.name
    }

    /// The Helm it was installed with.
    pub fn helm(&self) -> &Helm {
        self.helm
            .as_ref()
            .expect("installed without a post-renderer Helm")
    }
}

/// `helm template zk <fixture> --post-renderer zkscale`: its stdout, or the failed output.
pub fn render(bed: &Bed, helm: &Helm, ns: &str, fixture: &str) -> Result<Vec<u8>, String> {
    let out = helm.with_chart("template", &bed.chart(fixture, ns), ns, &[]);
    if out.status.success() {
        Ok(out.stdout)
    } else {
        assert!(out.stdout.is_empty(), "a failed render printed manifests");
        Err(text(&out))
    }
}

/// Renders `fixture` through the post-renderer and applies it as a GitOps tool would; the
/// rendered text.
pub fn render_and_apply(bed: &Bed, helm: &Helm, ns: &str, fixture: &str) -> String {
    let rendered =
        render(bed, helm, ns, fixture).unwrap_or_else(|e| panic!("render {fixture}: {e}"));
    let out = bed
        .kubectl_stdin(&["apply", "--server-side", "-n", ns, "-f", "-"], &rendered)
        .unwrap_or_else(|e| panic!("kubectl apply of {fixture}: {e}"));
    eprintln!("--- applied {fixture}:\n{out}");
    String::from_utf8(rendered).unwrap()
}
