//! Precedence (SPEC §3): every key is resolved on its own, first explicit value wins, in the
//! order pod > owning workload > ServiceAccount > namespace > settings.defaults. Levels are
//! fetched lazily, in a fixed order, and only while some open provider still has a key
//! that no visited level answered. In drop-in mode (§7) a webhook's own keys count on the
//! level where that webhook reads them, right after the `cwii.dev/` key on that level.

use crate::keys::{self, shared, KeyDef, KeyKind, KeyValue};
use crate::lookup::{known_kind, Lookup, LookupError, ObjectMeta, ObjectRef, OwnerReference};
use crate::provider::{
    Denial, LevelKind, NativeKey, NativeLayout, NativeSource, Provider, Resolution, ResolvedKeys,
};
use crate::settings::{LookupFailure, Settings};
use crate::warnings::Warnings;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The annotations or labels of one object, looked up by key.
#[derive(Debug, Clone)]
pub enum StringMap<'a> {
    /// The pod's, borrowed where they are in its JSON. Only string values count: nothing
    /// else is an annotation or label Kubernetes accepts.
    InPod(Option<&'a Map<String, Value>>),
    /// A looked-up object's, as its lookup parsed them.
    Owned(BTreeMap<String, String>),
}

impl Default for StringMap<'_> {
    fn default() -> Self {
        Self::InPod(None)
    }
}

impl StringMap<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        match self {
            Self::InPod(map) => map.and_then(|m| m.get(key)).and_then(Value::as_str),
            Self::Owned(map) => map.get(key).map(String::as_str),
        }
    }
}

/// The annotations (and, for the pod, labels) of one object; the pod's are borrowed.
#[derive(Debug, Clone)]
pub struct Level<'a> {
    pub kind: LevelKind,
    /// `pod`, or the object, e.g. `Deployment apps/web`.
    pub label: Cow<'static, str>,
    pub annotations: StringMap<'a>,
    pub labels: StringMap<'a>,
}

/// What the resolver needs to know about the pod.
#[derive(Debug, Clone, Default)]
pub struct PodContext<'a> {
    pub namespace: String,
    pub annotations: StringMap<'a>,
    pub labels: StringMap<'a>,
    pub owner_references: Vec<OwnerReference>,
    /// `spec.serviceAccountName`, or `default` when empty.
    pub service_account: String,
}

/// A provider that is injected, with all its keys resolved.
pub struct Enabled {
    pub provider: &'static dyn Provider,
    pub keys: ResolvedKeys,
    /// The webhook's layout (§7.3) rather than §4's.
    pub layout: Option<&'static dyn NativeLayout>,
}

/// Resolves every enabled provider, looking objects up only as far as needed.
pub fn resolve(
    pod: &PodContext<'_>,
    settings: &Settings,
    providers: &[&'static dyn Provider],
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Vec<Enabled>, Denial> {
    // Key names, built once per evaluation: the skip checks below ask for them at every step.
    let tables: Vec<KeyTable> = providers
        .iter()
        .filter(|p| settings.provider(p.name()).is_some_and(|s| s.enabled))
        .map(|p| KeyTable::new(*p, settings))
        .collect();

    let mut levels = vec![Level {
        kind: LevelKind::Pod,
        label: Cow::Borrowed("pod"),
        annotations: pod.annotations.clone(),
        labels: pod.labels.clone(),
    }];

    for step in [Step::Owner, Step::ServiceAccount, Step::Namespace] {
        let next = step.level();
        let open: Vec<&KeyTable> = tables.iter().filter(|t| !t.closed(&levels)).collect();
        if open.is_empty() || open.iter().all(|t| t.settled(&levels, next)) {
            break;
        }
        match step {
            Step::Owner => levels.extend(owner_levels(pod, settings, lookup, warnings)?),
            Step::ServiceAccount => {
                let object = ObjectRef {
                    api_version: "v1",
                    kind: "ServiceAccount",
                    name: pod.service_account.clone(),
                    namespace: Some(pod.namespace.clone()),
                };
                levels
                    .extend(fetch_level(object, next, settings, lookup, warnings)?.map(|(l, _)| l));
            }
            Step::Namespace => {
                let object = ObjectRef {
                    api_version: "v1",
                    kind: "Namespace",
                    name: pod.namespace.clone(),
                    namespace: None,
                };
                levels
                    .extend(fetch_level(object, next, settings, lookup, warnings)?.map(|(l, _)| l));
            }
        }
    }

    let mut result = Vec::new();
    for provider in providers {
        let provider = *provider;
        let Some(table) = tables.iter().find(|t| t.provider.name() == provider.name()) else {
            // Say so when a pod asks for a provider the operator switched off.
            let inject = keys::full_key(provider.name(), shared::INJECT);
            if levels.iter().any(|l| {
                l.annotations.get(&inject).is_some_and(|v| {
                    keys::parse_value(KeyKind::Bool, v) == Some(KeyValue::Bool(true))
                })
            }) {
                warnings.push(format!(
                    "cwii: {inject} is true but provider {} is disabled in the policy settings",
                    provider.name()
                ));
            }
            continue;
        };
        let (inject_def, inject_key) = table.inject();
        let inject = table.resolve_key(&levels, inject_def, inject_key, settings, warnings);
        let mut keys = ResolvedKeys::default();
        for suffix in table.layout_keys() {
            if let Some(resolution) = table.native_value(&levels, suffix, warnings) {
                keys.insert(suffix, resolution);
            }
        }
        let layout = table.layout.filter(|l| l.enables(&keys));
        // A cwii.dev inject key on an object decides; else the webhook's signal; else the
        // cluster default.
        let inject = match inject {
            Some(r) if r.source != LevelKind::Defaults => Some(r),
            _ if layout.is_some() => {
                let signal = table.layout_keys().iter().find_map(|s| keys.get(s));
                signal.map(|s| Resolution {
                    value: KeyValue::Bool(true),
                    source: s.source,
                    native_key: s.native_key.clone(),
                })
            }
            from_defaults => from_defaults,
        };
        let Some(inject) = inject.filter(|r| r.value == KeyValue::Bool(true)) else {
            continue;
        };
        keys.insert(shared::INJECT, inject);
        for (def, key) in table.entries().filter(|(d, _)| d.suffix != shared::INJECT) {
            if let Some(resolution) = table.resolve_key(&levels, def, key, settings, warnings) {
                keys.insert(def.suffix, resolution);
            }
        }
        result.push(Enabled {
            provider,
            keys,
            layout,
        });
    }
    Ok(result)
}

#[derive(Clone, Copy)]
enum Step {
    Owner,
    ServiceAccount,
    Namespace,
}

impl Step {
    fn level(self) -> LevelKind {
        match self {
            Step::Owner => LevelKind::Workload,
            Step::ServiceAccount => LevelKind::ServiceAccount,
            Step::Namespace => LevelKind::Namespace,
        }
    }
}

/// An enabled provider's key definitions with their full `cwii.dev/` names, and in drop-in
/// mode its webhook's keys.
struct KeyTable {
    provider: &'static dyn Provider,
    /// Every full key name, one after the other in one buffer (one allocation, not one per
    /// key); `keys` holds each definition with its range in `names`.
    names: String,
    keys: Vec<(KeyDef, std::ops::Range<usize>)>,
    layout: Option<&'static dyn NativeLayout>,
    native: Vec<NativeKey>,
}

impl KeyTable {
    fn new(provider: &'static dyn Provider, settings: &Settings) -> Self {
        let mut names = String::with_capacity(512);
        let keys = keys::key_defs(provider.keys())
            .map(|def| {
                let start = names.len();
                names.push_str(keys::PREFIX);
                names.push_str(provider.name());
                names.push('-');
                names.push_str(def.suffix);
                (def, start..names.len())
            })
            .collect();
        let layout = provider
            .native_layout()
            .filter(|_| settings.native_annotations);
        let native = layout
            .map(|l| match settings.native.get(l.name()) {
                Some(fields) => l.native_keys(fields),
                None => Vec::new(),
            })
            .unwrap_or_default();
        Self {
            provider,
            names,
            keys,
            layout,
            native,
        }
    }

    /// The keys only the webhook's layout has (none without drop-in mode).
    fn layout_keys(&self) -> &'static [&'static str] {
        self.layout.map_or(&[], |l| l.layout_keys())
    }

    /// Each key definition with its full name.
    fn entries(&self) -> impl Iterator<Item = (KeyDef, &str)> + '_ {
        self.keys
            .iter()
            .map(|(def, range)| (*def, &self.names[range.clone()]))
    }

    /// The inject key (the first of the shared keys).
    fn inject(&self) -> (KeyDef, &str) {
        let (def, range) = &self.keys[0];
        debug_assert_eq!(def.suffix, shared::INJECT);
        (*def, &self.names[range.clone()])
    }

    /// Closed once its inject key is explicitly false at a visited level (a webhook's signal
    /// can only enable, never close, a provider).
    fn closed(&self, levels: &[Level]) -> bool {
        let (def, key) = self.inject();
        explicit(levels, key, def) == Some(KeyValue::Bool(false))
    }

    /// Whether no level from `next` on can change any of this provider's keys: every
    /// `cwii.dev/` key is answered, and every webhook key still to be read is either
    /// answered by an earlier level or does not decide the layout. `settings.defaults` never
    /// counts here.
    fn settled(&self, levels: &[Level], next: LevelKind) -> bool {
        let native_answered = |suffix: &str| {
            self.native.iter().any(|n| {
                n.suffix == suffix
                    && levels
                        .iter()
                        .any(|l| l.kind == n.level && native_raw(l, n).and_then(n.parse).is_some())
            })
        };
        let answered = |suffix: &str| {
            self.entries()
                .any(|(def, key)| def.suffix == suffix && is_explicit(levels, key, def))
                || native_answered(suffix)
        };
        // Suffixes are unique within a provider: each key is its own entry.
        self.entries()
            .all(|(def, key)| is_explicit(levels, key, def) || native_answered(def.suffix))
            && self
                .native
                .iter()
                .filter(|n| n.level >= next)
                .all(|n| !n.decides_layout && answered(n.suffix))
    }

    /// Resolves one key: on every level its `cwii.dev/` key, then the webhook's keys read
    /// on that level; then settings.defaults. Values that are present but not explicit are
    /// reported.
    fn resolve_key(
        &self,
        levels: &[Level],
        def: KeyDef,
        key: &str,
        settings: &Settings,
        warnings: &mut Warnings,
    ) -> Option<Resolution> {
        for level in levels {
            if let Some(raw) = level.annotations.get(key) {
                match keys::parse_value(def.kind, raw) {
                    Some(value) => {
                        return Some(Resolution {
                            value,
                            source: level.kind,
                            native_key: None,
                        })
                    }
                    None => warnings.push(format!(
                        "cwii: ignored {key}={} on {} ({})",
                        keys::quote_for_message(raw),
                        level.label,
                        keys::expected(def.kind)
                    )),
                }
            }
            if def.suffix == shared::INJECT {
                // A webhook's signal is not a value of the inject key (see `resolve`).
                continue;
            }
            if let Some(found) = self.native_on_level(level, def.suffix, warnings) {
                return Some(found);
            }
        }
        settings.defaults.get(key).and_then(|raw| {
            keys::parse_value(def.kind, raw).map(|value| Resolution {
                value,
                source: LevelKind::Defaults,
                native_key: None,
            })
        })
    }

    /// A key only the webhook has: its native keys on their levels.
    fn native_value(
        &self,
        levels: &[Level],
        suffix: &str,
        warnings: &mut Warnings,
    ) -> Option<Resolution> {
        levels
            .iter()
            .find_map(|level| self.native_on_level(level, suffix, warnings))
    }

    fn native_on_level(
        &self,
        level: &Level,
        suffix: &str,
        warnings: &mut Warnings,
    ) -> Option<Resolution> {
        for native in self
            .native
            .iter()
            .filter(|n| n.suffix == suffix && n.level == level.kind)
        {
            let Some(raw) = native_raw(level, native) else {
                continue;
            };
            match (native.parse)(raw) {
                Some(value) => {
                    return Some(Resolution {
                        value,
                        source: level.kind,
                        native_key: Some(native.key.clone()),
                    })
                }
                None => warnings.push(format!(
                    "cwii: ignored {}{}={} on {} ({})",
                    match native.source {
                        NativeSource::Annotation => "",
                        NativeSource::Label => "label ",
                    },
                    native.key,
                    keys::quote_for_message(raw),
                    level.label,
                    native.expected,
                )),
            }
        }
        None
    }
}

fn native_raw<'l>(level: &'l Level, native: &NativeKey) -> Option<&'l str> {
    match native.source {
        NativeSource::Annotation => level.annotations.get(&native.key),
        NativeSource::Label => level.labels.get(&native.key),
    }
}

/// The first explicit `cwii.dev/` value of a key on the visited annotation levels, silently.
fn explicit(levels: &[Level], key: &str, def: KeyDef) -> Option<KeyValue> {
    levels.iter().find_map(|l| {
        l.annotations
            .get(key)
            .and_then(|raw| keys::parse_value(def.kind, raw))
    })
}

/// Whether some visited level has an explicit `cwii.dev/` value of a key (nothing parsed).
fn is_explicit(levels: &[Level], key: &str, def: KeyDef) -> bool {
    levels.iter().any(|l| {
        l.annotations
            .get(key)
            .is_some_and(|raw| keys::is_explicit(def.kind, raw))
    })
}

/// Looks one object up. A missing object is an empty level; any other failure denies the
/// pod, or with `lookupFailure: ignore` is a warning and an empty level.
fn fetch_level(
    object: ObjectRef,
    kind: LevelKind,
    settings: &Settings,
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Option<(Level<'static>, Vec<OwnerReference>)>, Denial> {
    match lookup.get(&object) {
        Ok(ObjectMeta {
            annotations,
            owner_references,
        }) => Ok(Some((
            Level {
                kind,
                label: Cow::Owned(object.to_string()),
                annotations: StringMap::Owned(annotations),
                labels: StringMap::Owned(BTreeMap::new()),
            },
            owner_references,
        ))),
        Err(LookupError::NotFound) => {
            warnings.push(format!(
                "cwii: {object} not found; its annotations are not read"
            ));
            Ok(None)
        }
        Err(LookupError::Failed(message)) => {
            let first_line: String = message
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect();
            // The host's text usually ends with a full stop; ours follows it.
            let first_line = first_line.trim_end().trim_end_matches('.');
            match settings.lookup_failure {
                LookupFailure::Deny => Err(Denial {
                    message: format!(
                        "cwii: cannot read {object} to resolve cwii.dev annotations: {first_line}. \
                         Grant the policy server `get` on {} (see examples/rbac.yaml), or set the \
                         policy setting lookupFailure: ignore",
                        plural(object.kind)
                    ),
                    code: 500,
                }),
                LookupFailure::Ignore => {
                    warnings.push(format!(
                        "cwii: cannot read {object} (ignored by lookupFailure: ignore): {first_line}"
                    ));
                    Ok(None)
                }
            }
        }
    }
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_ascii_lowercase())
}

/// The pod's controller owner (else its first owner of a known kind), and for a ReplicaSet or
/// Job its own Deployment or CronJob controller. The top object comes first: it wins per key.
fn owner_levels(
    pod: &PodContext<'_>,
    settings: &Settings,
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Vec<Level<'static>>, Denial> {
    let is_workload = |r: &&OwnerReference| {
        !r.name.is_empty()
            && known_kind(&r.kind).is_some_and(|(_, k)| k != "ServiceAccount" && k != "Namespace")
    };
    let owner = pod
        .owner_references
        .iter()
        .filter(is_workload)
        .find(|r| r.controller)
        .or_else(|| pod.owner_references.iter().find(is_workload));
    let Some(owner) = owner else {
        return Ok(Vec::new());
    };
    let Some((api_version, kind)) = known_kind(&owner.kind) else {
        return Ok(Vec::new());
    };
    let object = ObjectRef {
        api_version,
        kind,
        name: owner.name.clone(),
        namespace: Some(pod.namespace.clone()),
    };
    let Some((intermediate, owners)) =
        fetch_level(object, LevelKind::Workload, settings, lookup, warnings)?
    else {
        return Ok(Vec::new());
    };
    let top_kind = match kind {
        "ReplicaSet" => Some("Deployment"),
        "Job" => Some("CronJob"),
        _ => None,
    };
    let mut levels = Vec::new();
    if let Some(top_kind) = top_kind {
        let top = owners
            .iter()
            .find(|r| r.controller && r.kind == top_kind && !r.name.is_empty());
        if let (Some(top), Some((api_version, kind))) = (top, known_kind(top_kind)) {
            let object = ObjectRef {
                api_version,
                kind,
                name: top.name.clone(),
                namespace: Some(pod.namespace.clone()),
            };
            levels.extend(
                fetch_level(object, LevelKind::Workload, settings, lookup, warnings)?
                    .map(|(l, _)| l),
            );
        }
    }
    levels.push(intermediate);
    Ok(levels)
}
