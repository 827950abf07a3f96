//! NetworkPolicy: ingress to the proxy port from `spec.networkPolicy.from`
//! (all namespaces by default); egress only to Redis, the target and DNS.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::CONTAINER_PORT;
use super::labels::{child_meta, label_selector};
use crate::reconcile::validate::ValidatedMiddleware;

pub fn render(v: &ValidatedMiddleware) -> Option<NetworkPolicy> {
    let np = v.network_policy.as_ref()?;
    // An explicit empty list means "nobody": no ingress rule at all.
    let ingress = match &np.from {
        None => vec![rule_from(vec![all_namespaces()])],
        Some(peers) if peers.is_empty() => vec![],
        Some(peers) => vec![rule_from(peers.clone())],
    };
    let egress = vec![
        egress_to(vec![tcp(v.redis.port)]),
        egress_to(vec![tcp(i32::from(v.target.port))]),
        egress_to(vec![port(53, "UDP"), port(53, "TCP")]),
    ];
    Some(NetworkPolicy {
        metadata: child_meta(&v.owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(&v.owner.name)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

fn rule_from(from: Vec<NetworkPolicyPeer>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(from),
        ports: Some(vec![tcp(CONTAINER_PORT)]),
    }
}

fn egress_to(ports: Vec<NetworkPolicyPort>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        ports: Some(ports),
        to: None,
    }
}

fn all_namespaces() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        ..Default::default()
    }
}

fn tcp(p: i32) -> NetworkPolicyPort {
    port(p, "TCP")
}

fn port(p: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some(protocol.into()),
        end_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{full, minimal, validated};

    fn egress_ports(np: &NetworkPolicy) -> Vec<(i32, String)> {
        let mut out = vec![];
        for rule in np.spec.as_ref().unwrap().egress.clone().unwrap() {
            assert!(rule.to.is_none());
            for p in rule.ports.unwrap() {
                let IntOrString::Int(n) = p.port.unwrap() else {
                    panic!("named port")
                };
                out.push((n, p.protocol.unwrap()));
            }
        }
        out
    }

    #[test]
    fn default_allows_all_namespaces_and_dns() {
        let cr = minimal();
        let np = render(&validated(&cr, None)).unwrap();
        let spec = np.spec.clone().unwrap();
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from, vec![all_namespaces()]);
        assert_eq!(
            egress_ports(&np),
            vec![
                (6379, "TCP".into()),
                (3001, "TCP".into()),
                (53, "UDP".into()),
                (53, "TCP".into())
            ]
        );
    }

    #[test]
    fn custom_peers_and_https_port() {
        let cr = full();
        let np = render(&validated(&cr, None)).unwrap();
        let from = np.spec.clone().unwrap().ingress.unwrap()[0]
            .from
            .clone()
            .unwrap();
        assert_eq!(from, cr.spec.network_policy.from.clone().unwrap());
        assert!(egress_ports(&np).contains(&(443, "TCP".into())));
        assert!(egress_ports(&np).contains(&(6380, "TCP".into())));
    }

    #[test]
    fn disabled_renders_nothing() {
        let mut cr = minimal();
        cr.spec.network_policy.enabled = false;
        assert!(render(&validated(&cr, None)).is_none());
    }
}
