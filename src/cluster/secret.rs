//! The identity `reconfig` runs as, from a Secret in the ensemble's namespace: key `password`
//! (required) and `username` (default `super`, the user ZooKeeper's `superDigest` names). The
//! values go into the ZooKeeper session and nowhere else.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{ClusterError, Target};
use crate::zk::session::Identity;

/// The user `superDigest` is usually made for.
pub const DEFAULT_USER: &str = "super";

impl Target {
    /// The identity in Secret `name` (see the module docs).
    pub async fn identity(&self, name: &str) -> Result<Identity, ClusterError> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| ClusterError::Secret {
                name: name.into(),
                reason: "not found".into(),
            })?;
        identity_of(&secret).map_err(|reason| ClusterError::Secret {
            name: name.into(),
            reason,
        })
    }
}

fn identity_of(secret: &Secret) -> Result<Identity, String> {
    let value = |key: &str| -> Result<Option<String>, String> {
        let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) else {
            return Ok(secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned());
        };
        String::from_utf8(v.0.clone())
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|_| format!("key `{key}` is not UTF-8"))
    };
    let password = value("password")?.ok_or("no key `password`")?;
    if password.is_empty() {
        return Err("key `password` is empty".into());
    }
    let user = value("username")?.unwrap_or_else(|| DEFAULT_USER.into());
    Ok(Identity::digest(user, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn reads_user_and_password() {
        let i = identity_of(&secret(&[("password", "pw\n")])).unwrap();
        assert_eq!(i, Identity::digest("super", "pw"));
        let i = identity_of(&secret(&[("password", "pw"), ("username", "admin")])).unwrap();
        assert_eq!(i.user(), "admin");
        assert!(identity_of(&secret(&[("username", "x")]))
            .unwrap_err()
            .contains("password"));
        assert!(identity_of(&secret(&[("password", "")])).is_err());
    }
}
