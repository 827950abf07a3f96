//! The Service in front of the proxy pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{child_meta, selector_labels};
use super::{PORT_NAME, RenderInput};

pub fn render(input: &RenderInput<'_>) -> Service {
    let svc = &input.cr.spec.service;
    let mut metadata = child_meta(input.cr);
    if !svc.annotations.is_empty() {
        metadata.annotations = Some(svc.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            selector: Some(selector_labels(input.cr)),
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

/// In-cluster URL of the Service (`status.endpoint`).
pub fn endpoint(input: &RenderInput<'_>) -> String {
    format!(
        "http://{}.{}.svc:{}",
        input.name, input.namespace, input.cr.spec.service.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{input, minimal};

    #[test]
    fn selects_pods_on_named_port() {
        let cr = minimal();
        let i = input(&cr, None);
        let s = render(&i).spec.unwrap();
        assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
        let port = &s.ports.unwrap()[0];
        assert_eq!(port.port, 8080);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(s.selector.unwrap().len(), 2);
        assert_eq!(endpoint(&i), "http://relay.ai.svc:8080");
    }
}
