//! Scenario tests of one whole evaluation (resolve → plan → mutate) against an in-memory
//! cluster. They run on the host and, compiled to wasm32-wasip1, inside wasmtime.

use crate::admission::{
    evaluate, evaluate_answer, evaluate_request, validate_text, AdmissionRequest, GroupVersionKind,
};
use crate::lookup::InMemoryLookup;
use crate::plan::may_print_credential;
use crate::settings::Settings;
use kubewarden_policy_sdk::response::ValidationResponse;
use serde_json::{json, Value};

const AZ_OK: &[(&str, &str)] = &[
    ("cwii.dev/az-inject", "true"),
    (
        "cwii.dev/az-client-id",
        "11111111-1111-1111-1111-111111111111",
    ),
    (
        "cwii.dev/az-tenant-id",
        "22222222-2222-2222-2222-222222222222",
    ),
];

fn annotations(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

fn pod(pairs: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "apps", "annotations": annotations(pairs)},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    })
}

fn settings(value: Value) -> Settings {
    crate::admission::parse_settings(value).unwrap()
}

fn run_with(pod: &Value, settings_json: Value, lookup: &mut InMemoryLookup) -> ValidationResponse {
    let object = serde_json::value::to_raw_value(pod).unwrap();
    let request = AdmissionRequest {
        kind: GroupVersionKind {
            group: String::new(),
            kind: "Pod".into(),
        },
        operation: "CREATE".into(),
        namespace: "apps".into(),
        object: Some(&object),
    };
    evaluate_request(request, &settings(settings_json), lookup)
        .into_response()
        .unwrap()
}

fn run(pod: &Value) -> (ValidationResponse, InMemoryLookup) {
    let mut lookup = InMemoryLookup::new();
    let response = run_with(pod, json!({}), &mut lookup);
    (response, lookup)
}

fn mutated(response: &ValidationResponse) -> &Value {
    assert!(response.accepted, "rejected: {:?}", response.message);
    response
        .mutated_object
        .as_ref()
        .expect("expected a mutation")
}

fn warnings(response: &ValidationResponse) -> Vec<String> {
    response.warnings.clone().unwrap_or_default()
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_of(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// The credentials.json the policy put in the pod's `cwii.dev/gcp-credentials` annotation.
fn gcp_credentials(pod: &Value) -> Value {
    serde_json::from_str(
        pod["metadata"]["annotations"]["cwii.dev/gcp-credentials"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn volume<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// Runs the policy on its own output: must be a no-op.
fn assert_idempotent(output: &Value, settings_json: Value, lookup: &InMemoryLookup) {
    let mut lookup = lookup.clone();
    let again = run_with(output, settings_json, &mut lookup);
    assert!(again.accepted, "{:?}", again.message);
    assert!(
        again.mutated_object.is_none(),
        "second run mutated: {:?}",
        again.mutated_object
    );
}

// ---------------------------------------------------------------- azure injection

#[test]
fn azure_pod_gets_volume_mount_env_and_marker() {
    let input = pod(AZ_OK);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    assert_eq!(
        volume(out, "cwii-az-token"),
        Some(
            &json!({"name": "cwii-az-token", "projected": {"sources": [{"serviceAccountToken": {
            "path": "token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600}}]}})
        )
    );
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "cwii-az-token", "mountPath": "/var/run/secrets/cwii.dev/az", "readOnly": true}])
    );
    assert_eq!(
        env_of(app),
        vec![
            (
                "AZURE_CLIENT_ID".into(),
                json!("11111111-1111-1111-1111-111111111111")
            ),
            (
                "AZURE_TENANT_ID".into(),
                json!("22222222-2222-2222-2222-222222222222")
            ),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                json!("/var/run/secrets/cwii.dev/az/token")
            ),
        ]
    );
    assert_eq!(out["metadata"]["annotations"]["cwii.dev/injected"], "az");
    assert_eq!(
        response.audit_annotations.as_ref().unwrap()["cwii-az-sources"],
        "client-id=pod inject=pod tenant-id=pod audience=settings token-expiration=settings"
    );
    // Pod-level keys covered az only partially: SA and namespace were still read.
    assert_eq!(
        lookup.call_log(),
        vec!["ServiceAccount apps/default", "Namespace apps"]
    );
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn authority_host_and_audience_and_expiration_from_keys() {
    let mut keys = AZ_OK.to_vec();
    keys.extend([
        (
            "cwii.dev/az-authority-host",
            "https://login.microsoftonline.us/",
        ),
        ("cwii.dev/az-audience", "api://custom"),
        ("cwii.dev/az-token-expiration", "7200"),
    ]);
    let (response, _) = run(&pod(&keys));
    let out = mutated(&response);
    let token =
        &volume(out, "cwii-az-token").unwrap()["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "api://custom");
    assert_eq!(token["expirationSeconds"], 7200);
    assert_eq!(
        env_value(&out["spec"]["containers"][0], "AZURE_AUTHORITY_HOST").as_deref(),
        Some("https://login.microsoftonline.us/")
    );
}

#[test]
fn short_expiration_is_raised_with_a_warning() {
    let mut keys = AZ_OK.to_vec();
    keys.push(("cwii.dev/az-token-expiration", "60"));
    let (response, _) = run(&pod(&keys));
    let out = mutated(&response);
    assert_eq!(
        volume(out, "cwii-az-token").unwrap()["projected"]["sources"][0]["serviceAccountToken"]
            ["expirationSeconds"],
        600
    );
    assert!(warnings(&response)
        .iter()
        .any(|w| w.contains("raised to the minimum of 600")));
}

#[test]
fn missing_required_key_skips_with_a_warning() {
    let (response, _) = run(&pod(&[
        ("cwii.dev/az-inject", "true"),
        ("cwii.dev/az-client-id", "c"),
    ]));
    assert!(response.accepted);
    assert!(response.mutated_object.is_none());
    assert_eq!(
        warnings(&response),
        vec![
            "cwii: ServiceAccount apps/default not found; its annotations are not read",
            "cwii: Namespace apps not found; its annotations are not read",
            "cwii: az skipped: missing required key cwii.dev/az-tenant-id",
        ]
    );
}

#[test]
fn every_container_kind_is_injected_except_skipped_ones() {
    let mut input = pod(AZ_OK);
    input["metadata"]["annotations"]["cwii.dev/az-skip-containers"] = json!("istio-proxy; debug");
    input["spec"]["containers"] = json!([
        {"name": "app", "image": "a"},
        {"name": "debug", "image": "d"}
    ]);
    input["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "m"},
        {"name": "istio-proxy", "image": "p", "restartPolicy": "Always"},
        {"name": "log-shipper", "image": "l", "restartPolicy": "Always"}
    ]);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    let has_az =
        |c: &Value| env_value(c, "AZURE_CLIENT_ID").is_some() && c["volumeMounts"].is_array();
    assert!(has_az(&out["spec"]["containers"][0]));
    assert!(
        !has_az(&out["spec"]["containers"][1]),
        "skipped container touched"
    );
    assert_eq!(out["spec"]["containers"][1], input["spec"]["containers"][1]);
    assert!(has_az(&out["spec"]["initContainers"][0]));
    assert_eq!(
        out["spec"]["initContainers"][1],
        input["spec"]["initContainers"][1]
    );
    let sidecar = &out["spec"]["initContainers"][2];
    assert!(has_az(sidecar));
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn user_env_is_kept_with_a_warning() {
    let mut input = pod(AZ_OK);
    input["spec"]["containers"][0]["env"] = json!([
        {"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "id"}}},
        {"name": "OTHER", "value": "x"}
    ]);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    let env = &out["spec"]["containers"][0]["env"];
    assert_eq!(env[0], input["spec"]["containers"][0]["env"][0]);
    assert_eq!(env[1], json!({"name": "OTHER", "value": "x"}));
    assert_eq!(
        env.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "AZURE_CLIENT_ID")
            .count(),
        1
    );
    assert!(warnings(&response).contains(
        &"cwii: container 'app' keeps its own AZURE_CLIENT_ID; az did not set it".to_string()
    ));
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn reserved_volume_is_replaced_never_trusted() {
    let mut input = pod(AZ_OK);
    input["spec"]["volumes"] = json!([
        {"name": "data", "emptyDir": {}},
        {"name": "cwii-az-token", "hostPath": {"path": "/etc/kubernetes/pki"}},
        {"name": "cwii-az-token", "emptyDir": {}}
    ]);
    let (response, _) = run(&input);
    let out = mutated(&response);
    let volumes = out["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2);
    assert_eq!(volumes[0], json!({"name": "data", "emptyDir": {}}));
    assert!(volumes[1].get("hostPath").is_none());
    assert!(volumes[1]["projected"].is_object());
    assert!(warnings(&response)
        .iter()
        .any(|w| w.contains("replaced pod volume 'cwii-az-token'")));
}

#[test]
fn mount_path_clash_is_denied() {
    let mut input = pod(AZ_OK);
    input["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "mine", "mountPath": "/var/run/secrets/cwii.dev/az/"}]);
    let (response, _) = run(&input);
    assert!(!response.accepted);
    assert_eq!(response.code, Some(400));
    let message = response.message.unwrap();
    assert!(
        message.contains(
            "container 'app' already mounts volume 'mine' at /var/run/secrets/cwii.dev/az"
        ),
        "{message}"
    );
}

#[test]
fn clash_in_a_skipped_container_is_not_a_conflict() {
    let mut input = pod(AZ_OK);
    input["metadata"]["annotations"]["cwii.dev/az-skip-containers"] = json!("app");
    input["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "mine", "mountPath": "/var/run/secrets/cwii.dev/az"}]);
    let (response, _) = run(&input);
    let out = mutated(&response);
    assert_eq!(out["spec"]["containers"][0], input["spec"]["containers"][0]);
}

#[test]
fn unknown_fields_survive_byte_for_byte() {
    let mut input = pod(AZ_OK);
    input["spec"]["containers"][0]["futureField"] = json!({"nested": [1, {"deep": true}]});
    input["spec"]["containers"][0]["startupProbe"] =
        json!({"exec": {"command": ["true"]}, "failureThreshold": 30});
    input["spec"]["initContainers"] =
        json!([{"name": "sidecar", "image": "s", "restartPolicy": "Always", "x-unknown": 1}]);
    input["spec"]["hostUsers"] = json!(false);
    input["spec"]["schedulingGates"] = json!([{"name": "gate"}]);
    input["status"] = json!({"phase": "Pending", "alienStatus": [null]});
    input["topLevelUnknown"] = json!("kept");
    let (response, _) = run(&input);
    let out = mutated(&response).clone();
    // Remove exactly what the policy owns; what remains must equal the input.
    let mut stripped = out.clone();
    stripped["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("cwii.dev/injected");
    stripped["spec"].as_object_mut().unwrap().remove("volumes");
    for list in ["containers", "initContainers"] {
        for c in stripped["spec"][list].as_array_mut().unwrap() {
            let c = c.as_object_mut().unwrap();
            c.remove("env");
            c.remove("volumeMounts");
        }
    }
    assert_eq!(
        serde_json::to_string(&stripped).unwrap(),
        serde_json::to_string(&input).unwrap()
    );
}

#[test]
fn nothing_to_do_means_no_mutated_object() {
    let (response, lookup) = run(&pod(&[]));
    assert!(response.accepted);
    assert!(response.mutated_object.is_none());
    // No provider is closed at pod level: the levels are read in order.
    assert_eq!(
        lookup.call_log(),
        vec!["ServiceAccount apps/default", "Namespace apps"]
    );
}

#[test]
fn non_pod_and_non_create_requests_pass_untouched() {
    let mut lookup = InMemoryLookup::new();
    for (kind, operation) in [
        ("Pod", "UPDATE"),
        ("Pod", "DELETE"),
        ("Deployment", "CREATE"),
    ] {
        let object = serde_json::value::to_raw_value(&pod(AZ_OK)).unwrap();
        let request = AdmissionRequest {
            kind: GroupVersionKind {
                group: String::new(),
                kind: kind.into(),
            },
            operation: operation.into(),
            namespace: "apps".into(),
            object: Some(&object),
        };
        let response = evaluate_request(request, &settings(json!({})), &mut lookup);
        assert!(
            response.accepted && response.mutated_object.is_none() && response.warnings.is_none()
        );
    }
    assert!(lookup.calls.is_empty());
}

// ---------------------------------------------------------------- precedence

/// A cluster where every level has something to say about az.
fn layered_cluster() -> InMemoryLookup {
    InMemoryLookup::new()
        .with(
            "ReplicaSet",
            Some("apps"),
            "web-7d9f",
            &[
                ("cwii.dev/az-audience", "from-rs"),
                ("cwii.dev/az-authority-host", "https://rs"),
            ],
            &[("Deployment", "web", true)],
        )
        .with(
            "Deployment",
            Some("apps"),
            "web",
            &[("cwii.dev/az-audience", "from-deploy")],
            &[],
        )
        .with(
            "ServiceAccount",
            Some("apps"),
            "reports",
            &[
                ("cwii.dev/az-client-id", "sa-client"),
                ("cwii.dev/az-audience", "from-sa"),
                ("cwii.dev/az-token-expiration", "4000"),
            ],
            &[],
        )
        .with(
            "Namespace",
            None,
            "apps",
            &[
                ("cwii.dev/az-inject", "true"),
                ("cwii.dev/az-client-id", "ns-client"),
                ("cwii.dev/az-tenant-id", "ns-tenant"),
                ("cwii.dev/az-token-expiration", "5000"),
            ],
            &[],
        )
}

fn owned_pod(pairs: &[(&str, &str)], owner_kind: &str, owner_name: &str) -> Value {
    let mut p = pod(pairs);
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name, "uid": "u", "controller": true}]);
    p["spec"]["serviceAccountName"] = json!("reports");
    p
}

#[test]
fn each_key_resolves_independently_through_every_level() {
    let mut lookup = layered_cluster();
    let input = owned_pod(
        &[("cwii.dev/az-token-expiration", "3000")],
        "ReplicaSet",
        "web-7d9f",
    );
    let response = run_with(
        &input,
        json!({"defaults": {"cwii.dev/az-verify-image": "x"}}),
        &mut lookup,
    );
    let out = mutated(&response);
    let token =
        &volume(out, "cwii-az-token").unwrap()["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["expirationSeconds"], 3000, "pod wins");
    assert_eq!(
        token["audience"], "from-deploy",
        "top workload object wins over ReplicaSet and SA"
    );
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        env_value(app, "AZURE_AUTHORITY_HOST").as_deref(),
        Some("https://rs"),
        "ReplicaSet level"
    );
    assert_eq!(
        env_value(app, "AZURE_CLIENT_ID").as_deref(),
        Some("sa-client"),
        "SA beats namespace"
    );
    assert_eq!(
        env_value(app, "AZURE_TENANT_ID").as_deref(),
        Some("ns-tenant"),
        "namespace level"
    );
    assert_eq!(
        lookup.call_log(),
        vec![
            "ReplicaSet apps/web-7d9f",
            "Deployment apps/web",
            "ServiceAccount apps/reports",
            "Namespace apps"
        ]
    );
    assert_eq!(lookup.distinct_calls(), lookup.calls.len());
    assert_eq!(
        response.audit_annotations.as_ref().unwrap()["cwii-az-sources"],
        "audience=workload authority-host=workload client-id=serviceaccount inject=namespace tenant-id=namespace token-expiration=pod verify-image=defaults"
    );
}

#[test]
fn pod_false_beats_namespace_true_and_stops_lookups() {
    let mut lookup = layered_cluster();
    let input = owned_pod(
        &[
            ("cwii.dev/az-inject", "false"),
            ("cwii.dev/aws-inject", "FALSE"),
            ("cwii.dev/gcp-inject", "False"),
        ],
        "ReplicaSet",
        "web-7d9f",
    );
    let response = run_with(&input, json!({}), &mut lookup);
    assert!(response.accepted && response.mutated_object.is_none());
    assert!(
        lookup.calls.is_empty(),
        "zero lookups: {:?}",
        lookup.call_log()
    );
}

#[test]
fn bad_values_fall_through_with_a_warning() {
    let mut lookup = InMemoryLookup::new().with(
        "Namespace",
        None,
        "apps",
        &[
            ("cwii.dev/az-inject", "true"),
            ("cwii.dev/az-token-expiration", "1800"),
        ],
        &[],
    );
    let input = pod(&[
        ("cwii.dev/az-inject", "yes please"),
        ("cwii.dev/az-token-expiration", "1h"),
        ("cwii.dev/az-client-id", "   "),
        ("cwii.dev/az-tenant-id", "t"),
    ]);
    let mut input_with_sa_client = input.clone();
    input_with_sa_client["spec"]["serviceAccountName"] = json!("sa");
    lookup = lookup.with(
        "ServiceAccount",
        Some("apps"),
        "sa",
        &[("cwii.dev/az-client-id", "c")],
        &[],
    );
    let response = run_with(&input_with_sa_client, json!({}), &mut lookup);
    let out = mutated(&response);
    assert_eq!(
        volume(out, "cwii-az-token").unwrap()["projected"]["sources"][0]["serviceAccountToken"]
            ["expirationSeconds"],
        1800
    );
    assert_eq!(
        env_value(&out["spec"]["containers"][0], "AZURE_CLIENT_ID").as_deref(),
        Some("c")
    );
    let w = warnings(&response);
    assert!(
        w.contains(
            &"cwii: ignored cwii.dev/az-inject=\"yes please\" on pod (expected true or false)"
                .to_string()
        ),
        "{w:?}"
    );
    assert!(w.contains(&"cwii: ignored cwii.dev/az-token-expiration=\"1h\" on pod (expected an integer number of seconds)".to_string()), "{w:?}");
    assert!(
        w.contains(
            &"cwii: ignored cwii.dev/az-client-id=\"   \" on pod (expected a non-empty value)"
                .to_string()
        ),
        "{w:?}"
    );
}

#[test]
fn job_under_cronjob_top_wins() {
    let mut lookup = InMemoryLookup::new()
        .with(
            "Job",
            Some("apps"),
            "nightly-123",
            &[
                ("cwii.dev/az-client-id", "job"),
                ("cwii.dev/az-tenant-id", "job-tenant"),
            ],
            &[("CronJob", "nightly", true)],
        )
        .with(
            "CronJob",
            Some("apps"),
            "nightly",
            &[
                ("cwii.dev/az-inject", "true"),
                ("cwii.dev/az-client-id", "cron"),
            ],
            &[],
        );
    let mut input = pod(&[]);
    input["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-123", "uid": "u", "controller": true}]);
    let response = run_with(&input, json!({}), &mut lookup);
    let app = &mutated(&response)["spec"]["containers"][0];
    assert_eq!(env_value(app, "AZURE_CLIENT_ID").as_deref(), Some("cron"));
    assert_eq!(
        env_value(app, "AZURE_TENANT_ID").as_deref(),
        Some("job-tenant")
    );
    assert_eq!(
        lookup.call_log()[..2],
        ["Job apps/nightly-123", "CronJob apps/nightly"]
    );
}

#[test]
fn statefulset_and_daemonset_owners_are_one_level() {
    for kind in ["StatefulSet", "DaemonSet"] {
        let mut lookup = InMemoryLookup::new().with(
            kind,
            Some("apps"),
            "db",
            AZ_OK,
            &[("Something", "x", true)],
        );
        let input = owned_pod(&[], kind, "db");
        let response = run_with(&input, json!({}), &mut lookup);
        assert_eq!(
            mutated(&response)["metadata"]["annotations"]["cwii.dev/injected"],
            "az"
        );
        assert_eq!(lookup.call_log()[0], format!("{kind} apps/db"));
        assert_eq!(lookup.call_log()[1], "ServiceAccount apps/reports");
    }
}

#[test]
fn missing_owner_and_unknown_owner_kind() {
    // Missing ReplicaSet: empty level, no Deployment lookup, a warning.
    let mut lookup = InMemoryLookup::new();
    let response = run_with(
        &owned_pod(AZ_OK, "ReplicaSet", "gone"),
        json!({}),
        &mut lookup,
    );
    assert!(response.mutated_object.is_some());
    assert_eq!(
        lookup.call_log(),
        vec![
            "ReplicaSet apps/gone",
            "ServiceAccount apps/reports",
            "Namespace apps"
        ]
    );
    assert!(warnings(&response).contains(
        &"cwii: ReplicaSet apps/gone not found; its annotations are not read".to_string()
    ));

    // Controller of an unknown kind: the first owner of a known kind is used instead.
    let mut lookup = InMemoryLookup::new().with("StatefulSet", Some("apps"), "db", AZ_OK, &[]);
    let mut input = pod(&[]);
    input["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "example.com/v1", "kind": "Operator", "name": "op", "uid": "1", "controller": true},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "2"}
    ]);
    let response = run_with(&input, json!({}), &mut lookup);
    assert!(response.mutated_object.is_some());
    assert_eq!(lookup.call_log()[0], "StatefulSet apps/db");

    // Only unknown owners: no workload level at all.
    let mut lookup = InMemoryLookup::new();
    input["metadata"]["ownerReferences"] = json!([{"apiVersion": "example.com/v1", "kind": "Operator", "name": "op", "uid": "1", "controller": true}]);
    run_with(&input, json!({}), &mut lookup);
    assert_eq!(
        lookup.call_log(),
        vec!["ServiceAccount apps/default", "Namespace apps"]
    );
}

#[test]
fn replicaset_whose_controller_is_not_a_deployment_stops_there() {
    let mut lookup = InMemoryLookup::new().with(
        "ReplicaSet",
        Some("apps"),
        "rs",
        AZ_OK,
        &[("Rollout", "argo", true)],
    );
    run_with(&owned_pod(&[], "ReplicaSet", "rs"), json!({}), &mut lookup);
    assert_eq!(
        lookup.call_log(),
        vec![
            "ReplicaSet apps/rs",
            "ServiceAccount apps/reports",
            "Namespace apps"
        ]
    );
}

#[test]
fn lookup_failure_denies_naming_the_object_or_is_ignored() {
    let error = "error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Policy has not been granted access to Kubernetes v1/ServiceAccount resources.";
    let cluster = InMemoryLookup::new().failing("ServiceAccount", Some("apps"), "default", error);
    let mut lookup = cluster.clone();
    let response = run_with(&pod(AZ_OK), json!({}), &mut lookup);
    assert!(!response.accepted);
    let message = response.message.unwrap();
    assert!(
        message.starts_with("cwii: cannot read ServiceAccount apps/default"),
        "{message}"
    );
    assert!(
        message.contains("serviceaccounts") && message.contains("lookupFailure: ignore"),
        "{message}"
    );
    assert_eq!(
        lookup.call_log(),
        vec!["ServiceAccount apps/default"],
        "no lookup after the failure"
    );

    let mut lookup = cluster;
    let response = run_with(&pod(AZ_OK), json!({"lookupFailure": "ignore"}), &mut lookup);
    assert!(mutated(&response)["metadata"]["annotations"]["cwii.dev/injected"] == "az");
    assert!(warnings(&response)[0].starts_with(
        "cwii: cannot read ServiceAccount apps/default (ignored by lookupFailure: ignore)"
    ));
}

#[test]
fn skipping_levels_once_every_key_is_resolved() {
    // Only az is open (aws and gcp disabled) and the pod answers every az key.
    let every_az_key: &[(&str, &str)] = &[
        ("cwii.dev/az-inject", "true"),
        ("cwii.dev/az-audience", "a"),
        ("cwii.dev/az-token-expiration", "3600"),
        ("cwii.dev/az-verify", "false"),
        ("cwii.dev/az-verify-enforce", "false"),
        ("cwii.dev/az-verify-image", "i"),
        ("cwii.dev/az-skip-containers", "none"),
        ("cwii.dev/az-client-id", "c"),
        ("cwii.dev/az-tenant-id", "t"),
        ("cwii.dev/az-authority-host", "h"),
    ];
    let disabled = json!({"providers": {"aws": {"enabled": false}, "gcp": {"enabled": false}}});
    let mut lookup = InMemoryLookup::new();
    let response = run_with(
        &owned_pod(every_az_key, "ReplicaSet", "rs"),
        disabled.clone(),
        &mut lookup,
    );
    assert!(response.mutated_object.is_some());
    assert!(lookup.calls.is_empty(), "{:?}", lookup.call_log());

    // One key short: the levels are read again, and defaults never count for skipping.
    let mut lookup = InMemoryLookup::new();
    let mut settings_json = disabled;
    settings_json["defaults"] = json!({"cwii.dev/az-authority-host": "h"});
    run_with(
        &owned_pod(&every_az_key[..9], "ReplicaSet", "rs"),
        settings_json,
        &mut lookup,
    );
    assert_eq!(lookup.calls.len(), 3, "{:?}", lookup.call_log());
}

#[test]
fn disabled_provider_never_injects_and_never_looks_up() {
    let mut lookup = InMemoryLookup::new().with("Namespace", None, "apps", AZ_OK, &[]);
    let settings_json = json!({"providers": {"az": {"enabled": false}, "aws": {"enabled": false}, "gcp": {"enabled": false}}});
    let response = run_with(&pod(AZ_OK), settings_json, &mut lookup);
    assert!(response.mutated_object.is_none());
    assert!(lookup.calls.is_empty());
    assert_eq!(
        warnings(&response),
        vec!["cwii: cwii.dev/az-inject is true but provider az is disabled in the policy settings"]
    );
}

#[test]
fn settings_defaults_are_the_lowest_level() {
    let mut lookup = InMemoryLookup::new().with(
        "Namespace",
        None,
        "apps",
        &[("cwii.dev/az-tenant-id", "ns-tenant")],
        &[],
    );
    let settings_json = json!({"defaults": {"cwii.dev/az-tenant-id": "default-tenant", "cwii.dev/az-client-id": "default-client"}});
    let response = run_with(
        &pod(&[("cwii.dev/az-inject", "true")]),
        settings_json,
        &mut lookup,
    );
    let app = &mutated(&response)["spec"]["containers"][0];
    assert_eq!(
        env_value(app, "AZURE_TENANT_ID").as_deref(),
        Some("ns-tenant")
    );
    assert_eq!(
        env_value(app, "AZURE_CLIENT_ID").as_deref(),
        Some("default-client")
    );
}

#[test]
fn marker_merges_with_earlier_value_and_drops_junk() {
    let mut input = pod(AZ_OK);
    input["metadata"]["annotations"]["cwii.dev/injected"] = json!("gcp, evil\"value,zzz");
    let (response, _) = run(&input);
    assert_eq!(
        mutated(&response)["metadata"]["annotations"]["cwii.dev/injected"],
        "az,gcp"
    );
}

// ---------------------------------------------------------------- payload level

#[test]
fn malformed_payloads_get_a_clear_answer() {
    let mut lookup = InMemoryLookup::new();
    let response = evaluate(b"not json", &mut lookup);
    assert!(!response.accepted);
    assert!(response
        .message
        .unwrap()
        .starts_with("cwii: cannot read the admission request"));

    let payload = json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": "a string"}, "settings": {}});
    let response = evaluate(payload.to_string().as_bytes(), &mut lookup);
    assert_eq!(
        response.message.as_deref(),
        Some("cwii: the request object is not a Pod object")
    );

    let mut bad = pod(AZ_OK);
    bad["spec"]["containers"] = json!({"app": {}});
    let payload = json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "apps", "object": bad}, "settings": null});
    let response = evaluate(payload.to_string().as_bytes(), &mut lookup);
    assert_eq!(
        response.message.as_deref(),
        Some("cwii: cannot inject into a malformed pod: spec.containers must be an array")
    );

    let payload = json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": pod(AZ_OK)}, "settings": {"mountRoot": "x"}});
    let response = evaluate(payload.to_string().as_bytes(), &mut lookup);
    assert!(response.message.unwrap().contains("`mountRoot`"));
}

#[test]
fn each_evaluation_uses_the_settings_it_was_given() {
    // A warm instance keeps the last settings parsed; changed settings must replace them.
    let mut lookup = InMemoryLookup::new();
    let mount_of = |settings: Value, lookup: &mut InMemoryLookup| {
        let payload = json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": pod(AZ_OK)}, "settings": settings});
        let response = evaluate(payload.to_string().as_bytes(), lookup);
        mutated(&response)["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let default_root = mount_of(json!(null), &mut lookup);
    assert_eq!(
        mount_of(json!({"mountRoot": "/one"}), &mut lookup),
        "/one/az"
    );
    assert_eq!(
        mount_of(json!({"mountRoot": "/one"}), &mut lookup),
        "/one/az"
    );
    assert_eq!(
        mount_of(json!({"mountRoot": "/two"}), &mut lookup),
        "/two/az"
    );
    assert_eq!(mount_of(json!({}), &mut lookup), default_root);
    assert_eq!(mount_of(json!(null), &mut lookup), default_root);
    // Invalid settings are refused every time, not only the first.
    for _ in 0..2 {
        let payload = json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": pod(AZ_OK)}, "settings": {"mountRoot": "x"}});
        let response = evaluate(payload.to_string().as_bytes(), &mut lookup);
        assert!(!response.accepted);
    }
    assert_eq!(
        mount_of(json!({"mountRoot": "/one"}), &mut lookup),
        "/one/az"
    );
}

#[test]
fn custom_mount_root_moves_every_path() {
    let (pod_in, mut lookup) = (pod(AZ_OK), InMemoryLookup::new());
    let response = run_with(&pod_in, json!({"mountRoot": "/cwii/"}), &mut lookup);
    let app = &mutated(&response)["spec"]["containers"][0];
    assert_eq!(app["volumeMounts"][0]["mountPath"], "/cwii/az");
    assert_eq!(
        env_value(app, "AZURE_FEDERATED_TOKEN_FILE").as_deref(),
        Some("/cwii/az/token")
    );
}

// ---------------------------------------------------------------- aws, gcp, verify

fn init_names(pod: &Value) -> Vec<String> {
    pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn init<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["initContainers"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

const AWS_OK: &[(&str, &str)] = &[
    ("cwii.dev/aws-inject", "true"),
    (
        "cwii.dev/aws-role-arn",
        "arn:aws:iam::111122223333:role/reports",
    ),
];

const GCP_OK: &[(&str, &str)] = &[
    ("cwii.dev/gcp-inject", "true"),
    (
        "cwii.dev/gcp-audience",
        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k",
    ),
];

#[test]
fn aws_env_in_spec_order() {
    let mut keys = AWS_OK.to_vec();
    keys.extend([
        ("cwii.dev/aws-region", "eu-west-1"),
        ("cwii.dev/aws-role-session-name", "reports"),
        ("cwii.dev/aws-sts-regional-endpoints", "regional"),
    ]);
    let (response, lookup) = run(&pod(&keys));
    let out = mutated(&response);
    assert_eq!(
        env_of(&out["spec"]["containers"][0]),
        vec![
            (
                "AWS_ROLE_ARN".into(),
                json!("arn:aws:iam::111122223333:role/reports")
            ),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                json!("/var/run/secrets/cwii.dev/aws/token")
            ),
            ("AWS_REGION".into(), json!("eu-west-1")),
            ("AWS_DEFAULT_REGION".into(), json!("eu-west-1")),
            ("AWS_ROLE_SESSION_NAME".into(), json!("reports")),
            ("AWS_STS_REGIONAL_ENDPOINTS".into(), json!("regional")),
        ]
    );
    assert_eq!(
        volume(out, "cwii-aws-token").unwrap()["projected"]["sources"][0]["serviceAccountToken"]
            ["audience"],
        "sts.amazonaws.com"
    );
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn aws_without_role_is_skipped() {
    let (response, _) = run(&pod(&[("cwii.dev/aws-inject", "true")]));
    assert!(response.mutated_object.is_none());
    assert!(warnings(&response)
        .contains(&"cwii: aws skipped: missing required key cwii.dev/aws-role-arn".to_string()));
}

fn expected_credentials(audience: &str, gsa: Option<&str>) -> Value {
    let mut c = json!({
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "token_info_url": "https://sts.googleapis.com/v1/introspect",
        "credential_source": {"file": "/var/run/secrets/cwii.dev/gcp/token"}
    });
    if let Some(gsa) = gsa {
        c["service_account_impersonation_url"] = json!(format!(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{gsa}:generateAccessToken"
        ));
    }
    c
}

#[test]
fn gcp_downward_api_delivery() {
    let (response, lookup) = run(&pod(GCP_OK));
    let out = mutated(&response);
    let creds = gcp_credentials(out);
    assert_eq!(creds, expected_credentials(GCP_OK[1].1, None));
    assert_eq!(
        volume(out, "cwii-gcp-creds"),
        Some(
            &json!({"name": "cwii-gcp-creds", "downwardAPI": {"items": [{"path": "credentials.json",
            "fieldRef": {"fieldPath": "metadata.annotations['cwii.dev/gcp-credentials']"}}]}})
        )
    );
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        env_value(app, "GOOGLE_APPLICATION_CREDENTIALS").as_deref(),
        Some("/var/run/secrets/cwii.dev/gcp-creds/credentials.json")
    );
    assert_eq!(
        app["volumeMounts"],
        json!([
            {"name": "cwii-gcp-token", "mountPath": "/var/run/secrets/cwii.dev/gcp", "readOnly": true},
            {"name": "cwii-gcp-creds", "mountPath": "/var/run/secrets/cwii.dev/gcp-creds", "readOnly": true}
        ])
    );
    assert!(
        out["spec"].get("initContainers").is_none(),
        "no extra container"
    );
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn gcp_impersonation_url() {
    let mut keys = GCP_OK.to_vec();
    keys.push((
        "cwii.dev/gcp-service-account",
        "reports@proj.iam.gserviceaccount.com",
    ));
    let (response, _) = run(&pod(&keys));
    let out = mutated(&response);
    let creds = gcp_credentials(out);
    assert_eq!(
        creds,
        expected_credentials(GCP_OK[1].1, Some("reports@proj.iam.gserviceaccount.com"))
    );
}

#[test]
fn a_container_compared_whole_with_a_member_named_like_the_index_is_refused() {
    // It would have made the writer put the other container's text in its place.
    let mut input = pod(GCP_OK);
    input["metadata"]["annotations"]["cwii.dev/gcp-verify"] = json!("true");
    input["spec"]["initContainers"] = json!([
        {"name": "fetch-config", "image": "f"},
        {"name": "cwii-gcp-verify", "image": "v", "\u{0}index": 0}
    ]);
    let (response, _) = run(&input);
    assert!(!response.accepted);
    assert_eq!(response.code, Some(400));
    assert_eq!(
        response.message.as_deref(),
        Some(
            r#"cwii: cannot read the pod's spec.initContainers: an element has a member named "\u0000index", which no Kubernetes object has"#
        )
    );
    // Without that member, the same pod is injected, its container replaced.
    input["spec"]["initContainers"][1]
        .as_object_mut()
        .unwrap()
        .remove("\u{0}index");
    let (response, _) = run(&input);
    assert_eq!(
        init_names(mutated(&response)),
        vec!["fetch-config", "cwii-gcp-verify"]
    );
}

#[test]
fn gcp_init_container_delivery_puts_the_writer_first() {
    let mut input = pod(GCP_OK);
    input["metadata"]["annotations"]["cwii.dev/gcp-delivery"] = json!("init-container");
    input["metadata"]["annotations"]["cwii.dev/gcp-verify"] = json!("true");
    input["spec"]["initContainers"] = json!([{"name": "fetch-config", "image": "f"}]);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    assert_eq!(
        init_names(out),
        vec!["cwii-gcp-creds-writer", "fetch-config", "cwii-gcp-verify"]
    );
    assert_eq!(
        volume(out, "cwii-gcp-creds"),
        Some(&json!({"name": "cwii-gcp-creds", "emptyDir": {}}))
    );
    assert!(out["metadata"]["annotations"]
        .get("cwii.dev/gcp-credentials")
        .is_none());
    let writer = init(out, "cwii-gcp-creds-writer");
    assert_eq!(writer["image"], "busybox:1.38.0");
    let creds: Value =
        serde_json::from_str(&env_value(writer, "CWII_GCP_CREDS_JSON").unwrap()).unwrap();
    assert_eq!(creds, expected_credentials(GCP_OK[1].1, None));
    assert_eq!(
        writer["command"],
        json!(["sh", "-c", "printf '%s' \"$CWII_GCP_CREDS_JSON\" > '/var/run/secrets/cwii.dev/gcp-creds/credentials.json'"])
    );
    assert_eq!(
        writer["volumeMounts"],
        json!([{"name": "cwii-gcp-creds", "mountPath": "/var/run/secrets/cwii.dev/gcp-creds", "readOnly": false}])
    );
    // It writes only to its emptyDir: hardened like cwii's, and never pulled at every start.
    assert_eq!(
        writer["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true})
    );
    assert_eq!(writer["imagePullPolicy"], "IfNotPresent");
    // The user's init container runs after the writer and reads the credentials.
    assert!(env_value(init(out, "fetch-config"), "GOOGLE_APPLICATION_CREDENTIALS").is_some());
    // The policy's own containers get no provider injection beyond their own definition.
    assert!(env_value(writer, "GOOGLE_APPLICATION_CREDENTIALS").is_none());
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn gcp_config_map_falls_back_to_downward_api() {
    let mut keys = GCP_OK.to_vec();
    keys.push(("cwii.dev/gcp-delivery", "config-map"));
    let (response, _) = run(&pod(&keys));
    let out = mutated(&response);
    assert!(volume(out, "cwii-gcp-creds").unwrap()["downwardAPI"].is_object());
    assert!(warnings(&response)
        .iter()
        .any(|w| w.contains("config-map is served as downward-api")));
}

#[test]
fn gcp_delivery_accepts_cwii_spellings() {
    for (spelling, writer) in [
        ("initContainer", true),
        ("init_container", true),
        ("INITCONTAINER", true),
        ("configmap", false),
    ] {
        let mut keys = GCP_OK.to_vec();
        keys.push(("cwii.dev/gcp-delivery", spelling));
        let (response, _) = run(&pod(&keys));
        let out = mutated(&response);
        assert_eq!(
            init_names(out) == vec!["cwii-gcp-creds-writer"],
            writer,
            "{spelling}: {:?}",
            init_names(out)
        );
        assert!(
            !warnings(&response).iter().any(|w| w.contains("ignored")),
            "{spelling}: {:?}",
            warnings(&response)
        );
    }
    // The setting takes the same spellings.
    let mut lookup = InMemoryLookup::new();
    let response = run_with(
        &pod(GCP_OK),
        json!({"providers": {"gcp": {"delivery": "initContainer"}}}),
        &mut lookup,
    );
    assert_eq!(
        init_names(mutated(&response)),
        vec!["cwii-gcp-creds-writer"]
    );
}

#[test]
fn credential_printing_commands_are_recognised() {
    assert!(may_print_credential(
        "gcloud auth application-default print-access-token"
    ));
    assert!(may_print_credential(
        "gcloud auth application-default print-access-token 2>/dev/null || echo failed >&2"
    ));
    assert!(may_print_credential("cat \"$AWS_WEB_IDENTITY_TOKEN_FILE\""));
    assert!(may_print_credential("az account get-access-token && true"));
    assert!(!may_print_credential(
        "gcloud auth application-default print-access-token >/dev/null || echo failed >&2"
    ));
    assert!(!may_print_credential(
        "az login --federated-token \"$(cat \"$F\")\" >/dev/null && az account show >/dev/null"
    ));
    assert!(!may_print_credential("aws sts get-caller-identity"));
}

#[test]
fn aws_without_region_warns_and_names_the_keys() {
    let (response, _) = run(&pod(AWS_OK));
    mutated(&response);
    let expected = "cwii: aws has no region: set cwii.dev/aws-region on the pod, workload, ServiceAccount or namespace, or in settings.defaults; the AWS SDKs for JavaScript v3, Go v2 and Java v2 need AWS_REGION to build an STS client";
    assert!(
        warnings(&response).contains(&expected.to_string()),
        "{:?}",
        warnings(&response)
    );
    // A region at any level (here the defaults) silences it.
    let mut lookup = InMemoryLookup::new();
    let response = run_with(
        &pod(AWS_OK),
        json!({"defaults": {"cwii.dev/aws-region": "eu-west-1"}}),
        &mut lookup,
    );
    mutated(&response);
    assert!(!warnings(&response).iter().any(|w| w.contains("no region")));
}

#[test]
fn a_container_with_its_own_region_gets_neither_region_variable() {
    let mut keys = AWS_OK.to_vec();
    keys.push(("cwii.dev/aws-region", "eu-west-1"));
    let mut input = pod(&keys);
    input["spec"]["containers"] = json!([
        {"name": "app", "image": "a", "env": [{"name": "AWS_REGION", "value": "us-east-2"}]},
        {"name": "batch", "image": "b", "env": [{"name": "AWS_DEFAULT_REGION", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "r"}}}]},
        {"name": "plain", "image": "p"}
    ]);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    let names = |c: &Value| -> Vec<String> { env_of(c).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(
        names(&out["spec"]["containers"][0]),
        vec!["AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    );
    assert_eq!(
        env_value(&out["spec"]["containers"][0], "AWS_REGION").as_deref(),
        Some("us-east-2")
    );
    assert_eq!(
        names(&out["spec"]["containers"][1]),
        vec![
            "AWS_DEFAULT_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    assert_eq!(
        names(&out["spec"]["containers"][2]),
        vec![
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION"
        ]
    );
    let w = warnings(&response);
    assert!(w.contains(&"cwii: container 'app' keeps its own AWS_REGION; aws set none of AWS_REGION, AWS_DEFAULT_REGION (they go together)".to_string()), "{w:?}");
    assert!(w.contains(&"cwii: container 'batch' keeps its own AWS_DEFAULT_REGION; aws set none of AWS_REGION, AWS_DEFAULT_REGION (they go together)".to_string()), "{w:?}");
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn gcp_without_audience_is_skipped() {
    let (response, _) = run(&pod(&[("cwii.dev/gcp-inject", "true")]));
    assert!(response.mutated_object.is_none());
    assert!(warnings(&response)
        .iter()
        .any(|w| w.starts_with("cwii: gcp skipped: no audience")));
    // A cluster default audience from settings makes it work.
    let mut lookup = InMemoryLookup::new();
    let response = run_with(
        &pod(&[("cwii.dev/gcp-inject", "true")]),
        json!({"providers": {"gcp": {"defaultAudience": "//iam.googleapis.com/x"}}}),
        &mut lookup,
    );
    assert_eq!(
        volume(mutated(&response), "cwii-gcp-token").unwrap()["projected"]["sources"][0]
            ["serviceAccountToken"]["audience"],
        "//iam.googleapis.com/x"
    );
}

#[test]
fn triple_provider_pod_has_independent_tokens() {
    let keys: Vec<(&str, &str)> = [AZ_OK, AWS_OK, GCP_OK].concat();
    let (response, lookup) = run(&pod(&keys));
    let out = mutated(&response);
    assert_eq!(
        out["metadata"]["annotations"]["cwii.dev/injected"],
        "aws,az,gcp"
    );
    let audience = |v: &str| {
        volume(out, v).unwrap()["projected"]["sources"][0]["serviceAccountToken"]["audience"]
            .clone()
    };
    assert_eq!(audience("cwii-az-token"), "api://AzureADTokenExchange");
    assert_eq!(audience("cwii-aws-token"), "sts.amazonaws.com");
    assert_eq!(audience("cwii-gcp-token"), GCP_OK[1].1);
    let mounts = out["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(mounts, 4);
    let audit = response.audit_annotations.as_ref().unwrap();
    assert_eq!(audit.len(), 3);
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn one_providers_keys_never_affect_another() {
    // A broken aws configuration skips aws only.
    let keys: Vec<(&str, &str)> = [
        AZ_OK,
        &[
            ("cwii.dev/aws-inject", "true"),
            ("cwii.dev/aws-token-expiration", "x"),
        ],
    ]
    .concat();
    let (response, _) = run(&pod(&keys));
    let out = mutated(&response);
    assert_eq!(out["metadata"]["annotations"]["cwii.dev/injected"], "az");
    assert!(volume(out, "cwii-aws-token").is_none());
}

#[test]
fn verify_containers_for_each_provider_in_order() {
    let mut keys: Vec<(&str, &str)> = [AZ_OK, AWS_OK, GCP_OK].concat();
    keys.extend([
        ("cwii.dev/az-verify", "true"),
        ("cwii.dev/aws-verify", "true"),
        ("cwii.dev/aws-verify-enforce", "true"),
        ("cwii.dev/gcp-verify", "TRUE"),
    ]);
    let mut input = pod(&keys);
    input["spec"]["initContainers"] =
        json!([{"name": "mesh", "image": "m", "restartPolicy": "Always"}]);
    let (response, lookup) = run(&input);
    let out = mutated(&response);
    assert_eq!(
        init_names(out),
        vec![
            "mesh",
            "cwii-gcp-verify",
            "cwii-aws-verify",
            "cwii-az-verify"
        ]
    );
    let aws = init(out, "cwii-aws-verify");
    assert_eq!(
        aws["command"],
        json!(["sh", "-c", "aws sts get-caller-identity"])
    );
    assert_eq!(aws["image"], "amazon/aws-cli:2.35.4");
    assert_eq!(
        aws["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        aws["resources"],
        json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
    );
    assert_eq!(env_value(aws, "AWS_ROLE_ARN").as_deref(), Some(AWS_OK[1].1));
    assert!(
        env_value(aws, "AZURE_CLIENT_ID").is_none(),
        "only its own provider's env"
    );
    let az = init(out, "cwii-az-verify");
    assert_eq!(
        az["command"][2],
        "az login --service-principal -u \"$AZURE_CLIENT_ID\" -t \"$AZURE_TENANT_ID\" --federated-token \"$(cat \"$AZURE_FEDERATED_TOKEN_FILE\")\" >/dev/null && az account show >/dev/null || echo 'cwii: verification check failed (non-enforcing)' >&2"
    );
    let gcp = init(out, "cwii-gcp-verify");
    assert_eq!(
        gcp["command"][2],
        "gcloud auth application-default print-access-token >/dev/null || echo 'cwii: verification check failed (non-enforcing)' >&2"
    );
    assert_eq!(gcp["volumeMounts"].as_array().unwrap().len(), 2);
    for verify in ["cwii-gcp-verify", "cwii-aws-verify", "cwii-az-verify"] {
        let script = init(out, verify)["command"][2].as_str().unwrap();
        assert!(!may_print_credential(script), "{verify}: {script}");
        assert_eq!(init(out, verify)["imagePullPolicy"], "IfNotPresent");
    }
    // The mesh sidecar got every provider, the verify containers only their own.
    assert_eq!(
        init(out, "mesh")["volumeMounts"].as_array().unwrap().len(),
        4
    );
    assert_idempotent(out, json!({}), &lookup);
}

#[test]
fn verify_image_from_service_account_and_replaced_reserved_init_container() {
    let mut lookup = InMemoryLookup::new().with(
        "ServiceAccount",
        Some("apps"),
        "default",
        &[("cwii.dev/aws-verify-image", "registry.local/aws-cli:pinned")],
        &[],
    );
    let mut keys = AWS_OK.to_vec();
    keys.push(("cwii.dev/aws-verify", "true"));
    let mut input = pod(&keys);
    input["spec"]["initContainers"] =
        json!([{"name": "cwii-aws-verify", "image": "evil", "command": ["sh", "-c", "curl evil"]}]);
    let response = run_with(&input, json!({}), &mut lookup);
    let out = mutated(&response);
    assert_eq!(init_names(out), vec!["cwii-aws-verify"]);
    assert_eq!(
        init(out, "cwii-aws-verify")["image"],
        "registry.local/aws-cli:pinned"
    );
    assert!(warnings(&response).contains(
        &"cwii: replaced init container 'cwii-aws-verify': the name is reserved for the policy"
            .to_string()
    ));
}

#[test]
fn hostile_values_reach_the_pod_only_as_values() {
    let hostile = format!("x'\"; $(rm -rf /) `id` \n{}", "A".repeat(10 * 1024));
    let mut input = pod(&[
        ("cwii.dev/az-inject", "true"),
        ("cwii.dev/aws-inject", "true"),
        ("cwii.dev/gcp-inject", "true"),
        ("cwii.dev/az-verify", "true"),
        ("cwii.dev/aws-verify", "true"),
        ("cwii.dev/gcp-verify", "true"),
        ("cwii.dev/gcp-delivery", "init-container"),
    ]);
    for key in [
        "az-client-id",
        "az-tenant-id",
        "az-authority-host",
        "aws-role-arn",
        "aws-region",
        "aws-role-session-name",
        "aws-sts-regional-endpoints",
        "gcp-audience",
        "gcp-service-account",
    ] {
        input["metadata"]["annotations"][format!("cwii.dev/{key}")] = json!(hostile);
    }
    let (response, _) = run(&input);
    let out = mutated(&response);
    // The hostile text (trimmed like every value) never appears in a command.
    let needle = hostile.trim();
    for c in out["spec"]["initContainers"].as_array().unwrap() {
        assert!(
            !c["command"].to_string().contains("rm -rf"),
            "{}",
            c["name"]
        );
    }
    let app = &out["spec"]["containers"][0];
    assert_eq!(env_value(app, "AZURE_CLIENT_ID").as_deref(), Some(needle));
    assert_eq!(
        env_value(app, "AWS_ROLE_SESSION_NAME").as_deref(),
        Some(needle)
    );
    let writer = init(out, "cwii-gcp-creds-writer");
    let creds: Value =
        serde_json::from_str(&env_value(writer, "CWII_GCP_CREDS_JSON").unwrap()).unwrap();
    assert_eq!(creds["audience"], needle);
    assert!(creds["service_account_impersonation_url"]
        .as_str()
        .unwrap()
        .contains(needle));
    assert!(response
        .warnings
        .unwrap_or_default()
        .iter()
        .all(|w| w.chars().count() <= 256));
}

// ---------------------------------------------------------------- compat mode

fn labelled(pod_json: &mut Value) {
    pod_json["metadata"]["labels"] = json!({"azure.workload.identity/use": "true"});
}

fn azwi_volume(pod_name: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(pod_name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("azure-workload-identity-reserved-{}", &hex[..30])
}

#[test]
fn drop_in_only_with_native_annotations_and_only_for_the_label() {
    let sa = InMemoryLookup::new().with(
        "ServiceAccount",
        Some("apps"),
        "default",
        &[("azure.workload.identity/client-id", "native-client")],
        &[],
    );
    let mut input = pod(&[]);
    labelled(&mut input);
    let settings_json = json!({"nativeAnnotations": true, "native": {"azwi": {"tenantId": "t"}}});
    // Off: the label and the ServiceAccount's key mean nothing.
    let response = run_with(&input, json!({}), &mut sa.clone());
    assert!(response.mutated_object.is_none());
    // On, but the ServiceAccount's key alone (no label) does not enable azwi.
    let response = run_with(&pod(&[]), settings_json.clone(), &mut sa.clone());
    assert!(response.mutated_object.is_none());
    // On, labelled: azwi's layout, no marker.
    let mut lookup = sa.clone();
    let response = run_with(&input, settings_json.clone(), &mut lookup);
    let out = mutated(&response);
    let volume_name = azwi_volume("app");
    assert_eq!(
        volume(out, &volume_name).unwrap()["projected"]["sources"][0]["serviceAccountToken"],
        json!({"path": "token/azure-identity-token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600})
    );
    let app = &out["spec"]["containers"][0];
    assert_eq!(
        env_of(app),
        vec![
            ("AZURE_CLIENT_ID".into(), json!("native-client")),
            ("AZURE_TENANT_ID".into(), json!("t")),
            (
                "AZURE_FEDERATED_TOKEN_FILE".into(),
                json!("/var/run/secrets/azure/wi/token/azure-identity-token")
            ),
            (
                "AZURE_AUTHORITY_HOST".into(),
                json!("https://login.microsoftonline.com/")
            ),
        ]
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": volume_name, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}])
    );
    assert_eq!(out["metadata"]["annotations"], json!({}), "no marker");
    assert_eq!(
        response.audit_annotations.as_ref().unwrap()["cwii-az-sources"],
        "azwi-use=pod(azure.workload.identity/use) client-id=serviceaccount(azure.workload.identity/client-id) inject=pod(azure.workload.identity/use) audience=native.azwi token-expiration=native.azwi"
    );
    assert_idempotent(out, settings_json, &lookup);
}

#[test]
fn native_keys_count_only_on_their_level_and_cwii_keys_win_there() {
    // EKS: role-arn on the pod is not read; on the ServiceAccount the cwii.dev key wins the
    // value, the webhook's key still chooses the layout; a namespace cwii.dev audience
    // loses to the ServiceAccount's EKS audience (a higher level).
    let mut lookup = InMemoryLookup::new()
        .with(
            "ServiceAccount",
            Some("apps"),
            "default",
            &[
                (
                    "eks.amazonaws.com/role-arn",
                    "arn:aws:iam::111122223333:role/native",
                ),
                (
                    "cwii.dev/aws-role-arn",
                    "arn:aws:iam::111122223333:role/cwii",
                ),
                ("eks.amazonaws.com/audience", "sa-native-aud"),
            ],
            &[],
        )
        .with(
            "Namespace",
            None,
            "apps",
            &[("cwii.dev/aws-audience", "ns-aud")],
            &[],
        );
    let input = pod(&[(
        "eks.amazonaws.com/role-arn",
        "arn:aws:iam::111122223333:role/pod",
    )]);
    let settings_json =
        json!({"nativeAnnotations": true, "native": {"eks": {"region": "eu-west-1"}}});
    let response = run_with(&input, settings_json.clone(), &mut lookup);
    let out = mutated(&response);
    assert_eq!(out["spec"]["volumes"][0]["name"], "aws-iam-token");
    assert_eq!(
        out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "sa-native-aud"
    );
    let names: Vec<String> = env_of(&out["spec"]["containers"][0])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        vec![
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    assert_eq!(
        env_value(&out["spec"]["containers"][0], "AWS_ROLE_ARN").as_deref(),
        Some("arn:aws:iam::111122223333:role/cwii")
    );
    assert_idempotent(out, settings_json, &lookup);
}

#[test]
fn settings_defaults_sit_above_native_settings_and_below_native_keys() {
    let settings_json = json!({"nativeAnnotations": true,
        "native": {"azwi": {"tenantId": "native-tenant"}},
        "defaults": {"cwii.dev/az-tenant-id": "default-tenant"}});
    let mut input = pod(&[]);
    labelled(&mut input);
    let tenant = |lookup: &mut InMemoryLookup| {
        let response = run_with(&input, settings_json.clone(), lookup);
        env_value(
            &mutated(&response)["spec"]["containers"][0],
            "AZURE_TENANT_ID",
        )
    };
    assert_eq!(
        tenant(&mut InMemoryLookup::new()).as_deref(),
        Some("default-tenant")
    );
    let mut with_sa = InMemoryLookup::new().with(
        "ServiceAccount",
        Some("apps"),
        "default",
        &[("azure.workload.identity/tenant-id", "sa-tenant")],
        &[],
    );
    assert_eq!(tenant(&mut with_sa).as_deref(), Some("sa-tenant"));
}

#[test]
fn a_labelled_pod_with_inject_false_or_the_eks_skip_label_is_left_alone() {
    let mut input = pod(&[("cwii.dev/az-inject", "false")]);
    labelled(&mut input);
    let response = run_with(
        &input,
        json!({"nativeAnnotations": true}),
        &mut InMemoryLookup::new(),
    );
    assert!(response.mutated_object.is_none());
    let sa = InMemoryLookup::new().with(
        "ServiceAccount",
        Some("apps"),
        "default",
        &[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::111122223333:role/r",
        )],
        &[],
    );
    let mut input = pod(&[]);
    input["metadata"]["labels"] = json!({"eks.amazonaws.com/skip-pod-identity-webhook": "false"});
    let response = run_with(&input, json!({"nativeAnnotations": true}), &mut sa.clone());
    assert!(
        response.mutated_object.is_none(),
        "the label's presence is enough"
    );
}

#[test]
fn azwi_proxy_containers_and_denials() {
    let mut input = pod(&[("azure.workload.identity/inject-proxy-sidecar", "true")]);
    labelled(&mut input);
    input["spec"]["initContainers"] = json!([{"name": "setup", "image": "s"}]);
    let settings_json = json!({"nativeAnnotations": true, "native": {"azwi": {"tenantId": "t"}}});
    let response = run_with(&input, settings_json.clone(), &mut InMemoryLookup::new());
    let out = mutated(&response);
    assert_eq!(
        init_names(out),
        vec!["azwi-proxy", "setup", "azwi-proxy-init"]
    );
    let proxy = init(out, "azwi-proxy");
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(
        proxy["args"],
        json!(["--proxy-port=8000", "--log-level=info"])
    );
    assert!(
        env_value(proxy, "AZURE_CLIENT_ID").is_none()
            && env_value(proxy, "AZURE_TENANT_ID").is_some()
    );
    assert_eq!(
        init(out, "azwi-proxy-init")["securityContext"]["privileged"],
        true
    );
    assert_idempotent(out, settings_json.clone(), &InMemoryLookup::new());

    let mut host = input.clone();
    host["spec"]["hostNetwork"] = json!(true);
    let response = run_with(&host, settings_json.clone(), &mut InMemoryLookup::new());
    assert!(!response.accepted);
    assert_eq!(
        response.message.as_deref(),
        Some("hostNetwork is set to true, cannot inject proxy sidecar")
    );
    let mut bad_port = input.clone();
    bad_port["metadata"]["annotations"]["azure.workload.identity/proxy-sidecar-port"] = json!("0");
    let response = run_with(&bad_port, settings_json, &mut InMemoryLookup::new());
    assert_eq!(response.code, Some(400));
    assert!(response
        .message
        .unwrap()
        .contains("proxy-sidecar-port \"0\""));
}

#[test]
fn native_settings_are_validated_with_named_errors() {
    for (settings_json, field) in [
        (
            json!({"native": {"azwi": {"version": "1.7"}}}),
            "native.azwi.version",
        ),
        (
            json!({"native": {"azwi": {"cloud": "Mars"}}}),
            "native.azwi.cloud",
        ),
        (
            json!({"native": {"azwi": {"proxyImage": ""}}}),
            "native.azwi.proxyImage",
        ),
        (
            json!({"native": {"azwi": {"bogus": 1}}}),
            "native.azwi.bogus",
        ),
        (
            json!({"native": {"eks": {"mountPath": "relative"}}}),
            "native.eks.mountPath",
        ),
        (
            json!({"native": {"eks": {"composeRoleArn": {"accountId": "123"}}}}),
            "native.eks.composeRoleArn",
        ),
        (
            json!({"native": {"eks": {"composeRoleArn": {"partition": "aws-mars"}}}}),
            "native.eks.composeRoleArn",
        ),
        (json!({"native": {"gke": {}}}), "native.gke"),
    ] {
        let err = crate::admission::parse_settings(settings_json.clone()).unwrap_err();
        assert!(
            err.contains(&format!("`{field}")),
            "{settings_json} -> {err}"
        );
    }
    let ok = crate::admission::parse_settings(
        json!({"native": {"eks": {"tokenExpirationSeconds": 300}}}),
    )
    .unwrap();
    assert_eq!(ok.native["eks"]["tokenExpirationSeconds"], 600);
}

/// The benchmark's scenarios (bench/*/request.json and settings.json), evaluated against an
/// in-memory copy of their sessions: the lookup budget of SPEC §3, call by call.
#[test]
fn lookup_budget_of_the_benchmark_scenarios() {
    // The pod of bench/NAME/request.json, and bench/NAME/settings.json.
    macro_rules! bench_pod {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!(
                "../bench/",
                $name,
                "/request.json"
            )))
            .unwrap()["object"]
                .clone()
        };
    }
    macro_rules! bench_settings {
        ($name:literal) => {
            serde_json::from_str::<Value>(include_str!(concat!(
                "../bench/",
                $name,
                "/settings.json"
            )))
            .unwrap()
        };
    }
    let empty_sa_ns = || {
        InMemoryLookup::new()
            .with("ServiceAccount", Some("apps"), "default", &[], &[])
            .with("Namespace", None, "apps", &[], &[])
    };
    let sa_then_ns = ["ServiceAccount apps/default", "Namespace apps"];

    // No annotations anywhere: every provider stays open, so SA and namespace are read.
    let mut lookup = empty_sa_ns();
    let response = run_with(&bench_pod!("no-annotations"), json!({}), &mut lookup);
    assert!(response.accepted && response.mutated_object.is_none());
    assert_eq!(lookup.call_log(), sa_then_ns);

    // az on the ServiceAccount of a Deployment's pod: ReplicaSet, Deployment, SA, namespace.
    let mut lookup = InMemoryLookup::new()
        .with(
            "ReplicaSet",
            Some("apps"),
            "web-7d9f",
            &[],
            &[("Deployment", "web", true)],
        )
        .with("Deployment", Some("apps"), "web", &[], &[])
        .with(
            "ServiceAccount",
            Some("apps"),
            "web",
            &[
                ("cwii.dev/az-inject", "true"),
                (
                    "cwii.dev/az-client-id",
                    "11111111-1111-1111-1111-111111111111",
                ),
            ],
            &[],
        )
        .with("Namespace", None, "apps", &[], &[]);
    let response = run_with(
        &bench_pod!("az-serviceaccount-deployment"),
        bench_settings!("az-serviceaccount-deployment"),
        &mut lookup,
    );
    assert!(response.mutated_object.is_some(), "{:?}", response.message);
    assert_eq!(
        lookup.call_log(),
        [
            "ReplicaSet apps/web-7d9f",
            "Deployment apps/web",
            "ServiceAccount apps/web",
            "Namespace apps"
        ]
    );

    // Three providers from namespace annotations and settings defaults.
    let mut lookup = InMemoryLookup::new()
        .with("ServiceAccount", Some("apps"), "default", &[], &[])
        .with(
            "Namespace",
            None,
            "apps",
            &[
                ("cwii.dev/az-inject", "true"),
                ("cwii.dev/az-client-id", "c"),
                ("cwii.dev/aws-inject", "true"),
                ("cwii.dev/aws-role-arn", "arn:aws:iam::111122223333:role/r"),
                ("cwii.dev/gcp-inject", "true"),
            ],
            &[],
        );
    let response = run_with(
        &bench_pod!("triple-namespace-defaults"),
        bench_settings!("triple-namespace-defaults"),
        &mut lookup,
    );
    let out = mutated(&response);
    assert_eq!(
        out["metadata"]["annotations"]["cwii.dev/injected"],
        "aws,az,gcp"
    );
    assert_eq!(lookup.call_log(), sa_then_ns);

    // 50 containers, three providers from pod annotations: the optional keys keep the
    // levels open, so SA and namespace are still read, once each.
    let mut lookup = empty_sa_ns();
    let response = run_with(
        &bench_pod!("fifty-containers-triple"),
        json!({}),
        &mut lookup,
    );
    let out = mutated(&response);
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 50);
    assert_eq!(lookup.call_log(), sa_then_ns);

    // Every provider false on the pod, or every provider disabled: zero lookups.
    let mut all_false = bench_pod!("no-annotations");
    all_false["metadata"]["annotations"] = json!({
        "cwii.dev/az-inject": "false", "cwii.dev/aws-inject": "false", "cwii.dev/gcp-inject": "false"
    });
    let mut lookup = empty_sa_ns();
    run_with(&all_false, json!({}), &mut lookup);
    assert!(lookup.calls.is_empty(), "{:?}", lookup.call_log());
    let mut lookup = empty_sa_ns();
    let all_disabled = json!({"providers": {
        "az": {"enabled": false}, "aws": {"enabled": false}, "gcp": {"enabled": false}
    }});
    run_with(
        &bench_pod!("fifty-containers-triple"),
        all_disabled,
        &mut lookup,
    );
    assert!(lookup.calls.is_empty(), "{:?}", lookup.call_log());
}

#[test]
fn answers_worked_out_on_the_arena_are_the_answers() {
    // In wasm the arena is the global allocator: alternating pods and settings makes each
    // evaluation reuse memory the one before wrote, so anything kept across evaluations
    // (the settings cache) that lived in it would show here as a wrong answer.
    let payload = |pod: Value, settings: Value| {
        json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": pod}, "settings": settings})
            .to_string()
    };
    let cases = [
        payload(pod(AZ_OK), json!({"mountRoot": "/one"})),
        payload(pod(AZ_OK), json!({"mountRoot": "/one"})),
        payload(pod(&[]), json!({"mountRoot": "/one"})),
        payload(pod(AZ_OK), json!(null)),
        payload(pod(AZ_OK), json!({"mountRoot": "/two"})),
        "not json".to_string(),
        payload(pod(AZ_OK), json!({"mountRoot": "x"})),
    ];
    for _ in 0..3 {
        for case in &cases {
            let text = validate_text(case.as_bytes(), &mut InMemoryLookup::new()).unwrap();
            let expected = evaluate_answer(case.as_bytes(), &mut InMemoryLookup::new())
                .to_json()
                .unwrap();
            assert_eq!(
                String::from_utf8(text).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }
    assert!(!crate::arena::bumping());
}

#[test]
fn a_large_pod_spans_several_arena_chunks_and_the_next_one_reuses_them() {
    // 400 containers and a 1 MiB annotation value: the evaluation outgrows the arena's first
    // chunk several times (in wasm), and one block is larger than a doubled chunk.
    let mut large = pod(AZ_OK);
    large["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(1 << 20));
    large["spec"]["containers"] = (0..400)
        .map(|i| json!({"name": format!("c{i}"), "image": "nginx", "env": [{"name": "A", "value": "1"}]}))
        .collect();
    let payload = |pod: &Value| {
        json!({"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": pod}, "settings": null})
            .to_string()
    };
    let (large, small) = (payload(&large), payload(&pod(AZ_OK)));
    for case in [&large, &small, &large, &small] {
        // The lookup outlives the evaluation: the calls it records must survive it.
        let (mut on_arena, mut outside) = (InMemoryLookup::new(), InMemoryLookup::new());
        let text = validate_text(case.as_bytes(), &mut on_arena).unwrap();
        let expected = evaluate_answer(case.as_bytes(), &mut outside)
            .to_json()
            .unwrap();
        assert!(text == expected, "the arena's answer differs");
        assert!(!outside.call_log().is_empty());
        assert_eq!(on_arena.call_log(), outside.call_log());
    }
    let answer: Value = serde_json::from_slice(
        &validate_text(large.as_bytes(), &mut InMemoryLookup::new()).unwrap(),
    )
    .unwrap();
    let containers = answer["mutated_object"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 400);
    assert!(containers
        .iter()
        .all(|c| env_value(c, "AZURE_CLIENT_ID").is_some()));
    assert_eq!(
        answer["mutated_object"]["metadata"]["annotations"]["example.com/blob"]
            .as_str()
            .map(str::len),
        Some(1 << 20)
    );
}
