//! `kwrun annotate`: write `policy-metadata.yml` into the module's metadata section.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::engine::CompiledPolicy;
use crate::host::{HostEnvironment, KubernetesAccess};
use crate::metadata::{write_metadata_section, WAPC_EXECUTION_MODE};

/// The annotation naming the tool that annotated the module.
pub const TOOL_ANNOTATION: &str = "io.kubewarden.kwctl";
/// The annotation holding the usage text (`-u README.md`).
pub const USAGE_ANNOTATION: &str = "io.kubewarden.policy.usage";

/// Value of the tool annotation.
pub fn tool_name() -> String {
    format!("kwrun {}", env!("CARGO_PKG_VERSION"))
}

/// Builds the metadata JSON from the YAML text: checks the fields the hosts rely on, sets
/// `protocolVersion`, and adds the tool and usage annotations.
pub fn metadata_json(
    metadata_yaml: &str,
    protocol_version: &str,
    usage: Option<&str>,
) -> Result<Value> {
    let metadata: Option<Value> =
        serde_yaml::from_str(metadata_yaml).context("the metadata is not valid YAML")?;
    let Some(Value::Object(mut metadata)) = metadata else {
        bail!("the metadata must be a YAML mapping");
    };
    match metadata.get("rules") {
        Some(Value::Array(_)) => {}
        Some(_) => bail!("metadata: `rules` must be a list"),
        None => bail!("metadata: `rules` is missing (the admission rules the policy applies to)"),
    }
    match metadata.get("mutating") {
        Some(Value::Bool(_)) => {}
        Some(other) => bail!("metadata: `mutating` must be true or false, not {other}"),
        None => bail!("metadata: `mutating` is missing (true or false)"),
    }
    if let Some(mode) = metadata.get("executionMode") {
        if mode.as_str() != Some(WAPC_EXECUTION_MODE) {
            bail!("metadata: executionMode {mode} is not supported; kwrun annotates {WAPC_EXECUTION_MODE:?} policies");
        }
    }
    if let Some(resources) = metadata.get("contextAwareResources") {
        let valid = resources.as_array().is_some_and(|list| {
            list.iter().all(|item| {
                item.get("apiVersion").is_some_and(Value::is_string)
                    && item.get("kind").is_some_and(Value::is_string)
            })
        });
        if !valid {
            bail!("metadata: `contextAwareResources` must be a list of {{apiVersion, kind}}");
        }
    }
    if let Some(capabilities) = metadata.get("hostCapabilities") {
        let valid = capabilities
            .as_array()
            .is_some_and(|list| list.iter().all(Value::is_string));
        if !valid {
            bail!("metadata: `hostCapabilities` must be a list of `namespace/operation` strings");
        }
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    let Value::Object(annotations) = annotations else {
        bail!("metadata: `annotations` must be a mapping of strings");
    };
    if let Some((key, _)) = annotations.iter().find(|(_, value)| !value.is_string()) {
        bail!("metadata: annotation {key:?} must be a string");
    }
    annotations.insert(TOOL_ANNOTATION.to_string(), Value::String(tool_name()));
    if let Some(usage) = usage {
        annotations.insert(
            USAGE_ANNOTATION.to_string(),
            Value::String(usage.to_string()),
        );
    }
    metadata.insert(
        "protocolVersion".to_string(),
        Value::String(protocol_version.to_string()),
    );
    Ok(Value::Object(metadata))
}

/// Asks the module which waPC protocol it speaks.
fn protocol_version_of(wasm: &[u8]) -> Result<String> {
    let compiled = CompiledPolicy::compile(wasm)?;
    let host = Arc::new(HostEnvironment::new(KubernetesAccess::Denied, None));
    compiled.instantiate(host)?.protocol_version()
}

pub fn annotate(
    metadata_path: &Path,
    usage_path: Option<&Path>,
    output_path: &Path,
    module_path: &Path,
) -> Result<()> {
    let metadata_yaml = std::fs::read_to_string(metadata_path)
        .with_context(|| format!("cannot read metadata file {}", metadata_path.display()))?;
    let usage = usage_path
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read usage file {}", path.display()))
        })
        .transpose()?;
    let wasm = std::fs::read(module_path)
        .with_context(|| format!("cannot read policy module {}", module_path.display()))?;
    let protocol_version = protocol_version_of(&wasm).with_context(|| {
        format!(
            "cannot detect the protocol version of {}",
            module_path.display()
        )
    })?;
    let metadata = metadata_json(&metadata_yaml, &protocol_version, usage.as_deref())
        .with_context(|| format!("invalid metadata file {}", metadata_path.display()))?;
    let json = serde_json::to_vec(&metadata).context("cannot serialize the metadata")?;
    let annotated = write_metadata_section(&wasm, &json)?;
    std::fs::write(output_path, annotated)
        .with_context(|| format!("cannot write {}", output_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = "rules:\n- apiGroups: ['']\n  apiVersions: [v1]\n  resources: [pods]\n  operations: [CREATE]\nmutating: true\nexecutionMode: kubewarden-wapc\nannotations:\n  io.kubewarden.policy.title: probe\n";

    #[test]
    fn adds_protocol_version_and_annotations() {
        let json = metadata_json(METADATA, "v1", Some("# Usage\n")).unwrap();
        assert_eq!(json["protocolVersion"], "v1");
        assert_eq!(json["mutating"], true);
        assert_eq!(json["rules"][0]["resources"][0], "pods");
        let annotations = &json["annotations"];
        assert_eq!(annotations["io.kubewarden.policy.title"], "probe");
        assert_eq!(annotations[TOOL_ANNOTATION], tool_name());
        assert_eq!(annotations[USAGE_ANNOTATION], "# Usage\n");
    }

    #[test]
    fn creates_annotations_when_missing() {
        let json = metadata_json("rules: []\nmutating: false\n", "v1", None).unwrap();
        assert_eq!(json["annotations"][TOOL_ANNOTATION], tool_name());
        assert!(json["annotations"].get(USAGE_ANNOTATION).is_none());
    }

    #[test]
    fn rejects_incomplete_metadata() {
        for (yaml, expected) in [
            ("mutating: true\n", "`rules` is missing"),
            ("rules: []\n", "`mutating` is missing"),
            (
                "rules: []\nmutating: 'yes'\n",
                "`mutating` must be true or false",
            ),
            (
                "rules: []\nmutating: true\nexecutionMode: opa\n",
                "executionMode \"opa\" is not supported",
            ),
            (
                "rules: []\nmutating: true\ncontextAwareResources: [{kind: Pod}]\n",
                "contextAwareResources",
            ),
            (
                "rules: []\nmutating: true\nannotations: {a: 1}\n",
                "annotation \"a\" must be a string",
            ),
            (
                "rules: []\nmutating: true\nhostCapabilities: kubernetes/get_resource\n",
                "`hostCapabilities` must be a list",
            ),
            ("- a\n", "must be a YAML mapping"),
        ] {
            let error = metadata_json(yaml, "v1", None).unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml:?}: {error}");
        }
    }
}
