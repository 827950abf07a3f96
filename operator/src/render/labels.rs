//! Names and labels every child carries: named like the CR, in its namespace,
//! `app.kubernetes.io/{name,instance,managed-by}`, and a controller owner
//! reference to it (docs/architecture.md "Names"; tests and the demo select
//! children by these).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::reconcile::validate::Owner;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "claude-middleware";
pub const MANAGER: &str = "claude-middleware-operator";
/// `app.kubernetes.io/managed-by=claude-middleware-operator`, for watches of children.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=claude-middleware-operator";

/// The labels that select one CR's pods; stable for the CR's lifetime
/// (a Deployment's selector is immutable).
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), name.to_string()),
    ])
}

/// Labels on every child and on the pod template.
pub fn common_labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    labels
}

pub fn label_selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(name)),
        ..Default::default()
    }
}

/// `k=v,k=v`, the string form used by `.status.selector` (scale subresource).
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of a child: named like the CR, in its namespace, with the common
/// labels and a controller owner reference so deleting the CR collects it.
pub fn child_meta(owner: &Owner) -> ObjectMeta {
    ObjectMeta {
        name: Some(owner.name.clone()),
        namespace: Some(owner.namespace.clone()),
        labels: Some(common_labels(&owner.name)),
        owner_references: Some(vec![owner.reference.clone()]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testdata::{minimal, validated};

    #[test]
    fn child_meta_has_required_labels_and_controller_owner() {
        let meta = child_meta(&validated(&minimal(), None).owner);
        assert_eq!(meta.name.as_deref(), Some("relay"));
        assert_eq!(meta.namespace.as_deref(), Some("ai"));
        let labels = meta.labels.unwrap_or_default();
        assert_eq!(labels[NAME_LABEL], "claude-middleware");
        assert_eq!(labels[INSTANCE_LABEL], "relay");
        assert_eq!(labels[MANAGED_BY_LABEL], "claude-middleware-operator");
        let owners = meta.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].kind, "ClaudeMiddleware");
    }

    #[test]
    fn selector_string_is_sorted_and_stable() {
        assert_eq!(
            selector_string("relay"),
            "app.kubernetes.io/instance=relay,app.kubernetes.io/name=claude-middleware"
        );
    }
}
