//! Who runs the post-renderer: the nearest `helm` process above it and what its command line
//! says (`install`/`upgrade` for real, `template`, `--dry-run`, `diff`), plus its `-n`,
//! `--kube-context` and `--kubeconfig`.

/// Who is running us, as far as the command line of the nearest `helm` process says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub pid: u32,
    /// The helm subcommand (`upgrade`, `install`, `template`, `diff`, …), if any.
    pub command: Option<String>,
    pub dry_run: bool,
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
    pub kubeconfig: Option<String>,
}

impl Caller {
    /// What the caller's command line says about side effects.
    pub fn intent(&self) -> Intent {
        match self.command.as_deref() {
            Some("install" | "upgrade") if !self.dry_run => Intent::Execute,
            _ => Intent::Preview,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "helm {}{} (pid {})",
            self.command.as_deref().unwrap_or("?"),
            if self.dry_run { " --dry-run" } else { "" },
            self.pid
        )
    }
}

/// Whether this run may change the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A real `helm install/upgrade`: carry the change out, then print the final state.
    Execute,
    /// `helm template`, `--dry-run`, `helm diff`, `--plan-only`: read, plan, print, change nothing.
    Preview,
    /// No helm process found and no `--execute`/`--plan-only`: a preview that refuses when the
    /// output would declare a change that is unsafe to apply directly.
    Unknown,
}

/// Helm's global flags that take a separate value (`--flag value`), so that the subcommand is
/// found after them (`helm -n ns upgrade …`).
const HELM_VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kube-context",
    "--kubeconfig",
    "--kube-apiserver",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-ca-file",
    "--kube-token",
    "--kube-tls-server-name",
    "--registry-config",
    "--repository-cache",
    "--repository-config",
    "--content-cache",
    "--burst-limit",
    "--qps",
    "--color",
    "--colour",
];

/// Reads a helm command line (`argv[0]` first). `None` when `argv[0]` is not a helm binary.
pub fn parse_helm_argv(pid: u32, argv: &[String]) -> Option<Caller> {
    let exe = argv.first()?;
    let base = exe.rsplit('/').next().unwrap_or(exe);
    if !base.starts_with("helm") || base.starts_with("helm-") {
        return None;
    }
    let mut c = Caller {
        pid,
        ..Caller::default()
    };
    let mut it = argv[1..].iter().peekable();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        // `-nfoo` is `-n foo`.
        let (flag, inline) = match (flag, inline) {
            (f, None) if f.starts_with("-n") && f.len() > 2 && !f.starts_with("--") => {
                ("-n", Some(f[2..].trim_start_matches('=').to_string()))
            }
            other => other,
        };
        if flag == "--dry-run" {
            c.dry_run = !matches!(inline.as_deref(), Some("none" | "false"));
            continue;
        }
        if flag.starts_with('-') {
            let value = match inline {
                Some(v) => Some(v),
                None if HELM_VALUE_FLAGS.contains(&flag) => it.next().cloned(),
                None => None,
            };
            match flag {
                "-n" | "--namespace" => c.namespace = value,
                "--kube-context" => c.kube_context = value,
                "--kubeconfig" => c.kubeconfig = value,
                _ => {}
            }
            continue;
        }
        if c.command.is_none() {
            c.command = Some(a.clone());
        }
        // Later positionals (release, chart) and subcommand flags are read on; flags that take
        // values and are not global (`--set x`, `-f file`) leave their value as a positional,
        // which is harmless: only the first positional is the command.
    }
    Some(c)
}

/// The nearest `helm` process among our ancestors (Linux `/proc`).
pub fn detect() -> Option<Caller> {
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..8 {
        if pid <= 1 {
            return None;
        }
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if let Some(c) = parse_helm_argv(pid, &argv) {
            return Some(c);
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        pid = after.split_whitespace().nth(1)?.parse().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn intent_of(s: &str) -> Option<Intent> {
        parse_helm_argv(1, &argv(s)).map(|c| c.intent())
    }

    #[test]
    fn helm_commands_decide_the_mode() {
        use Intent::*;
        let cases = [
            (
                "helm upgrade zk ./chart -n zk --post-renderer zkscale",
                Some(Execute),
            ),
            ("/usr/local/bin/helm install zk ./chart", Some(Execute)),
            ("helm upgrade --install zk ./chart", Some(Execute)),
            (
                "helm -n zk --kube-context prod upgrade zk ./chart",
                Some(Execute),
            ),
            ("helm upgrade zk ./chart --dry-run=none", Some(Execute)),
            ("helm upgrade zk ./chart --dry-run=false", Some(Execute)),
            (
                "helm template zk ./chart --post-renderer zkscale",
                Some(Preview),
            ),
            ("helm upgrade zk ./chart --dry-run", Some(Preview)),
            ("helm upgrade zk ./chart --dry-run=server", Some(Preview)),
            ("helm install zk ./chart --dry-run=client", Some(Preview)),
            // helm-diff runs `helm template … --dry-run=server` (or the diff command is ours).
            (
                "helm template zk ./chart --dry-run=server --is-upgrade --post-renderer zkscale",
                Some(Preview),
            ),
            (
                "helm diff upgrade zk ./chart --post-renderer zkscale",
                Some(Preview),
            ),
            // A release named `template` is not the template command.
            ("helm upgrade template ./chart", Some(Execute)),
            ("helm4 upgrade zk ./chart", Some(Execute)),
            ("helm-diff upgrade zk ./chart", None),
            ("kubectl apply -f -", None),
        ];
        for (line, want) in cases {
            assert_eq!(intent_of(line), want, "{line}");
        }
    }

    #[test]
    fn helm_flags_give_namespace_context_and_kubeconfig() {
        let c = parse_helm_argv(
            7,
            &argv("helm -nfoo upgrade zk ./c --kube-context=prod --kubeconfig /k/c --set a=b"),
        )
        .unwrap();
        assert_eq!(c.command.as_deref(), Some("upgrade"));
        assert_eq!(c.namespace.as_deref(), Some("foo"));
        assert_eq!(c.kube_context.as_deref(), Some("prod"));
        assert_eq!(c.kubeconfig.as_deref(), Some("/k/c"));
        let c =
            parse_helm_argv(7, &argv("helm upgrade zk ./c --namespace=bar -- --dry-run")).unwrap();
        assert_eq!((c.namespace.as_deref(), c.dry_run), (Some("bar"), false));
        assert_eq!(c.intent(), Intent::Execute);
        let c = parse_helm_argv(7, &argv("helm upgrade zk ./c -n=baz")).unwrap();
        assert_eq!(c.namespace.as_deref(), Some("baz"));
    }

    #[test]
    fn this_test_process_has_no_helm_parent() {
        assert_eq!(detect(), None);
    }
}
