//! The pod the EKS pod identity webhook (v0.6.17) returns (SPEC §7), as a second layout of
//! the aws provider. Facts from the webhook's source and testdata; the code is this
//! project's.

use super::keys::{
    MISSING_REGION, REGION, REGION_VARS, ROLE_ARN, ROLE_SESSION_NAME, STS_REGIONAL_ENDPOINTS,
};
use crate::keys::{quote_for_message, shared, KeyValue};
use crate::provider::{
    any_text, bool_field, check_mount_path, field_text, native_seconds as seconds,
    native_text as text, string_field, token_volume, Denial, FieldValues, LevelKind, Mount,
    NativeKey, NativeLayout, NativeSource, PlanContext, ProviderPlan, ResolvedKeys, SettingField,
    MIN_TOKEN_EXPIRATION_SECONDS,
};
use crate::warnings::Warnings;
use serde_json::{json, Value};

pub struct Eks;

const VOLUME: &str = "aws-iam-token";
/// Fixed by the webhook's objectSelector, whatever the annotation prefix.
const SKIP_LABEL: &str = "eks.amazonaws.com/skip-pod-identity-webhook";
/// Layout-only keys.
const SIGNAL: &str = "eks-role-arn";
const SKIPPED: &str = "eks-skip-label";

const ROLE_VARS: &[&str] = &["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"];
const STS_VARS: &[&str] = &["AWS_STS_REGIONAL_ENDPOINTS"];
/// The webhook leaves a container alone that defines a member of each group.
const GROUPS: &[&[&str]] = &[ROLE_VARS, REGION_VARS, STS_VARS];

const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-eusc",
];

fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not an annotation prefix (a DNS name such as eks.amazonaws.com)",
            quote_for_message(prefix)
        ))
    }
}

fn non_empty(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn mount_path_field(raw: Option<&Value>) -> Result<Value, String> {
    let value = string_field(
        raw,
        "/var/run/secrets/eks.amazonaws.com/serviceaccount",
        any_text,
    )?;
    check_mount_path(value.as_str().unwrap_or("")).map(Value::String)
}

fn expiration_field(raw: Option<&Value>) -> Result<Value, String> {
    match raw {
        None => Ok(json!(86400)),
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            // The webhook raises short lifetimes rather than refusing them.
            Ok(json!(n
                .as_i64()
                .unwrap_or(0)
                .max(MIN_TOKEN_EXPIRATION_SECONDS)))
        }
        Some(other) => Err(format!(
            "expected an integer number of seconds, found {other}"
        )),
    }
}

fn compose_field(raw: Option<&Value>) -> Result<Value, String> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(json!({"accountId": "", "partition": ""})),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(format!("expected an object, found {other}")),
    };
    let mut account = String::new();
    let mut partition = String::new();
    for (key, value) in map {
        let text = value
            .as_str()
            .ok_or_else(|| format!("{key}: expected a string, found {value}"))?;
        match key.as_str() {
            "accountId" => {
                let twelve_digits = text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit());
                if !text.is_empty() && !twelve_digits {
                    return Err(format!(
                        "accountId {} is not a 12-digit AWS account id",
                        quote_for_message(text)
                    ));
                }
                account = text.to_string();
            }
            "partition" => {
                if !text.is_empty() && !PARTITIONS.contains(&text) {
                    return Err(format!(
                        "partition {} is unknown (expected one of {})",
                        quote_for_message(text),
                        PARTITIONS.join(", ")
                    ));
                }
                partition = text.to_string();
            }
            other => {
                return Err(format!(
                    "{other}: unknown field (expected accountId or partition)"
                ))
            }
        }
    }
    Ok(json!({"accountId": account, "partition": partition}))
}

const FIELDS: &[SettingField] = &[
    SettingField {
        name: "annotationPrefix",
        check: |raw| string_field(raw, "eks.amazonaws.com", check_prefix),
    },
    SettingField {
        name: "audience",
        check: |raw| string_field(raw, "sts.amazonaws.com", non_empty),
    },
    SettingField {
        name: "mountPath",
        check: mount_path_field,
    },
    SettingField {
        name: "tokenExpirationSeconds",
        check: expiration_field,
    },
    SettingField {
        name: "region",
        check: |raw| string_field(raw, "", any_text),
    },
    SettingField {
        name: "stsRegionalEndpoints",
        check: |raw| bool_field(raw, false),
    },
    SettingField {
        name: "composeRoleArn",
        check: compose_field,
    },
];

/// Go's `strconv.ParseBool`.
fn go_bool(raw: &str) -> Option<KeyValue> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(KeyValue::Bool(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(KeyValue::Bool(false)),
        _ => None,
    }
}

fn present(_: &str) -> Option<KeyValue> {
    Some(KeyValue::Bool(true))
}

/// The skip list as one CSV record (comma-separated, quotes allowed, fields not trimmed).
/// A value that is not valid CSV skips no container.
fn csv_names(raw: &str) -> Option<KeyValue> {
    Some(KeyValue::Names(csv_record(raw).unwrap_or_default()))
}

fn csv_record(raw: &str) -> Option<Vec<String>> {
    // The first non-empty line is the record.
    let line = raw.lines().find(|l| !l.is_empty())?;
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return None,
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Some(fields);
                }
                Some(',') => {}
                Some(_) => return None,
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Some(fields);
                    }
                    Some(',') => break,
                    Some('"') => return None,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// `cn-` → aws-cn and so on, as the webhook derives the partition from its region.
fn partition_of(region: &str) -> &'static str {
    [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-iso-", "aws-iso"),
        ("us-isob-", "aws-iso-b"),
        ("eusc-", "aws-eusc"),
    ]
    .iter()
    .find(|(prefix, _)| region.starts_with(prefix))
    .map_or("aws", |(_, partition)| partition)
}

/// The pod fields this layout reads: Windows pods (by node selector) get a `C:\` token
/// path.
pub const POD_FIELDS: &[&str] = &["spec.nodeSelector"];

impl NativeLayout for Eks {
    fn name(&self) -> &'static str {
        "eks"
    }
    fn settings_fields(&self) -> &'static [SettingField] {
        FIELDS
    }
    fn native_keys(&self, settings: &FieldValues) -> Vec<NativeKey> {
        use LevelKind::{Pod, ServiceAccount};
        use NativeSource::{Annotation, Label};
        let prefix = field_text(settings, "annotationPrefix");
        let key = |name: &str| format!("{prefix}/{name}");
        let native =
            |key: String, source, level, suffix, parse: fn(&str) -> Option<KeyValue>, expected| {
                NativeKey {
                    key,
                    source,
                    level,
                    suffix,
                    parse,
                    expected,
                    decides_layout: suffix == SIGNAL || suffix == SKIPPED,
                }
            };
        let seconds_expected = "expected an integer number of seconds";
        vec![
            native(
                key("role-arn"),
                Annotation,
                ServiceAccount,
                ROLE_ARN,
                text,
                "expected a non-empty value",
            ),
            native(
                key("role-arn"),
                Annotation,
                ServiceAccount,
                SIGNAL,
                text,
                "expected a non-empty value",
            ),
            native(
                key("audience"),
                Annotation,
                ServiceAccount,
                shared::AUDIENCE,
                text,
                "expected a non-empty value",
            ),
            native(
                key("sts-regional-endpoints"),
                Annotation,
                ServiceAccount,
                STS_REGIONAL_ENDPOINTS,
                go_bool,
                "expected a Go boolean such as true or 1; the setting stsRegionalEndpoints applies",
            ),
            native(
                key("token-expiration"),
                Annotation,
                Pod,
                shared::TOKEN_EXPIRATION,
                seconds,
                seconds_expected,
            ),
            native(
                key("token-expiration"),
                Annotation,
                ServiceAccount,
                shared::TOKEN_EXPIRATION,
                seconds,
                seconds_expected,
            ),
            native(
                key("skip-containers"),
                Annotation,
                Pod,
                shared::SKIP_CONTAINERS,
                csv_names,
                "expected one CSV record",
            ),
            native(SKIP_LABEL.to_string(), Label, Pod, SKIPPED, present, ""),
        ]
    }
    fn layout_keys(&self) -> &'static [&'static str] {
        &[SIGNAL, SKIPPED]
    }
    fn enables(&self, keys: &ResolvedKeys) -> bool {
        keys.text(SIGNAL).is_some() && keys.get(SKIPPED).is_none()
    }
    fn plan(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        warnings: &mut Warnings,
    ) -> Result<Option<ProviderPlan>, Denial> {
        let fields = ctx.native_fields;
        let mut plan = ProviderPlan::new("aws");
        plan.marker = false;
        let Some(role) = keys.text(ROLE_ARN) else {
            return Ok(None);
        };
        let native_region = field_text(fields, "region");
        let role = compose_role_arn(role, fields, native_region);

        let audience = match keys.text(shared::AUDIENCE) {
            Some(a) => a.to_string(),
            None => {
                plan.sources.push((shared::AUDIENCE, "native.eks".into()));
                field_text(fields, "audience").to_string()
            }
        };
        let expiration = match keys.seconds(shared::TOKEN_EXPIRATION) {
            Some(s) => s,
            None => {
                plan.sources
                    .push((shared::TOKEN_EXPIRATION, "native.eks".into()));
                fields
                    .get("tokenExpirationSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(86400)
            }
        };
        let expiration = if expiration < MIN_TOKEN_EXPIRATION_SECONDS {
            warnings.push(format!(
                "cwii: aws token expiration {expiration} raised to the minimum of {MIN_TOKEN_EXPIRATION_SECONDS} seconds"
            ));
            MIN_TOKEN_EXPIRATION_SECONDS
        } else {
            expiration
        };
        let mount_path = field_text(fields, "mountPath");
        plan.volumes.push(
            token_volume(VOLUME, "token", &audience, expiration, true).map_err(Denial::internal)?,
        );
        plan.mounts.push(Mount {
            volume: VOLUME.to_string(),
            path: mount_path.to_string(),
            read_only: true,
        });

        let regional = match keys.value(STS_REGIONAL_ENDPOINTS) {
            Some(KeyValue::Text(t)) => Some(t.clone()),
            Some(KeyValue::Bool(true)) => Some("regional".into()),
            Some(_) => None,
            None => (fields.get("stsRegionalEndpoints") == Some(&Value::Bool(true)))
                .then(|| "regional".into()),
        };
        if let Some(value) = regional {
            plan.env.push(("AWS_STS_REGIONAL_ENDPOINTS".into(), value));
        }
        let region = keys
            .text(REGION)
            .or((!native_region.is_empty()).then_some(native_region));
        match region {
            Some(region) => {
                plan.env.push(("AWS_DEFAULT_REGION".into(), region.into()));
                plan.env.push(("AWS_REGION".into(), region.into()));
            }
            None => warnings.push(MISSING_REGION.into()),
        }
        plan.env.push(("AWS_ROLE_ARN".into(), role));
        plan.env.push((
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token_file(ctx.pod, mount_path),
        ));
        plan.optional_env(keys, ROLE_SESSION_NAME, &["AWS_ROLE_SESSION_NAME"]);
        plan.env_groups = vec![ROLE_VARS, REGION_VARS];
        plan.leave_alone_when_defined = GROUPS;
        plan.skip_containers = keys.names(shared::SKIP_CONTAINERS).to_vec();
        Ok(Some(plan))
    }
}

/// With an account id configured, a bare role name (no `arn:`) becomes a role ARN.
fn compose_role_arn(role: &str, fields: &FieldValues, region: &str) -> String {
    let compose = fields.get("composeRoleArn");
    let field = |name: &str| {
        compose
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let account = field("accountId");
    if account.is_empty() || role.contains("arn:") {
        return role.to_string();
    }
    let partition = match field("partition") {
        "" => partition_of(region),
        p => p,
    };
    format!("arn:{partition}:iam::{account}:role/{role}")
}

/// The token file as the pod's OS spells it: Windows pods (by node selector) get `C:\…`.
fn token_file(pod: &Value, mount_path: &str) -> String {
    let selector = pod.get("spec").and_then(|s| s.get("nodeSelector"));
    let windows = ["kubernetes.io/os", "beta.kubernetes.io/os"]
        .iter()
        .any(|k| selector.and_then(|s| s.get(*k)).and_then(Value::as_str) == Some("windows"));
    let file = format!("{mount_path}/token");
    if windows {
        format!("C:{}", file.replace('/', "\\"))
    } else {
        file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::strict_int;

    #[test]
    fn csv_skip_list_reads_one_record() {
        let names = |raw| match csv_names(raw) {
            Some(KeyValue::Names(n)) => n,
            _ => panic!(),
        };
        assert_eq!(names("a,b"), vec!["a", "b"]);
        assert_eq!(names("a, b"), vec!["a", " b"]);
        assert_eq!(names("\"a,b\",c"), vec!["a,b", "c"]);
        assert_eq!(names("de\"bug"), Vec::<String>::new());
        assert_eq!(names(""), Vec::<String>::new());
        assert_eq!(names("x\ny"), vec!["x"]);
    }

    #[test]
    fn go_parsers() {
        assert_eq!(strict_int("+3600"), Some(3600));
        assert_eq!(strict_int("-5"), Some(-5));
        assert_eq!(strict_int(" 3600"), None);
        assert_eq!(strict_int("1h"), None);
        assert_eq!(go_bool("T"), Some(KeyValue::Bool(true)));
        assert_eq!(go_bool("yes"), None);
    }

    #[test]
    fn partitions_and_windows_paths() {
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-isob-east-1"), "aws-iso-b");
        assert_eq!(partition_of("eu-west-1"), "aws");
        let pod = json!({"spec": {"nodeSelector": {"kubernetes.io/os": "windows"}}});
        assert_eq!(
            token_file(&pod, "/var/run/secrets/eks.amazonaws.com/serviceaccount"),
            "C:\\var\\run\\secrets\\eks.amazonaws.com\\serviceaccount\\token"
        );
    }
}
