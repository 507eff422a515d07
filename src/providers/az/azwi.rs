//! The pod azure-workload-identity (azwi) 1.6 — or 1.5 — returns (SPEC §7), as a second
//! layout of the az provider. Facts from azwi's webhook; the code is this project's.

use super::keys::{AUTHORITY_HOST, CLIENT_ID, TENANT_ID};
use crate::keys::{quote_for_message, shared, KeyValue};
use crate::provider::{
    any_text, bool_field, check_image_reference, field_text, native_seconds as seconds,
    native_text as text, string_field, token_volume, AddedContainer, ContainerList, Denial,
    FieldValues, LevelKind, Mount, NativeKey, NativeLayout, NativeSource, Ownership, PlanContext,
    Position, ProviderPlan, ResolvedKeys, SettingField,
};
use crate::warnings::Warnings;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct Azwi;

const PREFIX: &str = "azure.workload.identity/";
/// Layout-only keys (no `cwii.dev/` counterpart).
const USE: &str = "azwi-use";
const PROXY: &str = "azwi-inject-proxy-sidecar";
const PROXY_PORT: &str = "azwi-proxy-sidecar-port";

const DEFAULT_EXPIRATION: i64 = 3600;
const MAX_EXPIRATION: i64 = 86400;
const DEFAULT_PROXY_PORT: &str = "8000";
const PROXY_INIT: &str = "azwi-proxy-init";
const PROXY_SIDECAR: &str = "azwi-proxy";

/// `AZURE_ENVIRONMENT` names and their Entra ID authority hosts.
const CLOUDS: &[(&str, &str)] = &[
    ("AzurePublicCloud", "https://login.microsoftonline.com/"),
    (
        "AzureUSGovernmentCloud",
        "https://login.microsoftonline.us/",
    ),
    ("AzureChinaCloud", "https://login.chinacloudapi.cn/"),
    ("AzureGermanCloud", "https://login.microsoftonline.de/"),
];

/// The two layouts azwi has shipped: volume name, token path, mount path.
struct Version {
    volume: Option<&'static str>,
    token_path: &'static str,
    mount_path: &'static str,
}

const V1_6: Version = Version {
    // None: `azure-workload-identity-reserved-` + 30 hex digits of SHA-256 of the pod name.
    volume: None,
    token_path: "token/azure-identity-token",
    mount_path: "/var/run/secrets/azure/wi",
};
const V1_5: Version = Version {
    volume: Some("azure-identity-token"),
    token_path: "azure-identity-token",
    mount_path: "/var/run/secrets/azure/tokens",
};

fn check_version(v: &str) -> Result<(), String> {
    match v {
        "1.6" | "1.5" => Ok(()),
        _ => Err(format!(
            "unknown version {} (expected \"1.6\" or \"1.5\")",
            quote_for_message(v)
        )),
    }
}

fn cloud_host(name: &str) -> Option<&'static str> {
    CLOUDS
        .iter()
        .find(|(cloud, _)| cloud.eq_ignore_ascii_case(name))
        .map(|(_, host)| *host)
}

fn check_cloud(name: &str) -> Result<(), String> {
    match cloud_host(name) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown cloud {} (expected one of {})",
            quote_for_message(name),
            CLOUDS
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn check_log_level(level: &str) -> Result<(), String> {
    if !level.is_empty() && level.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(format!(
            "{} is not a log level (one word, e.g. info or debug)",
            quote_for_message(level)
        ))
    }
}

const FIELDS: &[SettingField] = &[
    SettingField {
        name: "version",
        check: |raw| string_field(raw, "1.6", check_version),
    },
    SettingField {
        name: "tenantId",
        check: |raw| string_field(raw, "", any_text),
    },
    SettingField {
        name: "cloud",
        check: |raw| string_field(raw, "AzurePublicCloud", check_cloud),
    },
    SettingField {
        name: "audience",
        check: |raw| string_field(raw, "api://AzureADTokenExchange", any_text),
    },
    SettingField {
        name: "proxyInitImage",
        check: |raw| {
            string_field(
                raw,
                "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0",
                check_image_reference,
            )
        },
    },
    SettingField {
        name: "proxyImage",
        check: |raw| {
            string_field(
                raw,
                "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0",
                check_image_reference,
            )
        },
    },
    SettingField {
        name: "proxyNativeSidecar",
        check: |raw| bool_field(raw, true),
    },
    SettingField {
        name: "proxyLogLevel",
        check: |raw| string_field(raw, "info", check_log_level),
    },
];

/// The skip list: split on `;` only, each name trimmed.
fn semicolon_names(raw: &str) -> Option<KeyValue> {
    let names: Vec<String> = raw
        .split(';')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    (!names.is_empty()).then_some(KeyValue::Names(names))
}

/// The webhook's objectSelector matches the value `true` exactly; other values are quietly
/// "not enabled", except near-misses such as `True`, which are worth a warning.
fn use_label(raw: &str) -> Option<KeyValue> {
    if raw == "true" {
        Some(KeyValue::Bool(true))
    } else if raw.trim().eq_ignore_ascii_case("true") {
        None
    } else {
        Some(KeyValue::Bool(false))
    }
}

fn proxy_flag(raw: &str) -> Option<KeyValue> {
    raw.trim()
        .eq_ignore_ascii_case("true")
        .then_some(KeyValue::Bool(true))
}

fn native(
    name: &str,
    source: NativeSource,
    level: LevelKind,
    suffix: &'static str,
    parse: fn(&str) -> Option<KeyValue>,
    expected: &'static str,
) -> NativeKey {
    NativeKey {
        key: format!("{PREFIX}{name}"),
        source,
        level,
        suffix,
        parse,
        expected,
        decides_layout: suffix == USE,
    }
}

/// The pod fields this layout reads: the volume name hashes the pod's name, and the proxy
/// refuses host networking.
pub const POD_FIELDS: &[&str] = &["metadata.name", "metadata.generateName", "spec.hostNetwork"];

impl NativeLayout for Azwi {
    fn name(&self) -> &'static str {
        "azwi"
    }
    fn settings_fields(&self) -> &'static [SettingField] {
        FIELDS
    }
    fn native_keys(&self, _settings: &FieldValues) -> Vec<NativeKey> {
        use LevelKind::{Pod, ServiceAccount};
        use NativeSource::{Annotation, Label};
        let expiration = "expected an integer number of seconds";
        vec![
            native(
                "use",
                Label,
                Pod,
                USE,
                use_label,
                "azwi acts only on the value \"true\"",
            ),
            native(
                "client-id",
                Annotation,
                ServiceAccount,
                CLIENT_ID,
                text,
                "expected a non-empty value",
            ),
            native(
                "tenant-id",
                Annotation,
                ServiceAccount,
                TENANT_ID,
                text,
                "expected a non-empty value",
            ),
            native(
                "service-account-token-expiration",
                Annotation,
                Pod,
                shared::TOKEN_EXPIRATION,
                seconds,
                expiration,
            ),
            native(
                "service-account-token-expiration",
                Annotation,
                ServiceAccount,
                shared::TOKEN_EXPIRATION,
                seconds,
                expiration,
            ),
            native(
                "skip-containers",
                Annotation,
                Pod,
                shared::SKIP_CONTAINERS,
                semicolon_names,
                "expected container names separated by ';'",
            ),
            native(
                "inject-proxy-sidecar",
                Annotation,
                Pod,
                PROXY,
                proxy_flag,
                "the proxy is injected only for \"true\"; azwi would inject it for any value",
            ),
            native(
                "proxy-sidecar-port",
                Annotation,
                Pod,
                PROXY_PORT,
                text,
                "expected a port number",
            ),
        ]
    }
    fn layout_keys(&self) -> &'static [&'static str] {
        &[USE, PROXY, PROXY_PORT]
    }
    fn enables(&self, keys: &ResolvedKeys) -> bool {
        keys.flag(USE) == Some(true)
    }
    fn plan(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        warnings: &mut Warnings,
    ) -> Result<Option<ProviderPlan>, Denial> {
        let fields = ctx.native_fields;
        let mut plan = ProviderPlan::new("az");
        plan.marker = false;

        let version = if field_text(fields, "version") == "1.5" {
            V1_5
        } else {
            V1_6
        };
        let volume = match version.volume {
            Some(name) => name.to_string(),
            None => reserved_volume_name(ctx.pod),
        };
        let audience = match keys.text(shared::AUDIENCE) {
            Some(a) => a.to_string(),
            None => {
                plan.sources.push((shared::AUDIENCE, "native.azwi".into()));
                field_text(fields, "audience").to_string()
            }
        };
        let expiration = match keys.seconds(shared::TOKEN_EXPIRATION) {
            None => {
                plan.sources
                    .push((shared::TOKEN_EXPIRATION, "native.azwi".into()));
                DEFAULT_EXPIRATION
            }
            Some(s) if (DEFAULT_EXPIRATION..=MAX_EXPIRATION).contains(&s) => s,
            Some(s) => {
                warnings.push(format!(
                    "cwii: az token expiration {s} is outside azwi's range {DEFAULT_EXPIRATION}-{MAX_EXPIRATION}; {DEFAULT_EXPIRATION} is used (azwi would deny the pod)"
                ));
                DEFAULT_EXPIRATION
            }
        };
        plan.volumes.push(
            token_volume(&volume, version.token_path, &audience, expiration, false)
                .map_err(Denial::internal)?,
        );
        plan.mounts.push(Mount {
            volume,
            path: version.mount_path.to_string(),
            read_only: true,
        });

        let tenant = keys
            .text(TENANT_ID)
            .unwrap_or_else(|| field_text(fields, "tenantId"));
        let authority = keys
            .text(AUTHORITY_HOST)
            .or_else(|| cloud_host(field_text(fields, "cloud")))
            .unwrap_or("");
        let token_file = format!("{}/{}", version.mount_path, version.token_path);
        for (name, value) in [
            ("AZURE_CLIENT_ID", keys.text(CLIENT_ID).unwrap_or("")),
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_FEDERATED_TOKEN_FILE", &token_file),
            ("AZURE_AUTHORITY_HOST", authority),
        ] {
            if !value.is_empty() {
                plan.env.push((name.to_string(), value.to_string()));
            }
        }
        plan.skip_containers = keys.names(shared::SKIP_CONTAINERS).to_vec();

        if keys.flag(PROXY) == Some(true) {
            add_proxy(&mut plan, keys, ctx)?;
        }
        Ok(Some(plan))
    }
}

/// azwi 1.6's volume name: a prefix and 30 hex digits of SHA-256 of the pod name, or of
/// `<generateName> (prefix)` for a pod whose name the API server has yet to pick.
fn reserved_volume_name(pod: &Value) -> String {
    let metadata = pod.get("metadata");
    let field = |f: &str| {
        metadata
            .and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let name = match field("name") {
        "" => format!("{} (prefix)", field("generateName")),
        name => name.to_string(),
    };
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("azure-workload-identity-reserved-{}", &hex[..30])
}

fn add_proxy(
    plan: &mut ProviderPlan,
    keys: &ResolvedKeys,
    ctx: &PlanContext<'_>,
) -> Result<(), Denial> {
    let spec = ctx.pod.get("spec");
    if spec.and_then(|s| s.get("hostNetwork")) == Some(&Value::Bool(true)) {
        return Err(Denial::bad_request(
            "hostNetwork is set to true, cannot inject proxy sidecar".into(),
        ));
    }
    let raw_port = keys.text(PROXY_PORT).unwrap_or(DEFAULT_PROXY_PORT);
    let port = match raw_port.parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => {
            return Err(Denial::bad_request(format!(
                "cwii: {PREFIX}proxy-sidecar-port {} is not a port (expected an integer from 1 to 65535)",
                quote_for_message(raw_port)
            )))
        }
    };
    let fields = ctx.native_fields;
    let level = field_text(fields, "proxyLogLevel");
    let native_sidecar = fields.get("proxyNativeSidecar") != Some(&Value::Bool(false));
    plan.containers.push(AddedContainer {
        value: json!({
            "name": PROXY_INIT,
            "image": field_text(fields, "proxyInitImage"),
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "PROXY_PORT", "value": port.to_string()}],
            // iptables needs root and NET_ADMIN: azwi's definition, not §4's hardening.
            "securityContext": {
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "privileged": true,
                "runAsNonRoot": false,
                "runAsUser": 0
            }
        }),
        list: ContainerList::Init,
        position: Position::Last,
        ownership: Ownership::Shared,
    });
    let mut sidecar = json!({
        "name": PROXY_SIDECAR,
        "image": field_text(fields, "proxyImage"),
        "imagePullPolicy": "IfNotPresent",
        "args": [format!("--proxy-port={port}"), format!("--log-level={level}")],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": [
            "/proxy", format!("--proxy-port={port}"), "--probe", format!("--log-level={level}")
        ]}}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true
        }
    });
    let list = if native_sidecar {
        sidecar["restartPolicy"] = json!("Always");
        ContainerList::Init
    } else {
        ContainerList::App
    };
    plan.containers.push(AddedContainer {
        value: sidecar,
        list,
        position: Position::First,
        ownership: Ownership::Shared,
    });
    Ok(())
}
