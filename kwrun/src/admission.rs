//! Kubernetes admission types at the edges of an evaluation: the AdmissionRequest read
//! from `--request-path`, the policy's `ValidationResponse`, and the `AdmissionResponse`
//! kwctl prints.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An AdmissionRequest as the host hands it to the policy.
///
/// kwctl and the policy server read the request into a typed AdmissionRequest (the
/// `admission/v1` shape) and send the policy that typed value serialized again. So a request
/// lacking a field the type requires (`uid`, `kind`, `resource`, `operation`, `userInfo`) is
/// refused before any evaluation, fields the type does not know are dropped, and `null`
/// optional fields are left out. This keeps the JSON of that round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest(Value);

/// kwctl's message when the request does not fit the AdmissionRequest type.
const NOT_AN_ADMISSION_REQUEST: &str = "cannot build AdmissionRequest object from given input";

impl AdmissionRequest {
    /// Reads an AdmissionRequest, or an AdmissionReview (`"kind": "AdmissionReview"`)
    /// holding one under `request`, with kwctl's rules and error texts.
    pub fn from_json(document: Value) -> Result<Self> {
        let Value::Object(mut top) = document else {
            bail!("Invalid request object");
        };
        let request = if top.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
            top.remove("request")
                .ok_or_else(|| anyhow!("invalid AdmissionReview object"))?
        } else {
            Value::Object(top)
        };
        let typed: typed::AdmissionRequest = serde_json::from_value(request)
            .map_err(|error| anyhow!("{NOT_AN_ADMISSION_REQUEST}: {error}"))?;
        let normalized =
            serde_json::to_value(&typed).context("cannot serialize the AdmissionRequest")?;
        Ok(Self(normalized))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read request file {}", path.display()))?;
        let document: Value = serde_json::from_str(&text)
            .with_context(|| format!("request file {} is not valid JSON", path.display()))?;
        // kwctl's own text first (scripts match on it), then which file it was.
        Self::from_json(document)
            .map_err(|error| anyhow!("{error:#} (request file {})", path.display()))
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

/// kwctl's request types, mirrored: their Rust names appear in serde's messages.
mod typed {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    /// The fields, types and optionality of Kubernetes' `admission/v1` AdmissionRequest as the
    /// Kubewarden host models it. Unknown fields are ignored; `object`, `oldObject` and
    /// `options` are kept as they are.
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct AdmissionRequest {
        uid: String,
        kind: GroupVersionKind,
        resource: GroupVersionResource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_resource: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_kind: Option<GroupVersionKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_resource: Option<GroupVersionResource>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_sub_resource: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        operation: String,
        #[serde(deserialize_with = "user_info")]
        user_info: UserInfo,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        object: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        old_object: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dry_run: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<Value>,
    }

    #[derive(Debug, Deserialize, Serialize)]
    pub(super) struct GroupVersionKind {
        group: String,
        version: String,
        kind: String,
    }

    #[derive(Debug, Deserialize, Serialize)]
    pub(super) struct GroupVersionResource {
        group: String,
        version: String,
        resource: String,
    }

    /// `authentication/v1` UserInfo: every field optional, unknown fields ignored.
    #[derive(Debug, Deserialize, Serialize)]
    pub(super) struct UserInfo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extra: Option<BTreeMap<String, Vec<String>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    }

    /// UserInfo must be a JSON object (a derived struct would also take an array).
    fn user_info<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<UserInfo, D::Error> {
        use serde::de::{Error, Unexpected};
        let value = Value::deserialize(deserializer)?;
        let unexpected = match &value {
            Value::Object(_) => return UserInfo::deserialize(value).map_err(D::Error::custom),
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Unexpected::Unsigned(u),
                (_, Some(i), _) => Unexpected::Signed(i),
                (_, _, f) => Unexpected::Float(f.unwrap_or_default()),
            },
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
        };
        Err(D::Error::invalid_type(unexpected, &"UserInfo"))
    }
}

/// A policy's settings, with their JSON text made once: settings do not change between
/// evaluations, so `bench` does not time serializing them again for each one. (The policy
/// server does, about a microsecond for a policy's usual few hundred bytes; a benchmark
/// floor that carries a whole answer in its settings would otherwise pay for carrying it.)
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    value: Value,
    json: Vec<u8>,
}

impl PolicySettings {
    pub fn new(value: Value) -> Result<Self> {
        let json = serde_json::to_vec(&value).context("cannot serialize the settings")?;
        Ok(Self { value, json })
    }

    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// The payload of the guest's `validate` export, `{"request":…,"settings":…}`: the bytes
/// serde_json writes for that object, with the settings' JSON spliced in.
pub fn validate_payload(request: &AdmissionRequest, settings: &PolicySettings) -> Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(settings.json.len() + 1024);
    payload.extend_from_slice(br#"{"request":"#);
    serde_json::to_writer(&mut payload, request.as_json())
        .context("cannot serialize the validation request")?;
    payload.extend_from_slice(br#","settings":"#);
    payload.extend_from_slice(&settings.json);
    payload.push(b'}');
    Ok(payload)
}

/// What the guest's `validate` returns.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/request.json")).unwrap()
    }

    fn error_of(document: Value) -> String {
        format!("{:#}", AdmissionRequest::from_json(document).unwrap_err())
    }

    #[test]
    fn accepts_a_bare_request_or_an_admission_review() {
        let bare = sample_request();
        assert_eq!(bare.uid(), "1299d386-525b-4032-98ae-1949f69f9cfc");
        let review = AdmissionRequest::from_json(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": fixture()}),
        )
        .unwrap();
        assert_eq!(review, bare);
    }

    #[test]
    fn only_an_admission_review_is_unwrapped() {
        // kwctl reads any other object as the request itself.
        assert_eq!(
            error_of(json!({"request": fixture()})),
            "cannot build AdmissionRequest object from given input: missing field `uid`"
        );
        assert_eq!(
            error_of(json!({"kind": "AdmissionReview"})),
            "invalid AdmissionReview object"
        );
        assert_eq!(
            error_of(json!({"kind": "AdmissionReview", "request": "x"})),
            "cannot build AdmissionRequest object from given input: invalid type: string \"x\", expected struct AdmissionRequest"
        );
        assert_eq!(error_of(json!([1, 2])), "Invalid request object");
    }

    #[test]
    fn the_fields_kwctl_requires_are_required() {
        for field in ["uid", "kind", "resource", "operation", "userInfo"] {
            let mut request = fixture();
            request.as_object_mut().unwrap().remove(field);
            assert_eq!(
                error_of(request),
                format!("cannot build AdmissionRequest object from given input: missing field `{field}`")
            );
        }
        // The first missing field in the type's order is the one named.
        let mut request = fixture();
        for field in ["userInfo", "operation"] {
            request.as_object_mut().unwrap().remove(field);
        }
        assert!(error_of(request).ends_with("missing field `operation`"));
        // Inside kind and resource every member is required too.
        let mut request = fixture();
        request["kind"].as_object_mut().unwrap().remove("group");
        assert!(error_of(request).ends_with("missing field `group`"));
    }

    #[test]
    fn user_info_must_be_an_object_whose_fields_are_optional() {
        for (value, expected) in [
            (json!(null), "invalid type: null, expected UserInfo"),
            (json!([]), "invalid type: sequence, expected UserInfo"),
            (json!(7), "invalid type: integer `7`, expected UserInfo"),
            (
                json!("me"),
                "invalid type: string \"me\", expected UserInfo",
            ),
        ] {
            let mut request = fixture();
            request["userInfo"] = value;
            assert!(error_of(request).ends_with(expected), "{expected}");
        }
        let mut request = fixture();
        request["userInfo"] = json!({});
        assert!(AdmissionRequest::from_json(request).is_ok());
        let mut request = fixture();
        request["userInfo"] = json!({"username": 3});
        assert!(error_of(request).ends_with("invalid type: integer `3`, expected a string"));
    }

    #[test]
    fn the_policy_sees_the_typed_request_again() {
        let mut request = fixture();
        request["somethingNew"] = json!(true);
        request["userInfo"]["future"] = json!("x");
        request["subResource"] = json!(null);
        let typed = AdmissionRequest::from_json(request).unwrap();
        let json = typed.as_json();
        // Unknown fields dropped, null options left out, the rest kept as it was.
        assert!(json.get("somethingNew").is_none());
        assert_eq!(
            json["userInfo"],
            json!({"username": "kubernetes-admin", "groups": ["system:masters"]})
        );
        assert!(json.get("subResource").is_none());
        assert!(json.get("oldObject").is_none(), "oldObject was null");
        assert_eq!(json["object"], fixture()["object"]);
        assert_eq!(json["options"], fixture()["options"]);
        assert_eq!(json["dryRun"], false);
        assert_eq!(json["requestKind"], fixture()["requestKind"]);
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
        let settings = json!({"a": 1, "b": {"c": [true, null, "x\"y"]}});
        let payload = validate_payload(
            &sample_request(),
            &PolicySettings::new(settings.clone()).unwrap(),
        )
        .unwrap();
        let value: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["settings"], settings);
        assert_eq!(
            value["request"]["uid"],
            "1299d386-525b-4032-98ae-1949f69f9cfc"
        );
        // Byte for byte what serializing the whole object gives.
        assert_eq!(
            payload,
            serde_json::to_vec(
                &json!({"request": sample_request().as_json(), "settings": settings})
            )
            .unwrap()
        );
    }
}
