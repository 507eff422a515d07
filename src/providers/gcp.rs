//! GCP (workload identity federation, optionally impersonating a service account).

use crate::keys::{self, KeyDef, KeyKind, KeyValue};
use crate::provider::{
    check_image_reference, string_field, AddedContainer, ContainerList, Mount, Ownership,
    PlanContext, PlannedVolume, Position, Provider, ProviderPlan, ResolvedKeys, SettingField,
};
use crate::warnings::Warnings;
use serde_json::json;

/// The pod fields this provider reads (see [`super::POD_FIELDS`]): none.
pub const POD_FIELDS: &[&str] = &[];

pub struct Gcp;

const SERVICE_ACCOUNT: &str = "service-account";
const DELIVERY: &str = "delivery";
const DOWNWARD_API: &str = "downward-api";
const INIT_CONTAINER: &str = "init-container";
/// cwii's third mode; a policy cannot write ConfigMaps, and the file path is the same.
const CONFIG_MAP: &str = "config-map";
/// The modes, and cwii's other spellings of them (its Helm values and flags).
const DELIVERY_MODES: &[(&str, &str)] = &[
    (DOWNWARD_API, DOWNWARD_API),
    (INIT_CONTAINER, INIT_CONTAINER),
    (CONFIG_MAP, CONFIG_MAP),
    ("initContainer", INIT_CONTAINER),
    ("init_container", INIT_CONTAINER),
    ("configmap", CONFIG_MAP),
];

/// Pod annotation holding credentials.json in downward-api mode.
pub const CREDENTIALS_ANNOTATION: &str = "cwii.dev/gcp-credentials";
const CREDS_VOLUME: &str = "cwii-gcp-creds";
const WRITER: &str = "cwii-gcp-creds-writer";

const KEYS: &[KeyDef] = &[
    KeyDef::new(SERVICE_ACCOUNT, KeyKind::Text),
    KeyDef::new(DELIVERY, KeyKind::Choice(DELIVERY_MODES)),
];

impl Provider for Gcp {
    fn name(&self) -> &'static str {
        "gcp"
    }
    fn keys(&self) -> &'static [KeyDef] {
        KEYS
    }
    fn built_in_audience(&self) -> Option<&'static str> {
        None
    }
    fn default_verify_image(&self) -> &'static str {
        "google/cloud-sdk:572.0.0-slim"
    }
    fn verify_check(&self) -> &'static str {
        // The token must never reach the container log (anyone with pods/log could read it).
        "gcloud auth application-default print-access-token >/dev/null"
    }
    fn settings_fields(&self) -> &'static [SettingField] {
        &[
            SettingField {
                name: "delivery",
                check: |raw| string_field(raw, DOWNWARD_API, check_delivery),
            },
            SettingField {
                name: "initImage",
                check: |raw| string_field(raw, "busybox:1.38.0", check_image_reference),
            },
        ]
    }
    fn specialise(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        plan: &mut ProviderPlan,
        warnings: &mut Warnings,
    ) -> Result<(), String> {
        let creds_dir = ctx.path("gcp-creds");
        let creds_file = format!("{creds_dir}/credentials.json");
        let credentials =
            credentials_json(ctx.audience, &ctx.token_file(), keys.text(SERVICE_ACCOUNT));

        // The setting was validated, and may use one of cwii's spellings too.
        let from_settings = match keys::parse_value(
            KeyKind::Choice(DELIVERY_MODES),
            ctx.provider_field("delivery"),
        ) {
            Some(KeyValue::Text(mode)) => mode,
            _ => DOWNWARD_API.to_string(),
        };
        let delivery = keys.text(DELIVERY).unwrap_or(&from_settings);
        if delivery == INIT_CONTAINER {
            plan.volumes.push(PlannedVolume::new(
                CREDS_VOLUME,
                &json!({"name": CREDS_VOLUME, "emptyDir": {}}),
                false,
            )?);
            // The path comes from validated settings (a safe character set); the JSON, which
            // holds annotation values, reaches the shell only as an env value.
            let script = format!("printf '%s' \"$CWII_GCP_CREDS_JSON\" > '{creds_file}'");
            let writer = ctx.injected_container(
                WRITER,
                ctx.provider_field("initImage"),
                &script,
                &[("CWII_GCP_CREDS_JSON".to_string(), credentials)],
                &[Mount {
                    volume: CREDS_VOLUME.into(),
                    path: creds_dir.clone(),
                    read_only: false,
                }],
                // It writes only to its emptyDir.
                true,
            );
            plan.containers.push(AddedContainer {
                value: writer,
                list: ContainerList::Init,
                position: Position::First,
                ownership: Ownership::Reserved,
            });
        } else {
            if delivery == CONFIG_MAP {
                warnings.push(
                    "cwii: gcp delivery config-map is served as downward-api (a policy cannot write ConfigMaps; the file path is the same)".into(),
                );
            }
            plan.volumes.push(credentials_volume()?);
            plan.annotations
                .push((CREDENTIALS_ANNOTATION.to_string(), credentials));
        }
        plan.mounts.push(Mount {
            volume: CREDS_VOLUME.into(),
            path: creds_dir,
            read_only: true,
        });
        plan.env
            .push(("GOOGLE_APPLICATION_CREDENTIALS".into(), creds_file));
        Ok(())
    }
}

/// The volume of credentials.json in downward-api mode: the pod annotation as a file.
fn credentials_volume() -> Result<PlannedVolume, String> {
    #[derive(serde::Serialize)]
    struct Volume {
        #[serde(rename = "downwardAPI")]
        downward_api: Items,
        name: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Items {
        items: [Item; 1],
    }
    #[derive(serde::Serialize)]
    struct Item {
        #[serde(rename = "fieldRef")]
        field_ref: FieldRef,
        path: &'static str,
    }
    #[derive(serde::Serialize)]
    struct FieldRef {
        #[serde(rename = "fieldPath")]
        field_path: &'static str,
    }
    // CREDENTIALS_ANNOTATION's (tested).
    const FIELD_PATH: &str = "metadata.annotations['cwii.dev/gcp-credentials']";
    let volume = Volume {
        downward_api: Items {
            items: [Item {
                field_ref: FieldRef {
                    field_path: FIELD_PATH,
                },
                path: "credentials.json",
            }],
        },
        name: CREDS_VOLUME,
    };
    PlannedVolume::new(CREDS_VOLUME, &volume, false)
}

/// The external-account credentials file, written by the JSON serializer so that no
/// annotation value can change its structure. Members in name order (as a JSON object
/// map sorts them), so the file is byte for byte what earlier versions wrote.
pub fn credentials_json(audience: &str, token_file: &str, service_account: Option<&str>) -> String {
    #[derive(serde::Serialize)]
    struct CredentialSource<'a> {
        file: &'a str,
    }
    #[derive(serde::Serialize)]
    struct ExternalAccount<'a> {
        audience: &'a str,
        credential_source: CredentialSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service_account_impersonation_url: Option<String>,
        subject_token_type: &'static str,
        token_info_url: &'static str,
        token_url: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let creds = ExternalAccount {
        audience,
        credential_source: CredentialSource { file: token_file },
        service_account_impersonation_url: service_account.map(|gsa| {
            format!(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{gsa}:generateAccessToken"
            )
        }),
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        token_info_url: "https://sts.googleapis.com/v1/introspect",
        token_url: "https://sts.googleapis.com/v1/token",
        kind: "external_account",
    };
    // Serialising borrowed strings into a String cannot fail.
    serde_json::to_string(&creds).unwrap_or_default()
}

fn check_delivery(mode: &str) -> Result<(), String> {
    match keys::parse_value(KeyKind::Choice(DELIVERY_MODES), mode) {
        Some(_) => Ok(()),
        _ => Err(format!(
            "unknown delivery mode {} (expected {})",
            keys::quote_for_message(mode),
            keys::canonical_words(DELIVERY_MODES).join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_volume_is_the_json_object_it_was_byte_for_byte() {
        let tree = json!({"name": CREDS_VOLUME, "downwardAPI": {"items": [{
            "path": "credentials.json",
            "fieldRef": {"fieldPath": format!("metadata.annotations['{CREDENTIALS_ANNOTATION}']")}
        }]}});
        let volume = credentials_volume().unwrap();
        assert_eq!(volume.json.get(), tree.to_string());
        assert_eq!(volume.name, CREDS_VOLUME);
    }

    #[test]
    fn credentials_file_is_the_json_object_of_its_fields_byte_for_byte() {
        // The form earlier versions wrote: a JSON object (members in name order).
        let tree = |audience: &str, file: &str, gsa: Option<&str>| {
            let mut creds = json!({
                "type": "external_account",
                "audience": audience,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": "https://sts.googleapis.com/v1/token",
                "token_info_url": "https://sts.googleapis.com/v1/introspect",
                "credential_source": {"file": file},
            });
            if let Some(gsa) = gsa {
                creds["service_account_impersonation_url"] = json!(format!(
                    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{gsa}:generateAccessToken"
                ));
            }
            creds.to_string()
        };
        let hostile = "a\"b\\c\n}{,\"type\":\"x\u{7f}é\u{2028}";
        for (audience, gsa) in [
            ("//iam.googleapis.com/projects/1/pool", None),
            (
                "//iam.googleapis.com/projects/1/pool",
                Some("sa@p.iam.gserviceaccount.com"),
            ),
            (hostile, Some(hostile)),
            ("", Some("")),
        ] {
            let file = "/var/run/secrets/cwii/gcp/token";
            assert_eq!(
                credentials_json(audience, file, gsa),
                tree(audience, file, gsa)
            );
        }
        let parsed: serde_json::Value =
            serde_json::from_str(&credentials_json(hostile, "/t", Some(hostile))).unwrap();
        assert_eq!(parsed["type"], "external_account");
        assert_eq!(parsed["audience"], hostile);
    }
}
