//! Policy settings (SPEC §6): the cluster-wide configuration that replaces cwii's server
//! flags. Parsing validates everything and fills every default, so the rest of the policy
//! works with plain values.

use crate::keys::{self, KeyKind, KeyValue, PREFIX};
use crate::provider::{
    check_image_reference, check_mount_path, FieldValues, Provider, SettingField,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const DEFAULT_MOUNT_ROOT: &str = "/var/run/secrets/cwii.dev";
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
pub use crate::provider::MIN_TOKEN_EXPIRATION_SECONDS;

/// What to do when a lookup fails for a reason other than "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupFailure {
    /// cwii's fail-closed rule: deny the pod.
    Deny,
    /// Warn and treat the level as empty.
    Ignore,
}

/// The validated, fully defaulted settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mount_root: String,
    pub token_expiration_seconds: i64,
    pub native_annotations: bool,
    pub lookup_failure: LookupFailure,
    /// `resources` of every injected container, already validated; `None` for the
    /// default, made only when a container is injected ([`Settings::container_resources`]).
    pub injected_container_resources: Option<Value>,
    /// One entry per registered provider, keyed by its abbreviation.
    pub providers: BTreeMap<&'static str, ProviderSettings>,
    /// `native.<layout>` for every provider's layout, keyed by the layout's name.
    pub native: BTreeMap<&'static str, FieldValues>,
    /// Lowest precedence level: full input key → raw value.
    pub defaults: BTreeMap<String, String>,
}

/// Settings of one provider, defaults filled.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub enabled: bool,
    /// `None` when neither the settings nor the provider give one.
    pub default_audience: Option<String>,
    pub verify_image: String,
    /// The provider's own fields (gcp: `delivery`, `initImage`), validated by the provider.
    pub fields: FieldValues,
}

impl Settings {
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.get(name)
    }

    /// `resources` of every injected container.
    pub fn container_resources(&self) -> &Value {
        static DEFAULT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        match &self.injected_container_resources {
            Some(resources) => resources,
            None => DEFAULT.get_or_init(default_container_resources),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSettings {
    mount_root: Option<String>,
    token_expiration_seconds: Option<i64>,
    native_annotations: Option<bool>,
    native: Option<BTreeMap<String, Value>>,
    lookup_failure: Option<String>,
    injected_container_resources: Option<Value>,
    providers: Option<BTreeMap<String, RawProviderSettings>>,
    defaults: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawProviderSettings {
    enabled: Option<bool>,
    default_audience: Option<String>,
    verify_image: Option<String>,
    /// Checked against the provider's own list of fields.
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

impl Settings {
    /// Parses settings JSON bytes; `null`, empty input and `{}` mean all defaults.
    ///
    /// Read straight from the text, without a JSON tree first: a fresh instance parses its
    /// settings on every request (README, Performance). Messages are those of
    /// [`Settings::from_value`] (tested).
    pub fn from_slice(bytes: &[u8], providers: &[&dyn Provider]) -> Result<Settings, String> {
        let text = bytes.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Settings::from_raw(RawSettings::default(), providers);
        }
        let not_json = |e: serde_json::Error| format!("settings are not valid JSON: {e}");
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        // Read without tracking where it is, which only a message needs: a refused text is
        // read again for its message, and no valid one pays for it.
        if let Ok(raw) = RawSettings::deserialize(&mut deserializer) {
            deserializer.end().map_err(not_json)?;
            return Settings::from_raw(raw, providers);
        }
        // Text that is not JSON is refused as such, whatever field came first, as when it
        // was parsed into a tree first.
        serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(not_json)?;
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        match serde_path_to_error::deserialize::<_, RawSettings>(&mut deserializer) {
            Err(e) => Err(field_error(e.path(), &without_position(e.inner()))),
            // Unreachable: the same text was refused above.
            Ok(_) => Err("invalid settings".to_string()),
        }
    }

    /// Validates and fills defaults, from the descriptions the providers hand over. Every
    /// error names the offending field.
    pub fn from_value(value: Value, providers: &[&dyn Provider]) -> Result<Settings, String> {
        let raw: RawSettings = match value {
            Value::Null => RawSettings::default(),
            other => serde_path_to_error::deserialize(other)
                .map_err(|e| field_error(e.path(), &e.inner().to_string()))?,
        };
        Settings::from_raw(raw, providers)
    }

    fn from_raw(raw: RawSettings, providers: &[&dyn Provider]) -> Result<Settings, String> {
        let mount_root = match raw.mount_root {
            None => DEFAULT_MOUNT_ROOT.to_string(),
            Some(root) => check_mount_path(&root)
                .map_err(|why| format!("invalid settings field `mountRoot`: {why}"))?,
        };
        let token_expiration_seconds = raw
            .token_expiration_seconds
            .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
        if token_expiration_seconds < MIN_TOKEN_EXPIRATION_SECONDS {
            return Err(format!(
                "invalid settings field `tokenExpirationSeconds`: {token_expiration_seconds} is below the minimum of {MIN_TOKEN_EXPIRATION_SECONDS}"
            ));
        }
        let lookup_failure = match raw.lookup_failure.as_deref() {
            None | Some("deny") => LookupFailure::Deny,
            Some("ignore") => LookupFailure::Ignore,
            Some(other) => {
                return Err(format!(
                    "invalid settings field `lookupFailure`: {} (expected deny or ignore)",
                    keys::quote_for_message(other)
                ))
            }
        };
        let injected_container_resources = match raw.injected_container_resources {
            None => None,
            Some(resources) => Some(check_resources(resources)?),
        };

        let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
        let mut raw_providers = raw.providers.unwrap_or_default();
        if let Some(unknown) = raw_providers.keys().find(|n| !names.contains(&n.as_str())) {
            return Err(format!(
                "invalid settings field `providers.{unknown}`: unknown provider (expected one of {})",
                names.join(", ")
            ));
        }
        let mut provider_map = BTreeMap::new();
        for provider in providers {
            let raw_provider = raw_providers.remove(provider.name()).unwrap_or_default();
            provider_map.insert(provider.name(), provider_settings(*provider, raw_provider)?);
        }

        let native_annotations = raw.native_annotations.unwrap_or(false);
        let native = match raw.native {
            // Nothing to validate, and drop-in mode is off: no defaults to fill either.
            None if !native_annotations => BTreeMap::new(),
            given => native_settings(given.unwrap_or_default(), providers)?,
        };

        let mut defaults = BTreeMap::new();
        for (key, value) in raw.defaults.unwrap_or_default() {
            let raw_value = check_default(providers, &key, value)?;
            defaults.insert(key, raw_value);
        }

        Ok(Settings {
            mount_root,
            token_expiration_seconds,
            native_annotations,
            lookup_failure,
            injected_container_resources,
            providers: provider_map,
            native,
            defaults,
        })
    }
}

/// The message of a settings field whose JSON has the wrong type or an unknown member.
fn field_error(path: &serde_path_to_error::Path, why: &str) -> String {
    let path = path.to_string();
    if path == "." {
        format!("invalid settings: {why}")
    } else {
        format!("invalid settings field `{path}`: {why}")
    }
}

/// A serde_json error's message without the ` at line L column C` that reading from text
/// adds: the message names the field, and settings are often written as YAML, whose lines
/// are not the JSON's.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(plain) => plain.to_string(),
        None => message,
    }
}

fn default_container_resources() -> Value {
    json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
}

/// Validates an object of fields against their descriptions; `path` prefixes messages and
/// `also_known` names fields the caller handled itself.
fn check_fields(
    path: std::fmt::Arguments<'_>,
    fields: &[SettingField],
    mut raw: Map<String, Value>,
    also_known: &[&str],
) -> Result<FieldValues, String> {
    let mut values = FieldValues::new();
    for field in fields {
        let value = (field.check)(raw.get(field.name))
            .map_err(|why| format!("invalid settings field `{path}.{}`: {why}", field.name))?;
        raw.remove(field.name);
        values.insert(field.name, value);
    }
    if let Some(unknown) = raw.keys().next() {
        let known: Vec<&str> = also_known
            .iter()
            .copied()
            .chain(fields.iter().map(|f| f.name))
            .collect();
        return Err(format!(
            "invalid settings field `{path}.{unknown}`: unknown field (expected one of {})",
            known.join(", ")
        ));
    }
    Ok(values)
}

fn native_settings(
    mut raw: BTreeMap<String, Value>,
    providers: &[&dyn Provider],
) -> Result<BTreeMap<&'static str, FieldValues>, String> {
    let layouts: Vec<_> = providers.iter().filter_map(|p| p.native_layout()).collect();
    let mut native = BTreeMap::new();
    for layout in &layouts {
        let path = format!("native.{}", layout.name());
        let fields = match raw.remove(layout.name()) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(format!(
                    "invalid settings field `{path}`: expected an object, found {other}"
                ))
            }
        };
        native.insert(
            layout.name(),
            check_fields(
                format_args!("{path}"),
                layout.settings_fields(),
                fields,
                &[],
            )?,
        );
    }
    if let Some(unknown) = raw.keys().next() {
        let known: Vec<&str> = layouts.iter().map(|l| l.name()).collect();
        return Err(format!(
            "invalid settings field `native.{unknown}`: unknown webhook (expected one of {})",
            known.join(", ")
        ));
    }
    Ok(native)
}

fn provider_settings(
    provider: &dyn Provider,
    raw: RawProviderSettings,
) -> Result<ProviderSettings, String> {
    let name = provider.name();
    let verify_image = match raw.verify_image {
        Some(image) => {
            check_image_reference(&image).map_err(|why| {
                format!("invalid settings field `providers.{name}.verifyImage`: {why}")
            })?;
            image
        }
        None => provider.default_verify_image().to_string(),
    };
    let default_audience = match raw.default_audience {
        Some(audience) if !audience.trim().is_empty() => Some(audience.trim().to_string()),
        // An empty value means "no cluster default": fall back to the provider's own.
        _ => provider.built_in_audience().map(str::to_string),
    };
    let own = provider.settings_fields();
    let extra: Map<String, Value> = raw.extra.into_iter().collect();
    let fields = check_fields(
        format_args!("providers.{name}"),
        own,
        extra,
        &["enabled", "defaultAudience", "verifyImage"],
    )?;
    Ok(ProviderSettings {
        enabled: raw.enabled.unwrap_or(true),
        default_audience,
        verify_image,
        fields,
    })
}

/// Finds the provider and key definition of a full input key such as `cwii.dev/az-inject`.
pub fn input_key<'p>(
    providers: &[&'p dyn Provider],
    key: &str,
) -> Option<(&'p dyn Provider, keys::KeyDef)> {
    let rest = key.strip_prefix(PREFIX)?;
    providers.iter().find_map(|provider| {
        let suffix = rest.strip_prefix(provider.name())?.strip_prefix('-')?;
        keys::key_defs(provider.keys())
            .find(|def| def.suffix == suffix)
            .map(|def| (*provider, def))
    })
}

fn check_default(providers: &[&dyn Provider], key: &str, value: Value) -> Result<String, String> {
    // Built only for a message: settings are parsed on every fresh instance's request.
    let field = || format!("invalid settings field `defaults.{key}`");
    if key == keys::INJECTED_MARKER {
        return Err(format!(
            "{}: {} is written by the policy, it is not an input key",
            field(),
            keys::INJECTED_MARKER
        ));
    }
    let Some((_, def)) = input_key(providers, key) else {
        return Err(format!("{}: not a cwii.dev input key", field()));
    };
    let raw = match value {
        Value::String(s) => s,
        Value::Bool(b) if def.kind == KeyKind::Bool => b.to_string(),
        Value::Number(n) if def.kind == KeyKind::Seconds => n.to_string(),
        other => {
            return Err(format!(
                "{}: {}",
                field(),
                keys::expected(def.kind) + &format!(", found {other}")
            ))
        }
    };
    match keys::parse_value(def.kind, &raw) {
        Some(KeyValue::Seconds(s)) if s < MIN_TOKEN_EXPIRATION_SECONDS => Err(format!(
            "{}: {s} is below the minimum of {MIN_TOKEN_EXPIRATION_SECONDS}",
            field()
        )),
        Some(_) => Ok(raw),
        None => Err(format!(
            "{}: {} is invalid ({})",
            field(),
            keys::quote_for_message(&raw),
            keys::expected(def.kind)
        )),
    }
}

/// `injectedContainerResources` must look like a container's `resources`: `requests` and
/// `limits`, each a map of resource name to Kubernetes quantity.
fn check_resources(resources: Value) -> Result<Value, String> {
    let field = "injectedContainerResources";
    let Value::Object(map) = &resources else {
        return Err(format!(
            "invalid settings field `{field}`: expected an object with requests and limits"
        ));
    };
    for (section, quantities) in map {
        if section != "requests" && section != "limits" {
            return Err(format!(
                "invalid settings field `{field}.{section}`: unknown field (expected requests or limits)"
            ));
        }
        let Value::Object(quantities) = quantities else {
            return Err(format!(
                "invalid settings field `{field}.{section}`: expected a map of resource name to quantity"
            ));
        };
        for (name, quantity) in quantities {
            let text = match quantity {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "invalid settings field `{field}.{section}.{name}`: expected a quantity, found {other}"
                    ))
                }
            };
            if !is_quantity(&text) {
                return Err(format!(
                    "invalid settings field `{field}.{section}.{name}`: {} is not a Kubernetes quantity",
                    keys::quote_for_message(&text)
                ));
            }
        }
    }
    // Numbers are normalised to strings, the form Kubernetes writes quantities in.
    let normalised: Map<String, Value> = map
        .iter()
        .map(|(section, quantities)| {
            let q = quantities
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), Value::String(s))
                        })
                        .collect::<Map<String, Value>>()
                })
                .unwrap_or_default();
            (section.clone(), Value::Object(q))
        })
        .collect();
    Ok(Value::Object(normalised))
}

/// Kubernetes quantity grammar: a decimal number followed by an optional binary or decimal
/// SI suffix or a decimal exponent.
pub(crate) fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| {
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        })
        .unwrap_or(false);
    number_ok && suffix_ok
}
