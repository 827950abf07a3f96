//! A Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1) that
//! scrapes the proxy's `/metrics` on the Service's `http` port. Prometheus
//! then names the job after the Service (the CR), which is what the alerts in
//! deploy/monitoring/ group by.
//!
//! The types hold only the fields rendered here (server-side apply sends
//! exactly these).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::PORT_NAME;
use super::labels::{child_meta, label_selector};
use crate::reconcile::validate::ValidatedMiddleware;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    plural = "servicemonitors",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
}

/// The monitor, or `None` unless `spec.monitoring.serviceMonitor.enabled`.
pub fn render(v: &ValidatedMiddleware) -> Option<ServiceMonitor> {
    let wanted = v.service_monitor.as_ref()?;
    let mut metadata = child_meta(&v.owner);
    // The user's labels (for Prometheus's serviceMonitorSelector) never
    // replace the ones that identify the child.
    let mut labels: BTreeMap<String, String> = wanted.labels.clone();
    labels.extend(metadata.labels.take().unwrap_or_default());
    metadata.labels = Some(labels);
    Some(ServiceMonitor {
        metadata,
        spec: ServiceMonitorSpec {
            selector: label_selector(&v.owner.name),
            endpoints: vec![Endpoint {
                port: PORT_NAME.into(),
                path: "/metrics".into(),
                interval: wanted.interval.clone(),
                scrape_timeout: wanted.scrape_timeout.clone(),
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::labels::{INSTANCE_LABEL, MANAGED_BY_LABEL};
    use crate::render::testdata::{full, minimal, validated};

    #[test]
    fn off_by_default() {
        let cr = minimal();
        assert!(render(&validated(&cr, None)).is_none());
    }

    #[test]
    fn scrapes_the_services_http_port() {
        let cr = full();
        let monitor = render(&validated(&cr, None)).expect("enabled in the full CR");
        let labels = monitor.metadata.labels.expect("labels");
        assert_eq!(labels["release"], "kube-prometheus-stack");
        assert_eq!(labels[MANAGED_BY_LABEL], "claude-middleware-operator");
        let selector = monitor.spec.selector.match_labels.expect("matchLabels");
        assert_eq!(selector[INSTANCE_LABEL], "relay");
        let endpoint = &monitor.spec.endpoints[0];
        assert_eq!(endpoint.port, PORT_NAME);
        assert_eq!(endpoint.path, "/metrics");
        assert_eq!(endpoint.interval.as_deref(), Some("15s"));
    }

    #[test]
    fn user_labels_never_replace_the_childs_own() {
        let mut cr = full();
        cr.spec
            .monitoring
            .service_monitor
            .labels
            .insert(MANAGED_BY_LABEL.into(), "someone-else".into());
        let monitor = render(&validated(&cr, None)).expect("enabled");
        assert_eq!(
            monitor.metadata.labels.expect("labels")[MANAGED_BY_LABEL],
            "claude-middleware-operator"
        );
    }
}
