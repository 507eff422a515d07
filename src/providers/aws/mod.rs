//! AWS (IAM roles through STS AssumeRoleWithWebIdentity).

mod eks;
pub mod keys;

/// The pod fields this provider reads (see [`super::POD_FIELDS`]): its layout's.
pub const POD_FIELDS: &[&str] = eks::POD_FIELDS;

use self::keys::{
    MISSING_REGION, REGION, REGION_VARS, ROLE_ARN, ROLE_SESSION_NAME, STS_REGIONAL_ENDPOINTS,
};
use crate::keys::{KeyDef, KeyKind};
use crate::provider::{
    required_text, NativeLayout, PlanContext, Provider, ProviderPlan, ResolvedKeys,
};
use crate::warnings::Warnings;

pub struct Aws;

const KEYS: &[KeyDef] = &[
    KeyDef::new(ROLE_ARN, KeyKind::Text),
    KeyDef::new(REGION, KeyKind::Text),
    KeyDef::new(ROLE_SESSION_NAME, KeyKind::Text),
    KeyDef::new(STS_REGIONAL_ENDPOINTS, KeyKind::Text),
];

impl Provider for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn keys(&self) -> &'static [KeyDef] {
        KEYS
    }
    fn built_in_audience(&self) -> Option<&'static str> {
        Some("sts.amazonaws.com")
    }
    fn default_verify_image(&self) -> &'static str {
        "amazon/aws-cli:2.35.4"
    }
    fn verify_check(&self) -> &'static str {
        "aws sts get-caller-identity"
    }
    fn specialise(
        &self,
        keys: &ResolvedKeys,
        ctx: &PlanContext<'_>,
        plan: &mut ProviderPlan,
        warnings: &mut Warnings,
    ) -> Result<(), String> {
        let role_arn = required_text(keys, self.name(), ROLE_ARN)?;
        plan.env.push(("AWS_ROLE_ARN".into(), role_arn.into()));
        plan.env
            .push(("AWS_WEB_IDENTITY_TOKEN_FILE".into(), ctx.token_file()));
        plan.optional_env(keys, REGION, REGION_VARS);
        plan.env_groups.push(REGION_VARS);
        if keys.text(REGION).is_none() {
            warnings.push(MISSING_REGION.into());
        }
        plan.optional_env(keys, ROLE_SESSION_NAME, &["AWS_ROLE_SESSION_NAME"]);
        plan.optional_env(
            keys,
            STS_REGIONAL_ENDPOINTS,
            &["AWS_STS_REGIONAL_ENDPOINTS"],
        );
        Ok(())
    }
    fn native_layout(&self) -> Option<&'static dyn NativeLayout> {
        Some(&eks::Eks)
    }
}
