//! Azure (Entra ID workload identity federation).

mod azwi;
pub mod keys;

/// The pod fields this provider reads (see [`super::POD_FIELDS`]): its layout's.
pub const POD_FIELDS: &[&str] = azwi::POD_FIELDS;

use self::keys::{AUTHORITY_HOST, CLIENT_ID, TENANT_ID};
use crate::keys::{KeyDef, KeyKind};
use crate::provider::{
    required_text, NativeLayout, PlanContext, Provider, ProviderPlan, ResolvedKeys,
};
use crate::warnings::Warnings;

pub struct Az;

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
        _warnings: &mut Warnings,
    ) -> Result<(), String> {
        let client_id = required_text(keys, self.name(), CLIENT_ID)?;
        let tenant_id = required_text(keys, self.name(), TENANT_ID)?;
        plan.env.push(("AZURE_CLIENT_ID".into(), client_id.into()));
        plan.env.push(("AZURE_TENANT_ID".into(), tenant_id.into()));
        plan.env
            .push(("AZURE_FEDERATED_TOKEN_FILE".into(), ctx.token_file()));
        plan.optional_env(keys, AUTHORITY_HOST, &["AZURE_AUTHORITY_HOST"]);
        Ok(())
    }
    fn native_layout(&self) -> Option<&'static dyn NativeLayout> {
        Some(&azwi::Azwi)
    }
}
