//! Property tests of SPEC §5 over generated pods, clusters and settings. The case count comes
//! from PROPTEST_CASES (`make proptest` runs 10,000; CI fewer).

use cwii_kubewarden::admission::{
    evaluate_request, parse_settings, AdmissionRequest, GroupVersionKind,
};
use cwii_kubewarden::lookup::InMemoryLookup;
use cwii_kubewarden::plan::may_print_credential;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

const PROVIDERS: [&str; 3] = ["gcp", "aws", "az"];
const ROOT: &str = "/var/run/secrets/cwii.dev";

// ------------------------------------------------------------------ generators

/// Values for a key: valid ones, invalid ones (which must fall through) and hostile ones.
fn value_for(suffix: &'static str) -> BoxedStrategy<String> {
    let hostile = prop_oneof![
        Just("$(id)".to_string()),
        Just("a'b\"c`d`\n".to_string()),
        Just(" ".to_string()),
        "[a-z0-9:/@._-]{1,20}",
    ];
    match suffix {
        "inject" | "verify" | "verify-enforce" => prop_oneof![
            Just("true".to_string()),
            Just("false".to_string()),
            Just("TRUE".to_string()),
            Just("maybe".to_string())
        ]
        .boxed(),
        "token-expiration" => prop_oneof![
            (0i64..100_000).prop_map(|n| n.to_string()),
            Just("1h".to_string()),
            Just("".to_string())
        ]
        .boxed(),
        "skip-containers" => prop_oneof![
            Just("app".to_string()),
            Just("sidecar; mesh".to_string()),
            Just("nobody".to_string()),
            Just(" , ".to_string())
        ]
        .boxed(),
        "delivery" => prop_oneof![
            Just("downward-api".to_string()),
            Just("init-container".to_string()),
            Just("config-map".to_string()),
            Just("pigeon".to_string())
        ]
        .boxed(),
        _ => hostile.boxed(),
    }
}

const SUFFIXES: [(&str, &[&str]); 3] = [
    ("gcp", &["service-account", "delivery"]),
    (
        "aws",
        &[
            "role-arn",
            "region",
            "role-session-name",
            "sts-regional-endpoints",
        ],
    ),
    ("az", &["client-id", "tenant-id", "authority-host"]),
];
const SHARED: [&str; 7] = [
    "inject",
    "audience",
    "token-expiration",
    "verify",
    "verify-enforce",
    "verify-image",
    "skip-containers",
];
/// How a webhook reads one of its values.
#[derive(Clone, Copy)]
enum NativeParse {
    Text,
    /// Go's ParseInt: sign and digits, no spaces.
    GoInt,
    /// azwi's skip list: `;`, trimmed.
    Semicolons,
    /// The EKS skip list: one CSV record, untrimmed (the generated values hold no quotes).
    Csv,
}

/// The webhooks' keys (SPEC §7.2): key, provider, suffix, the levels where the webhook
/// reads it (0 pod, 3 ServiceAccount), how it parses. Generated at every level; counted
/// only on these.
const NATIVE: [(&str, &str, &str, &[usize], NativeParse); 8] = [
    (
        "azure.workload.identity/client-id",
        "az",
        "client-id",
        &[3],
        NativeParse::Text,
    ),
    (
        "azure.workload.identity/tenant-id",
        "az",
        "tenant-id",
        &[3],
        NativeParse::Text,
    ),
    (
        "azure.workload.identity/service-account-token-expiration",
        "az",
        "token-expiration",
        &[0, 3],
        NativeParse::GoInt,
    ),
    (
        "azure.workload.identity/skip-containers",
        "az",
        "skip-containers",
        &[0],
        NativeParse::Semicolons,
    ),
    (
        "eks.amazonaws.com/role-arn",
        "aws",
        "role-arn",
        &[3],
        NativeParse::Text,
    ),
    (
        "eks.amazonaws.com/audience",
        "aws",
        "audience",
        &[3],
        NativeParse::Text,
    ),
    (
        "eks.amazonaws.com/token-expiration",
        "aws",
        "token-expiration",
        &[0, 3],
        NativeParse::GoInt,
    ),
    (
        "eks.amazonaws.com/skip-containers",
        "aws",
        "skip-containers",
        &[0],
        NativeParse::Csv,
    ),
];
const AZWI_LABEL: &str = "azure.workload.identity/use";
const EKS_SKIP_LABEL: &str = "eks.amazonaws.com/skip-pod-identity-webhook";

fn all_keys() -> Vec<(String, &'static str)> {
    let mut keys = Vec::new();
    for (p, own) in SUFFIXES {
        for s in SHARED.iter().chain(own.iter()) {
            keys.push((format!("cwii.dev/{p}-{s}"), *s));
        }
    }
    keys
}

/// A sparse annotation map: each key present with some probability. Inject keys are
/// favoured so that most cases inject something.
fn annotation_level(density: u32) -> BoxedStrategy<BTreeMap<String, String>> {
    let mut parts: Vec<BoxedStrategy<Option<(String, String)>>> = Vec::new();
    for (key, suffix) in all_keys() {
        let weight = if suffix == "inject" {
            density * 3
        } else {
            density
        };
        let key2 = key.clone();
        parts.push(
            prop::option::weighted(f64::from(weight.min(100)) / 100.0, value_for(suffix))
                .prop_map(move |v| v.map(|v| (key2.clone(), v)))
                .boxed(),
        );
    }
    for (native, _, suffix, _, _) in NATIVE {
        parts.push(
            prop::option::weighted(0.08, value_for(suffix))
                .prop_map(move |v| v.map(|v| (native.to_string(), v)))
                .boxed(),
        );
    }
    parts
        .prop_map(|entries| entries.into_iter().flatten().collect())
        .boxed()
}

fn unknown_field() -> impl Strategy<Value = Option<(String, Value)>> {
    prop::option::weighted(
        0.4,
        (
            "x-[a-z]{1,6}",
            prop_oneof![
                Just(json!(null)),
                Just(json!({"deep": [1, {"deeper": true}]})),
                Just(json!("text")),
                Just(json!([]))
            ],
        ),
    )
}

#[derive(Debug, Clone)]
struct ContainerModel {
    env: Vec<(String, bool)>,     // name, via valueFrom
    mounts: Vec<(usize, String)>, // volume index, path
    sidecar: bool,
    unknown: Option<(String, Value)>,
}

fn container() -> impl Strategy<Value = ContainerModel> {
    let env_name = prop_oneof![
        Just("AZURE_CLIENT_ID".to_string()),
        Just("AWS_REGION".to_string()),
        Just("GOOGLE_APPLICATION_CREDENTIALS".to_string()),
        "[A-Z]{3,8}",
    ];
    let path = prop_oneof![
        4 => "/data/[a-z]{1,5}",
        1 => Just(format!("{ROOT}/az")),
        1 => Just(format!("{ROOT}/gcp-creds/")),
    ];
    (
        prop::collection::vec((env_name, any::<bool>()), 0..4),
        prop::collection::vec((0usize..4, path), 0..3),
        any::<bool>(),
        unknown_field(),
    )
        .prop_map(|(env, mounts, sidecar, unknown)| ContainerModel {
            env,
            mounts,
            sidecar,
            unknown,
        })
}

#[derive(Debug, Clone)]
struct Case {
    containers: Vec<ContainerModel>,
    inits: Vec<ContainerModel>,
    volumes: Vec<(String, bool)>,          // name, hostPath
    levels: [BTreeMap<String, String>; 5], // pod, deployment, replicaset, sa, ns
    defaults: BTreeMap<String, String>,
    native: bool,
    /// Pod labels: azwi's `use` label and the EKS skip label.
    labels: BTreeMap<String, String>,
    disabled: Vec<bool>,
    unknown: [Option<(String, Value)>; 3], // pod, metadata, spec
}

fn case() -> impl Strategy<Value = Case> {
    let volume_name = prop_oneof![
        3 => "vol-[a-z]{1,4}",
        1 => Just("cwii-az-token".to_string()),
        1 => Just("cwii-gcp-creds".to_string()),
    ];
    let default_value = prop_oneof![
        Just((
            "cwii.dev/az-tenant-id".to_string(),
            "default-tenant".to_string()
        )),
        Just((
            "cwii.dev/gcp-audience".to_string(),
            "//default-aud".to_string()
        )),
        Just(("cwii.dev/aws-region".to_string(), "eu-west-1".to_string())),
        Just(("cwii.dev/az-inject".to_string(), "true".to_string())),
        Just((
            "cwii.dev/gcp-token-expiration".to_string(),
            "900".to_string()
        )),
    ];
    (
        prop::collection::vec(container(), 1..4),
        prop::collection::vec(container(), 0..3),
        prop::collection::vec((volume_name, any::<bool>()), 0..4),
        [
            annotation_level(25),
            annotation_level(8),
            annotation_level(8),
            annotation_level(12),
            annotation_level(12),
        ],
        prop::collection::btree_map(default_value.prop_map(|(k, _)| k), Just(()), 0..3),
        (
            prop::bool::weighted(0.3),
            prop::option::weighted(0.5, prop_oneof![Just("true"), Just("True"), Just("false")]),
            prop::bool::weighted(0.1),
        ),
        prop::collection::vec(prop::bool::weighted(0.15), 3),
        [unknown_field(), unknown_field(), unknown_field()],
    )
        .prop_map(
            |(
                containers,
                inits,
                volumes,
                levels,
                default_keys,
                (native, use_label, skip_label),
                disabled,
                unknown,
            )| {
                let mut labels = BTreeMap::new();
                if let Some(value) = use_label {
                    labels.insert(AZWI_LABEL.to_string(), value.to_string());
                }
                if skip_label {
                    labels.insert(EKS_SKIP_LABEL.to_string(), "true".to_string());
                }
                let table: BTreeMap<&str, &str> = [
                    ("cwii.dev/az-tenant-id", "default-tenant"),
                    ("cwii.dev/gcp-audience", "//default-aud"),
                    ("cwii.dev/aws-region", "eu-west-1"),
                    ("cwii.dev/az-inject", "true"),
                    ("cwii.dev/gcp-token-expiration", "900"),
                ]
                .into_iter()
                .collect();
                let defaults = default_keys
                    .into_keys()
                    .map(|k| {
                        let v = table[k.as_str()].to_string();
                        (k, v)
                    })
                    .collect();
                Case {
                    containers,
                    inits,
                    volumes,
                    levels,
                    defaults,
                    native,
                    labels,
                    disabled,
                    unknown,
                }
            },
        )
}

// ------------------------------------------------------------------ building inputs

fn container_json(name: &str, model: &ContainerModel, volumes: &[String], init: bool) -> Value {
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    c.insert("image".into(), json!("img"));
    let mut seen = BTreeSet::new();
    let env: Vec<Value> = model
        .env
        .iter()
        .filter(|(n, _)| seen.insert(n.clone()))
        .map(|(n, from)| {
            if *from {
                json!({"name": n, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
            } else {
                json!({"name": n, "value": "user"})
            }
        })
        .collect();
    if !env.is_empty() {
        c.insert("env".into(), Value::Array(env));
    }
    let mut paths = BTreeSet::new();
    let mounts: Vec<Value> = model
        .mounts
        .iter()
        .filter(|_| !volumes.is_empty())
        .filter(|(_, p)| paths.insert(p.trim_end_matches('/').to_string()))
        .map(|(i, p)| json!({"name": volumes[i % volumes.len()], "mountPath": p}))
        .collect();
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if init && model.sidecar {
        c.insert("restartPolicy".into(), json!("Always"));
    }
    if let Some((k, v)) = &model.unknown {
        c.insert(k.clone(), v.clone());
    }
    Value::Object(c)
}

fn build(case: &Case) -> (Value, InMemoryLookup, Value) {
    let mut volume_names: Vec<String> = Vec::new();
    let mut volumes = Vec::new();
    for (name, host_path) in &case.volumes {
        if volume_names.contains(name) {
            continue;
        }
        volume_names.push(name.clone());
        volumes.push(if *host_path {
            json!({"name": name, "hostPath": {"path": "/etc"}})
        } else {
            json!({"name": name, "emptyDir": {}})
        });
    }
    let names = ["app", "sidecar", "mesh", "worker"];
    let containers: Vec<Value> = case
        .containers
        .iter()
        .enumerate()
        .map(|(i, m)| container_json(names[i % 4], m, &volume_names, false))
        .collect();
    let inits: Vec<Value> = case
        .inits
        .iter()
        .enumerate()
        .map(|(i, m)| container_json(&format!("init-{i}"), m, &volume_names, true))
        .collect();
    let mut spec = json!({"containers": containers, "serviceAccountName": "sa"});
    if !inits.is_empty() {
        spec["initContainers"] = Value::Array(inits);
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    let mut metadata = json!({
        "name": "p", "namespace": "apps",
        "annotations": case.levels[0],
        "labels": case.labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]
    });
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod"});
    for (target, unknown) in [&mut pod, &mut metadata, &mut spec]
        .into_iter()
        .zip(&case.unknown)
    {
        if let Some((k, v)) = unknown {
            target[k.as_str()] = v.clone();
        }
    }
    pod["metadata"] = metadata;
    pod["spec"] = spec;

    let (deploy, rs, sa, ns) = (
        as_refs(&case.levels[1]),
        as_refs(&case.levels[2]),
        as_refs(&case.levels[3]),
        as_refs(&case.levels[4]),
    );
    let lookup = InMemoryLookup::new()
        .with(
            "ReplicaSet",
            Some("apps"),
            "rs",
            &rs,
            &[("Deployment", "web", true)],
        )
        .with("Deployment", Some("apps"), "web", &deploy, &[])
        .with("ServiceAccount", Some("apps"), "sa", &sa, &[])
        .with("Namespace", None, "apps", &ns, &[]);
    let providers: Map<String, Value> = PROVIDERS
        .iter()
        .zip(&case.disabled)
        .map(|(p, off)| (p.to_string(), json!({"enabled": !off})))
        .collect();
    let settings = json!({"nativeAnnotations": case.native, "defaults": case.defaults, "providers": providers,
        "native": {"azwi": {"tenantId": "native-tenant"}}});
    (pod, lookup, settings)
}

fn as_refs(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fn evaluate(
    pod: &Value,
    lookup: &InMemoryLookup,
    settings: &Value,
) -> (
    kubewarden_policy_sdk::response::ValidationResponse,
    InMemoryLookup,
) {
    let mut lookup = lookup.clone();
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
    let settings = parse_settings(settings.clone()).expect("generated settings are valid");
    let answer = evaluate_request(request, &settings, &mut lookup);
    (answer.into_response().expect("the answer is JSON"), lookup)
}

// ------------------------------------------------------------------ the oracle

/// The precedence rule written as plainly as possible, independent of src/resolve.rs.
fn oracle(case: &Case, provider: &str, suffix: &str) -> Option<String> {
    let key = format!("cwii.dev/{provider}-{suffix}");
    let explicit = |raw: &str| -> Option<String> {
        let t = raw.trim();
        match suffix {
            "inject" | "verify" | "verify-enforce" => {
                if t.eq_ignore_ascii_case("true") {
                    Some("true".into())
                } else if t.eq_ignore_ascii_case("false") {
                    Some("false".into())
                } else {
                    None
                }
            }
            "token-expiration" => t.parse::<i64>().ok().map(|n| n.to_string()),
            "skip-containers" => {
                let names: Vec<&str> = t
                    .split([',', ';'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                (!names.is_empty()).then(|| names.join(","))
            }
            "delivery" => ["downward-api", "init-container", "config-map"]
                .into_iter()
                .find(|m| m.eq_ignore_ascii_case(t))
                .map(str::to_string),
            _ => (!t.is_empty()).then(|| t.to_string()),
        }
    };
    // pod, Deployment (top) before ReplicaSet, ServiceAccount, Namespace; on each level the
    // cwii.dev key, then (drop-in mode) a webhook key read on that level.
    for i in [0usize, 1, 2, 3, 4] {
        if let Some(v) = case.levels[i].get(&key).and_then(|raw| explicit(raw)) {
            return Some(v);
        }
        if !case.native || suffix == "inject" {
            continue;
        }
        for (native, p, s, levels, parse) in NATIVE {
            if p != provider || s != suffix || !levels.contains(&i) {
                continue;
            }
            if let Some(v) = case.levels[i]
                .get(native)
                .and_then(|raw| native_explicit(raw, parse))
            {
                return Some(v);
            }
        }
    }
    if suffix == "inject" && native_layout(case, provider) {
        return Some("true".into());
    }
    case.defaults.get(&key).and_then(|raw| explicit(raw))
}

fn native_explicit(raw: &str, parse: NativeParse) -> Option<String> {
    match parse {
        NativeParse::Text => (!raw.trim().is_empty()).then(|| raw.trim().to_string()),
        NativeParse::GoInt => {
            let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| raw.strip_prefix('+').unwrap_or(raw).parse::<i64>().ok())
                .flatten()
                .map(|n| n.to_string())
        }
        NativeParse::Semicolons => {
            let names: Vec<&str> = raw
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            (!names.is_empty()).then(|| names.join(","))
        }
        NativeParse::Csv => Some(
            raw.lines()
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string(),
        ),
    }
}

/// Whether the provider gets its webhook's layout: drop-in mode and the webhook's signal
/// (azwi: the pod label exactly `true`; EKS: a role on the ServiceAccount, no skip label).
fn native_layout(case: &Case, provider: &str) -> bool {
    case.native
        && match provider {
            "az" => case.labels.get(AZWI_LABEL).map(String::as_str) == Some("true"),
            "aws" => {
                !case.labels.contains_key(EKS_SKIP_LABEL)
                    && case.levels[3]
                        .get("eks.amazonaws.com/role-arn")
                        .is_some_and(|v| !v.trim().is_empty())
            }
            _ => false,
        }
}

fn skip_list(case: &Case, provider: &str) -> Vec<String> {
    oracle(case, provider, "skip-containers")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ invariant helpers

fn token_mount_path(p: &str) -> String {
    format!("{ROOT}/{p}")
}

fn owned_paths() -> Vec<String> {
    let mut paths: Vec<String> = PROVIDERS.iter().map(|p| token_mount_path(p)).collect();
    paths.push(format!("{ROOT}/gcp-creds"));
    paths.extend(NATIVE_PATHS.iter().map(|p| p.to_string()));
    paths
}

/// The webhooks' volumes (prefixes) and mount paths.
const NATIVE_VOLUMES: [&str; 2] = ["azure-workload-identity-reserved-", "aws-iam-token"];
const NATIVE_PATHS: [&str; 2] = [
    "/var/run/secrets/azure/wi",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
];

const INJECTED_ENV: [&str; 12] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CWII_GCP_CREDS_JSON",
];

/// Removes what the policy owns so that input and output can be compared.
fn strip_owned(pod: &Value, input: &Value) -> Value {
    let mut pod = pod.clone();
    if let Some(a) = pod["metadata"]["annotations"].as_object_mut() {
        a.remove("cwii.dev/injected");
        a.remove("cwii.dev/gcp-credentials");
    }
    let spec = pod["spec"].as_object_mut().unwrap();
    if let Some(v) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        v.retain(|v| {
            let name = v["name"].as_str().unwrap_or("");
            !(name.starts_with("cwii-") || NATIVE_VOLUMES.iter().any(|n| name.starts_with(n)))
        });
    }
    if let Some(v) = spec.get_mut("initContainers").and_then(Value::as_array_mut) {
        v.retain(|c| !c["name"].as_str().unwrap_or("").starts_with("cwii-"));
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let name = c["name"].clone();
            let before = input["spec"][list]
                .as_array()
                .and_then(|l| l.iter().find(|x| x["name"] == name))
                .cloned()
                .unwrap_or(Value::Null);
            let had_env: BTreeSet<String> = before["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect();
            let c = c.as_object_mut().unwrap();
            if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                env.retain(|e| {
                    let n = e["name"].as_str().unwrap_or("");
                    had_env.contains(n) || !INJECTED_ENV.contains(&n)
                });
            }
            if let Some(m) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                m.retain(|m| {
                    let p = m["mountPath"].as_str().unwrap_or("").trim_end_matches('/');
                    !owned_paths().iter().any(|o| o == p)
                });
            }
        }
    }
    drop_empty_lists(pod)
}

/// Both sides of the comparison drop the lists that stripping left empty.
fn drop_empty_lists(mut pod: Value) -> Value {
    let empty = |v: Option<&Value>| v.is_some_and(|v| v.as_array().is_some_and(Vec::is_empty));
    let spec = pod["spec"].as_object_mut().unwrap();
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let c = c.as_object_mut().unwrap();
            for field in ["env", "volumeMounts"] {
                if empty(c.get(field)) {
                    c.remove(field);
                }
            }
        }
    }
    for list in ["volumes", "initContainers"] {
        if empty(spec.get(list)) {
            spec.remove(list);
        }
    }
    pod
}

fn strip_owned_input(input: &Value) -> Value {
    // The input's own cwii-* objects and mounts at owned paths are also the policy's.
    let mut i = input.clone();
    let spec = i["spec"].as_object_mut().unwrap();
    if let Some(v) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        v.retain(|v| {
            let name = v["name"].as_str().unwrap_or("");
            !(name.starts_with("cwii-") || NATIVE_VOLUMES.iter().any(|n| name.starts_with(n)))
        });
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let c = c.as_object_mut().unwrap();
            if let Some(m) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                m.retain(|m| {
                    let p = m["mountPath"].as_str().unwrap_or("").trim_end_matches('/');
                    !owned_paths().iter().any(|o| o == p)
                });
            }
        }
    }
    drop_empty_lists(i)
}

fn check_valid_pod(pod: &Value) -> Result<(), TestCaseError> {
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["name"].as_str().unwrap_or(""))
        .collect();
    let unique: BTreeSet<&&str> = volumes.iter().collect();
    prop_assert_eq!(
        unique.len(),
        volumes.len(),
        "duplicate volume names {:?}",
        volumes
    );
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        if let Some(sources) = v["projected"]["sources"].as_array() {
            for s in sources {
                prop_assert!(
                    s["serviceAccountToken"]["expirationSeconds"]
                        .as_i64()
                        .unwrap_or(0)
                        >= 600
                );
            }
        }
    }
    for list in ["containers", "initContainers"] {
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            let paths: Vec<&str> = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["mountPath"].as_str().unwrap_or("").trim_end_matches('/'))
                .collect();
            prop_assert_eq!(
                paths.iter().collect::<BTreeSet<_>>().len(),
                paths.len(),
                "duplicate mount paths in {}",
                c["name"]
            );
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                prop_assert!(
                    volumes.contains(&m["name"].as_str().unwrap_or("")),
                    "mount of a missing volume {}",
                    m
                );
            }
            let env: Vec<&str> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["name"].as_str().unwrap_or(""))
                .collect();
            prop_assert_eq!(
                env.iter().collect::<BTreeSet<_>>().len(),
                env.len(),
                "duplicate env in {}",
                c["name"]
            );
        }
    }
    Ok(())
}

/// Every container the policy added (absent from the input, or replaced): pulled only when
/// missing, hardened, and no command that could print a credential into the log.
fn check_added_containers(pod: &Value, input: &Value) -> Result<(), TestCaseError> {
    for list in ["containers", "initContainers"] {
        let before: Vec<&Value> = input["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for c in pod["spec"][list].as_array().into_iter().flatten() {
            if before.contains(&c) {
                continue;
            }
            let name = c["name"].as_str().unwrap_or("");
            if !name.starts_with("cwii-") {
                continue;
            }
            prop_assert_eq!(&c["imagePullPolicy"], "IfNotPresent", "{}", name);
            let security = &c["securityContext"];
            prop_assert_eq!(&security["allowPrivilegeEscalation"], false, "{}", name);
            prop_assert_eq!(
                &security["capabilities"]["drop"],
                &json!(["ALL"]),
                "{}",
                name
            );
            if name == "cwii-gcp-creds-writer" {
                prop_assert_eq!(&security["readOnlyRootFilesystem"], true);
            }
            for part in c["command"].as_array().into_iter().flatten() {
                let part = part.as_str().unwrap_or("");
                prop_assert!(
                    !may_print_credential(part),
                    "{} may print a credential: {}",
                    name,
                    part
                );
            }
        }
    }
    Ok(())
}

fn env_value<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)
}

// ------------------------------------------------------------------ the properties

/// How the generated cases came out, so the test fails when the generators stop reaching
/// the interesting paths (every case denied, or one provider never injected).
#[derive(Default)]
struct Coverage {
    cases: AtomicUsize,
    denied: AtomicUsize,
    mutated: AtomicUsize,
    unchanged: AtomicUsize,
    injected: [AtomicUsize; 3],
    /// Providers injected in a webhook's layout (azwi, EKS).
    native: AtomicUsize,
    verify: AtomicUsize,
}

#[test]
fn spec_5_holds_for_generated_pods() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let coverage = Coverage::default();
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(failure) = runner.run(&case(), |case| check_case(&case, &coverage)) {
        panic!("{failure}");
    }
    let count = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let total = count(&coverage.cases);
    println!(
        "{total} cases: {} mutated, {} unchanged, {} denied; injected gcp {}, aws {}, az {}; in a webhook's layout {}; with a verify container {}",
        count(&coverage.mutated), count(&coverage.unchanged), count(&coverage.denied),
        count(&coverage.injected[0]), count(&coverage.injected[1]), count(&coverage.injected[2]),
        count(&coverage.native), count(&coverage.verify),
    );
    // Loose floors (a few percent): proptest's shrinking and small counts stay well above them.
    let floor = total / 25;
    assert!(
        count(&coverage.mutated) > total / 5,
        "too few mutated cases"
    );
    assert!(
        count(&coverage.denied) > 0 || total < 200,
        "no mount-path clash was generated"
    );
    for (index, provider) in PROVIDERS.iter().enumerate() {
        assert!(
            count(&coverage.injected[index]) > floor,
            "{provider} injected too rarely"
        );
    }
    assert!(
        count(&coverage.verify) > floor,
        "verify containers generated too rarely"
    );
    assert!(
        count(&coverage.native) > total / 100,
        "webhook layouts generated too rarely"
    );
}

fn check_case(case: &Case, coverage: &Coverage) -> Result<(), TestCaseError> {
    coverage.cases.fetch_add(1, Ordering::Relaxed);
    let (input, lookup, settings) = build(case);
    let (response, used) = evaluate(&input, &lookup, &settings);

    // 1. No panic (we got here); the only denial possible here is a mount-path clash.
    if !response.accepted {
        let message = response.message.clone().unwrap_or_default();
        prop_assert!(
            message.contains("already mounts volume"),
            "unexpected denial {}",
            message
        );
        coverage.denied.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    prop_assert!(
        used.distinct_calls() == used.calls.len(),
        "an object was fetched twice"
    );
    let counter = if response.mutated_object.is_some() {
        &coverage.mutated
    } else {
        &coverage.unchanged
    };
    counter.fetch_add(1, Ordering::Relaxed);
    // A mutation is reported exactly when the pod changed (the policy tracks edits itself).
    if let Some(mutated) = &response.mutated_object {
        prop_assert!(*mutated != input, "mutated_object equals the input pod");
    }
    let output = response
        .mutated_object
        .clone()
        .unwrap_or_else(|| input.clone());

    // 2. Idempotent.
    let (again, _) = evaluate(&output, &lookup, &settings);
    prop_assert!(again.accepted, "second run denied: {:?}", again.message);
    prop_assert!(again.mutated_object.is_none(), "second run mutated");

    // 3. Everything the policy does not own is unchanged.
    prop_assert_eq!(strip_owned(&output, &input), strip_owned_input(&input));

    // 6. The output is a valid pod, and what the policy added is hardened.
    check_valid_pod(&output)?;
    check_added_containers(&output, &input)?;

    // 4 and 5. Per provider: injected exactly when the oracle says so, everywhere it should be.
    let marker: BTreeSet<String> = output["metadata"]["annotations"]["cwii.dev/injected"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for (index, provider) in PROVIDERS.iter().enumerate() {
        let enabled = !case.disabled[index];
        let inject = oracle(case, provider, "inject").as_deref() == Some("true");
        let required_ok = match *provider {
            "az" => {
                oracle(case, "az", "client-id").is_some()
                    && oracle(case, "az", "tenant-id").is_some()
            }
            "aws" => oracle(case, "aws", "role-arn").is_some(),
            _ => oracle(case, "gcp", "audience").is_some(),
        };
        if native_layout(case, provider) {
            // The webhook's layout: its volume, no marker (the e2e cases check the pod).
            let prefix = if *provider == "az" {
                NATIVE_VOLUMES[0]
            } else {
                NATIVE_VOLUMES[1]
            };
            let has_volume = output["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"].as_str().is_some_and(|n| n.starts_with(prefix)));
            prop_assert_eq!(
                has_volume,
                enabled && inject,
                "{} in the webhook's layout?",
                provider
            );
            prop_assert!(
                !marker.contains(*provider),
                "no marker for a webhook's layout"
            );
            if enabled && inject {
                coverage.native.fetch_add(1, Ordering::Relaxed);
                coverage.injected[index].fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let expected = enabled && inject && required_ok;
        prop_assert_eq!(
            marker.contains(*provider),
            expected,
            "provider {} injected?",
            provider
        );
        if !expected {
            continue;
        }
        coverage.injected[index].fetch_add(1, Ordering::Relaxed);
        let token = output["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == format!("cwii-{provider}-token"))
            .cloned()
            .unwrap_or(Value::Null);
        let sat = &token["projected"]["sources"][0]["serviceAccountToken"];
        let audience = oracle(case, provider, "audience").unwrap_or_else(|| match *provider {
            "az" => "api://AzureADTokenExchange".into(),
            "aws" => "sts.amazonaws.com".into(),
            _ => unreachable!("gcp needs an audience to be injected"),
        });
        prop_assert_eq!(sat["audience"].as_str(), Some(audience.as_str()));
        let expiration = oracle(case, provider, "token-expiration")
            .map_or(3600, |s| s.parse::<i64>().unwrap())
            .max(600);
        prop_assert_eq!(sat["expirationSeconds"].as_i64(), Some(expiration));

        let skip = skip_list(case, provider);
        let (probe_env, probe_value) = match *provider {
            "az" => ("AZURE_CLIENT_ID", oracle(case, "az", "client-id")),
            "aws" => ("AWS_ROLE_ARN", oracle(case, "aws", "role-arn")),
            _ => (
                "GOOGLE_APPLICATION_CREDENTIALS",
                Some(format!("{ROOT}/gcp-creds/credentials.json")),
            ),
        };
        for list in ["containers", "initContainers"] {
            for c in output["spec"][list].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                if name.starts_with("cwii-") {
                    continue;
                }
                let before = input["spec"][list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == name)
                    .unwrap();
                let mount = c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| {
                        m["mountPath"].as_str().map(|p| p.trim_end_matches('/'))
                            == Some(token_mount_path(provider).as_str())
                    });
                if skip.iter().any(|s| s == name) {
                    let had = before["volumeMounts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|m| {
                            m["mountPath"].as_str().map(|p| p.trim_end_matches('/'))
                                == Some(token_mount_path(provider).as_str())
                        });
                    prop_assert_eq!(
                        mount.is_some(),
                        had,
                        "skipped container {} got a {} mount",
                        name,
                        provider
                    );
                    continue;
                }
                prop_assert_eq!(
                    mount.map(|m| m["name"].clone()),
                    Some(json!(format!("cwii-{provider}-token")))
                );
                let user_defined = env_value(before, probe_env).is_some();
                let got = env_value(c, probe_env);
                if user_defined {
                    prop_assert_eq!(got, env_value(before, probe_env), "user env changed");
                } else {
                    prop_assert_eq!(
                        got.and_then(|e| e["value"].as_str()),
                        probe_value.as_deref(),
                        "{} in {}",
                        probe_env,
                        name
                    );
                }
            }
        }
        let verify = output["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == format!("cwii-{provider}-verify"));
        prop_assert_eq!(
            verify,
            oracle(case, provider, "verify").as_deref() == Some("true")
        );
        if verify {
            coverage.verify.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
