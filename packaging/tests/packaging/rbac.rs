//! examples/rbac.yaml: `get` on exactly what the policy reads, bound to the PolicyServer.

use crate::common::{kind_of, metadata_resources, yaml_documents};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use std::collections::BTreeSet;

const ROLE: &str = "cwii-policy-reader";

fn role() -> ClusterRole {
    let doc = yaml_documents("examples/rbac.yaml")
        .into_iter()
        .find(|d| kind_of(d) == "ClusterRole")
        .expect("a ClusterRole in examples/rbac.yaml");
    serde_yaml::from_value(doc).expect("a valid ClusterRole")
}

fn binding() -> ClusterRoleBinding {
    let doc = yaml_documents("examples/rbac.yaml")
        .into_iter()
        .find(|d| kind_of(d) == "ClusterRoleBinding")
        .expect("a ClusterRoleBinding in examples/rbac.yaml");
    serde_yaml::from_value(doc).expect("a valid ClusterRoleBinding")
}

#[test]
fn only_the_expected_objects() {
    let kinds: Vec<String> = yaml_documents("examples/rbac.yaml")
        .iter()
        .map(|d| kind_of(d).to_string())
        .collect();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding"]);
}

#[test]
fn the_role_grants_get_on_exactly_the_context_aware_resources() {
    let role = role();
    assert_eq!(role.metadata.name.as_deref(), Some(ROLE));
    assert!(role.aggregation_rule.is_none());
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        assert_eq!(rule.verbs, ["get"], "only `get`: {rule:?}");
        assert!(rule.resource_names.is_none(), "{rule:?}");
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                assert!(
                    granted.insert((group.clone(), resource.clone())),
                    "granted twice: {group}/{resource}"
                );
            }
        }
    }
    let needed: BTreeSet<(String, String)> =
        metadata_resources().iter().map(|r| r.rbac()).collect();
    assert_eq!(
        granted, needed,
        "ClusterRole rules vs policy-metadata.yml contextAwareResources"
    );
}

#[test]
fn the_binding_gives_the_role_to_the_policy_server() {
    let binding = binding();
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, ROLE);
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "policy-server");
    assert_eq!(subjects[0].namespace.as_deref(), Some("kubewarden"));
}
