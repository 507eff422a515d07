//! The contract between the core and the clouds: the [`Provider`] trait, its optional
//! [`NativeLayout`], the resolved keys a provider reads and the [`ProviderPlan`] it returns.
//! Providers import from here and from [`crate::keys`]; nothing here imports the core
//! (resolve, plan, mutate, settings), so the modules depend one way.

use crate::keys::{KeyDef, KeyValue};
use crate::warnings::Warnings;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Kubernetes refuses projected tokens that live shorter than ten minutes.
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;

// ------------------------------------------------------------------- resolved keys

/// Where a value came from; the text form is what audit annotations record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LevelKind {
    Pod,
    Workload,
    ServiceAccount,
    Namespace,
    Defaults,
}

impl LevelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LevelKind::Pod => "pod",
            LevelKind::Workload => "workload",
            LevelKind::ServiceAccount => "serviceaccount",
            LevelKind::Namespace => "namespace",
            LevelKind::Defaults => "defaults",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub value: KeyValue,
    pub source: LevelKind,
    /// The webhook's own key that supplied the value, in drop-in mode.
    pub native_key: Option<String>,
}

/// The explicit values found for one provider's keys, by key suffix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedKeys {
    values: BTreeMap<&'static str, Resolution>,
}

impl ResolvedKeys {
    pub fn get(&self, suffix: &str) -> Option<&Resolution> {
        self.values.get(suffix)
    }
    pub fn value(&self, suffix: &str) -> Option<&KeyValue> {
        self.get(suffix).map(|r| &r.value)
    }
    pub fn text(&self, suffix: &str) -> Option<&str> {
        match self.value(suffix) {
            Some(KeyValue::Text(t)) => Some(t),
            _ => None,
        }
    }
    pub fn flag(&self, suffix: &str) -> Option<bool> {
        match self.value(suffix) {
            Some(KeyValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn seconds(&self, suffix: &str) -> Option<i64> {
        match self.value(suffix) {
            Some(KeyValue::Seconds(s)) => Some(*s),
            _ => None,
        }
    }
    pub fn names(&self, suffix: &str) -> &[String] {
        match self.value(suffix) {
            Some(KeyValue::Names(n)) => n,
            _ => &[],
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Resolution)> + '_ {
        self.values.iter().map(|(k, v)| (*k, v))
    }
    pub fn insert(&mut self, suffix: &'static str, resolution: Resolution) {
        self.values.insert(suffix, resolution);
    }
}

/// A reason to refuse the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub message: String,
    pub code: u16,
}

impl Denial {
    pub fn bad_request(message: String) -> Self {
        Denial { message, code: 400 }
    }

    /// The policy could not do its part (`reason` says what).
    pub fn internal(reason: String) -> Self {
        Denial {
            message: format!("cwii: {reason}"),
            code: 500,
        }
    }
}

// ------------------------------------------------------------------- settings descriptions

/// A settings field a provider or layout owns. `check` gets the raw value (`None` when the
/// field is absent) and returns the value to keep (the default filled in), or why it is
/// invalid; the caller adds the field's path to the message.
pub struct SettingField {
    pub name: &'static str,
    pub check: fn(Option<&Value>) -> Result<Value, String>,
}

/// Validated values of a group of [`SettingField`]s, defaults filled.
pub type FieldValues = BTreeMap<&'static str, Value>;

/// A field's value as text (every field that is a string is present once validated).
pub fn field_text<'a>(fields: &'a FieldValues, name: &str) -> &'a str {
    fields.get(name).and_then(Value::as_str).unwrap_or("")
}

// ------------------------------------------------------------------- native layouts

/// Where a webhook reads one of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeSource {
    Annotation,
    Label,
}

/// One key of a webhook (azwi, EKS), read only on the level where that webhook reads it,
/// right after the `cwii.dev/` key of the same meaning on that level.
#[derive(Debug, Clone)]
pub struct NativeKey {
    pub key: String,
    pub source: NativeSource,
    pub level: LevelKind,
    /// The suffix of the `cwii.dev/` key it stands for (or a layout-only suffix).
    pub suffix: &'static str,
    /// The webhook's reading of a raw value; `None` falls through like §3's non-explicit.
    pub parse: fn(&str) -> Option<KeyValue>,
    /// Why a value `parse` refused is ignored (for the warning).
    pub expected: &'static str,
    /// Whether its presence decides the layout (so its level must be read even when every
    /// `cwii.dev/` key is already resolved).
    pub decides_layout: bool,
}

/// A second shape of a provider: the pod a webhook (azwi, EKS) would have returned.
pub trait NativeLayout: Sync {
    /// The section under settings `native` carrying the webhook's flags (`azwi`, `eks`).
    fn name(&self) -> &'static str;
    fn settings_fields(&self) -> &'static [SettingField];
    /// The webhook's keys; names may depend on its settings (the EKS annotation prefix).
    fn native_keys(&self, settings: &FieldValues) -> Vec<NativeKey>;
    /// Keys only this layout has (beyond the provider's `cwii.dev/` keys), resolved from
    /// native keys alone.
    fn layout_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether the webhook would have acted on this pod, from the resolved keys.
    fn enables(&self, keys: &ResolvedKeys) -> bool;
    /// The webhook's layout. `Ok(None)`: skipped, with the reason in `warnings`.
    fn plan(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        warnings: &mut Warnings,
    ) -> Result<Option<ProviderPlan>, Denial>;
}

// ------------------------------------------------------------------- providers

/// What makes a cloud different: its keys, its defaults, the part of §4's plan only it
/// knows, and optionally a webhook's layout for drop-in mode.
pub trait Provider: Sync {
    /// Abbreviation used in keys, volume names, mount paths and the marker: `az`.
    fn name(&self) -> &'static str;
    /// Keys beyond the shared ones.
    fn keys(&self) -> &'static [KeyDef];
    /// Audience used when neither a key nor the settings give one.
    fn built_in_audience(&self) -> Option<&'static str>;
    fn default_verify_image(&self) -> &'static str;
    /// Shell check run by the verify init container. It reads annotation values only
    /// through environment variables and never prints a credential.
    fn verify_check(&self) -> &'static str;
    /// Settings fields under `providers.<p>` beyond `enabled`, `defaultAudience` and
    /// `verifyImage`.
    fn settings_fields(&self) -> &'static [SettingField] {
        &[]
    }
    /// Adds the provider's own part to a §4 plan that already holds the token volume and
    /// mount; remarks go to `warnings`. `Err` names why the provider is skipped (a missing
    /// required key).
    fn specialise(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        plan: &mut ProviderPlan,
        warnings: &mut Warnings,
    ) -> Result<(), String>;
    /// The webhook this provider can stand in for (`nativeAnnotations: true`).
    fn native_layout(&self) -> Option<&'static dyn NativeLayout> {
        None
    }
}

// ------------------------------------------------------------------- plans

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: String,
    pub path: String,
    pub read_only: bool,
}

impl Mount {
    pub fn to_json(&self) -> Value {
        json!({"name": self.volume, "mountPath": self.path, "readOnly": self.read_only})
    }
}

/// Which list of the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Init,
    App,
}

impl ContainerList {
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::App => "containers",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    First,
    Last,
}

/// How an added container relates to what the pod already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The name is the policy's: an existing one that differs is replaced (with a warning);
    /// it gets no provider's mounts or env beyond its own definition.
    Reserved,
    /// Added unless a container of that name exists (then kept as written); it receives the
    /// providers' mounts and env like any container (the azwi proxy).
    Shared,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddedContainer {
    pub value: Value,
    pub list: ContainerList,
    pub position: Position,
    pub ownership: Ownership,
}

/// A volume the plan needs; one of the same name is replaced when it differs.
#[derive(Debug, Clone)]
pub struct PlannedVolume {
    /// Its `name`, reserved for the policy.
    pub name: String,
    /// The volume's JSON, written once: added to the pod as text, and read into a tree
    /// only to be compared with a volume of the pod that has its name.
    pub json: Box<RawValue>,
    /// Inserted first in `spec.volumes` (the EKS webhook) rather than appended.
    pub first: bool,
}

impl PartialEq for PlannedVolume {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.json.get(), self.first) == (&other.name, other.json.get(), other.first)
    }
}

impl PlannedVolume {
    /// `volume` must serialise to an object whose `name` is `name`; its members in name
    /// order, as a JSON object map would write them, keep the pod's text as before.
    pub fn new(name: &str, volume: &impl Serialize, first: bool) -> Result<Self, String> {
        let json = serde_json::value::to_raw_value(volume)
            .map_err(|e| format!("cannot write the volume {name}: {e}"))?;
        Ok(PlannedVolume {
            name: name.to_string(),
            json,
            first,
        })
    }
}

/// Everything one provider puts into the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderPlan {
    pub provider: &'static str,
    /// Pod volumes; their names are reserved.
    pub volumes: Vec<PlannedVolume>,
    /// Mounted into every target container.
    pub mounts: Vec<Mount>,
    /// Set in every target container (unless the container defines the name already).
    pub env: Vec<(String, String)>,
    /// Names in `env` that go together: a container that defines any of them gets none of
    /// them from the policy (two regions that disagree are worse than one).
    pub env_groups: Vec<&'static [&'static str]>,
    /// A container that defines a member of every one of these groups is left entirely
    /// alone, mounts included (the EKS webhook's rule). Empty: never.
    pub leave_alone_when_defined: &'static [&'static [&'static str]],
    pub containers: Vec<AddedContainer>,
    /// Pod annotations owned by the policy.
    pub annotations: Vec<(String, String)>,
    /// Whether the provider is recorded in `cwii.dev/injected` (not for a webhook's layout,
    /// whose own output must come back unchanged).
    pub marker: bool,
    /// Containers that receive neither mounts nor env.
    pub skip_containers: Vec<String>,
    /// For the audit annotation: key suffix → where its value came from (a level's name,
    /// borrowed, unless a webhook's key says more).
    pub sources: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
}

impl ProviderPlan {
    pub fn new(provider: &'static str) -> Self {
        ProviderPlan {
            provider,
            volumes: Vec::new(),
            mounts: Vec::new(),
            env: Vec::new(),
            env_groups: Vec::new(),
            leave_alone_when_defined: &[],
            containers: Vec::new(),
            annotations: Vec::new(),
            marker: true,
            skip_containers: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// Adds `(name, value)` to the env for each name, when the key resolved to text.
    pub fn optional_env(&mut self, keys: &ResolvedKeys, suffix: &str, names: &[&str]) {
        if let Some(value) = keys.text(suffix) {
            for name in names {
                self.env.push((name.to_string(), value.to_string()));
            }
        }
    }
}

/// A projected ServiceAccount token volume.
pub fn token_volume(
    name: &str,
    path: &str,
    audience: &str,
    expiration: i64,
    first: bool,
) -> Result<PlannedVolume, String> {
    #[derive(Serialize)]
    struct Volume<'a> {
        name: &'a str,
        projected: Projected<'a>,
    }
    #[derive(Serialize)]
    struct Projected<'a> {
        sources: [Source<'a>; 1],
    }
    #[derive(Serialize)]
    struct Source<'a> {
        #[serde(rename = "serviceAccountToken")]
        service_account_token: Token<'a>,
    }
    #[derive(Serialize)]
    struct Token<'a> {
        audience: &'a str,
        #[serde(rename = "expirationSeconds")]
        expiration_seconds: i64,
        path: &'a str,
    }
    let volume = Volume {
        name,
        projected: Projected {
            sources: [Source {
                service_account_token: Token {
                    audience,
                    expiration_seconds: expiration,
                    path,
                },
            }],
        },
    };
    PlannedVolume::new(name, &volume, first)
}

/// What a provider may read while building a plan. Plain values, so that providers need
/// nothing from the settings module.
pub struct PlanContext<'a> {
    pub provider: &'static str,
    /// The pod as it came (read only), holding the fields the core and the providers
    /// declare (`providers::POD_FIELDS`) and no others: layouts look at its name and node
    /// selector.
    pub pod: &'a Value,
    pub mount_root: &'a str,
    pub audience: &'a str,
    pub token_expiration_seconds: i64,
    pub verify_image: &'a str,
    pub injected_container_resources: &'a Value,
    /// `providers.<p>` fields of [`Provider::settings_fields`].
    pub provider_fields: &'a FieldValues,
    /// `native.<layout>` fields of the provider's layout (empty for §4's).
    pub native_fields: &'a FieldValues,
}

impl PlanContext<'_> {
    /// `<mountRoot>/<dir>`.
    pub fn path(&self, dir: &str) -> String {
        format!("{}/{dir}", self.mount_root)
    }
    /// The projected token file of this provider in §4's layout.
    pub fn token_file(&self) -> String {
        format!("{}/token", self.path(self.provider))
    }
    /// A provider settings field (present once validated).
    pub fn provider_field(&self, name: &str) -> &str {
        field_text(self.provider_fields, name)
    }
    /// A container built the way every injected container is: least privilege, the
    /// configured resources, and `IfNotPresent` so that an untagged image is not pulled at
    /// every pod start. `read_only_root` for containers that write only to their volumes.
    pub fn injected_container(
        &self,
        name: &str,
        image: &str,
        script: &str,
        env: &[(String, String)],
        mounts: &[Mount],
        read_only_root: bool,
    ) -> Value {
        let mut security =
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        if read_only_root {
            security["readOnlyRootFilesystem"] = Value::Bool(true);
        }
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "env": env.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "volumeMounts": mounts.iter().map(Mount::to_json).collect::<Vec<_>>(),
            "resources": self.injected_container_resources,
            "securityContext": security,
        })
    }
}

/// A key as a required string: present, or the reason the provider is skipped.
pub fn required_text<'k>(
    keys: &'k ResolvedKeys,
    provider: &str,
    suffix: &str,
) -> Result<&'k str, String> {
    keys.text(suffix)
        .ok_or_else(|| format!("missing required key cwii.dev/{provider}-{suffix}"))
}

// ------------------------------------------------------------------- field checks

/// An image reference is pasted into a container's `image`; it must at least be one word.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    if image.trim().is_empty() {
        return Err("the image reference is empty".to_string());
    }
    if image.chars().any(char::is_whitespace) {
        return Err(format!(
            "{} contains whitespace",
            crate::keys::quote_for_message(image)
        ));
    }
    Ok(())
}

/// A string field: absent → `default`; present → must be a string accepted by `check`.
pub fn string_field(
    raw: Option<&Value>,
    default: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Value, String> {
    let value = match raw {
        // A field's default passes its check (tested for every field): not checked again
        // on every fresh instance's request.
        None => return Ok(Value::String(default.to_string())),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("expected a string, found {other}")),
    };
    check(&value)?;
    Ok(Value::String(value))
}

/// A field check that accepts any string.
pub fn any_text(_: &str) -> Result<(), String> {
    Ok(())
}

/// A webhook's string value: trimmed; an empty one is not explicit and falls through (§7.4:
/// where the webhooks take `""` as set).
pub fn native_text(raw: &str) -> Option<KeyValue> {
    let t = raw.trim();
    (!t.is_empty()).then(|| KeyValue::Text(t.to_string()))
}

/// A webhook's lifetime in seconds, read as Go reads integers.
pub fn native_seconds(raw: &str) -> Option<KeyValue> {
    crate::keys::strict_int(raw).map(KeyValue::Seconds)
}

/// A boolean field with a default.
pub fn bool_field(raw: Option<&Value>, default: bool) -> Result<Value, String> {
    match raw {
        None => Ok(Value::Bool(default)),
        Some(Value::Bool(b)) => Ok(Value::Bool(*b)),
        Some(other) => Err(format!("expected true or false, found {other}")),
    }
}

/// A mount path pasted into pod specs (and a shell command): absolute, conservative
/// characters, no `..`; returned without a trailing `/`.
pub fn check_mount_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{} is not an absolute path",
            crate::keys::quote_for_message(path)
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err("\"/\" cannot hold the token directories".into());
    }
    let safe = trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if !safe || trimmed.split('/').any(|part| part == "..") {
        return Err(format!(
            "{} may only contain letters, digits, '/', '.', '_' and '-', and no '..'",
            crate::keys::quote_for_message(path)
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_volume_is_the_json_object_it_was_byte_for_byte() {
        let hostile = "a\"b\\c\n}{,\u{7f}é\u{2028}";
        for (name, path, audience, expiration) in [
            ("cwii-gcp-token", "token", "//iam.googleapis.com/x", 3600),
            (hostile, hostile, hostile, -1),
        ] {
            let tree = json!({
                "name": name,
                "projected": {"sources": [{"serviceAccountToken": {
                    "path": path, "audience": audience, "expirationSeconds": expiration
                }}]}
            });
            let volume = token_volume(name, path, audience, expiration, true).unwrap();
            assert_eq!(volume.json.get(), tree.to_string());
            assert_eq!((volume.name.as_str(), volume.first), (name, true));
        }
    }
}
