//! The environment a plugin process gets.
//!
//! Only `PATH` and the Plugin's own `spec.env` reach the child: the daemon's
//! environment may hold credentials (cloud SDK variables, tokens) that a
//! plugin must not see unless the operator wrote them into `spec.env`.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// `PATH` when the parent has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The child's complete environment, sorted by key: `PATH` (the parent's, or
/// [`DEFAULT_PATH`]) plus `spec.env`. Keys are trimmed; empty keys and keys
/// containing `=` are dropped; `spec.env` may override `PATH`.
pub fn child_env(
    inherited_path: Option<OsString>,
    spec_env: &BTreeMap<String, String>,
) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    let path = inherited_path
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    env.insert(OsString::from("PATH"), path);
    for (k, v) in spec_env {
        let k = k.trim();
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            continue;
        }
        env.insert(OsString::from(k), OsString::from(v));
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_path_and_spec_env() {
        let mut spec = BTreeMap::new();
        spec.insert(" REGION ".to_string(), "ap".to_string());
        spec.insert("".to_string(), "x".to_string());
        spec.insert("A=B".to_string(), "x".to_string());
        let env = child_env(Some("/bin".into()), &spec);
        assert_eq!(
            env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("REGION".into(), "ap".into())
            ]
        );
    }

    #[test]
    fn default_path_and_override() {
        let env = child_env(None, &BTreeMap::new());
        assert_eq!(env, vec![("PATH".into(), DEFAULT_PATH.into())]);
        let mut spec = BTreeMap::new();
        spec.insert("PATH".to_string(), "/opt/bin".to_string());
        let env = child_env(Some("/bin".into()), &spec);
        assert_eq!(env, vec![("PATH".into(), "/opt/bin".into())]);
    }
}
