//! Turning one provider's resolved keys into a plan: what the pod must contain for it. The
//! shared part of §4's layout (token volume and mount, expiration, verify container, skip
//! list) lives here and the provider adds what only it knows; a provider enabled by its
//! webhook's signal gets that webhook's layout instead (§7.3), built by the layout itself.

use crate::keys::shared;
use crate::provider::{
    token_volume, AddedContainer, ContainerList, Denial, FieldValues, Mount, NativeLayout,
    Ownership, PlanContext, Position, Provider, ProviderPlan, ResolvedKeys,
};
use crate::settings::{Settings, MIN_TOKEN_EXPIRATION_SECONDS};
use crate::warnings::Warnings;
use serde_json::Value;
use std::borrow::Cow;

/// Text appended to a non-enforcing verify check.
pub const NON_ENFORCING_SUFFIX: &str =
    " || echo 'cwii: verification check failed (non-enforcing)' >&2";

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
/// `CREDENTIAL_PRINTERS` whose output is neither captured (`$(…)`) nor sent to
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

const NO_FIELDS: &FieldValues = &FieldValues::new();

/// Builds the plan of an injected provider: its webhook's layout when `layout` is set, else
/// §4's. `Ok(None)`: skipped, with the reason in `warnings`.
pub fn build_plan(
    provider: &dyn Provider,
    layout: Option<&dyn NativeLayout>,
    keys: &ResolvedKeys,
    settings: &Settings,
    pod: &Value,
    warnings: &mut Warnings,
) -> Result<Option<ProviderPlan>, Denial> {
    let name = provider.name();
    let Some(provider_settings) = settings.provider(name) else {
        return Ok(None);
    };
    let mut sources = key_sources(keys);
    let audience = keys
        .text(shared::AUDIENCE)
        .map(str::to_string)
        .or_else(|| provider_settings.default_audience.clone());
    let native_fields = layout
        .and_then(|l| settings.native.get(l.name()))
        .unwrap_or(NO_FIELDS);
    let verify_image = keys
        .text(shared::VERIFY_IMAGE)
        .unwrap_or(&provider_settings.verify_image);
    let mut ctx = PlanContext {
        provider: name,
        pod,
        mount_root: &settings.mount_root,
        audience: audience.as_deref().unwrap_or(""),
        token_expiration_seconds: settings.token_expiration_seconds,
        verify_image,
        injected_container_resources: settings.container_resources(),
        provider_fields: &provider_settings.fields,
        native_fields,
    };

    let mut plan = if let Some(layout) = layout {
        match layout.plan(keys, &ctx, warnings)? {
            Some(plan) => plan,
            None => return Ok(None),
        }
    } else {
        if keys.text(shared::AUDIENCE).is_none() {
            sources.push((shared::AUDIENCE, "settings".into()));
        }
        if audience.is_none() {
            warnings.push(format!(
                "cwii: {name} skipped: no audience (set cwii.dev/{name}-audience or the setting providers.{name}.defaultAudience)"
            ));
            return Ok(None);
        }
        let expiration = match keys.seconds(shared::TOKEN_EXPIRATION) {
            Some(s) => s,
            None => {
                sources.push((shared::TOKEN_EXPIRATION, "settings".into()));
                settings.token_expiration_seconds
            }
        };
        ctx.token_expiration_seconds = if expiration < MIN_TOKEN_EXPIRATION_SECONDS {
            warnings.push(format!(
                "cwii: cwii.dev/{name}-token-expiration {expiration} raised to the minimum of {MIN_TOKEN_EXPIRATION_SECONDS} seconds"
            ));
            MIN_TOKEN_EXPIRATION_SECONDS
        } else {
            expiration
        };
        match cwii_layout(provider, keys, &ctx, warnings) {
            Some(plan) => plan,
            None => return Ok(None),
        }
    };
    if keys.flag(shared::VERIFY) == Some(true) {
        plan.containers
            .push(verify_container(provider, keys, &ctx, &plan));
    }
    // The resolved keys first, then what the layout took from settings.
    sources.append(&mut plan.sources);
    plan.sources = sources;
    Ok(Some(plan))
}

/// Where each resolved key came from: `level`, or `level(native key)`.
fn key_sources(keys: &ResolvedKeys) -> Vec<(&'static str, Cow<'static, str>)> {
    keys.iter()
        .map(|(suffix, r)| {
            let level = r.source.as_str();
            let source = match &r.native_key {
                Some(k) => Cow::Owned(format!("{level}({k})")),
                None => Cow::Borrowed(level),
            };
            (suffix, source)
        })
        .collect()
}

/// §4's layout: `cwii-<p>-token` at `<mountRoot>/<p>`, then the provider's own part.
fn cwii_layout(
    provider: &dyn Provider,
    keys: &ResolvedKeys,
    ctx: &PlanContext<'_>,
    warnings: &mut Warnings,
) -> Option<ProviderPlan> {
    let name = provider.name();
    let token = format!("cwii-{name}-token");
    let mut plan = ProviderPlan::new(name);
    match token_volume(
        &token,
        "token",
        ctx.audience,
        ctx.token_expiration_seconds,
        false,
    ) {
        Ok(volume) => plan.volumes.push(volume),
        Err(reason) => {
            warnings.push(format!("cwii: {name} skipped: {reason}"));
            return None;
        }
    }
    plan.mounts.push(Mount {
        volume: token,
        path: ctx.path(name),
        read_only: true,
    });
    plan.skip_containers = keys.names(shared::SKIP_CONTAINERS).to_vec();
    if let Err(reason) = provider.specialise(keys, ctx, &mut plan, warnings) {
        warnings.push(format!("cwii: {name} skipped: {reason}"));
        return None;
    }
    Some(plan)
}

/// The "can-i" init container: the provider's check with its env and mounts, appended.
fn verify_container(
    provider: &dyn Provider,
    keys: &ResolvedKeys,
    ctx: &PlanContext<'_>,
    plan: &ProviderPlan,
) -> AddedContainer {
    let name = provider.name();
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
    AddedContainer {
        value: ctx.injected_container(
            &format!("cwii-{name}-verify"),
            ctx.verify_image,
            &script,
            &plan.env,
            &plan.mounts,
            // The cloud CLIs write caches and config under $HOME.
            false,
        ),
        list: ContainerList::Init,
        position: Position::Last,
        ownership: Ownership::Reserved,
    }
}

/// The audit annotation value: where each key of an injected provider came from,
/// e.g. `inject=pod client-id=serviceaccount tenant-id=defaults audience=settings`.
pub fn audit_value(plan: &ProviderPlan) -> String {
    let mut value = String::with_capacity(plan.sources.len() * 32);
    for (suffix, source) in &plan.sources {
        if !value.is_empty() {
            value.push(' ');
        }
        value.push_str(suffix);
        value.push('=');
        value.push_str(source);
    }
    value
}
