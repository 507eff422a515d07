//! policy-metadata.yml: what the PolicyServer and kwctl enforce around the module.

use crate::common::{metadata, Resource};
use cwii_kubewarden::lookup::LOOKUP_KINDS;
use std::collections::BTreeSet;

#[test]
fn context_aware_resources_are_exactly_the_lookup_kinds() {
    let listed = metadata().context_aware_resources;
    let listed_set: BTreeSet<Resource> = listed.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        listed_set.len(),
        "duplicates in contextAwareResources: {listed:?}"
    );
    let code: BTreeSet<Resource> = LOOKUP_KINDS
        .iter()
        .map(|(api_version, kind)| Resource {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
        .collect();
    assert_eq!(
        listed_set, code,
        "policy-metadata.yml contextAwareResources must equal src/lookup.rs LOOKUP_KINDS"
    );
}

#[test]
fn rules_are_pod_create_only() {
    let rules = metadata().rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(rule.api_versions.as_deref(), Some(&["v1".to_string()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string()][..]));
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_string()][..])
    );
    assert_eq!(rule.scope, None);
}

#[test]
fn mutating_wapc_with_least_host_capabilities() {
    let m = metadata();
    assert!(
        m.mutating,
        "a mutating policy must say so, or the host turns its patch into a rejection"
    );
    assert_eq!(m.execution_mode, "kubewarden-wapc");
    assert_eq!(
        m.host_capabilities,
        vec!["kubernetes/get_resource".to_string()]
    );
    assert!(
        !m.background_audit,
        "the audit scanner cannot judge a mutating CREATE-only policy"
    );
}

#[test]
fn minimum_kubewarden_version_covers_the_host_features_used() {
    let m = metadata();
    let parts: Vec<u32> = m
        .minimum_kubewarden_version
        .split('.')
        .map(|p| p.parse().expect("numeric version part"))
        .collect();
    assert_eq!(parts.len(), 3, "{}", m.minimum_kubewarden_version);
    // hostCapabilities need 1.35, field masks 1.33.
    assert!(
        (parts[0], parts[1]) >= (1, 35),
        "minimumKubewardenVersion {} is older than hostCapabilities (1.35)",
        m.minimum_kubewarden_version
    );
}

#[test]
fn carries_the_kubewarden_annotations() {
    let annotations = metadata().annotations;
    for suffix in [
        "title",
        "version",
        "description",
        "author",
        "url",
        "source",
        "license",
        "category",
        "severity",
    ] {
        let key = format!("io.kubewarden.policy.{suffix}");
        let value = annotations
            .get(&key)
            .unwrap_or_else(|| panic!("missing annotation {key}"));
        assert!(!value.trim().is_empty(), "{key} is empty");
    }
    // `kwctl annotate -u README.md` fills the usage; a copy here would go stale.
    assert!(!annotations.contains_key("io.kubewarden.policy.usage"));
    let severity = &annotations["io.kubewarden.policy.severity"];
    assert!(
        ["info", "low", "medium", "high", "critical"].contains(&severity.as_str()),
        "severity {severity}"
    );
    assert_eq!(annotations["io.kubewarden.policy.license"], "Apache-2.0");
    assert_eq!(annotations["io.artifacthub.resources"], "Pod");
}
