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
use crate::crd::ClaudeMiddleware;
use crate::render::Children;
use crate::render::labels::MANAGER;

fn params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api.patch(&name, &params(), &Patch::Apply(obj)).await?)
}

/// Delete `name` of kind K if it exists and this CR is its controller.
pub async fn prune<K>(client: &Client, cr: &ClaudeMiddleware, name: &str) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let namespace = cr.metadata.namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let Some(meta) = api.get_metadata_opt(name).await? else {
        return Ok(false);
    };
    let uid = cr.metadata.uid.as_deref();
    let owned = meta
        .metadata
        .owner_references
        .unwrap_or_default()
        .iter()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid);
    if !owned {
        return Ok(false);
    }
    api.delete(name, &DeleteParams::background()).await?;
    Ok(true)
}

/// Applies every wanted child, prunes the unwanted, returns the applied Deployment.
pub async fn apply_children(
    client: &Client,
    cr: &ClaudeMiddleware,
    children: &Children,
) -> Result<Deployment> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler as Hpa;
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget as Pdb;

    let ns = cr.metadata.namespace.clone().unwrap_or_default();
    let name = cr.metadata.name.clone().unwrap_or_default();
    // The HPA goes first when switched on, and the Deployment drops
    // spec.replicas in the same pass, so nothing fights over the count.
    match &children.hpa {
        Some(h) => drop(apply(client, &ns, h).await?),
        None => drop(prune::<Hpa>(client, cr, &name).await?),
    }
    let deployment = apply(client, &ns, &children.deployment).await?;
    apply(client, &ns, &children.service).await?;
    match &children.network_policy {
        Some(n) => drop(apply(client, &ns, n).await?),
        None => drop(prune::<NetworkPolicy>(client, cr, &name).await?),
    }
    match &children.ingress {
        Some(i) => drop(apply(client, &ns, i).await?),
        None => drop(prune::<Ingress>(client, cr, &name).await?),
    }
    match &children.pdb {
        Some(p) => drop(apply(client, &ns, p).await?),
        None => drop(prune::<Pdb>(client, cr, &name).await?),
    }
    Ok(deployment)
}
