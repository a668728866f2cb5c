//! `kubectl zkscale version`: what this build is and what it was tested against (read at
//! build time from the pins of the test bed, so it cannot drift from what the tests run).

use serde::Serialize;

const PINS: &str = include_str!("../tests/bed/versions.env");

/// What `--version` prints after the name.
pub const SHORT: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ZKSCALE_COMMIT"), ")");

#[derive(Debug, Serialize)]
pub struct Version {
    pub version: &'static str,
    pub commit: &'static str,
    /// RFC 3339, UTC.
    pub build_date: String,
    /// What the test suite runs against.
    pub tested_with: TestedWith,
}

#[derive(Debug, Serialize)]
pub struct TestedWith {
    pub kubernetes: String,
    pub zookeeper: Vec<String>,
    pub helm: Vec<String>,
}

/// The value of `KEY=` in the pins, up to the first blank.
fn pin(key: &str) -> String {
    PINS.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

pub fn version() -> Version {
    let epoch: i64 = env!("ZKSCALE_BUILD_EPOCH").parse().unwrap_or(0);
    let build_date = k8s_openapi::jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Version {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("ZKSCALE_COMMIT"),
        build_date,
        tested_with: TestedWith {
            kubernetes: format!("v{}", pin("K8S_VERSION")),
            zookeeper: vec![pin("ZK_VERSION"), "3.8.0 (Debian 12)".into()],
            helm: vec!["v4.1.4".into(), "v3.17".into()],
        },
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kubectl-zkscale {} (commit {}, built {})\ntested with Kubernetes {}, ZooKeeper {}, Helm {}",
            self.version,
            self.commit,
            self.build_date,
            self.tested_with.kubernetes,
            self.tested_with.zookeeper.join(" and "),
            self.tested_with.helm.join(" and ")
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_are_read() {
        let v = super::version();
        assert!(v.tested_with.kubernetes.starts_with("v1."), "{v}");
        assert!(v.tested_with.zookeeper[0].starts_with("3."), "{v}");
        assert_ne!(v.commit, "");
        assert!(v.build_date.ends_with('Z'));
    }
}
