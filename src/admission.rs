//! One evaluation, from the waPC payload to the `ValidationResponse`: filter the request,
//! resolve → plan → mutate, and explain the outcome. Plain Rust, run on the host in tests.

use crate::lookup::{Lookup, OwnerReference};
use crate::mutate;
use crate::plan;
use crate::provider::{Denial, ProviderPlan};
use crate::providers;
use crate::resolve::{self, PodContext};
use crate::settings::Settings;
use crate::warnings::Warnings;
use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The parts of the waPC `validate` payload the policy reads. The SDK's full request type
/// refuses payloads such as `"options": null`; this view only needs what it uses. The
/// settings stay text until [`settings_for`] needs them parsed.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default)]
    request: AdmissionRequest,
    #[serde(default, borrow)]
    settings: Option<&'a RawValue>,
}

thread_local! {
    /// The settings last parsed, by their text. A policy server instance is given the same
    /// settings on every request, so a warm instance parses them once instead of once per
    /// evaluation. (Each wasm instance is single-threaded; host tests get one per thread.)
    static LAST_SETTINGS: RefCell<Option<(Box<str>, Rc<Settings>)>> = const { RefCell::new(None) };
}

/// The settings in `text` (JSON; `null` for none), parsed or taken from the last call's.
fn settings_for(text: &str) -> Result<Rc<Settings>, String> {
    let cached = LAST_SETTINGS.with_borrow(|last| {
        last.as_ref()
            .filter(|(last_text, _)| **last_text == *text)
            .map(|(_, settings)| Rc::clone(settings))
    });
    if let Some(settings) = cached {
        return Ok(settings);
    }
    let settings = Rc::new(Settings::from_slice(text.as_bytes(), providers::all())?);
    LAST_SETTINGS.set(Some((text.into(), Rc::clone(&settings))));
    Ok(settings)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AdmissionRequest {
    pub kind: GroupVersionKind,
    pub operation: String,
    pub namespace: String,
    pub object: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GroupVersionKind {
    pub group: String,
    pub kind: String,
}

/// The `validate` export: never fails, every problem becomes a response.
pub fn evaluate(payload: &[u8], lookup: &mut dyn Lookup) -> ValidationResponse {
    let payload: Payload = match serde_json::from_slice(payload) {
        Ok(payload) => payload,
        Err(e) => {
            return reject(
                Denial {
                    message: format!("cwii: cannot read the admission request: {e}"),
                    code: 400,
                },
                Warnings::default(),
            )
        }
    };
    match settings_for(payload.settings.map_or("null", RawValue::get)) {
        Ok(settings) => evaluate_request(payload.request, &settings, lookup),
        Err(message) => reject(Denial { message, code: 500 }, Warnings::default()),
    }
}

/// Settings validated against every provider's description.
pub fn parse_settings(value: Value) -> Result<Settings, String> {
    Settings::from_value(value, providers::all())
}

/// The `validate_settings` export.
pub fn validate_settings(payload: &[u8]) -> SettingsValidationResponse {
    match Settings::from_slice(payload, providers::all()) {
        Ok(_) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    }
}

pub fn evaluate_request(
    request: AdmissionRequest,
    settings: &Settings,
    lookup: &mut dyn Lookup,
) -> ValidationResponse {
    // Only Pod CREATE is the policy's business; everything else passes untouched.
    if request.kind.kind != "Pod" || !request.kind.group.is_empty() || request.operation != "CREATE"
    {
        return accept(None, Warnings::default(), BTreeMap::new());
    }
    let mut pod = request.object;
    if !pod.is_object() {
        return reject(
            Denial {
                message: "cwii: the request object is not a Pod object".into(),
                code: 400,
            },
            Warnings::default(),
        );
    }
    let mut warnings = Warnings::default();
    let context = pod_context(&pod, &request.namespace);
    let all = providers::all();
    let enabled = match resolve::resolve(&context, settings, all, lookup, &mut warnings) {
        Ok(enabled) => enabled,
        Err(denial) => return reject(denial, warnings),
    };
    let mut plans: Vec<ProviderPlan> = Vec::with_capacity(enabled.len());
    for e in &enabled {
        match plan::build_plan(e.provider, e.layout, &e.keys, settings, &pod, &mut warnings) {
            Ok(Some(plan)) => plans.push(plan),
            Ok(None) => {}
            Err(denial) => return reject(denial, warnings),
        }
    }
    if plans.is_empty() {
        return accept(None, warnings, BTreeMap::new());
    }
    // The pod is edited in place; apply reports whether any edit was made.
    let changed = match mutate::apply(&mut pod, &plans, &providers::names(), &mut warnings) {
        Ok(changed) => changed,
        Err(denial) => return reject(denial, warnings),
    };
    let audit = plans
        .iter()
        .map(|p| (format!("cwii-{}-sources", p.provider), plan::audit_value(p)))
        .collect();
    accept(changed.then_some(pod), warnings, audit)
}

/// What the resolver needs, read leniently from the untyped pod.
pub fn pod_context(pod: &Value, request_namespace: &str) -> PodContext {
    let metadata = pod.get("metadata");
    let namespace = [
        request_namespace,
        metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(""),
    ]
    .into_iter()
    .find(|ns| !ns.is_empty())
    .unwrap_or("default")
    .to_string();
    // String values only: anything else is not an annotation or label Kubernetes accepts.
    let string_map = |field: &str| -> BTreeMap<String, String> {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let annotations = string_map("annotations");
    let labels = string_map("labels");
    let owner_references = metadata
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| OwnerReference::deserialize(r).ok())
                .collect()
        })
        .unwrap_or_default();
    let service_account = pod
        .get("spec")
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    PodContext {
        namespace,
        annotations,
        labels,
        owner_references,
        service_account,
    }
}

fn finish_warnings(warnings: Warnings) -> Option<Vec<String>> {
    (!warnings.is_empty()).then(|| warnings.finish())
}

fn accept(
    mutated_object: Option<Value>,
    warnings: Warnings,
    audit: BTreeMap<String, String>,
) -> ValidationResponse {
    ValidationResponse {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: (!audit.is_empty())
            .then(|| audit.into_iter().collect::<HashMap<_, _>>()),
        warnings: finish_warnings(warnings),
    }
}

fn reject(denial: Denial, warnings: Warnings) -> ValidationResponse {
    ValidationResponse {
        accepted: false,
        message: Some(denial.message),
        code: Some(denial.code),
        mutated_object: None,
        audit_annotations: None,
        warnings: finish_warnings(warnings),
    }
}
