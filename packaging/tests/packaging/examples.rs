//! examples/: every policy manifest deserialises into Kubewarden's CRD types, its settings
//! pass the policy's own `validate_settings`, it agrees with the metadata and it keeps away
//! from kube-system and Kubewarden's namespace. The example pods, run through the policy with
//! the example settings, get the identity their comments promise.

use crate::common::{
    kind_of, metadata, metadata_resources, namespace_labels, repo_root, selector_matches,
    yaml_documents, Resource,
};
use crate::versions::example_policies;
use cwii_kubewarden::admission::{evaluate, validate_settings};
use cwii_kubewarden::lookup::InMemoryLookup;
use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kubewarden_policy_sdk::crd::policies::{AdmissionPolicy, ClusterAdmissionPolicy};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What the checks read from either policy kind.
struct ExamplePolicy {
    file: String,
    kind: String,
    name: String,
    module: String,
    mutating: bool,
    background_audit: Option<bool>,
    rules: Vec<RuleWithOperations>,
    settings: Value,
    context_aware_resources: Vec<Resource>,
    namespace_selector: Option<LabelSelector>,
    timeout_seconds: Option<i32>,
    timeout_eval_seconds: Option<i32>,
}

fn to_resources<T: serde::Serialize>(list: &[T]) -> Vec<Resource> {
    serde_json::from_value(serde_json::to_value(list).unwrap()).unwrap()
}

fn background_audit<T: serde::Serialize>(value: &Option<T>) -> Option<bool> {
    value
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap().as_bool().unwrap())
}

/// Parses every example policy with the SDK's CRD types (unknown spec fields are errors).
fn typed_policies() -> Vec<ExamplePolicy> {
    example_policies()
        .into_iter()
        .map(|(file, doc)| match kind_of(&doc) {
            "ClusterAdmissionPolicy" => {
                let policy: ClusterAdmissionPolicy = serde_yaml::from_value(doc)
                    .unwrap_or_else(|e| panic!("{file}: not a valid ClusterAdmissionPolicy: {e}"));
                let spec = policy.spec.unwrap_or_else(|| panic!("{file}: no spec"));
                ExamplePolicy {
                    file,
                    kind: "ClusterAdmissionPolicy".into(),
                    name: policy.metadata.name.unwrap_or_default(),
                    module: spec.module,
                    mutating: spec.mutating,
                    background_audit: background_audit(&spec.background_audit),
                    rules: spec.rules.unwrap_or_default(),
                    settings: spec.settings.0,
                    context_aware_resources: to_resources(&spec.context_aware_resources),
                    namespace_selector: spec.namespace_selector,
                    timeout_seconds: spec.timeout_seconds.as_ref().map(i32::from),
                    timeout_eval_seconds: spec.timeout_eval_seconds.as_ref().map(i32::from),
                }
            }
            "AdmissionPolicy" => {
                let policy: AdmissionPolicy = serde_yaml::from_value(doc)
                    .unwrap_or_else(|e| panic!("{file}: not a valid AdmissionPolicy: {e}"));
                let spec = policy.spec.unwrap_or_else(|| panic!("{file}: no spec"));
                ExamplePolicy {
                    file,
                    kind: "AdmissionPolicy".into(),
                    name: policy.metadata.name.unwrap_or_default(),
                    module: spec.module,
                    mutating: spec.mutating,
                    background_audit: background_audit(&spec.background_audit),
                    rules: spec.rules.unwrap_or_default(),
                    settings: spec.settings.0,
                    context_aware_resources: Vec::new(),
                    namespace_selector: None,
                    timeout_seconds: spec.timeout_seconds.as_ref().map(i32::from),
                    timeout_eval_seconds: spec.timeout_eval_seconds.as_ref().map(i32::from),
                }
            }
            other => panic!("{file}: unexpected policy kind {other}"),
        })
        .collect()
}

#[test]
fn the_expected_examples_exist() {
    let names: BTreeSet<(String, String)> = typed_policies()
        .into_iter()
        .map(|p| (p.file, p.name))
        .collect();
    assert!(
        names.contains(&(
            "examples/cluster-admission-policy.yaml".into(),
            "cwii".into()
        )),
        "{names:?}"
    );
    assert!(
        names.contains(&("examples/one-namespace.yaml".into(), "cwii-apps".into())),
        "{names:?}"
    );
}

#[test]
fn example_settings_pass_validate_settings() {
    for policy in typed_policies() {
        let bytes = serde_json::to_vec(&policy.settings).unwrap();
        let response = validate_settings(&bytes);
        assert!(
            response.valid,
            "{}: settings rejected: {}",
            policy.file,
            response.message.unwrap_or_default()
        );
    }
}

#[test]
fn examples_agree_with_the_metadata() {
    let metadata = metadata();
    for policy in typed_policies() {
        let file = &policy.file;
        assert!(policy.mutating, "{file}: spec.mutating must be true");
        assert_eq!(policy.rules, metadata.rules, "{file}: rules");
        assert_eq!(
            policy.background_audit,
            Some(false),
            "{file}: set backgroundAudit: false explicitly"
        );
        assert!(
            policy.module.starts_with("registry://"),
            "{file}: module {}",
            policy.module
        );
        if let Some(eval) = policy.timeout_eval_seconds {
            assert!(
                (2..=30).contains(&eval),
                "{file}: timeoutEvalSeconds {eval}"
            );
            let webhook = policy.timeout_seconds.unwrap_or(10);
            assert!(
                eval <= webhook,
                "{file}: evaluation timeout {eval} above the webhook's {webhook}"
            );
        }
    }
}

#[test]
fn cluster_policies_are_context_aware_with_exactly_the_metadata_resources() {
    for policy in typed_policies() {
        let listed: BTreeSet<Resource> = policy.context_aware_resources.iter().cloned().collect();
        match policy.kind.as_str() {
            "ClusterAdmissionPolicy" => {
                assert_eq!(
                    listed.len(),
                    policy.context_aware_resources.len(),
                    "{}: duplicates",
                    policy.file
                );
                assert_eq!(
                    listed,
                    metadata_resources(),
                    "{}: contextAwareResources",
                    policy.file
                );
            }
            // An AdmissionPolicy cannot look anything up: it must not fail every pod for it.
            _ => assert_eq!(
                policy.settings["lookupFailure"], "ignore",
                "{}: an AdmissionPolicy needs lookupFailure: ignore",
                policy.file
            ),
        }
    }
}

#[test]
fn namespace_selectors_keep_out_of_system_namespaces() {
    for policy in typed_policies()
        .into_iter()
        .filter(|p| p.kind == "ClusterAdmissionPolicy")
    {
        let selector = policy.namespace_selector.as_ref();
        for system in ["kube-system", "kubewarden"] {
            assert!(
                !selector_matches(selector, &namespace_labels(system)),
                "{}: namespaceSelector matches {system}",
                policy.file
            );
        }
        assert!(
            ["apps", "default"]
                .iter()
                .any(|ns| selector_matches(selector, &namespace_labels(ns))),
            "{}: namespaceSelector matches no ordinary namespace",
            policy.file
        );
    }
}

#[test]
fn the_one_namespace_example_selects_only_its_namespace() {
    let policy = typed_policies()
        .into_iter()
        .find(|p| p.file == "examples/one-namespace.yaml")
        .expect("examples/one-namespace.yaml");
    let selector = policy.namespace_selector.as_ref();
    assert!(selector_matches(selector, &namespace_labels("apps")));
    for other in ["default", "kube-public", "team-b"] {
        assert!(
            !selector_matches(selector, &namespace_labels(other)),
            "matches {other}"
        );
    }
}

/// Runs every example pod through the policy with the cluster-wide example's settings, its
/// ServiceAccounts served by an in-memory cluster.
#[test]
fn example_pods_get_the_identity_they_ask_for() {
    let settings = typed_policies()
        .into_iter()
        .find(|p| p.name == "cwii")
        .expect("the cluster-wide example")
        .settings;
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples/pods"))
        .expect("examples/pods/")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut providers_seen = BTreeSet::new();
    for path in files {
        let provider = path.file_stem().unwrap().to_string_lossy().to_string();
        let relative = format!(
            "examples/pods/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let docs = yaml_documents(&relative);
        let mut lookup = InMemoryLookup::new();
        for sa in docs.iter().filter(|d| kind_of(d) == "ServiceAccount") {
            let annotations: Vec<(String, String)> = sa["metadata"]["annotations"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let annotations: Vec<(&str, &str)> = annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            lookup = lookup.with(
                "ServiceAccount",
                sa["metadata"]["namespace"].as_str(),
                sa["metadata"]["name"].as_str().unwrap(),
                &annotations,
                &[],
            );
        }
        let pods: Vec<Value> = docs
            .iter()
            .filter(|d| kind_of(d) == "Pod")
            .map(|d| serde_json::to_value(d).unwrap())
            .collect();
        assert!(!pods.is_empty(), "{relative}: no Pod");
        for pod in pods {
            let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
            let payload = json!({
                "request": {
                    "uid": "example",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE",
                    "namespace": namespace,
                    "object": pod,
                },
                "settings": settings,
            });
            let response = evaluate(&serde_json::to_vec(&payload).unwrap(), &mut lookup);
            assert!(
                response.accepted,
                "{relative}: denied: {:?}",
                response.message
            );
            // The namespace object is absent from the in-memory cluster: that warning only.
            let unexpected: Vec<&String> = response
                .warnings
                .iter()
                .flatten()
                .filter(|w| !w.contains("not found; its annotations are not read"))
                .collect();
            assert!(unexpected.is_empty(), "{relative}: warnings {unexpected:?}");
            let mutated = response
                .mutated_object
                .unwrap_or_else(|| panic!("{relative}: not mutated"));
            let annotations = &mutated["metadata"]["annotations"];
            assert_eq!(
                annotations["cwii.dev/injected"],
                provider.as_str(),
                "{relative}"
            );
            if provider == "gcp" {
                let creds: Value = serde_json::from_str(
                    annotations["cwii.dev/gcp-credentials"]
                        .as_str()
                        .expect("credentials annotation"),
                )
                .unwrap();
                assert_eq!(
                    creds["audience"],
                    settings["providers"]["gcp"]["defaultAudience"]
                );
                assert!(
                    creds["service_account_impersonation_url"].is_string(),
                    "{creds}"
                );
            }
        }
        providers_seen.insert(provider);
    }
    let all: BTreeSet<String> = ["aws", "az", "gcp"].iter().map(|p| p.to_string()).collect();
    assert_eq!(providers_seen, all, "one example pod file per cloud");
}

/// The drop-in examples (examples/settings-azwi.yaml, examples/settings-eks.yaml) give the
/// webhooks' layouts: a labelled pod gets azwi's volume, paths and env; a pod whose
/// ServiceAccount carries an EKS role gets the EKS webhook's volume first and its env order.
#[test]
fn drop_in_examples_give_the_webhooks_pods() {
    let policies = typed_policies();
    let settings_of = |name: &str| {
        policies
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("example policy {name}"))
            .settings
            .clone()
    };
    let evaluate_pod = |pod: Value, settings: &Value, sa: &[(&str, &str)]| {
        let mut lookup = InMemoryLookup::new().with("ServiceAccount", Some("apps"), "web", sa, &[]);
        let payload = json!({
            "request": {
                "uid": "example",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "apps",
                "object": pod,
            },
            "settings": settings,
        });
        let response = evaluate(&serde_json::to_vec(&payload).unwrap(), &mut lookup);
        assert!(response.accepted, "{:?}", response.message);
        response.mutated_object.expect("mutated")
    };
    let env_names = |c: &Value| -> Vec<String> {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };

    let azwi = settings_of("cwii-azwi");
    assert_eq!(azwi["mode"], Value::Null, "settings, not the policy");
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "a"}]}});
    let out = evaluate_pod(pod, &azwi, &[("azure.workload.identity/client-id", "c")]);
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        env_names(app),
        [
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST"
        ]
    );
    assert_eq!(app["env"][1]["value"], azwi["native"]["azwi"]["tenantId"]);
    assert_eq!(
        app["env"][2]["value"],
        "/var/run/secrets/azure/wi/token/azure-identity-token"
    );
    assert!(out["spec"]["volumes"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("azure-workload-identity-reserved-"));
    assert!(out["metadata"].get("annotations").is_none(), "no marker");

    let eks = settings_of("cwii-eks");
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "a"}],
                 "volumes": [{"name": "data", "emptyDir": {}}]}});
    let out = evaluate_pod(
        pod,
        &eks,
        &[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::111122223333:role/web",
        )],
    );
    assert_eq!(out["spec"]["volumes"][0]["name"], "aws-iam-token");
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        env_names(app),
        [
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    assert_eq!(app["env"][1]["value"], eks["native"]["eks"]["region"]);
    assert_eq!(
        app["volumeMounts"][0]["mountPath"],
        eks["native"]["eks"]["mountPath"]
    );
}
