//! Steps 4–5: server-side apply the rendered children (field manager
//! `claude-middleware-operator`, force) and prune the children of switched-off
//! features. An apply whose content matches what is stored is a no-op for the
//! API server (no new resourceVersion), so steady state writes nothing.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Result;
use super::optional::{self, OptionalKind, Outcome};
use super::validate::Owner;
use crate::render::Children;
use crate::render::labels::MANAGER;

/// What the API needs of a child kind: a namespaced, typed, (de)serializable object.
pub trait ChildKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> ChildKind for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

/// What a pass applied: the Deployment (for status) and how each child from
/// an optional CRD fared.
#[derive(Clone, Debug)]
pub struct Applied {
    pub deployment: Deployment,
    pub optional: Vec<(OptionalKind, Outcome)>,
}

/// Applies every wanted child, prunes the unwanted.
pub async fn apply_children(
    client: &Client,
    owner: &Owner,
    children: &Children,
) -> Result<Applied> {
    // No `..`: a new kind of child does not compile until it is handled here.
    let Children {
        deployment,
        service,
        network_policy,
        ingress,
        hpa,
        pdb,
        http_route,
        service_monitor,
    } = children;
    // The HPA goes first when switched on, and the Deployment drops
    // spec.replicas in the same pass, so nothing fights over the count.
    apply_or_prune(client, owner, hpa.as_ref()).await?;
    let deployment = apply(client, &owner.namespace, deployment).await?;
    apply(client, &owner.namespace, service).await?;
    apply_or_prune(client, owner, network_policy.as_ref()).await?;
    apply_or_prune(client, owner, ingress.as_ref()).await?;
    apply_or_prune(client, owner, pdb.as_ref()).await?;
    let optional = vec![
        (
            OptionalKind::HttpRoute,
            optional::apply_or_prune(client, owner, http_route.as_ref()).await?,
        ),
        (
            OptionalKind::ServiceMonitor,
            optional::apply_or_prune(client, owner, service_monitor.as_ref()).await?,
        ),
    ];
    Ok(Applied {
        deployment,
        optional,
    })
}

/// Applies the child of a switched-on feature, else deletes the one an
/// earlier pass applied.
async fn apply_or_prune<K: ChildKind>(
    client: &Client,
    owner: &Owner,
    wanted: Option<&K>,
) -> Result<()> {
    match wanted {
        Some(obj) => drop(apply(client, &owner.namespace, obj).await?),
        None => drop(prune::<K>(client, owner).await?),
    }
    Ok(())
}

pub async fn apply<K: ChildKind>(client: &Client, namespace: &str, obj: &K) -> Result<K> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(obj)).await?)
}

/// Deletes the owner's child of kind K if it exists and the owner is its
/// controller (an object of that name made by someone else is left alone).
pub async fn prune<K: ChildKind>(client: &Client, owner: &Owner) -> Result<bool> {
    let api: Api<K> = Api::namespaced(client.clone(), &owner.namespace);
    let Some(meta) = api.get_metadata_opt(&owner.name).await? else {
        return Ok(false);
    };
    let owned = meta
        .metadata
        .owner_references
        .unwrap_or_default()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == owner.reference.uid);
    if !owned {
        return Ok(false);
    }
    api.delete(&owner.name, &DeleteParams::background()).await?;
    Ok(true)
}
