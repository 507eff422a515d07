//! One evaluation, from the waPC payload to the `ValidationResponse`: filter the request,
//! resolve → plan → mutate, and explain the outcome. Plain Rust, run on the host in tests.

use crate::lookup::{Lookup, OwnerReference};
use crate::mutate;
use crate::plan;
use crate::provider::{Denial, ProviderPlan};
use crate::providers;
use crate::resolve::{self, PodContext, StringMap};
use crate::settings::Settings;
use crate::sparse::{Fields, SparsePod};
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
    #[serde(default, borrow)]
    request: AdmissionRequest<'a>,
    #[serde(default, borrow)]
    settings: Option<&'a RawValue>,
}

thread_local! {
    /// The settings last parsed, by their text. A policy server instance is given the same
    /// settings on every request, so a warm instance parses them once instead of once per
    /// evaluation. (Each wasm instance is single-threaded; host tests get one per thread.)
    static LAST_SETTINGS: RefCell<Option<(Box<str>, Rc<Settings>)>> = const { RefCell::new(None) };
}

/// The pod fields anything reads: the resolver's, the mutation's and the providers'.
const POD_FIELD_TREE: Fields =
    Fields::from_lists(&[RESOLVER_FIELDS, mutate::POD_FIELDS]).and(&providers::POD_FIELDS);
static POD_FIELDS: Fields = POD_FIELD_TREE;
const _: () = assert!(
    !POD_FIELD_TREE.overflowed(),
    "the declared pod fields need more than Fields::CAPACITY nodes: raise it"
);

/// The pod fields [`pod_context`] reads.
const RESOLVER_FIELDS: &[&str] = &[
    "metadata.namespace",
    "metadata.annotations",
    "metadata.labels",
    "metadata.ownerReferences",
    "spec.serviceAccountName",
];

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
    // Kept for the next evaluations: outside the evaluation's arena.
    crate::arena::persistent(|| {
        let settings = Rc::new(Settings::from_slice(text.as_bytes(), providers::all())?);
        LAST_SETTINGS.set(Some((text.into(), Rc::clone(&settings))));
        Ok(settings)
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AdmissionRequest<'a> {
    pub kind: GroupVersionKind,
    pub operation: String,
    pub namespace: String,
    /// The object's JSON text, read (sparsely) only when the request is the policy's.
    #[serde(borrow)]
    pub object: Option<&'a RawValue>,
}

/// The outcome of an evaluation: the SDK's `ValidationResponse`, with the mutated pod
/// kept as the sparse read it was edited in, to be spliced into the answer's text.
#[derive(Debug)]
pub struct Answer<'a> {
    pub accepted: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    pub mutated_object: Option<SparsePod<'a>>,
    pub audit_annotations: Option<HashMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

impl Answer<'_> {
    /// The answer as the SDK's `ValidationResponse` serialises: the same fields in the same
    /// order, `null` for those absent. The text is the one thing an evaluation hands back,
    /// so it is written outside the evaluation's arena, where it stays: no copy out, and
    /// the arena's pages it would fill are not touched (each page a fresh instance touches
    /// costs it a page fault: README, Performance).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = crate::arena::persistent(|| Vec::with_capacity(ANSWER_CAPACITY));
        out.extend_from_slice(b"{\"accepted\":");
        serde_json::to_writer(&mut out, &self.accepted)?;
        out.extend_from_slice(b",\"message\":");
        serde_json::to_writer(&mut out, &self.message)?;
        out.extend_from_slice(b",\"code\":");
        serde_json::to_writer(&mut out, &self.code)?;
        out.extend_from_slice(b",\"mutated_object\":");
        match &self.mutated_object {
            Some(pod) => pod.write_to(&mut out)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"audit_annotations\":");
        serde_json::to_writer(&mut out, &self.audit_annotations)?;
        out.extend_from_slice(b",\"warnings\":");
        serde_json::to_writer(&mut out, &self.warnings)?;
        out.push(b'}');
        Ok(out)
    }

    /// The SDK's type, the mutated pod parsed from the spliced text (for tests and tools).
    pub fn into_response(self) -> serde_json::Result<ValidationResponse> {
        let mutated_object = match &self.mutated_object {
            Some(pod) => Some(serde_json::from_slice(&pod.to_json()?)?),
            None => None,
        };
        Ok(ValidationResponse {
            accepted: self.accepted,
            message: self.message,
            code: self.code,
            mutated_object,
            audit_annotations: self.audit_annotations,
            warnings: self.warnings,
        })
    }
}

/// The answer's first buffer; a larger answer grows it (in place, at the top of the heap).
const ANSWER_CAPACITY: usize = 4096;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GroupVersionKind {
    pub group: String,
    pub kind: String,
}

/// [`evaluate_answer`] as the SDK's type.
pub fn evaluate(payload: &[u8], lookup: &mut dyn Lookup) -> ValidationResponse {
    evaluate_answer(payload, lookup)
        .into_response()
        .unwrap_or_else(|e| ValidationResponse {
            accepted: false,
            message: Some(format!("cwii: cannot write the mutated pod: {e}")),
            code: Some(500),
            mutated_object: None,
            audit_annotations: None,
            warnings: None,
        })
}

/// The `validate` export: never fails, every problem becomes an answer.
pub fn evaluate_answer<'a>(payload: &'a [u8], lookup: &mut dyn Lookup) -> Answer<'a> {
    match read_payload(payload) {
        Ok((request, settings)) => evaluate_request(request, &settings, lookup),
        Err(denial) => reject(denial, Warnings::default()),
    }
}

/// The request and its settings, or why they are refused.
fn read_payload(payload: &[u8]) -> Result<(AdmissionRequest<'_>, Rc<Settings>), Denial> {
    let payload: Payload = serde_json::from_slice(payload).map_err(|e| Denial {
        message: format!("cwii: cannot read the admission request: {e}"),
        code: 400,
    })?;
    match settings_for(payload.settings.map_or("null", RawValue::get)) {
        Ok(settings) => Ok((payload.request, settings)),
        Err(message) => Err(Denial { message, code: 500 }),
    }
}

/// The `validate` export's answer as JSON text. The evaluation proper runs on the arena
/// ([`crate::arena`]): its answer's text is written outside it ([`Answer::to_json`]), the
/// rest taken back in one go. The payload and the settings are read before it, on the
/// system allocator: the settings parsed are kept for the next evaluations.
pub fn validate_text(payload: &[u8], lookup: &mut dyn Lookup) -> Result<Vec<u8>, String> {
    let (request, settings) = match read_payload(payload) {
        Ok(read) => read,
        Err(denial) => {
            return reject(denial, Warnings::default())
                .to_json()
                .map_err(|e| e.to_string())
        }
    };
    // A lookup that keeps what it allocates (an in-memory one records its calls) must not
    // allocate in the arena; the host's keeps nothing, and its requests and answers then
    // take no pages of the system allocator's in a fresh instance.
    let mut outside;
    let lookup: &mut dyn Lookup = if lookup.keeps_nothing() {
        lookup
    } else {
        outside = OutsideArena(lookup);
        &mut outside
    };
    crate::arena::evaluation(
        || {
            let answer = evaluate_request(request, &settings, lookup);
            let text = answer.to_json().map_err(|e| e.to_string());
            crate::arena::discard(answer);
            text
        },
        // The text is already outside the arena; an error's message is copied out.
        |text| text.map_err(|e| e.clone()),
    )
}

/// A lookup whose calls allocate outside the evaluation's arena.
struct OutsideArena<'l>(&'l mut dyn Lookup);

impl Lookup for OutsideArena<'_> {
    fn get(
        &mut self,
        object: &crate::lookup::ObjectRef,
    ) -> Result<crate::lookup::ObjectMeta, crate::lookup::LookupError> {
        crate::arena::persistent(|| self.0.get(object))
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

pub fn evaluate_request<'a>(
    request: AdmissionRequest<'a>,
    settings: &Settings,
    lookup: &mut dyn Lookup,
) -> Answer<'a> {
    // Only Pod CREATE is the policy's business; everything else passes untouched.
    if request.kind.kind != "Pod" || !request.kind.group.is_empty() || request.operation != "CREATE"
    {
        return accept(None, Warnings::default(), BTreeMap::new());
    }
    let pod = match request.object.map(read_pod) {
        Some(Ok(pod)) if pod.projection().is_object() => pod,
        // The whole payload parsed, so the object is JSON; this is a safeguard.
        Some(Err(e)) => {
            return reject(
                Denial {
                    message: format!("cwii: cannot read the pod: {e}"),
                    code: 400,
                },
                Warnings::default(),
            )
        }
        _ => {
            return reject(
                Denial {
                    message: "cwii: the request object is not a Pod object".into(),
                    code: 400,
                },
                Warnings::default(),
            )
        }
    };
    evaluate_pod(pod, &request.namespace, settings, lookup)
}

// Reading the pod and evaluating it are kept out of line from each other: the reader
// recurses as deep as the pod nests, and under the large frame of the evaluation it
// would take a fresh instance's stack into one more page (a page fault per request).
#[inline(never)]
fn read_pod(text: &RawValue) -> serde_json::Result<SparsePod<'_>> {
    SparsePod::read(text.get(), &POD_FIELDS)
}

#[inline(never)]
fn evaluate_pod<'a>(
    mut pod: SparsePod<'a>,
    request_namespace: &str,
    settings: &Settings,
    lookup: &mut dyn Lookup,
) -> Answer<'a> {
    let mut warnings = Warnings::default();
    let all = providers::all();
    let context = pod_context(pod.projection(), request_namespace);
    let resolved = resolve::resolve(&context, settings, all, lookup, &mut warnings);
    drop(context);
    let enabled = match resolved {
        Ok(enabled) => enabled,
        Err(denial) => return reject(denial, warnings),
    };
    let mut plans: Vec<ProviderPlan> = Vec::with_capacity(enabled.len());
    for e in &enabled {
        match plan::build_plan(
            e.provider,
            e.layout,
            &e.keys,
            settings,
            pod.projection(),
            &mut warnings,
        ) {
            Ok(Some(plan)) => plans.push(plan),
            Ok(None) => {}
            Err(denial) => return reject(denial, warnings),
        }
    }
    if plans.is_empty() {
        return accept(None, warnings, BTreeMap::new());
    }
    let compared_whole = mutate::compared_whole(&plans);
    for list in ["containers", "initContainers"] {
        if let Err(e) = pod.read_whole(&["spec", list], &compared_whole) {
            let message = format!("cwii: cannot read the pod's spec.{list}: {e}");
            return reject(Denial { message, code: 400 }, warnings);
        }
    }
    drop(compared_whole);
    // The pod is edited in place; apply reports whether any edit was made.
    let names = providers::names();
    let (projection, appended) = pod.parts_mut();
    let changed = match mutate::apply(projection, appended, &plans, &names, &mut warnings) {
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
pub fn pod_context<'a>(pod: &'a Value, request_namespace: &str) -> PodContext<'a> {
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
    let string_map = |field: &str| {
        StringMap::InPod(
            metadata
                .and_then(|m| m.get(field))
                .and_then(Value::as_object),
        )
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
    mutated_object: Option<SparsePod<'_>>,
    warnings: Warnings,
    audit: BTreeMap<String, String>,
) -> Answer<'_> {
    Answer {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: (!audit.is_empty())
            .then(|| audit.into_iter().collect::<HashMap<_, _>>()),
        warnings: finish_warnings(warnings),
    }
}

fn reject<'a>(denial: Denial, warnings: Warnings) -> Answer<'a> {
    Answer {
        accepted: false,
        message: Some(denial.message),
        code: Some(denial.code),
        mutated_object: None,
        audit_annotations: None,
        warnings: finish_warnings(warnings),
    }
}
