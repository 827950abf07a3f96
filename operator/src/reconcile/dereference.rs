//! Step 1: read what the CR references (Secrets). A missing Secret or key is a
//! typed error; nothing is changed on the cluster here. Only `data` is read:
//! the API server folds a written `stringData` into `data` and never returns it.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use crate::crd::{ClaudeMiddleware, SecretKeyRef};

/// What validation takes from referenced Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dereferenced {
    /// `sha256:<hex>` of the Redis password; changing it rolls the pods.
    pub redis_password_hash: Option<String>,
}

pub async fn dereference(secrets: &Api<Secret>, cr: &ClaudeMiddleware) -> Result<Dereferenced> {
    let namespace = cr.metadata.namespace.clone().unwrap_or_default();
    let mut out = Dereferenced::default();
    if let Some(r) = &cr.spec.redis.password_secret_ref {
        let value = secret_key(secrets, &namespace, r).await?;
        out.redis_password_hash = Some(hash(&value));
    }
    if let Some(r) = &cr.spec.auth.api_keys_secret_ref {
        // Only checked: the keys are mounted and hot-reloaded by the proxy.
        secret_key(secrets, &namespace, r).await?;
    }
    Ok(out)
}

async fn secret_key(secrets: &Api<Secret>, namespace: &str, r: &SecretKeyRef) -> Result<Vec<u8>> {
    let secret = secrets
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| Error::SecretMissing {
            namespace: namespace.to_string(),
            name: r.name.clone(),
        })?;
    secret
        .data
        .and_then(|mut d| d.remove(&r.key))
        .map(|b| b.0)
        .ok_or_else(|| Error::SecretKeyMissing {
            namespace: namespace.to_string(),
            name: r.name.clone(),
            key: r.key.clone(),
        })
}

pub fn hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The names of the Secrets a CR references (for the Secret → CR mapper).
pub fn referenced_secrets(cr: &ClaudeMiddleware) -> impl Iterator<Item = &str> {
    let redis = cr
        .spec
        .redis
        .password_secret_ref
        .as_ref()
        .map(|r| r.name.as_str());
    let keys = cr
        .spec
        .auth
        .api_keys_secret_ref
        .as_ref()
        .map(|r| r.name.as_str());
    redis.into_iter().chain(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash(b"password"),
            "sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
        );
    }

    #[test]
    fn referenced_secret_names() {
        let cr = crate::render::testdata::full();
        assert_eq!(
            referenced_secrets(&cr).collect::<Vec<_>>(),
            vec!["redis-auth", "api-keys"]
        );
        let cr = crate::render::testdata::minimal();
        assert_eq!(referenced_secrets(&cr).count(), 0);
    }
}
