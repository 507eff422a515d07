//! One module per cloud, each behind [`Provider`]. The core never names a cloud: adding a
//! fourth one means a new module and one line in [`all`].

mod aws;
mod az;
mod gcp;

use crate::keys::{KeyDef, NativeKey, SHARED_KEYS};
use crate::plan::{PlanContext, ProviderPlan};
use crate::resolve::ResolvedKeys;

/// A provider-specific settings field under `providers.<p>` (beyond `enabled`,
/// `defaultAudience` and `verifyImage`, which every provider has).
pub struct ExtraSetting {
    pub name: &'static str,
    pub default: &'static str,
    pub check: fn(&str) -> Result<(), String>,
}

/// What makes a cloud different: its keys, its defaults and the part of the plan only it
/// knows (env vars, extra volumes, containers or annotations).
pub trait Provider: Sync {
    /// Abbreviation used in keys, volume names, mount paths and the marker: `az`.
    fn name(&self) -> &'static str;
    /// Keys beyond [`SHARED_KEYS`].
    fn keys(&self) -> &'static [KeyDef];
    /// Managed-platform annotations read as fallbacks in compat mode; the first one's
    /// presence enables the provider.
    fn native_keys(&self) -> &'static [NativeKey];
    /// Audience used when neither a key nor the settings give one.
    fn built_in_audience(&self) -> Option<&'static str>;
    fn default_verify_image(&self) -> &'static str;
    /// Shell check run by the verify init container. It reads annotation values only
    /// through environment variables.
    fn verify_check(&self) -> &'static str;
    fn extra_settings(&self) -> &'static [ExtraSetting] {
        &[]
    }
    /// Adds the provider's own part to a plan that already holds the token volume and
    /// mount. `Err` names why the provider is skipped (a missing required key).
    fn specialise(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        plan: &mut ProviderPlan,
    ) -> Result<(), String>;
}

static PROVIDERS: [&dyn Provider; 3] = [&gcp::Gcp, &aws::Aws, &az::Az];

/// Every provider, in the order verify containers are placed: gcp, aws, az.
pub fn all() -> &'static [&'static dyn Provider] {
    &PROVIDERS
}

pub fn by_name(name: &str) -> Option<&'static dyn Provider> {
    all().iter().copied().find(|p| p.name() == name)
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}

/// Shared keys first, then the provider's own.
pub fn key_defs(provider: &dyn Provider) -> impl Iterator<Item = KeyDef> + '_ {
    SHARED_KEYS.iter().chain(provider.keys()).copied()
}
