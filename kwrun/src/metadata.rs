//! Kubewarden policy metadata: the `io.kubewarden.metadata` custom section of a module.
//!
//! The section holds the metadata as JSON (camelCase keys), written by `kwctl annotate`
//! or `kwrun annotate`. The host reads `mutating`, `executionMode` and
//! `contextAwareResources` from it; everything else travels untouched.

use std::borrow::Cow;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use wasm_encoder::{CustomSection, RawSection};
use wasmparser::{Encoding, Parser, Payload};

/// Name of the custom section holding the metadata JSON.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";

/// The only execution mode kwrun (a waPC host) can run.
pub const WAPC_EXECUTION_MODE: &str = "kubewarden-wapc";

/// A Kubernetes resource type a context-aware policy may look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextAwareResource {
    pub api_version: String,
    pub kind: String,
}

/// The part of the metadata the host acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyMetadata {
    pub mutating: bool,
    pub execution_mode: Option<String>,
    pub context_aware_resources: Vec<ContextAwareResource>,
    /// Host calls (`namespace/operation`) the policy may make (Kubewarden >= 1.35); `None`
    /// means all, as on older hosts.
    pub host_capabilities: Option<Vec<String>>,
}

impl PolicyMetadata {
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let metadata: Self = serde_json::from_slice(json)
            .with_context(|| format!("invalid JSON in the {METADATA_SECTION} custom section"))?;
        if let Some(mode) = &metadata.execution_mode {
            if mode != WAPC_EXECUTION_MODE {
                bail!(
                    "the policy's executionMode is {mode:?}; kwrun only runs {WAPC_EXECUTION_MODE:?} policies"
                );
            }
        }
        Ok(metadata)
    }
}

/// Returns the content of the module's metadata section, if it has one.
pub fn read_metadata_section(wasm: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut found = None;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.context("the module is not valid WebAssembly")?;
        reject_components(&payload)?;
        if let Payload::CustomSection(section) = &payload {
            if section.name() == METADATA_SECTION {
                // The last one wins, should a tool have appended instead of replacing.
                found = Some(section.data().to_vec());
            }
        }
    }
    Ok(found)
}

/// Returns a copy of `wasm` whose metadata section holds `json`: an existing metadata
/// section is dropped, every other section is kept byte for byte, and the new section is
/// appended at the end.
pub fn write_metadata_section(wasm: &[u8], json: &[u8]) -> Result<Vec<u8>> {
    let mut module = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.context("the module is not valid WebAssembly")?;
        reject_components(&payload)?;
        if let Payload::CustomSection(section) = &payload {
            if section.name() == METADATA_SECTION {
                continue;
            }
        }
        // Code-section entries and the header are covered by their enclosing sections.
        if let Some((id, range)) = payload.as_section() {
            let data = wasm
                .get(range.clone())
                .with_context(|| format!("section {id} lies outside the module ({range:?})"))?;
            module.section(&RawSection { id, data });
        }
    }
    module.section(&CustomSection {
        name: Cow::Borrowed(METADATA_SECTION),
        data: Cow::Borrowed(json),
    });
    Ok(module.finish())
}

fn reject_components(payload: &Payload<'_>) -> Result<()> {
    if let Payload::Version {
        encoding: Encoding::Component,
        ..
    } = payload
    {
        bail!("the module is a WebAssembly component; Kubewarden policies are core modules");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small module with a function, an export and an unrelated custom section.
    fn sample_module() -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], [wasm_encoder::ValType::I32]);
        module.section(&types);
        let mut functions = wasm_encoder::FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut exports = wasm_encoder::ExportSection::new();
        exports.export("answer", wasm_encoder::ExportKind::Func, 0);
        module.section(&exports);
        let mut code = wasm_encoder::CodeSection::new();
        let mut body = wasm_encoder::Function::new([]);
        body.instruction(&wasm_encoder::Instruction::I32Const(42));
        body.instruction(&wasm_encoder::Instruction::End);
        code.function(&body);
        module.section(&code);
        module.section(&CustomSection {
            name: Cow::Borrowed("producers-like"),
            data: Cow::Borrowed(b"keep me"),
        });
        module.finish()
    }

    fn metadata_section_count(wasm: &[u8]) -> usize {
        Parser::new(0)
            .parse_all(wasm)
            .filter(|payload| {
                matches!(payload, Ok(Payload::CustomSection(s)) if s.name() == METADATA_SECTION)
            })
            .count()
    }

    #[test]
    fn custom_section_round_trip() {
        let original = sample_module();
        assert_eq!(read_metadata_section(&original).unwrap(), None);

        let annotated = write_metadata_section(&original, br#"{"mutating":true}"#).unwrap();
        assert_eq!(
            read_metadata_section(&annotated).unwrap().as_deref(),
            Some(&br#"{"mutating":true}"#[..])
        );
        wasmparser::validate(&annotated).unwrap();
        // Everything else is kept byte for byte, in front of the new section.
        assert!(annotated.starts_with(&original));
        assert_eq!(metadata_section_count(&annotated), 1);
    }

    #[test]
    fn annotating_twice_replaces_the_section() {
        let once = write_metadata_section(&sample_module(), br#"{"mutating":true}"#).unwrap();
        let twice = write_metadata_section(&once, br#"{"mutating":false}"#).unwrap();
        assert_eq!(metadata_section_count(&twice), 1);
        assert_eq!(
            read_metadata_section(&twice).unwrap().as_deref(),
            Some(&br#"{"mutating":false}"#[..])
        );
        let keeps_other_custom_section = Parser::new(0).parse_all(&twice).any(
            |p| matches!(p, Ok(Payload::CustomSection(s)) if s.name() == "producers-like" && s.data() == b"keep me"),
        );
        assert!(keeps_other_custom_section);
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert!(read_metadata_section(b"not wasm").is_err());
        assert!(write_metadata_section(b"\0asm\x01\0\0\0\x01", b"{}").is_err());
    }

    #[test]
    fn parses_the_metadata_the_host_needs() {
        let metadata = PolicyMetadata::from_json(
            br#"{"rules":[],"mutating":true,"executionMode":"kubewarden-wapc",
                "contextAwareResources":[{"apiVersion":"v1","kind":"Namespace"}],
                "annotations":{"io.kubewarden.policy.title":"t"}}"#,
        )
        .unwrap();
        assert!(metadata.mutating);
        assert_eq!(
            metadata.context_aware_resources,
            vec![ContextAwareResource {
                api_version: "v1".into(),
                kind: "Namespace".into()
            }]
        );
        assert_eq!(metadata.host_capabilities, None);
        let least_privilege =
            PolicyMetadata::from_json(br#"{"hostCapabilities":["kubernetes/get_resource"]}"#)
                .unwrap();
        assert_eq!(
            least_privilege.host_capabilities,
            Some(vec!["kubernetes/get_resource".to_string()])
        );
        assert!(!PolicyMetadata::from_json(b"{}").unwrap().mutating);
        let error = PolicyMetadata::from_json(br#"{"executionMode":"opa"}"#).unwrap_err();
        assert!(error.to_string().contains("only runs"), "{error}");
    }
}
