//! Ingress with streaming-safe ingress-nginx annotations: no buffering either
//! way, timeouts at least the target's, a body limit at least the proxy's.
//! Never `rewrite-target`: the proxy routes on the original path.

use std::collections::BTreeMap;

use cmw_contract::settings::MAX_BODY_BYTES;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::labels::child_meta;
use crate::reconcile::validate::ValidatedMiddleware;

pub const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";
/// The proxy's `MAX_BODY_BYTES` default, from the contract.
pub const DEFAULT_MAX_BODY_BYTES: i64 = MAX_BODY_BYTES.default as i64;

pub fn render(v: &ValidatedMiddleware) -> Option<Ingress> {
    let ing = v.ingress.as_ref()?;
    let timeout = v.target.timeout_seconds.to_string();
    let body = v.proxy.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let mut annotations = BTreeMap::from([
        (
            "nginx.ingress.kubernetes.io/proxy-buffering".to_string(),
            "off".to_string(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-request-buffering".into(),
            "off".into(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-read-timeout".into(),
            timeout.clone(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-send-timeout".into(),
            timeout,
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-body-size".into(),
            nginx_size(body),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-http-version".into(),
            "1.1".into(),
        ),
    ]);
    annotations.extend(ing.annotations.clone());
    annotations.remove(REWRITE_TARGET);

    let mut metadata = child_meta(&v.owner);
    metadata.annotations = Some(annotations);
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: v.owner.name.clone(),
            port: Some(ServiceBackendPort {
                number: Some(v.service.port),
                name: None,
            }),
        }),
        resource: None,
    };
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ing.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: ing.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(ing.path.clone()),
                        path_type: "Prefix".into(),
                        backend,
                    }],
                }),
            }]),
            tls: ing.tls.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: ing.host.clone().map(|h| vec![h]),
                    secret_name: Some(tls.secret_name.clone()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}

/// Bytes as an nginx size, rounded up to whole MiB (`32m`).
fn nginx_size(bytes: i64) -> String {
    const MIB: i64 = 1024 * 1024;
    format!("{}m", (bytes + MIB - 1) / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{full, minimal, validated};

    #[test]
    fn off_by_default() {
        let cr = minimal();
        assert!(render(&validated(&cr, None)).is_none());
    }

    #[test]
    fn streaming_safe_and_never_rewrites() {
        let cr = full();
        let ing = render(&validated(&cr, None)).unwrap();
        let a = ing.metadata.annotations.unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-buffering"], "off");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/proxy-request-buffering"],
            "off"
        );
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "600");
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-body-size"], "64m");
        assert!(
            !a.contains_key(REWRITE_TARGET),
            "user rewrite-target is dropped"
        );
        assert_eq!(a["example.com/team"], "ai");
        let spec = ing.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("relay-tls"));
        assert_eq!(tls.hosts, Some(vec!["claude.example.com".to_string()]));
    }

    #[test]
    fn sizes() {
        assert_eq!(nginx_size(DEFAULT_MAX_BODY_BYTES), "32m");
        assert_eq!(nginx_size(1), "1m");
        assert_eq!(nginx_size(1024 * 1024 + 1), "2m");
    }
}
