//! Loading the repository's files, and the small pieces of Kubernetes semantics the checks
//! need (label selectors, kind → resource).

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The OCI repository the policy is published to.
pub const OCI_REPOSITORY: &str = "ghcr.io/cwii-dev/policies/cwii";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("packaging/ sits in the workspace root")
        .to_path_buf()
}

pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every YAML document of a file, as untyped values (empty documents skipped).
pub fn yaml_documents(relative: &str) -> Vec<serde_yaml::Value> {
    let text = read(relative);
    serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{relative}: YAML document #{} is invalid: {e}", i + 1))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn kind_of(doc: &serde_yaml::Value) -> &str {
    doc.get("kind")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("")
}

/// `{apiVersion, kind}` as in `contextAwareResources`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
}

impl Resource {
    /// The RBAC (apiGroup, resource) of the kind: `apps/v1` `Deployment` → (`apps`,
    /// `deployments`). The kinds the policy reads all have regular plurals.
    pub fn rbac(&self) -> (String, String) {
        let group = match self.api_version.split_once('/') {
            Some((group, _)) => group.to_string(),
            None => String::new(),
        };
        (group, format!("{}s", self.kind.to_ascii_lowercase()))
    }
}

/// `policy-metadata.yml`, strictly: an unknown (misspelt) field fails the parse.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub rules: Vec<RuleWithOperations>,
    pub mutating: bool,
    pub background_audit: bool,
    pub execution_mode: String,
    pub context_aware_resources: Vec<Resource>,
    pub host_capabilities: Vec<String>,
    pub minimum_kubewarden_version: String,
    pub annotations: BTreeMap<String, String>,
}

pub fn metadata() -> Metadata {
    serde_yaml::from_str(&read("policy-metadata.yml"))
        .unwrap_or_else(|e| panic!("policy-metadata.yml: {e}"))
}

pub fn metadata_resources() -> BTreeSet<Resource> {
    metadata().context_aware_resources.into_iter().collect()
}

/// The root package's version, from the `[package]` table of the root Cargo.toml.
pub fn cargo_version() -> String {
    let manifest = read("Cargo.toml");
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("version") {
                let value = value.trim_start().trim_start_matches('=').trim();
                return value.trim_matches('"').to_string();
            }
        }
    }
    panic!("Cargo.toml has no [package] version");
}

/// The labels every Namespace carries, as a namespaceSelector sees them.
pub fn namespace_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())])
}

/// Label-selector semantics (matchLabels and the four operators); `None` matches everything.
pub fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.clone().unwrap_or_default();
        let value = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown label selector operator {other}"),
        }
    });
    labels_ok && expressions_ok
}
