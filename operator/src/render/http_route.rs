//! A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) to the Service.
//! Its timeouts default to `0s` (off): a request timeout counts the whole
//! response, so any finite one would cut long streams; the proxy cuts idle
//! ones itself. The path is matched as a prefix and never rewritten.
//!
//! The types hold only the fields rendered here (server-side apply sends
//! exactly these); k8s-openapi has no Gateway API, and the gateway-api crate
//! follows an older kube.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::labels::child_meta;
use crate::reconcile::validate::ValidatedMiddleware;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// The route, or `None` when `spec.httpRoute` is off (the reconciler prunes it).
pub fn render(v: &ValidatedMiddleware) -> Option<HTTPRoute> {
    let route = v.http_route.as_ref()?;
    let mut metadata = child_meta(&v.owner);
    if !route.annotations.is_empty() {
        metadata.annotations = Some(route.annotations.clone());
    }
    let parent_refs = route
        .parent_refs
        .iter()
        .map(|p| ParentReference {
            group: p.group.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        })
        .collect();
    Some(HTTPRoute {
        metadata,
        spec: HttpRouteSpec {
            parent_refs,
            hostnames: route.hostnames.clone(),
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(PathMatch {
                        type_: "PathPrefix".into(),
                        value: route.path.clone(),
                    }),
                }],
                backend_refs: vec![BackendRef {
                    name: v.owner.name.clone(),
                    port: Some(v.service.port),
                }],
                timeouts: Some(HttpRouteTimeouts {
                    request: Some(route.timeouts.request.clone()),
                    backend_request: Some(route.timeouts.backend_request.clone()),
                }),
            }],
        },
    })
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
    fn routes_the_prefix_to_the_service_without_cutting_streams() {
        let cr = full();
        let route = render(&validated(&cr, None)).expect("enabled in the full CR");
        assert_eq!(route.metadata.name.as_deref(), Some("relay"));
        assert!(route.metadata.owner_references.is_some());
        let spec = route.spec;
        assert_eq!(spec.parent_refs[0].name, "public");
        assert_eq!(spec.parent_refs[0].namespace.as_deref(), Some("gateways"));
        assert_eq!(spec.hostnames, vec!["claude.example.com".to_string()]);
        let rule = &spec.rules[0];
        let path = rule.matches[0].path.as_ref().expect("a path match");
        assert_eq!(
            (path.type_.as_str(), path.value.as_str()),
            ("PathPrefix", "/")
        );
        assert_eq!(rule.backend_refs[0].name, "relay");
        assert_eq!(rule.backend_refs[0].port, Some(9090), "the Service port");
        let timeouts = rule.timeouts.as_ref().expect("timeouts");
        assert_eq!(timeouts.request.as_deref(), Some("0s"));
        assert_eq!(timeouts.backend_request.as_deref(), Some("0s"));
    }

    #[test]
    fn serializes_as_gateway_api_v1() {
        let cr = full();
        let route = render(&validated(&cr, None)).expect("enabled");
        let json = serde_json::to_value(&route).expect("json");
        assert_eq!(json["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(json["kind"], "HTTPRoute");
        assert_eq!(json["spec"]["parentRefs"][0]["sectionName"], "https");
        assert_eq!(json["spec"]["rules"][0]["timeouts"]["backendRequest"], "0s");
    }
}
