//! The Service in front of the proxy pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::PORT_NAME;
use super::labels::{child_meta, selector_labels};
use crate::reconcile::validate::ValidatedMiddleware;

pub fn render(v: &ValidatedMiddleware) -> Service {
    let svc = &v.service;
    let mut metadata = child_meta(&v.owner);
    if !svc.annotations.is_empty() {
        metadata.annotations = Some(svc.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            selector: Some(selector_labels(&v.owner.name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: svc.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// In-cluster URL of the Service (`status.endpoint`). From its parts, since
/// status is reported also for a CR that failed validation.
pub fn endpoint(name: &str, namespace: &str, port: i32) -> String {
    format!("http://{name}.{namespace}.svc:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{minimal, validated};

    #[test]
    fn selects_pods_on_named_port() {
        let s = render(&validated(&minimal(), None)).spec.unwrap();
        assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
        let port = &s.ports.unwrap()[0];
        assert_eq!(port.port, 8080);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(s.selector.unwrap().len(), 2);
        assert_eq!(endpoint("relay", "ai", 8080), "http://relay.ai.svc:8080");
    }
}
