//! Precedence (SPEC §3): every key is resolved on its own, first explicit value wins, in the
//! order pod > owning workload > ServiceAccount > namespace > settings.defaults. Levels are
//! fetched lazily, in a fixed order, and only while some open provider still has a key
//! that no visited level answered.

use crate::keys::{self, shared, KeyDef, KeyKind, KeyValue};
use crate::lookup::{known_kind, Lookup, LookupError, ObjectMeta, ObjectRef, OwnerReference};
use crate::providers::{self, Provider};
use crate::settings::{LookupFailure, Settings};
use crate::warnings::Warnings;
use std::collections::BTreeMap;

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

/// The annotations of one object, in precedence order within the list of visited levels.
#[derive(Debug, Clone)]
pub struct Level {
    pub kind: LevelKind,
    /// `pod`, or the object, e.g. `Deployment apps/web`.
    pub label: String,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub value: KeyValue,
    pub source: LevelKind,
    /// The managed-platform key that supplied the value, in compat mode.
    pub native_key: Option<&'static str>,
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
    pub fn text(&self, suffix: &str) -> Option<&str> {
        match self.get(suffix).map(|r| &r.value) {
            Some(KeyValue::Text(t)) => Some(t),
            _ => None,
        }
    }
    pub fn flag(&self, suffix: &str) -> Option<bool> {
        match self.get(suffix).map(|r| &r.value) {
            Some(KeyValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn seconds(&self, suffix: &str) -> Option<i64> {
        match self.get(suffix).map(|r| &r.value) {
            Some(KeyValue::Seconds(s)) => Some(*s),
            _ => None,
        }
    }
    pub fn names(&self, suffix: &str) -> &[String] {
        match self.get(suffix).map(|r| &r.value) {
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

/// What the resolver needs to know about the pod.
#[derive(Debug, Clone, Default)]
pub struct PodContext {
    pub namespace: String,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    /// `spec.serviceAccountName`, or `default` when empty.
    pub service_account: String,
}

/// A provider whose inject key resolved to true, with all its keys resolved.
pub struct Enabled {
    pub provider: &'static dyn Provider,
    pub keys: ResolvedKeys,
}

/// Resolves every enabled provider, looking objects up only as far as needed.
pub fn resolve(
    pod: &PodContext,
    settings: &Settings,
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Vec<Enabled>, Denial> {
    let enabled: Vec<&'static dyn Provider> = providers::all()
        .iter()
        .copied()
        .filter(|p| settings.provider(p.name()).is_some_and(|s| s.enabled))
        .collect();

    let mut levels = vec![Level {
        kind: LevelKind::Pod,
        label: "pod".to_string(),
        annotations: pod.annotations.clone(),
    }];

    // Full key names, built once: the skip checks below ask for them at every step.
    let key_tables: Vec<KeyTable> = enabled.iter().map(|p| KeyTable::new(*p)).collect();

    for step in [Step::Owner, Step::ServiceAccount, Step::Namespace] {
        let open: Vec<&KeyTable> = key_tables
            .iter()
            .filter(|t| !inject_is_false(&levels, t))
            .collect();
        let settled = open.iter().all(|t| {
            t.keys
                .iter()
                .all(|(def, key)| explicit(&levels, key, *def).is_some())
        });
        if open.is_empty() || settled {
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
                levels.extend(
                    fetch_level(
                        object,
                        LevelKind::ServiceAccount,
                        settings,
                        lookup,
                        warnings,
                    )?
                    .map(|(l, _)| l),
                );
            }
            Step::Namespace => {
                let object = ObjectRef {
                    api_version: "v1",
                    kind: "Namespace",
                    name: pod.namespace.clone(),
                    namespace: None,
                };
                levels.extend(
                    fetch_level(object, LevelKind::Namespace, settings, lookup, warnings)?
                        .map(|(l, _)| l),
                );
            }
        }
    }

    let mut result = Vec::new();
    for provider in providers::all() {
        let provider = *provider;
        let Some(table) = key_tables
            .iter()
            .find(|t| t.provider.name() == provider.name())
        else {
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
        let inject = resolve_key(
            &levels, provider, inject_def, inject_key, settings, warnings,
        );
        if !inject
            .as_ref()
            .is_some_and(|r| r.value == KeyValue::Bool(true))
        {
            continue;
        }
        let mut keys = ResolvedKeys::default();
        for (def, key) in &table.keys {
            let def = *def;
            let resolution = if def.suffix == shared::INJECT {
                inject.clone()
            } else {
                resolve_key(&levels, provider, def, key, settings, warnings)
            };
            if let Some(resolution) = resolution {
                keys.insert(def.suffix, resolution);
            }
        }
        result.push(Enabled { provider, keys });
    }
    Ok(result)
}

#[derive(Clone, Copy)]
enum Step {
    Owner,
    ServiceAccount,
    Namespace,
}

/// An enabled provider's key definitions with their full `cwii.dev/` names.
struct KeyTable {
    provider: &'static dyn Provider,
    keys: Vec<(KeyDef, String)>,
}

impl KeyTable {
    fn new(provider: &'static dyn Provider) -> Self {
        let keys = providers::key_defs(provider)
            .map(|def| (def, keys::full_key(provider.name(), def.suffix)))
            .collect();
        Self { provider, keys }
    }

    /// The inject key (the first of the shared keys).
    fn inject(&self) -> (KeyDef, &str) {
        let (def, key) = &self.keys[0];
        debug_assert_eq!(def.suffix, shared::INJECT);
        (*def, key)
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

/// A provider is closed once its inject key is explicitly false at a visited level. (A
/// native key can only enable, never close, a provider.)
fn inject_is_false(levels: &[Level], table: &KeyTable) -> bool {
    let (def, key) = table.inject();
    explicit(levels, key, def) == Some(KeyValue::Bool(false))
}

/// Resolves one key: `cwii.dev/` on every level, then (compat) native keys on every level,
/// then settings.defaults. Values that are present but not explicit are reported.
fn resolve_key(
    levels: &[Level],
    provider: &dyn Provider,
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
    }
    if settings.native_annotations {
        let natives = provider.native_keys();
        for native in natives.iter().filter(|n| n.suffix == def.suffix) {
            if let Some(found) = native_value(levels, native.key, def.kind, warnings) {
                return Some(Resolution {
                    value: found.0,
                    source: found.1,
                    native_key: Some(native.key),
                });
            }
        }
        // The presence of the provider's first native key enables it.
        if def.suffix == shared::INJECT {
            if let Some(first) = natives.first() {
                if let Some((_, source)) =
                    native_value(levels, first.key, KeyKind::Text, &mut Warnings::default())
                {
                    return Some(Resolution {
                        value: KeyValue::Bool(true),
                        source,
                        native_key: Some(first.key),
                    });
                }
            }
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

fn native_value(
    levels: &[Level],
    native_key: &str,
    kind: KeyKind,
    warnings: &mut Warnings,
) -> Option<(KeyValue, LevelKind)> {
    for level in levels {
        if let Some(raw) = level.annotations.get(native_key) {
            match keys::parse_value(kind, raw) {
                Some(value) => return Some((value, level.kind)),
                None => warnings.push(format!(
                    "cwii: ignored {native_key}={} on {} ({})",
                    keys::quote_for_message(raw),
                    level.label,
                    keys::expected(kind)
                )),
            }
        }
    }
    None
}

/// Looks one object up. A missing object is an empty level; any other failure denies the
/// pod, or with `lookupFailure: ignore` is a warning and an empty level.
fn fetch_level(
    object: ObjectRef,
    kind: LevelKind,
    settings: &Settings,
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Option<(Level, ObjectMeta)>, Denial> {
    match lookup.get(&object) {
        Ok(meta) => Ok(Some((
            Level {
                kind,
                label: object.to_string(),
                annotations: meta.annotations.clone(),
            },
            meta,
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
    pod: &PodContext,
    settings: &Settings,
    lookup: &mut dyn Lookup,
    warnings: &mut Warnings,
) -> Result<Vec<Level>, Denial> {
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
    let Some((intermediate, meta)) =
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
        let top = meta
            .owner_references
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
