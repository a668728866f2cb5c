//! The admission guard (`charts/zkscale-guard`): a ValidatingAdmissionPolicy that makes the API
//! server itself refuse unsafe changes to bitnami ZooKeeper StatefulSets from any client. This
//! module prints its manifests (`kubectl zkscale guard`: the chart's own template, read at
//! build time, with the values filled in, so the two cannot drift) and tells whether a
//! namespace is covered (`guard --check`, `status`).

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::Serialize;

/// The one evaluation of a label selector (also the migration's NetworkPolicy check).
pub use crate::plan::netpol::selects;

/// The chart's template (the one source of the guard's manifests).
const TEMPLATE: &str = include_str!("../charts/zkscale-guard/templates/guard.yaml");

/// The policies the chart installs: the StatefulSet itself, and its scale subresource.
pub const POLICIES: [&str; 2] = ["zkscale-guard", "zkscale-guard-scale"];
/// The guard's default override annotation: set or changed in a request, it lets that request
/// through (a migration's steps set it: their list names every member, on hosts or in pods,
/// while replicas count only the pods).
pub const OVERRIDE_ANNOTATION: &str = "zkscale.io/allow-unsafe";

/// What the API server does with an unsafe change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Action {
    Deny,
    Warn,
    Audit,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "Deny",
            Action::Warn => "Warn",
            Action::Audit => "Audit",
        }
    }
}

/// The chart's values.
#[derive(Debug, Clone)]
pub struct Values {
    /// `key=value,…` (matchLabels); empty: every namespace.
    pub namespace_labels: Vec<(String, String)>,
    pub actions: Vec<Action>,
    pub override_annotation: String,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            namespace_labels: Vec::new(),
            actions: vec![Action::Deny],
            override_annotation: OVERRIDE_ANNOTATION.into(),
        }
    }
}

impl Values {
    /// Whether every value is one Kubernetes accepts where it goes: the override annotation a
    /// qualified annotation key, the namespace labels valid label keys and values. This is the
    /// one function that makes them safe for the template: they are spliced into CEL inside
    /// single quotes and into YAML, and none of the characters these rules allow (letters,
    /// digits, `-`, `_`, `.`, one `/`) can end a CEL string or start YAML syntax. The chart's
    /// `values.schema.json` holds the same rules for `helm install`.
    pub fn check(&self) -> Result<(), String> {
        // What the API server would refuse in the binding, said before it is applied.
        if self.actions.contains(&Action::Deny) && self.actions.contains(&Action::Warn) {
            return Err(
                "--actions: deny and warn do not combine (deny,audit or warn,audit)".into(),
            );
        }
        qualified_name(&self.override_annotation).map_err(|e| {
            format!(
                "--override-annotation `{}`: {e}",
                self.override_annotation.escape_debug()
            )
        })?;
        for (k, v) in &self.namespace_labels {
            qualified_name(k)
                .map_err(|e| format!("--namespace-labels key `{}`: {e}", k.escape_debug()))?;
            label_value(v).map_err(|e| {
                format!(
                    "--namespace-labels value `{}` of {k}: {e}",
                    v.escape_debug()
                )
            })?;
        }
        Ok(())
    }
}

/// A name part: 1 to 63 of `[A-Za-z0-9._-]`, beginning and ending with a letter or digit
/// (Kubernetes' qualified name, the part after the prefix; also a non-empty label value).
fn name_part(s: &str) -> Result<(), String> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if s.is_empty() || s.len() > 63 {
        return Err("the name must be 1 to 63 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("only letters, digits, `-`, `_` and `.` are allowed".into());
    }
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err("must begin and end with a letter or digit".into());
    }
    Ok(())
}

/// An annotation or label key: `[prefix/]name`, the prefix a DNS subdomain (lower case, at
/// most 253 characters), the name a [`name_part`].
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(label_ok) {
            return Err(
                "the prefix must be a DNS subdomain (lower case letters, digits, `-`, `.`; at \
                 most 253 characters)"
                    .into(),
            );
        }
    }
    name_part(name)
}

/// A label value: empty, or a [`name_part`].
pub fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        name_part(v)
    }
}

/// The guard's manifests for `values` (checked by [`Values::check`]): the chart's template with
/// the values put in where Helm would put them.
pub fn manifests(values: &Values) -> String {
    debug_assert!(values.check().is_ok(), "unchecked guard values");
    let actions: Vec<&str> = values.actions.iter().map(|a| a.as_str()).collect();
    let selector = if values.namespace_labels.is_empty() {
        serde_json::json!({})
    } else {
        let labels: serde_json::Map<String, serde_json::Value> = values
            .namespace_labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({ "matchLabels": labels })
    };
    let out = TEMPLATE
        .replace(
            "{{ .Values.overrideAnnotation }}",
            &values.override_annotation,
        )
        .replace(
            "{{ toJson .Values.validationActions }}",
            &serde_json::to_string(&actions).expect("strings serialize"),
        )
        .replace(
            "{{ toJson .Values.namespaceSelector }}",
            &serde_json::to_string(&selector).expect("json serializes"),
        );
    debug_assert!(
        !out.contains("{{"),
        "a chart expression the command does not fill in"
    );
    out
}

/// Whether the guard covers a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "guard", rename_all = "snake_case")]
pub enum Coverage {
    /// Both policies bound for this namespace, with these actions.
    Covered { actions: Vec<String> },
    /// Not (fully) bound here.
    NotCovered { why: String },
    /// Cannot tell (RBAC forbids reading policies, bindings or the namespace).
    Unknown { why: String },
}

impl Coverage {
    /// Covered and refusing (not only warning or auditing).
    pub fn denies(&self) -> bool {
        matches!(self, Coverage::Covered { actions } if actions.iter().any(|a| a == "Deny"))
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Coverage::Covered { actions } if self.denies() => {
                write!(
                    f,
                    "covered ({}): unsafe changes are refused by the API server",
                    actions.join(", ")
                )
            }
            Coverage::Covered { actions } => write!(
                f,
                "on trial ({}): unsafe changes are only reported, not refused",
                actions.join(", ")
            ),
            Coverage::NotCovered { why } => write!(f, "not covered: {why}"),
            Coverage::Unknown { why } => write!(f, "unknown: {why}"),
        }
    }
}

/// Whether the guard's policies are installed and bound for `namespace`. Never an error: a
/// read RBAC forbids, or any other failure, is [`Coverage::Unknown`].
pub async fn coverage(client: &Client, namespace: &str) -> Coverage {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let unknown = |what: &str, e: kube::Error| Coverage::Unknown {
        why: format!("reading {what}: {}", crate::cluster::describe(&e)),
    };
    for p in POLICIES {
        match policies.get_opt(p).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Coverage::NotCovered {
                    why: format!("no ValidatingAdmissionPolicy {p} (install charts/zkscale-guard, or `kubectl zkscale guard | kubectl apply -f -`)"),
                }
            }
            Err(e) => return unknown("ValidatingAdmissionPolicies", e),
        }
    }
    let labels = match Api::<Namespace>::all(client.clone()).get(namespace).await {
        Ok(ns) => ns.metadata.labels.unwrap_or_default(),
        Err(e) => return unknown("the namespace", e),
    };
    let all = match bindings.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => return unknown("ValidatingAdmissionPolicyBindings", e),
    };
    let mut actions = Vec::new();
    for p in POLICIES {
        let bound = all.iter().find(|b| {
            b.spec.as_ref().is_some_and(|s| {
                s.policy_name.as_deref() == Some(p)
                    && selects(
                        s.match_resources
                            .as_ref()
                            .and_then(|m| m.namespace_selector.as_ref()),
                        &labels,
                    )
            })
        });
        match bound {
            Some(b) if p == POLICIES[0] => {
                actions = b
                    .spec
                    .as_ref()
                    .and_then(|s| s.validation_actions.clone())
                    .unwrap_or_default()
            }
            Some(_) => {}
            None => {
                return Coverage::NotCovered {
                    why: format!("no binding of {p} selects namespace {namespace}"),
                }
            }
        }
    }
    Coverage::Covered { actions }
}

/// The override annotation the installed guard honours: read from its policy's `override`
/// variable, so that a guard installed with a custom `overrideAnnotation` lets a migration's
/// steps through. No policy, a policy RBAC does not let us read, or an expression that names no
/// valid annotation key: the default (with no guard installed, any name passes).
pub async fn override_annotation(client: &Client) -> String {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    match policies.get_opt(POLICIES[0]).await {
        Ok(Some(p)) => override_annotation_of(&p).unwrap_or_else(|| OVERRIDE_ANNOTATION.into()),
        Ok(None) => OVERRIDE_ANNOTATION.into(),
        Err(e) => {
            tracing::debug!(error = %crate::cluster::describe(&e), "guard policy not read; default override annotation");
            OVERRIDE_ANNOTATION.into()
        }
    }
}

/// The annotation key in a guard policy's `override` variable (`'<key>' in
/// object.metadata.annotations`). The key comes from the cluster, so it is only returned when
/// it is a valid annotation key ([`valid_annotation_key`] makes it safe to put into a patch and
/// a log line).
pub fn override_annotation_of(policy: &ValidatingAdmissionPolicy) -> Option<String> {
    let expr = policy
        .spec
        .as_ref()?
        .variables
        .as_ref()?
        .iter()
        .find(|v| v.name == "override")?
        .expression
        .clone();
    let at = expr.find(" in object.metadata.annotations")?;
    let before = expr[..at].trim_end();
    let quote = before.chars().last().filter(|c| *c == '\'' || *c == '"')?;
    let body = &before[..before.len() - 1];
    let start = body.rfind(quote)? + 1;
    let key = &body[start..];
    // The literal is an operand of its own (`… && '<key>' in …`), not the end of an expression.
    let lead = body[..start - 1].trim_end();
    let operand = lead.is_empty() || lead.ends_with("&&") || lead.ends_with('(');
    (operand && valid_annotation_key(key)).then(|| key.to_string())
}

/// An annotation key as Kubernetes accepts one: an optional DNS-subdomain prefix and `/`, then
/// a name of at most 63 alphanumerics, `-`, `_`, `.`, beginning and ending alphanumeric.
pub fn valid_annotation_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum_ends = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && alnum_ends(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && alnum_ends(l)
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_fill_every_value_in() {
        let v = Values {
            namespace_labels: vec![("team".into(), "zk".into())],
            actions: vec![Action::Warn, Action::Audit],
            override_annotation: "example.com/force".into(),
        };
        let text = manifests(&v);
        assert!(!text.contains("{{"));
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 4);
        let binding = &docs[1]["spec"];
        assert_eq!(
            binding["validationActions"],
            serde_yaml::to_value(["Warn", "Audit"]).unwrap()
        );
        assert_eq!(
            binding["matchResources"]["namespaceSelector"]["matchLabels"]["team"],
            "zk"
        );
        assert!(text.contains("'example.com/force' in object.metadata.annotations"));
        assert!(!text.contains("zkscale.io/allow-unsafe"));
    }

    /// The policy a custom `overrideAnnotation` renders names it, and a migration reads it back.
    #[test]
    fn the_override_annotation_is_read_back_from_the_policy() {
        for key in ["example.com/force", "zkscale.io/allow-unsafe", "force-it"] {
            let v = Values {
                override_annotation: key.into(),
                ..Values::default()
            };
            let policy: ValidatingAdmissionPolicy =
                serde_yaml::Deserializer::from_str(&manifests(&v))
                    .map(|d| serde::Deserialize::deserialize(d).unwrap())
                    .find(|p: &ValidatingAdmissionPolicy| {
                        p.metadata.name.as_deref() == Some(POLICIES[0])
                    })
                    .unwrap();
            assert_eq!(override_annotation_of(&policy).as_deref(), Some(key));
        }
        // An expression that names no valid key: none (the caller uses the default).
        let mut policy: ValidatingAdmissionPolicy =
            serde_yaml::Deserializer::from_str(&manifests(&Values::default()))
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .find(|p: &ValidatingAdmissionPolicy| {
                    p.metadata.name.as_deref() == Some(POLICIES[0])
                })
                .unwrap();
        for bad in [
            "'x' + 'y' in object.metadata.annotations",
            "'a b' in object.metadata.annotations",
            "true",
        ] {
            let vars = policy.spec.as_mut().unwrap().variables.as_mut().unwrap();
            vars.iter_mut()
                .find(|v| v.name == "override")
                .unwrap()
                .expression = bad.into();
            assert_eq!(override_annotation_of(&policy), None, "{bad}");
        }
    }

    #[test]
    fn annotation_keys() {
        for ok in [
            "a",
            "zkscale.io/allow-unsafe",
            "example.com/Force_1.x",
            "a-b.c/d",
        ] {
            assert!(valid_annotation_key(ok), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "a/",
            "-a",
            "a-",
            "Ex.com/x",
            "x' in y || true || 'y",
            "a\nb",
            &"x".repeat(64),
        ] {
            assert!(!valid_annotation_key(bad), "{bad}");
        }
    }

    #[test]
    fn values_are_kubernetes_names() {
        let with = |a: &str, labels: &[(&str, &str)]| Values {
            override_annotation: a.into(),
            namespace_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Values::default()
        };
        for ok in [
            "zkscale.io/allow-unsafe",
            "allow",
            "a.b-c/X_y.z",
            &format!(
                "{0}.{0}.{0}.{1}/{2}",
                "a".repeat(63),
                "a".repeat(61),
                "b".repeat(63)
            ),
        ] {
            assert_eq!(with(ok, &[]).check(), Ok(()), "{ok}");
        }
        for bad in [
            "x' in object.metadata.annotations || true || 'y",
            "a\nb",
            "",
            "a/b/c",
            "A.io/x",
            "/x",
            "x/",
            "-x",
            "x-",
            "a b",
            &"b".repeat(64),
            &format!("{0}.{0}.{0}.{1}/b", "a".repeat(63), "a".repeat(62)),
        ] {
            assert!(with(bad, &[]).check().is_err(), "{bad:?}");
        }
        assert!(with("a", &[("team", "zk"), ("k8s.io/x", "")])
            .check()
            .is_ok());
        for (k, v) in [("team", "a'b"), ("te am", "x"), ("", "x"), ("x", "-a")] {
            assert!(with("a", &[(k, v)]).check().is_err(), "{k}={v}");
        }
    }

    #[test]
    fn label_selectors() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        let labels: std::collections::BTreeMap<String, String> =
            [("team".to_string(), "zk".to_string())].into();
        assert!(selects(None, &labels));
        assert!(selects(Some(&LabelSelector::default()), &labels));
        let ml = |k: &str, v: &str| LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            ..Default::default()
        };
        assert!(selects(Some(&ml("team", "zk")), &labels));
        assert!(!selects(Some(&ml("team", "web")), &labels));
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(selects(Some(&expr("In", &["zk", "x"])), &labels));
        assert!(!selects(Some(&expr("NotIn", &["zk"])), &labels));
        assert!(selects(Some(&expr("Exists", &[])), &labels));
        assert!(!selects(Some(&expr("DoesNotExist", &[])), &labels));
    }
}
