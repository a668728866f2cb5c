//! Whether the namespace's NetworkPolicies let a migration's source hosts and the pods talk on
//! the quorum and election ports: pure, over the policies as the API server returns them.
//!
//! During a move, members on hosts and members in pods dial each other on both ports: a pod
//! follower dials the leader's quorum port (on a host until the leader moves), the host members
//! dial a pod leader's quorum port once it moved, and election connections are kept by the
//! higher id, so hosts with higher ids dial the pods' election port. The bitnami chart ships a
//! NetworkPolicy (`networkPolicy.enabled`, on by default) that admits 2888/3888 only from the
//! release's own pods: on a cluster that enforces policies a move stalls (the pod never syncs,
//! the member goes back to its host after the timeout).
//!
//! Kubernetes' rules, as far as a host outside the cluster is concerned: a pod selected by any
//! policy of type Ingress (Egress) takes only what one of those policies' rules admits; a rule
//! admits a host when its peers are empty or one is an `ipBlock` holding the host's address (and
//! none of its `except`), and its ports are empty or one matches (a number, a range with
//! `endPort`, or a name the pod's container declares). Pod and namespace selectors never match
//! a host.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which way a connection goes, seen from the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A host dials a pod.
    Ingress,
    /// A pod dials a host.
    Egress,
}

/// Hosts and ports the policies would not let through, one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub direction: Direction,
    /// The policies that isolate the pods in that direction.
    pub policies: Vec<String>,
    /// `(host address, port)` pairs none of their rules admits.
    pub denied: Vec<(IpAddr, u16)>,
}

/// What the policies do to the pods: `pod_labels` (the StatefulSet's pod template labels),
/// `named_ports` (the ZooKeeper container's ports by name), `hosts` (the addresses the cluster
/// reaches the source hosts at) and `ports` (quorum, election). Empty: nothing blocked.
pub fn blocked(
    policies: &[NetworkPolicy],
    pod_labels: &BTreeMap<String, String>,
    named_ports: &BTreeMap<String, u16>,
    hosts: &[IpAddr],
    ports: &[u16],
) -> Vec<Blocked> {
    let selecting: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| selects(s.pod_selector.as_ref(), pod_labels))
        })
        .collect();
    let mut out = Vec::new();
    for direction in [Direction::Ingress, Direction::Egress] {
        let isolating: Vec<&NetworkPolicy> = selecting
            .iter()
            .copied()
            .filter(|p| has_type(p, direction))
            .collect();
        if isolating.is_empty() {
            continue;
        }
        let mut denied = Vec::new();
        for &ip in hosts {
            for &port in ports {
                let admitted = isolating
                    .iter()
                    .any(|p| admits(p, direction, ip, port, named_ports));
                if !admitted {
                    denied.push((ip, port));
                }
            }
        }
        if !denied.is_empty() {
            out.push(Blocked {
                direction,
                policies: isolating
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap_or_default())
                    .collect(),
                denied,
            });
        }
    }
    out
}

/// The chart values that admit the hosts, for what [`blocked`] found, as YAML lines (only
/// addresses and numbers: nothing from outside reaches them as text).
pub fn values_to_admit(found: &[Blocked]) -> String {
    let mut v = String::new();
    if let Some(b) = found.iter().find(|b| b.direction == Direction::Ingress) {
        let mut ports: Vec<u16> = b.denied.iter().map(|(_, p)| *p).collect();
        ports.sort_unstable();
        ports.dedup();
        let mut ips: Vec<IpAddr> = b.denied.iter().map(|(ip, _)| *ip).collect();
        ips.sort_unstable();
        ips.dedup();
        v.push_str("networkPolicy:\n  extraIngress:\n    - ports:\n");
        for p in ports {
            v.push_str(&format!("        - port: {p}\n"));
        }
        v.push_str("      from:\n");
        for ip in ips {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            v.push_str(&format!(
                "        - ipBlock:\n            cidr: {ip}/{bits}\n"
            ));
        }
    }
    if found.iter().any(|b| b.direction == Direction::Egress) {
        if v.is_empty() {
            v.push_str("networkPolicy:\n");
        }
        // The chart's own extraEgress is only rendered with allowExternalEgress=false, and its
        // 13.8.8 template reads it from a wrong path; egress to anywhere is the chart default.
        v.push_str("  allowExternalEgress: true\n");
    }
    v
}

/// The policy's types: as given, else Ingress, plus Egress when it has egress rules (the API
/// server's defaulting).
fn has_type(p: &NetworkPolicy, d: Direction) -> bool {
    let Some(spec) = &p.spec else { return false };
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| match d {
            Direction::Ingress => t == "Ingress",
            Direction::Egress => t == "Egress",
        }),
        None => match d {
            Direction::Ingress => true,
            Direction::Egress => spec.egress.is_some(),
        },
    }
}

/// One rule's peers and ports (ingress `from`, egress `to`).
type Rule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

fn admits(
    p: &NetworkPolicy,
    d: Direction,
    ip: IpAddr,
    port: u16,
    named: &BTreeMap<String, u16>,
) -> bool {
    let Some(spec) = &p.spec else { return false };
    let rules: Vec<Rule<'_>> = match d {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()))
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()))
            .collect(),
    };
    rules.into_iter().any(|(peers, ports)| {
        let peer_ok = match peers {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => v.iter().any(|peer| peer_admits(peer, ip)),
        };
        let port_ok = match ports {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => v.iter().any(|pp| port_admits(pp, port, d, named)),
        };
        peer_ok && port_ok
    })
}

fn peer_admits(peer: &NetworkPolicyPeer, ip: IpAddr) -> bool {
    let Some(block) = &peer.ip_block else {
        return false;
    };
    cidr_contains(&block.cidr, ip) && !block.except.iter().flatten().any(|e| cidr_contains(e, ip))
}

fn port_admits(
    pp: &NetworkPolicyPort,
    port: u16,
    d: Direction,
    named: &BTreeMap<String, u16>,
) -> bool {
    if pp.protocol.as_deref().is_some_and(|p| p != "TCP") {
        return false;
    }
    match &pp.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let from = *n;
            let to = pp.end_port.unwrap_or(from);
            (from..=to).contains(&i32::from(port))
        }
        // A named port is the destination pod's: the pods' own for ingress; a host has none.
        Some(IntOrString::String(name)) => {
            d == Direction::Ingress && named.get(name) == Some(&port)
        }
    }
}

/// Whether `cidr` (`a.b.c.d/n` or `v6/n`) holds `ip`; a malformed one holds nothing.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Whether a label selector selects `labels` (an absent or empty selector selects everything):
/// the NetworkPolicies' pods here, and the guard's namespaces (`guard::coverage`).
pub fn selects(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return true };
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = sel.match_expressions.iter().flatten().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        let have = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NetworkPolicy the bitnami chart 13.8.8 renders by default (the shared fixture's,
    /// release `zk`).
    fn chart_policy() -> NetworkPolicy {
        serde_yaml::from_str(
            r#"
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: zk-zookeeper}
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/instance: zk, app.kubernetes.io/name: zookeeper}
  policyTypes: [Ingress, Egress]
  egress:
    - {}
  ingress:
    - ports:
        - port: 2181
    - ports:
        - port: 2888
        - port: 3888
      from:
        - podSelector:
            matchLabels: {app.kubernetes.io/instance: zk, app.kubernetes.io/name: zookeeper}
"#,
        )
        .unwrap()
    }

    fn labels() -> BTreeMap<String, String> {
        [
            ("app.kubernetes.io/instance", "zk"),
            ("app.kubernetes.io/name", "zookeeper"),
            ("app.kubernetes.io/component", "zookeeper"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn hosts() -> Vec<IpAddr> {
        vec!["10.0.0.11".parse().unwrap(), "10.0.0.12".parse().unwrap()]
    }

    #[test]
    fn the_charts_default_policy_blocks_the_hosts_on_both_ports_inbound_only() {
        let found = blocked(
            &[chart_policy()],
            &labels(),
            &BTreeMap::new(),
            &hosts(),
            &[2888, 3888],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].direction, Direction::Ingress);
        assert_eq!(found[0].policies, ["zk-zookeeper"]);
        assert_eq!(found[0].denied.len(), 4);
        let v = values_to_admit(&found);
        assert_eq!(
            v,
            "networkPolicy:\n  extraIngress:\n    - ports:\n        - port: 2888\n        - port: 3888\n      \
             from:\n        - ipBlock:\n            cidr: 10.0.0.11/32\n        - ipBlock:\n            cidr: 10.0.0.12/32\n"
        );
        // Those values, rendered by the chart as a rule of its policy, admit every host.
        let mut p = chart_policy();
        let extra: serde_json::Value = serde_yaml::from_str::<serde_json::Value>(&v).unwrap()
            ["networkPolicy"]["extraIngress"][0]
            .clone();
        let mut spec = serde_json::to_value(p.spec.take().unwrap()).unwrap();
        spec["ingress"].as_array_mut().unwrap().push(extra);
        p.spec = Some(serde_json::from_value(spec).unwrap());
        assert!(blocked(&[p], &labels(), &BTreeMap::new(), &hosts(), &[2888, 3888]).is_empty());
    }

    #[test]
    fn policies_of_other_pods_or_without_ingress_do_not_matter() {
        let mut other = chart_policy();
        other
            .spec
            .as_mut()
            .unwrap()
            .pod_selector
            .as_mut()
            .unwrap()
            .match_labels = Some([("app".to_string(), "web".to_string())].into());
        assert!(blocked(&[other], &labels(), &BTreeMap::new(), &hosts(), &[2888]).is_empty());
        let egress_only: NetworkPolicy = serde_yaml::from_str(
            "metadata: {name: e}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}\n",
        )
        .unwrap();
        assert!(blocked(
            &[egress_only],
            &labels(),
            &BTreeMap::new(),
            &hosts(),
            &[2888]
        )
        .is_empty());
        assert!(blocked(&[], &labels(), &BTreeMap::new(), &hosts(), &[2888]).is_empty());
    }

    #[test]
    fn ip_blocks_ranges_excepts_and_named_ports() {
        let p: NetworkPolicy = serde_yaml::from_str(
            r#"
metadata: {name: p}
spec:
  podSelector: {matchExpressions: [{key: app.kubernetes.io/name, operator: In, values: [zookeeper]}]}
  ingress:
    - from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.12/32]}}]
      ports: [{port: 2000, endPort: 3000}, {port: election}]
"#,
        )
        .unwrap();
        let named: BTreeMap<String, u16> = [("election".to_string(), 3888)].into();
        let found = blocked(
            std::slice::from_ref(&p),
            &labels(),
            &named,
            &hosts(),
            &[2888, 3888],
        );
        assert_eq!(
            found[0].denied,
            [
                ("10.0.0.12".parse().unwrap(), 2888),
                ("10.0.0.12".parse().unwrap(), 3888)
            ]
        );
        // Without the named port on the container (a pod rendered at replicaCount ≤ 1), the
        // name admits nothing.
        let found = blocked(&[p], &labels(), &BTreeMap::new(), &hosts(), &[3888]);
        assert_eq!(found[0].denied.len(), 2);
    }

    #[test]
    fn restricted_egress_blocks_pods_dialling_hosts() {
        let p: NetworkPolicy = serde_yaml::from_str(
            r#"
metadata: {name: zk-zookeeper}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - ports: [{port: 53, protocol: UDP}]
    - ports: [{port: 2888}, {port: 3888}]
      to: [{podSelector: {matchLabels: {app.kubernetes.io/name: zookeeper}}}]
"#,
        )
        .unwrap();
        let found = blocked(&[p], &labels(), &BTreeMap::new(), &hosts(), &[2888, 3888]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].direction, Direction::Egress);
        assert!(values_to_admit(&found).contains("allowExternalEgress: true"));
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("0.0.0.0/0", ip("198.18.0.1")));
        assert!(cidr_contains("198.18.0.0/16", ip("198.18.200.1")));
        assert!(!cidr_contains("198.18.0.0/16", ip("198.19.0.1")));
        assert!(cidr_contains("fd00::/8", ip("fd00::3")));
        assert!(!cidr_contains("fd00::/8", ip("10.0.0.1")));
        assert!(!cidr_contains("10.0.0.0/33", ip("10.0.0.1")));
        assert!(!cidr_contains("garbage", ip("10.0.0.1")));
    }
}
