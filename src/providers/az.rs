//! Azure (Entra ID workload identity federation).

use super::Provider;
use crate::keys::{shared, KeyDef, KeyKind, NativeKey};
use crate::plan::{optional_env, required_text, PlanContext, ProviderPlan};
use crate::resolve::ResolvedKeys;

pub struct Az;

const CLIENT_ID: &str = "client-id";
const TENANT_ID: &str = "tenant-id";
const AUTHORITY_HOST: &str = "authority-host";

const KEYS: &[KeyDef] = &[
    KeyDef::new(CLIENT_ID, KeyKind::Text),
    KeyDef::new(TENANT_ID, KeyKind::Text),
    KeyDef::new(AUTHORITY_HOST, KeyKind::Text),
];

impl Provider for Az {
    fn name(&self) -> &'static str {
        "az"
    }
    fn keys(&self) -> &'static [KeyDef] {
        KEYS
    }
    fn native_keys(&self) -> &'static [NativeKey] {
        &[
            NativeKey {
                key: "azure.workload.identity/client-id",
                suffix: CLIENT_ID,
            },
            NativeKey {
                key: "azure.workload.identity/tenant-id",
                suffix: TENANT_ID,
            },
            NativeKey {
                key: "azure.workload.identity/service-account-token-expiration",
                suffix: shared::TOKEN_EXPIRATION,
            },
            NativeKey {
                key: "azure.workload.identity/skip-containers",
                suffix: shared::SKIP_CONTAINERS,
            },
        ]
    }
    fn built_in_audience(&self) -> Option<&'static str> {
        Some("api://AzureADTokenExchange")
    }
    fn default_verify_image(&self) -> &'static str {
        "mcr.microsoft.com/azure-cli:2.84.0"
    }
    fn verify_check(&self) -> &'static str {
        r#"az login --service-principal -u "$AZURE_CLIENT_ID" -t "$AZURE_TENANT_ID" --federated-token "$(cat "$AZURE_FEDERATED_TOKEN_FILE")" >/dev/null && az account show >/dev/null"#
    }
    fn specialise(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        plan: &mut ProviderPlan,
    ) -> Result<(), String> {
        let client_id = required_text(keys, self.name(), CLIENT_ID)?;
        let tenant_id = required_text(keys, self.name(), TENANT_ID)?;
        plan.env.push(("AZURE_CLIENT_ID".into(), client_id.into()));
        plan.env.push(("AZURE_TENANT_ID".into(), tenant_id.into()));
        plan.env
            .push(("AZURE_FEDERATED_TOKEN_FILE".into(), ctx.token_file()));
        optional_env(
            &mut plan.env,
            keys,
            AUTHORITY_HOST,
            &["AZURE_AUTHORITY_HOST"],
        );
        Ok(())
    }
}
