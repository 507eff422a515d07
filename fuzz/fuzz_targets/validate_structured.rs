//! Structured requests: a pod assembled from fuzzer-chosen parts (annotations at every
//! level with any values, containers, env, mounts, volumes, settings) so the fuzzer spends
//! its time past the JSON parser. Checks no panic, and idempotency of accepted mutations.
#![no_main]
use cwii_kubewarden::admission::evaluate;
use cwii_kubewarden::lookup::InMemoryLookup;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KEYS: [&str; 16] = [
    "cwii.dev/az-inject", "cwii.dev/az-client-id", "cwii.dev/az-tenant-id", "cwii.dev/az-verify",
    "cwii.dev/aws-inject", "cwii.dev/aws-role-arn", "cwii.dev/aws-region", "cwii.dev/aws-skip-containers",
    "cwii.dev/gcp-inject", "cwii.dev/gcp-audience", "cwii.dev/gcp-delivery", "cwii.dev/gcp-verify",
    "cwii.dev/az-token-expiration", "cwii.dev/injected", "azure.workload.identity/client-id",
    "eks.amazonaws.com/role-arn",
];
const VALUES: [&str; 8] = ["true", "false", "init-container", "app", "60", "", "x", "config-map"];
const PATHS: [&str; 4] = ["/data", "/var/run/secrets/cwii.dev/az", "/var/run/secrets/cwii.dev/gcp-creds", "/"];
const NAMES: [&str; 5] = ["app", "cwii-az-token", "cwii-gcp-creds-writer", "cwii-aws-verify", "side"];

#[derive(Arbitrary, Debug)]
struct Annotation {
    key: u8,
    value: Result<u8, String>,
}

#[derive(Arbitrary, Debug)]
struct Container {
    name: u8,
    env: Vec<(u8, bool)>,
    mounts: Vec<(u8, u8)>,
    odd_shape: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pod: Vec<Annotation>,
    service_account: Vec<Annotation>,
    namespace: Vec<Annotation>,
    containers: Vec<Container>,
    inits: Vec<Container>,
    volumes: Vec<(u8, bool)>,
    native: bool,
    mount_root: Option<String>,
    operation: u8,
}

fn annotations(list: &[Annotation]) -> serde_json::Map<String, Value> {
    list.iter()
        .map(|a| {
            let value = match &a.value {
                Ok(i) => VALUES[*i as usize % VALUES.len()].to_string(),
                Err(s) => s.clone(),
            };
            (KEYS[a.key as usize % KEYS.len()].to_string(), Value::String(value))
        })
        .collect()
}

fn container(c: &Container) -> Value {
    let mut v = json!({
        "name": NAMES[c.name as usize % NAMES.len()],
        "env": c.env.iter().map(|(n, from)| if *from {
            json!({"name": format!("AZURE_CLIENT_ID{}", n % 2), "valueFrom": {}})
        } else {
            json!({"name": "AWS_REGION", "value": n.to_string()})
        }).collect::<Vec<_>>(),
        "volumeMounts": c.mounts.iter().map(|(v, p)| json!({
            "name": NAMES[*v as usize % NAMES.len()], "mountPath": PATHS[*p as usize % PATHS.len()]
        })).collect::<Vec<_>>(),
    });
    match c.odd_shape {
        Some(0) => v["env"] = json!("not a list"),
        Some(1) => v["volumeMounts"] = json!({"a": 1}),
        Some(2) => v = json!(42),
        _ => {}
    }
    v
}

fn payload(input: &Input) -> Value {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps", "annotations": annotations(&input.pod)},
        "spec": {
            "containers": input.containers.iter().map(container).collect::<Vec<_>>(),
            "initContainers": input.inits.iter().map(container).collect::<Vec<_>>(),
            "volumes": input.volumes.iter().map(|(n, host)| if *host {
                json!({"name": NAMES[*n as usize % NAMES.len()], "hostPath": {"path": "/"}})
            } else {
                json!({"name": NAMES[*n as usize % NAMES.len()], "emptyDir": {}})
            }).collect::<Vec<_>>(),
        }
    });
    let mut settings = json!({"nativeAnnotations": input.native, "defaults": {"cwii.dev/gcp-audience": "//a"}});
    if let Some(root) = &input.mount_root {
        settings["mountRoot"] = json!(root);
    }
    json!({
        "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": if input.operation % 8 == 0 { "UPDATE" } else { "CREATE" },
            "namespace": "apps", "object": pod
        },
        "settings": settings
    })
}

fuzz_target!(|input: Input| {
    let pairs = |list: &[Annotation]| -> Vec<(String, String)> {
        annotations(list)
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
            .collect()
    };
    let (sa, ns) = (pairs(&input.service_account), pairs(&input.namespace));
    let cluster = || {
        let sa: Vec<(&str, &str)> = sa.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ns: Vec<(&str, &str)> = ns.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        InMemoryLookup::new()
            .with("ServiceAccount", Some("apps"), "default", &sa, &[])
            .with("Namespace", None, "apps", &ns, &[])
    };
    let mut request = payload(&input);
    let bytes = serde_json::to_vec(&request).unwrap();
    let response = evaluate(&bytes, &mut cluster());
    if let (true, Some(mutated)) = (response.accepted, response.mutated_object) {
        request["request"]["object"] = mutated;
        let again = evaluate(&serde_json::to_vec(&request).unwrap(), &mut cluster());
        assert!(again.accepted, "second run denied: {:?}", again.message);
        assert!(again.mutated_object.is_none(), "second run mutated");
    }
});
