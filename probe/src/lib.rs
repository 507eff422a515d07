//! Test fixture for `kwrun`: the probe policy the recorded kwctl samples were made with.
//!
//! `validate` looks up `v1/ServiceAccount default` in the request's namespace, then
//! `v1/Namespace <namespace>`, through the SDK's host capability like a real policy, and
//! writes what each lookup returned into the pod annotation `probe`:
//! `sa=<result> ns=<result>`, each rendered with `{:?}` of a
//! `Result<serde_json::Value, String>` holding `metadata.annotations` or the SDK's error
//! text. The host's error texts thereby become visible in the patch.

use kubewarden_policy_sdk::host_capabilities::kubernetes::{get_resource, GetResourceRequest};
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::prelude::*;
use kubewarden_policy_sdk::{mutate_request, protocol_version_guest};
use serde_json::Value;
use std::collections::BTreeSet;

/// The field masks of both lookups, as the recorded session expects them.
const FIELD_MASKS: [&str; 2] = ["metadata.annotations", "metadata.ownerReferences"];

#[no_mangle]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let validation_request: ValidationRequest<Value> = ValidationRequest::new(payload)?;
    let namespace = validation_request.request.namespace.clone();

    // Fixed order, like the recorded session: ServiceAccount first, then Namespace.
    let service_account = lookup_annotations("ServiceAccount", "default", Some(namespace.clone()));
    let namespace_object = lookup_annotations("Namespace", &namespace, None);
    let probe = format!("sa={service_account:?} ns={namespace_object:?}");

    let mut pod = validation_request.request.object;
    let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err("the request object has no metadata".into());
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(annotations) = annotations.as_object_mut() else {
        return Err("metadata.annotations of the request object is not an object".into());
    };
    annotations.insert("probe".to_string(), Value::String(probe));
    mutate_request(pod)
}

/// Looks one `v1` object up and keeps only its `metadata.annotations` (null when absent).
fn lookup_annotations(kind: &str, name: &str, namespace: Option<String>) -> Result<Value, String> {
    let request = GetResourceRequest {
        api_version: "v1".to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace,
        disable_cache: false,
        field_masks: Some(
            FIELD_MASKS
                .iter()
                .map(|mask| mask.to_string())
                .collect::<BTreeSet<_>>(),
        ),
    };
    get_resource::<Value>(&request)
        .map(|object| {
            object
                .pointer("/metadata/annotations")
                .cloned()
                .unwrap_or(Value::Null)
        })
        .map_err(|error| error.to_string())
}

/// The probe takes no settings; any settings document is accepted.
fn validate_settings(_payload: &[u8]) -> CallResult {
    let response = SettingsValidationResponse {
        valid: true,
        message: None,
    };
    Ok(serde_json::to_vec(&response)?)
}
