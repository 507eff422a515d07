//! The benchmark floors: the least work a mutating Kubewarden policy can do for an answer.
//!
//! `validate` parses the `ValidationRequest` (as every policy must) and answers without
//! looking at the pod. Its settings choose the answer:
//!
//! - no `mutatedObject` key (e.g. `{}`): the **echo floor**. The request object comes back
//!   unchanged as `mutated_object`, so the host still computes an (empty) patch.
//! - `"mutatedObject": {...}`: that object is the `mutated_object`. Given the pod a policy
//!   answered with, the floor gives the same answer, so the host does the same work for it
//!   (parsing the answer, JSON patch diff, base64, AdmissionResponse) as for the policy.
//!   The object is passed through as JSON text, never built into a tree: carrying the
//!   answer costs the floor a scan of its settings and a copy, so what it measures is close
//!   to the cost of transporting that answer alone.
//! - `"mutatedObject": null`: accepted without `mutated_object`, the answer of a policy that
//!   leaves the pod alone.
//!
//! `auditAnnotations` (a map of strings) and `warnings` (a list of strings) are copied into
//! the answer too, and `accepted: false` with `message` and `code` makes it a rejection, so
//! that any answer of a policy can be given back. The answer is written with the field
//! names and order of the SDK's `ValidationResponse`.
//!
//! `lookups` makes the floor pay a policy's host-side lookup cost as well: a list of
//! `{"request": <get_resource payload>, "fails": bool}`, each sent as it is to
//! `kubewarden/kubernetes/get_resource` before answering. The answers are not read; an
//! outcome other than the one announced (success, or an error when `fails`) fails the
//! evaluation, so a floor whose lookups drift from the recorded session cannot pass for one
//! that made them.

use std::collections::HashMap;

use kubewarden_policy_sdk::protocol_version_guest;
use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

#[no_mangle]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version_guest);
}

/// The answer the floor gives, from its settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    accepted: Option<bool>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<u16>,
    /// `None`: the key is absent (echo); `Some(None)`: `null` (no mutation).
    #[serde(default, deserialize_with = "present")]
    mutated_object: Option<Option<Box<RawValue>>>,
    #[serde(default)]
    audit_annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    #[serde(default)]
    lookups: Vec<Lookup>,
}

/// A host lookup the floor makes, and whether the host is expected to refuse it.
#[derive(Debug, Deserialize)]
struct Lookup {
    request: Box<RawValue>,
    #[serde(default)]
    fails: bool,
}

/// Tells a `null` value apart from an absent key.
fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<Box<RawValue>>>, D::Error> {
    Option::<Box<RawValue>>::deserialize(deserializer).map(Some)
}

/// The SDK's `ValidationResponse`, with the mutated object as JSON text.
#[derive(Serialize)]
struct RawValidationResponse {
    accepted: bool,
    message: Option<String>,
    code: Option<u16>,
    mutated_object: Option<Box<RawValue>>,
    audit_annotations: Option<HashMap<String, String>>,
    warnings: Option<Vec<String>>,
}

fn validate(payload: &[u8]) -> CallResult {
    let request: ValidationRequest<Answer> = ValidationRequest::new(payload)?;
    let answer = request.settings;
    for lookup in &answer.lookups {
        let outcome = host_call(
            "kubewarden",
            "kubernetes",
            "get_resource",
            lookup.request.get().as_bytes(),
        );
        if outcome.is_err() != lookup.fails {
            return Err(format!(
                "floor: lookup {} {}: {outcome:?}",
                lookup.request.get(),
                if lookup.fails {
                    "was expected to fail"
                } else {
                    "failed"
                }
            )
            .into());
        }
    }
    let accepted = answer.accepted.unwrap_or(true);
    let Some(given) = answer.mutated_object else {
        // The echo floor: what the SDK's `mutate_request` writes for the request's object.
        return Ok(serde_json::to_vec(&ValidationResponse {
            accepted,
            message: answer.message,
            code: answer.code,
            mutated_object: Some(request.request.object),
            audit_annotations: answer.audit_annotations,
            warnings: answer.warnings,
        })?);
    };
    Ok(serde_json::to_vec(&RawValidationResponse {
        accepted,
        message: answer.message,
        code: answer.code,
        mutated_object: given,
        audit_annotations: answer.audit_annotations,
        warnings: answer.warnings,
    })?)
}

/// Accepts settings that describe an answer (see the module documentation), except an
/// object with a `reject` key, whose value becomes the message: a switch for tests of how
/// the host reports invalid settings.
fn validate_settings(payload: &[u8]) -> CallResult {
    let settings: Value = serde_json::from_slice(payload)?;
    let rejection = match settings.get("reject") {
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
        None => check_answer(payload).err(),
    };
    let response = SettingsValidationResponse {
        valid: rejection.is_none(),
        message: rejection,
    };
    Ok(serde_json::to_vec(&response)?)
}

fn check_answer(settings: &[u8]) -> Result<(), String> {
    let answer: Option<Answer> = serde_json::from_slice(settings).map_err(|e| e.to_string())?;
    let Some(answer) = answer else {
        return Ok(());
    };
    match answer.mutated_object {
        Some(Some(object)) if !object.get().starts_with('{') => {
            Err("mutatedObject must be an object or null".to_string())
        }
        _ => Ok(()),
    }
}
