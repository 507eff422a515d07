//! Turning one provider's resolved keys into a plan: what the pod must contain for it. The
//! shared part (token volume and mount, expiration, verify container, skip list) lives
//! here; the provider adds what only it knows.

use crate::keys::shared;
use crate::providers::Provider;
use crate::resolve::ResolvedKeys;
use crate::settings::{ProviderSettings, Settings, MIN_TOKEN_EXPIRATION_SECONDS};
use crate::warnings::Warnings;
use serde_json::{json, Value};

/// Text appended to a non-enforcing verify check.
pub const NON_ENFORCING_SUFFIX: &str =
    " || echo 'cwii: verification check failed (non-enforcing)' >&2";

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

/// Everything one provider puts into the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderPlan {
    pub provider: &'static str,
    /// Pod volumes, each named `cwii-*`.
    pub volumes: Vec<Value>,
    /// Mounted into every target container.
    pub mounts: Vec<Mount>,
    /// Set in every target container (unless the container defines the name already).
    pub env: Vec<(String, String)>,
    /// Names in `env` that go together: a container that defines any of them gets none of
    /// them from the policy (two regions that disagree are worse than one).
    pub env_groups: Vec<&'static [&'static str]>,
    /// Init containers that must run before the user's (the gcp credentials writer).
    pub leading_init_containers: Vec<Value>,
    /// Appended after the existing init containers.
    pub verify_container: Option<Value>,
    /// Pod annotations owned by the policy.
    pub annotations: Vec<(String, String)>,
    /// Containers that receive neither mounts nor env.
    pub skip_containers: Vec<String>,
    /// For the audit annotation: key suffix → where its value came from.
    pub sources: Vec<(&'static str, String)>,
    /// Provider remarks that become warnings (e.g. a delivery mode served another way).
    pub notes: Vec<String>,
}

/// What a provider may read while specialising a plan.
pub struct PlanContext<'a> {
    pub provider: &'static str,
    pub settings: &'a Settings,
    pub provider_settings: &'a ProviderSettings,
    pub audience: &'a str,
}

impl PlanContext<'_> {
    /// `<mountRoot>/<dir>`.
    pub fn path(&self, dir: &str) -> String {
        format!("{}/{dir}", self.settings.mount_root)
    }
    /// The projected token file of this provider.
    pub fn token_file(&self) -> String {
        format!("{}/token", self.path(self.provider))
    }
    /// A provider-specific settings field (always present: defaults are filled).
    pub fn extra_setting(&self, name: &str) -> &str {
        self.provider_settings
            .extra
            .get(name)
            .map(String::as_str)
            .unwrap_or("")
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
            "resources": self.settings.injected_container_resources,
            "securityContext": security,
        })
    }
}

/// Sub-commands of the cloud CLIs (and `cat`, for the token files) that write a credential
/// to standard output.
const CREDENTIAL_PRINTERS: &[&str] = &[
    "print-access-token",
    "print-identity-token",
    "get-access-token",
    "get-session-token",
    "get-login-password",
    "assume-role",
    "export-credentials",
    "cat ",
];

/// Whether a shell script could write a credential into the container log: a command of
/// [`CREDENTIAL_PRINTERS`] whose output is neither captured (`$(…)`) nor sent to
/// `/dev/null`. Verify containers are checked with it (and the tests hold every added
/// container to it).
pub fn may_print_credential(script: &str) -> bool {
    // Output captured by a command substitution never reaches the log by itself.
    let mut visible = String::with_capacity(script.len());
    let mut depth = 0usize;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'(') {
            chars.next();
            depth += 1;
        } else if depth > 0 && c == '(' {
            depth += 1;
        } else if depth > 0 && c == ')' {
            depth -= 1;
        } else if depth == 0 {
            visible.push(c);
        }
    }
    visible
        .split(['&', '|', ';', '\n'])
        .filter(|segment| CREDENTIAL_PRINTERS.iter().any(|p| segment.contains(p)))
        .any(|segment| {
            // Standard output discarded: `>/dev/null` or `1>/dev/null`, not `2>/dev/null`.
            let quiet = segment.replace(' ', "");
            !quiet
                .match_indices(">/dev/null")
                .any(|(at, _)| !quiet[..at].ends_with('2'))
        })
}

/// Builds the plan of a provider whose inject key resolved to true, or says (as a warning)
/// why it is skipped.
pub fn build_plan(
    provider: &dyn Provider,
    keys: &ResolvedKeys,
    settings: &Settings,
    warnings: &mut Warnings,
) -> Option<ProviderPlan> {
    let name = provider.name();
    let provider_settings = settings.provider(name)?;
    let mut sources: Vec<(&'static str, String)> = keys
        .iter()
        .map(|(suffix, r)| {
            let level = r.source.as_str().to_string();
            (
                suffix,
                r.native_key
                    .map_or(level.clone(), |k| format!("{level}({k})")),
            )
        })
        .collect();

    let audience = match keys.text(shared::AUDIENCE) {
        Some(a) => a.to_string(),
        None => match &provider_settings.default_audience {
            Some(a) => {
                sources.push((shared::AUDIENCE, "settings".into()));
                a.clone()
            }
            None => {
                warnings.push(format!(
                    "cwii: {name} skipped: no audience (set cwii.dev/{name}-audience or the setting providers.{name}.defaultAudience)"
                ));
                return None;
            }
        },
    };
    let expiration = match keys.seconds(shared::TOKEN_EXPIRATION) {
        Some(s) => s,
        None => {
            sources.push((shared::TOKEN_EXPIRATION, "settings".into()));
            settings.token_expiration_seconds
        }
    };
    let expiration = if expiration < MIN_TOKEN_EXPIRATION_SECONDS {
        warnings.push(format!(
            "cwii: cwii.dev/{name}-token-expiration {expiration} raised to the minimum of {MIN_TOKEN_EXPIRATION_SECONDS} seconds"
        ));
        MIN_TOKEN_EXPIRATION_SECONDS
    } else {
        expiration
    };

    let ctx = PlanContext {
        provider: name,
        settings,
        provider_settings,
        audience: &audience,
    };
    let token_volume = format!("cwii-{name}-token");
    let mut plan = ProviderPlan {
        provider: name,
        volumes: vec![json!({
            "name": token_volume,
            "projected": {"sources": [{"serviceAccountToken": {
                "path": "token", "audience": audience, "expirationSeconds": expiration
            }}]}
        })],
        mounts: vec![Mount {
            volume: token_volume,
            path: ctx.path(name),
            read_only: true,
        }],
        env: Vec::new(),
        env_groups: Vec::new(),
        leading_init_containers: Vec::new(),
        verify_container: None,
        annotations: Vec::new(),
        skip_containers: keys.names(shared::SKIP_CONTAINERS).to_vec(),
        sources: Vec::new(),
        notes: Vec::new(),
    };
    if let Err(reason) = provider.specialise(keys, &ctx, &mut plan) {
        warnings.push(format!("cwii: {name} skipped: {reason}"));
        return None;
    }
    for note in plan.notes.drain(..) {
        warnings.push(note);
    }

    if keys.flag(shared::VERIFY) == Some(true) {
        let image = match keys.text(shared::VERIFY_IMAGE) {
            Some(image) => image.to_string(),
            None => provider_settings.verify_image.clone(),
        };
        let check = provider.verify_check();
        debug_assert!(
            !may_print_credential(check),
            "{name} check prints a credential"
        );
        let script = if keys.flag(shared::VERIFY_ENFORCE) == Some(true) {
            check.to_string()
        } else {
            format!("{check}{NON_ENFORCING_SUFFIX}")
        };
        plan.verify_container = Some(ctx.injected_container(
            &format!("cwii-{name}-verify"),
            &image,
            &script,
            &plan.env,
            &plan.mounts,
            // The cloud CLIs write caches and config under $HOME.
            false,
        ));
    }
    plan.sources = sources;
    Some(plan)
}

/// The audit annotation value: where each key of an injected provider came from,
/// e.g. `inject=pod client-id=serviceaccount tenant-id=defaults audience=settings`.
pub fn audit_value(plan: &ProviderPlan) -> String {
    plan.sources
        .iter()
        .map(|(suffix, source)| format!("{suffix}={source}"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Adds `(name, value)` to the env when the key resolved.
pub fn optional_env(
    env: &mut Vec<(String, String)>,
    keys: &ResolvedKeys,
    suffix: &str,
    names: &[&str],
) {
    if let Some(value) = keys.text(suffix) {
        for name in names {
            env.push((name.to_string(), value.to_string()));
        }
    }
}

/// Test helper: a resolved key as if it came from the pod.
#[cfg(test)]
pub fn pod_key(keys: &mut ResolvedKeys, suffix: &'static str, value: crate::keys::KeyValue) {
    keys.insert(
        suffix,
        crate::resolve::Resolution {
            value,
            source: crate::resolve::LevelKind::Pod,
            native_key: None,
        },
    );
}
