//! Policy settings (SPEC §6): the cluster-wide configuration that replaces cwii's server
//! flags. Parsing validates everything and fills every default, so the rest of the policy
//! works with plain values.

use crate::keys::{self, KeyKind, KeyValue, PREFIX};
use crate::providers::{self, Provider};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const DEFAULT_MOUNT_ROOT: &str = "/var/run/secrets/cwii.dev";
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
/// Kubernetes refuses projected tokens that live shorter than ten minutes.
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;

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
    /// `resources` of every injected container, already validated.
    pub injected_container_resources: Value,
    /// One entry per registered provider, keyed by its abbreviation.
    pub providers: BTreeMap<&'static str, ProviderSettings>,
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
    /// Provider-specific fields (gcp: `delivery`, `initImage`), validated by the provider.
    pub extra: BTreeMap<&'static str, String>,
}

impl Settings {
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.get(name)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSettings {
    mount_root: Option<String>,
    token_expiration_seconds: Option<i64>,
    native_annotations: Option<bool>,
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
    pub fn from_slice(bytes: &[u8]) -> Result<Settings, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Settings::from_value(Value::Null);
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("settings are not valid JSON: {e}"))?;
        Settings::from_value(value)
    }

    /// Validates and fills defaults. Every error names the offending field.
    pub fn from_value(value: Value) -> Result<Settings, String> {
        let raw: RawSettings = match value {
            Value::Null => RawSettings::default(),
            other => serde_path_to_error::deserialize(other).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    format!("invalid settings: {}", e.inner())
                } else {
                    format!("invalid settings field `{path}`: {}", e.inner())
                }
            })?,
        };

        let mount_root = match raw.mount_root {
            None => DEFAULT_MOUNT_ROOT.to_string(),
            Some(root) => check_mount_root(&root)?,
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
            None => default_container_resources(),
            Some(resources) => check_resources(resources)?,
        };

        let mut raw_providers = raw.providers.unwrap_or_default();
        if let Some(unknown) = raw_providers
            .keys()
            .find(|name| providers::by_name(name).is_none())
        {
            return Err(format!(
                "invalid settings field `providers.{unknown}`: unknown provider (expected one of {})",
                providers::names().join(", ")
            ));
        }
        let mut providers = BTreeMap::new();
        for provider in providers::all() {
            let raw_provider = raw_providers.remove(provider.name()).unwrap_or_default();
            providers.insert(provider.name(), provider_settings(*provider, raw_provider)?);
        }

        let mut defaults = BTreeMap::new();
        for (key, value) in raw.defaults.unwrap_or_default() {
            let raw_value = check_default(&key, value)?;
            defaults.insert(key, raw_value);
        }

        Ok(Settings {
            mount_root,
            token_expiration_seconds,
            native_annotations: raw.native_annotations.unwrap_or(false),
            lookup_failure,
            injected_container_resources,
            providers,
            defaults,
        })
    }
}

fn default_container_resources() -> Value {
    json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
}

/// The mount root is pasted into mount paths and the gcp writer's shell command, so it is
/// held to a conservative character set as well as being absolute.
fn check_mount_root(root: &str) -> Result<String, String> {
    let field = "invalid settings field `mountRoot`";
    if !root.starts_with('/') {
        return Err(format!(
            "{field}: {} is not an absolute path",
            keys::quote_for_message(root)
        ));
    }
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(format!("{field}: \"/\" cannot hold the token directories"));
    }
    let safe = trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if !safe || trimmed.split('/').any(|part| part == "..") {
        return Err(format!(
            "{field}: {} may only contain letters, digits, '/', '.', '_' and '-', and no '..'",
            keys::quote_for_message(root)
        ));
    }
    Ok(trimmed.to_string())
}

/// An image reference is pasted into a container's `image`; it must at least be one word.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    if image.trim().is_empty() {
        return Err("the image reference is empty".to_string());
    }
    if image.chars().any(char::is_whitespace) {
        return Err(format!(
            "{} contains whitespace",
            keys::quote_for_message(image)
        ));
    }
    Ok(())
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
    let mut extra = BTreeMap::new();
    let mut raw_extra = raw.extra;
    for field in provider.extra_settings() {
        let path = format!("providers.{name}.{}", field.name);
        let value = match raw_extra.remove(field.name) {
            None => field.default.to_string(),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(format!(
                    "invalid settings field `{path}`: expected a string, found {other}"
                ))
            }
        };
        (field.check)(&value).map_err(|why| format!("invalid settings field `{path}`: {why}"))?;
        extra.insert(field.name, value);
    }
    if let Some(unknown) = raw_extra.keys().next() {
        let mut known = vec!["enabled", "defaultAudience", "verifyImage"];
        known.extend(provider.extra_settings().iter().map(|f| f.name));
        return Err(format!(
            "invalid settings field `providers.{name}.{unknown}`: unknown field (expected one of {})",
            known.join(", ")
        ));
    }
    Ok(ProviderSettings {
        enabled: raw.enabled.unwrap_or(true),
        default_audience,
        verify_image,
        extra,
    })
}

/// Finds the provider and key definition of a full input key such as `cwii.dev/az-inject`.
pub fn input_key(key: &str) -> Option<(&'static dyn Provider, keys::KeyDef)> {
    let rest = key.strip_prefix(PREFIX)?;
    providers::all().iter().find_map(|provider| {
        let suffix = rest.strip_prefix(provider.name())?.strip_prefix('-')?;
        providers::key_defs(*provider)
            .find(|def| def.suffix == suffix)
            .map(|def| (*provider, def))
    })
}

fn check_default(key: &str, value: Value) -> Result<String, String> {
    let field = format!("invalid settings field `defaults.{key}`");
    if key == keys::INJECTED_MARKER {
        return Err(format!(
            "{field}: {} is written by the policy, it is not an input key",
            keys::INJECTED_MARKER
        ));
    }
    let Some((_, def)) = input_key(key) else {
        return Err(format!("{field}: not a cwii.dev input key"));
    };
    let raw = match value {
        Value::String(s) => s,
        Value::Bool(b) if def.kind == KeyKind::Bool => b.to_string(),
        Value::Number(n) if def.kind == KeyKind::Seconds => n.to_string(),
        other => {
            return Err(format!(
                "{field}: {}",
                keys::expected(def.kind) + &format!(", found {other}")
            ))
        }
    };
    match keys::parse_value(def.kind, &raw) {
        Some(KeyValue::Seconds(s)) if s < MIN_TOKEN_EXPIRATION_SECONDS => Err(format!(
            "{field}: {s} is below the minimum of {MIN_TOKEN_EXPIRATION_SECONDS}"
        )),
        Some(_) => Ok(raw),
        None => Err(format!(
            "{field}: {} is invalid ({})",
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
fn is_quantity(text: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(settings: Value) -> String {
        match Settings::from_value(settings) {
            Ok(_) => panic!("settings should be rejected"),
            Err(message) => message,
        }
    }

    #[test]
    fn empty_and_null_mean_defaults() {
        let defaults = Settings::from_value(json!({})).unwrap();
        assert_eq!(Settings::from_slice(b"null"), Ok(defaults.clone()));
        assert_eq!(Settings::from_slice(b"{}"), Ok(defaults.clone()));
        assert_eq!(Settings::from_slice(b""), Ok(defaults.clone()));
        assert_eq!(defaults.mount_root, "/var/run/secrets/cwii.dev");
        assert_eq!(defaults.token_expiration_seconds, 3600);
        assert!(!defaults.native_annotations);
        assert_eq!(defaults.lookup_failure, LookupFailure::Deny);
        assert_eq!(
            defaults.injected_container_resources,
            json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
        );
        let gcp = &defaults.providers["gcp"];
        assert!(gcp.enabled);
        assert_eq!(gcp.default_audience, None);
        assert_eq!(gcp.verify_image, "google/cloud-sdk:572.0.0-slim");
        assert_eq!(gcp.extra["delivery"], "downward-api");
        assert_eq!(gcp.extra["initImage"], "busybox:1.38.0");
        let aws = &defaults.providers["aws"];
        assert_eq!(aws.default_audience.as_deref(), Some("sts.amazonaws.com"));
        assert_eq!(aws.verify_image, "amazon/aws-cli:2.35.4");
        let az = &defaults.providers["az"];
        assert_eq!(
            az.default_audience.as_deref(),
            Some("api://AzureADTokenExchange")
        );
        assert_eq!(az.verify_image, "mcr.microsoft.com/azure-cli:2.84.0");
    }

    #[test]
    fn full_example_parses() {
        let s = Settings::from_value(json!({
            "mountRoot": "/cwii/",
            "tokenExpirationSeconds": 7200,
            "nativeAnnotations": true,
            "lookupFailure": "ignore",
            "injectedContainerResources": {"requests": {"cpu": "10m", "memory": 1000}, "limits": {"memory": "1Gi"}},
            "providers": {"gcp": {"enabled": false, "defaultAudience": "//iam.googleapis.com/x", "delivery": "init-container", "initImage": "busybox:1", "verifyImage": "gcloud:1"},
                          "aws": {"defaultAudience": "sts.example"}},
            "defaults": {"cwii.dev/az-tenant-id": "t", "cwii.dev/az-inject": true, "cwii.dev/aws-token-expiration": 900}
        }))
        .unwrap();
        assert_eq!(s.mount_root, "/cwii");
        assert_eq!(s.token_expiration_seconds, 7200);
        assert!(s.native_annotations);
        assert_eq!(s.lookup_failure, LookupFailure::Ignore);
        assert_eq!(s.injected_container_resources["requests"]["memory"], "1000");
        assert!(!s.providers["gcp"].enabled);
        assert_eq!(s.providers["gcp"].extra["delivery"], "init-container");
        assert_eq!(
            s.providers["aws"].default_audience.as_deref(),
            Some("sts.example")
        );
        assert_eq!(s.defaults["cwii.dev/az-inject"], "true");
        assert_eq!(s.defaults["cwii.dev/aws-token-expiration"], "900");
    }

    #[test]
    fn every_invalid_case_names_its_field() {
        let cases = [
            (json!({"bogus": 1}), "bogus"),
            (
                json!({"tokenExpirationSeconds": 599}),
                "tokenExpirationSeconds",
            ),
            (
                json!({"tokenExpirationSeconds": "abc"}),
                "tokenExpirationSeconds",
            ),
            (json!({"lookupFailure": "maybe"}), "lookupFailure"),
            (json!({"mountRoot": "relative/path"}), "mountRoot"),
            (json!({"mountRoot": "/a b"}), "mountRoot"),
            (json!({"mountRoot": "/"}), "mountRoot"),
            (
                json!({"providers": {"gcp": {"delivery": "carrier-pigeon"}}}),
                "providers.gcp.delivery",
            ),
            (
                json!({"providers": {"gcp": {"initImage": ""}}}),
                "providers.gcp.initImage",
            ),
            (
                json!({"providers": {"az": {"verifyImage": " "}}}),
                "providers.az.verifyImage",
            ),
            (
                json!({"providers": {"aws": {"delivery": "downward-api"}}}),
                "providers.aws.delivery",
            ),
            (json!({"providers": {"ibm": {}}}), "providers.ibm"),
            (
                json!({"providers": {"aws": {"enabled": "yes"}}}),
                "providers.aws.enabled",
            ),
            (
                json!({"defaults": {"cwii.dev/injected": "az"}}),
                "defaults.cwii.dev/injected",
            ),
            (
                json!({"defaults": {"cwii.dev/az-nope": "x"}}),
                "defaults.cwii.dev/az-nope",
            ),
            (json!({"defaults": {"team": "x"}}), "defaults.team"),
            (
                json!({"defaults": {"cwii.dev/az-inject": "maybe"}}),
                "defaults.cwii.dev/az-inject",
            ),
            (
                json!({"defaults": {"cwii.dev/gcp-token-expiration": "60"}}),
                "defaults.cwii.dev/gcp-token-expiration",
            ),
            (
                json!({"defaults": {"cwii.dev/aws-role-arn": "  "}}),
                "defaults.cwii.dev/aws-role-arn",
            ),
            (
                json!({"defaults": {"cwii.dev/gcp-delivery": "x"}}),
                "defaults.cwii.dev/gcp-delivery",
            ),
            (
                json!({"injectedContainerResources": {"requests": {"cpu": "lots"}}}),
                "injectedContainerResources.requests.cpu",
            ),
            (
                json!({"injectedContainerResources": {"claims": {}}}),
                "injectedContainerResources.claims",
            ),
            (
                json!({"injectedContainerResources": "small"}),
                "injectedContainerResources",
            ),
        ];
        for (settings, field) in cases {
            let message = err(settings.clone());
            assert!(
                message.contains(&format!("`{field}`")) || message.contains(&format!("`{field}")),
                "{settings} -> {message} should name {field}"
            );
        }
    }

    #[test]
    fn quantities() {
        for ok in ["50m", "128Mi", "1", "0.5", "1e3", "2Gi", "+1k", "1E-2"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.2.3", "5 Mi", "lots", "1e", "Mi5"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
