//! Where a policy comes from: a `.wasm` module, or a Kubewarden `ClusterAdmissionPolicy` /
//! `AdmissionPolicy` manifest naming one, with its settings, context-aware resources and
//! `mutating` flag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::log;
use crate::metadata::{read_metadata_section, ContextAwareResource, PolicyMetadata};

const WASM_MAGIC: &[u8] = b"\0asm";
const POLICIES_API_GROUP: &str = "policies.kubewarden.io/";
const REGISTRY_SCHEME: &str = "registry://";
const FILE_SCHEME: &str = "file://";

/// A policy ready to be compiled, with what the host must enforce around it.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Names the policy in messages: the manifest's `metadata.name`, else the module's file name.
    pub id: String,
    pub module_path: PathBuf,
    pub wasm: Vec<u8>,
    /// `None` when the module carries no `io.kubewarden.metadata` section.
    pub metadata: Option<PolicyMetadata>,
    /// From the manifest, if the policy came from one.
    pub manifest: Option<ManifestPolicy>,
}

impl PolicySource {
    /// Loads `reference`: a module path, a `file://` or `registry://` module reference, or a
    /// manifest file.
    pub fn load(reference: &str) -> Result<Self> {
        if reference.starts_with(REGISTRY_SCHEME) || reference.starts_with(FILE_SCHEME) {
            let module_path = resolve_module_reference(reference, Path::new("."))?;
            return Self::from_module(module_path, None);
        }
        let path = PathBuf::from(reference);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read policy {}", path.display()))?;
        if bytes.starts_with(WASM_MAGIC) {
            return Self::from_module_bytes(path, bytes, None);
        }
        let text = String::from_utf8(bytes).with_context(|| {
            format!(
                "{} is neither a WebAssembly module nor a YAML manifest",
                path.display()
            )
        })?;
        let manifest = ManifestPolicy::from_yaml_str(&text)
            .with_context(|| format!("invalid policy manifest {}", path.display()))?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        let module_path = resolve_module_reference(&manifest.module, base_dir)
            .with_context(|| format!("cannot resolve spec.module of {}", path.display()))?;
        Self::from_module(module_path, Some(manifest))
    }

    fn from_module(module_path: PathBuf, manifest: Option<ManifestPolicy>) -> Result<Self> {
        let bytes = std::fs::read(&module_path)
            .with_context(|| format!("cannot read policy module {}", module_path.display()))?;
        if !bytes.starts_with(WASM_MAGIC) {
            bail!("{} is not a WebAssembly module", module_path.display());
        }
        Self::from_module_bytes(module_path, bytes, manifest)
    }

    fn from_module_bytes(
        module_path: PathBuf,
        wasm: Vec<u8>,
        manifest: Option<ManifestPolicy>,
    ) -> Result<Self> {
        let metadata = read_metadata_section(&wasm)
            .and_then(|section| {
                section
                    .map(|json| PolicyMetadata::from_json(&json))
                    .transpose()
            })
            .with_context(|| format!("cannot read the metadata of {}", module_path.display()))?;
        let id = match &manifest {
            Some(manifest) => manifest.name.clone(),
            None => module_path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| module_path.display().to_string()),
        };
        Ok(Self {
            id,
            module_path,
            wasm,
            metadata,
            manifest,
        })
    }

    /// The resources a context-aware run grants: the manifest's list, else the metadata's.
    pub fn context_aware_resources(&self) -> Vec<ContextAwareResource> {
        match (&self.manifest, &self.metadata) {
            (Some(manifest), _) => manifest.context_aware_resources.clone(),
            (None, Some(metadata)) => metadata.context_aware_resources.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// Whether the policy may mutate: the manifest's `spec.mutating`, else the metadata's;
    /// a module without metadata is treated as mutating.
    pub fn mutating(&self) -> bool {
        match (&self.manifest, &self.metadata) {
            (
                Some(ManifestPolicy {
                    mutating: Some(mutating),
                    ..
                }),
                _,
            ) => *mutating,
            (_, Some(metadata)) => metadata.mutating,
            (_, None) => true,
        }
    }

    /// Warns about what kwctl would also warn about before running.
    pub fn warn_if_not_annotated(&self) {
        if self.metadata.is_none() {
            log::warn(format!(
                "{} is not annotated (no {} custom section): running it as mutating, without context-aware resources",
                self.module_path.display(),
                crate::metadata::METADATA_SECTION
            ));
        }
    }
}

/// What kwrun takes from a `ClusterAdmissionPolicy` or `AdmissionPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestPolicy {
    pub kind: String,
    pub name: String,
    pub module: String,
    pub settings: Option<Value>,
    pub context_aware_resources: Vec<ContextAwareResource>,
    pub mutating: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDocument {
    #[serde(default)]
    metadata: ManifestMetadata,
    spec: ManifestSpec,
}

#[derive(Deserialize, Default)]
struct ManifestMetadata {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestSpec {
    module: String,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    context_aware_resources: Vec<ContextAwareResource>,
    #[serde(default)]
    mutating: Option<bool>,
}

impl ManifestPolicy {
    /// Picks the one policy out of a multi-document YAML file (other documents, such as RBAC
    /// objects, are ignored).
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        let mut policies = Vec::new();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = serde_yaml::Value::deserialize(document)
                .with_context(|| format!("YAML document #{} cannot be parsed", index + 1))?;
            let field = |key: &str| value.get(key).and_then(serde_yaml::Value::as_str);
            let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
                continue;
            };
            if !api_version.starts_with(POLICIES_API_GROUP)
                || !matches!(kind, "ClusterAdmissionPolicy" | "AdmissionPolicy")
            {
                continue;
            }
            let kind = kind.to_string();
            let document: ManifestDocument = serde_yaml::from_value(value)
                .with_context(|| format!("{kind} in YAML document #{} is invalid", index + 1))?;
            policies.push((kind, document));
        }
        if policies.len() != 1 {
            bail!(
                "expected exactly one ClusterAdmissionPolicy or AdmissionPolicy ({POLICIES_API_GROUP}…), found {}",
                policies.len()
            );
        }
        let Some((kind, document)) = policies.pop() else {
            bail!("no policy document");
        };
        let mut context_aware_resources = document.spec.context_aware_resources;
        if kind == "AdmissionPolicy" && !context_aware_resources.is_empty() {
            log::warn(
                "an AdmissionPolicy cannot be context-aware: ignoring spec.contextAwareResources",
            );
            context_aware_resources.clear();
        }
        Ok(Self {
            name: document.metadata.name.unwrap_or_else(|| kind.clone()),
            kind,
            module: document.spec.module,
            settings: document.spec.settings,
            context_aware_resources,
            mutating: document.spec.mutating,
        })
    }
}

/// Resolves a module reference: a path (relative to `base_dir`), `file://PATH`, or
/// `registry://HOST/PATH:TAG` in kwctl's local store.
pub fn resolve_module_reference(reference: &str, base_dir: &Path) -> Result<PathBuf> {
    if let Some(image) = reference.strip_prefix(REGISTRY_SCHEME) {
        let path = kwctl_store_root()?.join("registry").join(image);
        if !path.is_file() {
            bail!(
                "module {reference} is not in the local policy store: {} does not exist. \
                 kwrun cannot pull from registries; run `kwctl pull {reference}` or copy the \
                 module's .wasm file to that path",
                path.display()
            );
        }
        return Ok(path);
    }
    if let Some((scheme, _)) = reference.split_once("://") {
        if scheme != "file" {
            bail!("module reference {reference}: the {scheme}:// scheme is not supported (use a path, file:// or registry://)");
        }
    }
    let path = Path::new(reference.strip_prefix(FILE_SCHEME).unwrap_or(reference));
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    })
}

/// `${KWCTL_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubewarden/store}`
fn kwctl_store_root() -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(store) = non_empty("KWCTL_STORE") {
        return Ok(PathBuf::from(store));
    }
    let cache = match non_empty("XDG_CACHE_HOME") {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(non_empty("HOME").context(
            "cannot locate the kwctl store: neither KWCTL_STORE, XDG_CACHE_HOME nor HOME is set",
        )?)
        .join(".cache"),
    };
    Ok(cache.join("kubewarden").join("store"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MANIFEST: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
rules: []
---
apiVersion: policies.kubewarden.io/v1
kind: ClusterAdmissionPolicy
metadata:
  name: probe-policy
spec:
  module: registry://ghcr.io/example/probe:v1
  mutating: true
  settings:
    level: 3
  contextAwareResources:
    - apiVersion: v1
      kind: ServiceAccount
---
"#;

    #[test]
    fn takes_the_one_policy_and_ignores_other_documents() {
        let policy = ManifestPolicy::from_yaml_str(MANIFEST).unwrap();
        assert_eq!(policy.name, "probe-policy");
        assert_eq!(policy.kind, "ClusterAdmissionPolicy");
        assert_eq!(policy.module, "registry://ghcr.io/example/probe:v1");
        assert_eq!(policy.settings, Some(json!({"level": 3})));
        assert_eq!(policy.mutating, Some(true));
        assert_eq!(
            policy.context_aware_resources,
            vec![ContextAwareResource {
                api_version: "v1".into(),
                kind: "ServiceAccount".into()
            }]
        );
    }

    #[test]
    fn requires_exactly_one_policy() {
        let none = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        let error = ManifestPolicy::from_yaml_str(none).unwrap_err().to_string();
        assert!(
            error.contains("expected exactly one") && error.contains("found 0"),
            "{error}"
        );
        let two = format!("{MANIFEST}\n---\n{MANIFEST}");
        let error = ManifestPolicy::from_yaml_str(&two).unwrap_err().to_string();
        assert!(error.contains("found 2"), "{error}");
        let no_module = "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: x}\nspec: {mutating: true}\n";
        assert!(ManifestPolicy::from_yaml_str(no_module).is_err());
    }

    #[test]
    fn an_admission_policy_is_never_context_aware() {
        let namespaced = "apiVersion: policies.kubewarden.io/v1\nkind: AdmissionPolicy\nmetadata: {name: x, namespace: apps}\nspec:\n  module: p.wasm\n  contextAwareResources: [{apiVersion: v1, kind: Namespace}]\n";
        let policy = ManifestPolicy::from_yaml_str(namespaced).unwrap();
        assert!(policy.context_aware_resources.is_empty());
        assert_eq!(policy.settings, None);
    }

    #[test]
    fn resolves_paths_and_file_references_against_the_manifest_directory() {
        let base = Path::new("/policies");
        assert_eq!(
            resolve_module_reference("p.wasm", base).unwrap(),
            Path::new("/policies/p.wasm")
        );
        assert_eq!(
            resolve_module_reference("file://p.wasm", base).unwrap(),
            Path::new("/policies/p.wasm")
        );
        assert_eq!(
            resolve_module_reference("file:///abs/p.wasm", base).unwrap(),
            Path::new("/abs/p.wasm")
        );
        assert!(resolve_module_reference("https://example.com/p.wasm", base).is_err());
    }
}
