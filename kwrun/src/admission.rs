//! Kubernetes admission types at the edges of an evaluation: the AdmissionRequest read
//! from `--request-path`, the policy's `ValidationResponse`, and the `AdmissionResponse`
//! kwctl prints.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An AdmissionRequest, kept as JSON so that nothing the policy might read is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest(Value);

impl AdmissionRequest {
    /// Accepts a bare AdmissionRequest, or any object wrapping one under `request` (such as
    /// an AdmissionReview), like kwctl.
    pub fn from_json(document: Value) -> Result<Self> {
        let Value::Object(mut top) = document else {
            bail!("expected a JSON object holding an AdmissionRequest");
        };
        if !looks_like_admission_request(&top) {
            match top.remove("request") {
                Some(Value::Object(inner)) if looks_like_admission_request(&inner) => {
                    top = inner;
                }
                Some(_) => bail!("`request` does not hold an AdmissionRequest (an object with `uid` and `kind`)"),
                None => bail!(
                    "not an AdmissionRequest: expected an object with `uid` and `kind` (and `object`, `operation`, …), or one wrapping it under `request`"
                ),
            }
        }
        Ok(Self(Value::Object(top)))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read request file {}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("request file {} is not valid JSON", path.display()))?;
        Self::from_json(document)
            .with_context(|| format!("invalid request file {}", path.display()))
    }

    pub fn uid(&self) -> &str {
        self.0
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The object under admission (`null` when the request has none, e.g. DELETE).
    pub fn object(&self) -> &Value {
        self.0.get("object").unwrap_or(&Value::Null)
    }

    pub fn as_json(&self) -> &Value {
        &self.0
    }
}

fn looks_like_admission_request(object: &serde_json::Map<String, Value>) -> bool {
    object.get("uid").is_some_and(Value::is_string)
        && object.get("kind").is_some_and(Value::is_object)
}

/// The payload of the guest's `validate` export.
pub fn validate_payload(request: &AdmissionRequest, settings: &Value) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct ValidationRequest<'a> {
        request: &'a Value,
        settings: &'a Value,
    }
    serde_json::to_vec(&ValidationRequest {
        request: request.as_json(),
        settings,
    })
    .context("cannot serialize the validation request")
}

/// What the guest's `validate` returns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValidationResponse {
    pub accepted: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub mutated_object: Option<Value>,
    #[serde(default)]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

impl ValidationResponse {
    pub fn from_guest(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).with_context(|| {
            format!(
                "the policy's validate returned an invalid ValidationResponse: {}",
                String::from_utf8_lossy(bytes)
            )
        })
    }
}

/// What the guest's `validate_settings` returns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingsValidationResponse {
    pub valid: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// kwctl's AdmissionResponse. Field order is the output's key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of the RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AdmissionStatus>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdmissionStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl AdmissionResponse {
    /// The single line `kwrun run` prints.
    pub fn to_json_line(&self) -> Result<String> {
        serde_json::to_string(self).context("cannot serialize the AdmissionResponse")
    }
}

/// Converts the policy's answer into the AdmissionResponse the host gives Kubernetes.
///
/// A mutation from a policy that may not mutate becomes a rejection, as in the policy
/// server (`policy_id` names the policy in that message).
pub fn admission_response(
    request: &AdmissionRequest,
    validation: ValidationResponse,
    allowed_to_mutate: bool,
    policy_id: &str,
) -> Result<AdmissionResponse> {
    let mut response = AdmissionResponse {
        uid: request.uid().to_string(),
        allowed: validation.accepted,
        patch_type: None,
        patch: None,
        status: None,
        audit_annotations: validation.audit_annotations,
        warnings: validation.warnings,
    };
    if !validation.accepted {
        response.status = Some(AdmissionStatus {
            message: validation.message,
            code: validation.code,
        });
        return Ok(response);
    }
    let Some(mutated_object) = validation.mutated_object else {
        return Ok(response);
    };
    if !allowed_to_mutate {
        response.allowed = false;
        response.status = Some(AdmissionStatus {
            message: Some(format!(
                "Request rejected by policy {policy_id}. The policy attempted to mutate the request, but it is currently configured to not allow mutations."
            )),
            code: None,
        });
        return Ok(response);
    }
    let patch = json_patch::diff(request.object(), &mutated_object);
    let patch = serde_json::to_vec(&patch).context("cannot serialize the JSON patch")?;
    response.patch_type = Some("JSONPatch".to_string());
    response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_request() -> AdmissionRequest {
        AdmissionRequest::from_json(
            serde_json::from_str(include_str!("../tests/fixtures/request.json")).unwrap(),
        )
        .unwrap()
    }

    fn accepted() -> ValidationResponse {
        ValidationResponse {
            accepted: true,
            message: None,
            code: None,
            mutated_object: None,
            audit_annotations: None,
            warnings: None,
        }
    }

    #[test]
    fn accepts_bare_and_wrapped_requests() {
        let bare = sample_request();
        assert_eq!(bare.uid(), "1299d386-525b-4032-98ae-1949f69f9cfc");
        let wrapped = AdmissionRequest::from_json(json!({"request": bare.as_json()})).unwrap();
        assert_eq!(wrapped, bare);
        let review = AdmissionRequest::from_json(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": bare.as_json()}),
        )
        .unwrap();
        assert_eq!(review, bare);
    }

    #[test]
    fn rejects_what_is_not_a_request() {
        for document in [
            json!([1, 2]),
            json!({"apiVersion": "v1", "kind": "Pod"}),
            json!({"request": {"name": "x"}}),
            json!({"request": "x"}),
        ] {
            assert!(
                AdmissionRequest::from_json(document.clone()).is_err(),
                "{document}"
            );
        }
    }

    #[test]
    fn accepted_without_mutation_has_exactly_the_kwctl_keys() {
        let response = admission_response(&sample_request(), accepted(), true, "p").unwrap();
        assert_eq!(
            response.to_json_line().unwrap(),
            r#"{"uid":"1299d386-525b-4032-98ae-1949f69f9cfc","allowed":true,"auditAnnotations":null,"warnings":null}"#
        );
    }

    #[test]
    fn a_mutation_becomes_a_base64_json_patch_in_key_order() {
        let request = sample_request();
        let mut pod = request.object().clone();
        pod["metadata"]["annotations"]["probe"] = json!("value");
        let validation = ValidationResponse {
            mutated_object: Some(pod),
            warnings: Some(vec!["careful".into()]),
            ..accepted()
        };
        let line = admission_response(&request, validation, true, "p")
            .unwrap()
            .to_json_line()
            .unwrap();
        let expected_patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/metadata/annotations/probe","value":"value"}]"#);
        assert_eq!(
            line,
            format!(
                r#"{{"uid":"1299d386-525b-4032-98ae-1949f69f9cfc","allowed":true,"patchType":"JSONPatch","patch":"{expected_patch}","auditAnnotations":null,"warnings":["careful"]}}"#
            )
        );
    }

    #[test]
    fn an_unchanged_mutated_object_is_an_empty_patch() {
        let request = sample_request();
        let validation = ValidationResponse {
            mutated_object: Some(request.object().clone()),
            ..accepted()
        };
        let response = admission_response(&request, validation, true, "p").unwrap();
        assert_eq!(response.patch.as_deref(), Some("W10=")); // "[]"
    }

    #[test]
    fn a_rejection_carries_status_and_omits_a_missing_code() {
        let validation = ValidationResponse {
            accepted: false,
            message: Some("no".into()),
            audit_annotations: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            // Ignored: a rejection has no patch.
            mutated_object: Some(json!({})),
            ..accepted()
        };
        let line = admission_response(&sample_request(), validation.clone(), true, "p")
            .unwrap()
            .to_json_line()
            .unwrap();
        assert_eq!(
            line,
            r#"{"uid":"1299d386-525b-4032-98ae-1949f69f9cfc","allowed":false,"status":{"message":"no"},"auditAnnotations":{"k":"v"},"warnings":null}"#
        );
        let with_code = ValidationResponse {
            code: Some(403),
            ..validation
        };
        let line = admission_response(&sample_request(), with_code, true, "p")
            .unwrap()
            .to_json_line()
            .unwrap();
        assert!(
            line.contains(r#""status":{"message":"no","code":403}"#),
            "{line}"
        );
    }

    #[test]
    fn a_mutation_from_a_non_mutating_policy_is_rejected() {
        let request = sample_request();
        let validation = ValidationResponse {
            mutated_object: Some(json!({"changed": true})),
            ..accepted()
        };
        let response = admission_response(&request, validation, false, "probe").unwrap();
        assert!(!response.allowed);
        assert_eq!(response.patch, None);
        assert_eq!(response.patch_type, None);
        assert_eq!(
            response.status.unwrap().message.unwrap(),
            "Request rejected by policy probe. The policy attempted to mutate the request, but it is currently configured to not allow mutations."
        );
    }

    #[test]
    fn validate_payload_wraps_request_and_settings() {
        let payload = validate_payload(&sample_request(), &json!({"a": 1})).unwrap();
        let value: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["settings"], json!({"a": 1}));
        assert_eq!(
            value["request"]["uid"],
            "1299d386-525b-4032-98ae-1949f69f9cfc"
        );
    }
}
