//! The benchmark floor: the least work a mutating Kubewarden policy can do.
//!
//! `validate` parses the `ValidationRequest` (as every policy must) and hands the request
//! object back unchanged as `mutated_object`, so the host still computes a (empty) patch.
//! What `kwrun bench` measures on it is the cost no mutating policy can go under.

use kubewarden_policy_sdk::request::ValidationRequest;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::prelude::*;
use kubewarden_policy_sdk::{mutate_request, protocol_version_guest};

#[no_mangle]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function("protocol_version", protocol_version_guest);
}

fn validate(payload: &[u8]) -> CallResult {
    let validation_request: ValidationRequest<serde_json::Value> = ValidationRequest::new(payload)?;
    mutate_request(validation_request.request.object)
}

/// Accepts any settings except an object with a `reject` key, whose value becomes the
/// message: a switch for tests of how the host reports invalid settings.
fn validate_settings(payload: &[u8]) -> CallResult {
    let settings: serde_json::Value = serde_json::from_slice(payload)?;
    let rejection = settings.get("reject").map(|reason| match reason {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    let response = SettingsValidationResponse {
        valid: rejection.is_none(),
        message: rejection,
    };
    Ok(serde_json::to_vec(&response)?)
}
