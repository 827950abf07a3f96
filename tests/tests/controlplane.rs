//! Proof that the local control plane (tests/controlplane/up.sh) is a real Kubernetes API:
//! its controllers act, CRDs with subresources work, owned objects are garbage-collected,
//! and server-side apply reports real field-manager conflicts. Each test has its own
//! namespace (and, for the CRD, its own API group), so they run in parallel.

use anyhow::{Context, bail, ensure};
use cmw_tests::controlplane::{DEFAULT_TIMEOUT, eventually, test_namespace};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

/// Whether `object` names `owner_uid` as its controlling owner.
fn controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

#[tokio::test]
async fn deployment_controller_makes_a_replicaset_and_its_pods() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("cp-deployment").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.invalid/web:1" }] }
            }
        }
    }))?;
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let deployment_uid = created.uid().context("created Deployment has no uid")?;

    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let replica_set = eventually(
        "a ReplicaSet owned by the Deployment",
        DEFAULT_TIMEOUT,
        || async {
            let list = replica_sets.list(&ListParams::default()).await?;
            list.items
                .into_iter()
                .find(|rs| controlled_by(rs, &deployment_uid))
                .context("no ReplicaSet controlled by the Deployment yet")
        },
    )
    .await?;
    let spec = replica_set
        .spec
        .as_ref()
        .context("ReplicaSet without spec")?;
    assert_eq!(spec.replicas, Some(2));
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    assert_eq!(
        template_labels
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("web")
    );

    // The ReplicaSet controller acts too: it makes the Pods (no scheduler, so they stay Pending).
    let replica_set_uid = replica_set.uid().context("ReplicaSet has no uid")?;
    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    eventually(
        "2 Pods owned by the ReplicaSet",
        DEFAULT_TIMEOUT,
        || async {
            let owned = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|p| controlled_by(p, &replica_set_uid))
                .count();
            ensure!(owned == 2, "{owned} Pods owned by the ReplicaSet");
            Ok(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn custom_resource_with_status_subresource() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("cp-crd").await;
    // CRDs are cluster-wide: a group per test namespace keeps parallel runs apart.
    let group = format!("{}.test.claude-middleware.dev", ns.name);
    let crd_name = format!("widgets.{group}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": { "size": { "type": "integer" } } },
                        "status": { "type": "object", "properties": { "ready": { "type": "boolean" } } }
                    }
                }}
            }]
        }
    }))?;
    crds.create(&PostParams::default(), &crd).await?;
    let result = widget_lifecycle(&client, &ns.name, &group, &crds, &crd_name).await;
    // Best effort: the CRD outlives the namespace otherwise.
    let _ = crds.delete(&crd_name, &DeleteParams::background()).await;
    result
}

async fn widget_lifecycle(
    client: &kube::Client,
    namespace: &str,
    group: &str,
    crds: &Api<CustomResourceDefinition>,
    crd_name: &str,
) -> anyhow::Result<()> {
    eventually("the CRD to be Established", DEFAULT_TIMEOUT, || async {
        let crd = crds.get(crd_name).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        ensure!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "conditions: {conditions:?}"
        );
        Ok(())
    })
    .await?;

    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let widget = |size: Value, status: Value| -> anyhow::Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": format!("{group}/v1"),
            "kind": "Widget",
            "metadata": { "name": "w" },
            "spec": { "size": size },
            "status": status
        }))?)
    };

    // The schema is enforced: a string where an integer belongs is rejected.
    match widgets
        .create(&PostParams::default(), &widget(json!("big"), json!({}))?)
        .await
    {
        Err(kube::Error::Api(status)) if status.is_invalid() => {}
        other => {
            bail!("a Widget with spec.size \"big\" should be rejected as invalid, got {other:?}")
        }
    }

    // A valid Widget is accepted; with the status subresource, status is ignored on create.
    let created = eventually("the Widget to be accepted", DEFAULT_TIMEOUT, || async {
        Ok(widgets
            .create(
                &PostParams::default(),
                &widget(json!(1), json!({ "ready": true }))?,
            )
            .await?)
    })
    .await?;
    assert_eq!(created.data["spec"]["size"], json!(1));
    assert_eq!(
        created.data.get("status").and_then(|s| s.get("ready")),
        None,
        "status set on create: {created:?}"
    );

    // A status update through /status works...
    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "ready": true } })),
        )
        .await?;
    assert_eq!(patched.data["status"]["ready"], json!(true));

    // ...and a plain update changes spec but not status.
    let mut changed = widgets.get("w").await?;
    changed.data["spec"]["size"] = json!(3);
    changed.data["status"]["ready"] = json!(false);
    let replaced = widgets
        .replace("w", &PostParams::default(), &changed)
        .await?;
    assert_eq!(replaced.data["spec"]["size"], json!(3));
    assert_eq!(
        replaced.data["status"]["ready"],
        json!(true),
        "a plain update changed status"
    );
    let stored = widgets.get("w").await?;
    assert_eq!(stored.data["status"]["ready"], json!(true));
    Ok(())
}

#[tokio::test]
async fn garbage_collector_deletes_owned_configmap() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("cp-gc").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns.name);
    let config_map = |name: &str| -> anyhow::Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({ "metadata": { "name": name }, "data": { "k": "v" } }),
        )?)
    };
    let owner = config_maps
        .create(&PostParams::default(), &config_map("owner")?)
        .await?;
    let owner_uid = owner.uid().context("owner has no uid")?;
    let mut owned = config_map("owned")?;
    owned.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid
    }))?]);
    config_maps.create(&PostParams::default(), &owned).await?;
    config_maps
        .create(&PostParams::default(), &config_map("bystander")?)
        .await?;

    config_maps
        .delete("owner", &DeleteParams::background())
        .await?;
    eventually(
        "the owned ConfigMap to be garbage-collected",
        DEFAULT_TIMEOUT,
        || async {
            match config_maps.get_opt("owned").await? {
                None => Ok(()),
                Some(_) => bail!("ConfigMap owned still exists"),
            }
        },
    )
    .await?;
    assert!(config_maps.get_opt("owner").await?.is_none());
    // Only the owner's dependents go.
    assert!(
        config_maps.get_opt("bystander").await?.is_some(),
        "an unowned ConfigMap was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_conflict_between_field_managers() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("cp-ssa").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns.name);
    let colour = |value: &str| {
        Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "shared" },
            "data": { "colour": value }
        }))
    };

    config_maps
        .patch("shared", &PatchParams::apply("manager-a"), &colour("red"))
        .await?;

    // Manager B may not take a field A owns without force: 409 Conflict naming A and the field.
    match config_maps
        .patch("shared", &PatchParams::apply("manager-b"), &colour("blue"))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.is_conflict(),
                "expected a 409 Conflict, got {status:?}"
            );
            assert!(
                status.message.contains("manager-a"),
                "conflict does not name manager-a: {}",
                status.message
            );
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.clone())
                .unwrap_or_default();
            assert!(
                causes.iter().any(|c| c.reason == "FieldManagerConflict"
                    && c.field == ".data.colour"
                    && c.message.contains("manager-a")),
                "causes: {causes:?}"
            );
        }
        other => bail!("manager-b's apply without force should conflict, got {other:?}"),
    }
    let unchanged = config_maps.get("shared").await?;
    assert_eq!(
        unchanged
            .data
            .as_ref()
            .and_then(|d| d.get("colour"))
            .map(String::as_str),
        Some("red")
    );

    // With force, B takes the value and the ownership.
    let forced = config_maps
        .patch(
            "shared",
            &PatchParams::apply("manager-b").force(),
            &colour("blue"),
        )
        .await?;
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
    let owns_colour = |manager: &str| {
        forced.managed_fields().iter().any(|entry| {
            entry.manager.as_deref() == Some(manager)
                && entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:data/f:colour").is_some())
        })
    };
    assert!(
        owns_colour("manager-b"),
        "managedFields: {:?}",
        forced.managed_fields()
    );
    assert!(
        !owns_colour("manager-a"),
        "managedFields: {:?}",
        forced.managed_fields()
    );
    Ok(())
}

#[tokio::test]
async fn rbac_applies_to_a_service_account_token() -> anyhow::Result<()> {
    let (client, ns) = test_namespace("cp-rbac").await;
    let service_accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    service_accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "reader" } }))?,
        )
        .await?;
    let reader = ns
        .control_plane()
        .service_account_client(&ns.name, "reader")
        .await?;
    let as_reader: Api<ConfigMap> = Api::namespaced(reader.clone(), &ns.name);

    // No role yet: the token authenticates, RBAC denies.
    match as_reader.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.is_forbidden() => {}
        other => bail!("listing ConfigMaps without a role should be forbidden, got {other:?}"),
    }

    let roles: Api<Role> = Api::namespaced(client.clone(), &ns.name);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "read-configmaps" },
                "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"] }]
            }))?,
        )
        .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client, &ns.name);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "reader" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps" },
                "subjects": [{ "kind": "ServiceAccount", "name": "reader", "namespace": ns.name }]
            }))?,
        )
        .await?;

    // The role grants exactly what it names (RBAC caches, so allow it a moment).
    eventually(
        "the Role to allow listing ConfigMaps",
        DEFAULT_TIMEOUT,
        || async { Ok(as_reader.list(&ListParams::default()).await?) },
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(reader, &ns.name);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.is_forbidden() => {}
        other => bail!("listing Secrets is not in the Role and should be forbidden, got {other:?}"),
    }
    Ok(())
}
