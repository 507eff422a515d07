//! artifacthub-pkg.yml: the package ArtifactHub and the Kubewarden UI show.

use crate::common::{metadata, metadata_resources, read, Resource};
use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use std::collections::BTreeSet;

fn package() -> serde_yaml::Mapping {
    serde_yaml::from_str(&read("artifacthub-pkg.yml")).expect("artifacthub-pkg.yml parses")
}

fn annotation(pkg: &serde_yaml::Mapping, key: &str) -> String {
    pkg["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("annotation {key} missing or not a string"))
        .to_string()
}

/// The fields of ArtifactHub's artifacthub-pkg.yml; anything else is a typo.
const KNOWN_FIELDS: &[&str] = &[
    "version",
    "name",
    "displayName",
    "createdAt",
    "description",
    "logoPath",
    "logoURL",
    "digest",
    "license",
    "homeURL",
    "appVersion",
    "containersImages",
    "containsSecurityUpdates",
    "operator",
    "deprecated",
    "prerelease",
    "keywords",
    "links",
    "readme",
    "install",
    "changes",
    "maintainers",
    "provider",
    "ignore",
    "recommendations",
    "screenshots",
    "annotations",
];

#[test]
fn has_the_required_fields_and_no_unknown_ones() {
    let pkg = package();
    for key in pkg.keys() {
        let key = key.as_str().expect("string keys");
        assert!(KNOWN_FIELDS.contains(&key), "unknown field {key}");
    }
    for key in [
        "version",
        "name",
        "displayName",
        "createdAt",
        "description",
        "license",
        "homeURL",
        "install",
    ] {
        let value = pkg[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
        assert!(!value.trim().is_empty(), "{key} empty");
    }
    assert_eq!(pkg["name"].as_str(), Some("cwii"));
    assert_eq!(
        pkg["license"].as_str(),
        Some(metadata().annotations["io.kubewarden.policy.license"].as_str())
    );
    assert_eq!(
        pkg["displayName"].as_str(),
        Some(metadata().annotations["io.artifacthub.displayName"].as_str())
    );
    // RFC 3339 UTC timestamp, as `kwctl scaffold artifacthub` writes it.
    let created = pkg["createdAt"].as_str().unwrap();
    let bytes = created.as_bytes();
    assert!(
        created.len() >= 20
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && created.ends_with('Z'),
        "createdAt {created}"
    );
    assert!(!pkg["keywords"].as_sequence().expect("keywords").is_empty());
    assert!(pkg["provider"]["name"].as_str().is_some(), "provider.name");
    assert!(!pkg["recommendations"]
        .as_sequence()
        .expect("recommendations")
        .is_empty());
    let install = pkg["install"].as_str().unwrap();
    let rbac = install
        .find("examples/rbac.yaml")
        .expect("install applies the RBAC");
    let policy = install
        .find("examples/cluster-admission-policy.yaml")
        .expect("install applies the policy");
    assert!(
        rbac < policy,
        "install notes must apply the RBAC before the policy"
    );
}

#[test]
fn kubewarden_annotations_match_the_metadata() {
    let pkg = package();
    assert_eq!(annotation(&pkg, "kubewarden/mutation"), "true");
    assert_eq!(annotation(&pkg, "kubewarden/resources"), "Pod");
    let listed: Vec<Resource> =
        serde_yaml::from_str(&annotation(&pkg, "kubewarden/contextAwareResources"))
            .expect("kubewarden/contextAwareResources holds a YAML list of {apiVersion, kind}");
    let listed_set: BTreeSet<Resource> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), listed_set.len(), "duplicates: {listed:?}");
    assert_eq!(listed_set, metadata_resources());
    let rules: Vec<RuleWithOperations> =
        serde_yaml::from_str(&annotation(&pkg, "kubewarden/rules"))
            .expect("kubewarden/rules holds a YAML list of rules");
    assert_eq!(rules, metadata().rules);
}
