//! AWS (IAM roles through STS AssumeRoleWithWebIdentity).

use super::Provider;
use crate::keys::{shared, KeyDef, KeyKind, NativeKey};
use crate::plan::{optional_env, required_text, PlanContext, ProviderPlan};
use crate::resolve::ResolvedKeys;

pub struct Aws;

/// boto3 and the v1 CLI read the second, the other SDKs the first: they go together.
const REGION_VARS: &[&str] = &["AWS_REGION", "AWS_DEFAULT_REGION"];

const MISSING_REGION: &str = "cwii: aws has no region: set cwii.dev/aws-region on the pod, workload, ServiceAccount or namespace, or in settings.defaults; the AWS SDKs for JavaScript v3, Go v2 and Java v2 need AWS_REGION to build an STS client";

const ROLE_ARN: &str = "role-arn";
const REGION: &str = "region";
const ROLE_SESSION_NAME: &str = "role-session-name";
const STS_REGIONAL_ENDPOINTS: &str = "sts-regional-endpoints";

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
    fn native_keys(&self) -> &'static [NativeKey] {
        &[
            NativeKey {
                key: "eks.amazonaws.com/role-arn",
                suffix: ROLE_ARN,
            },
            NativeKey {
                key: "eks.amazonaws.com/audience",
                suffix: shared::AUDIENCE,
            },
            NativeKey {
                key: "eks.amazonaws.com/token-expiration",
                suffix: shared::TOKEN_EXPIRATION,
            },
            NativeKey {
                key: "eks.amazonaws.com/skip-containers",
                suffix: shared::SKIP_CONTAINERS,
            },
        ]
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
    ) -> Result<(), String> {
        let role_arn = required_text(keys, self.name(), ROLE_ARN)?;
        plan.env.push(("AWS_ROLE_ARN".into(), role_arn.into()));
        plan.env
            .push(("AWS_WEB_IDENTITY_TOKEN_FILE".into(), ctx.token_file()));
        optional_env(&mut plan.env, keys, REGION, REGION_VARS);
        if keys.text(REGION).is_none() {
            // boto3 falls back to the global STS endpoint; these SDKs fail instead.
            plan.notes.push(MISSING_REGION.into());
        }
        plan.env_groups.push(REGION_VARS);
        optional_env(
            &mut plan.env,
            keys,
            ROLE_SESSION_NAME,
            &["AWS_ROLE_SESSION_NAME"],
        );
        optional_env(
            &mut plan.env,
            keys,
            STS_REGIONAL_ENDPOINTS,
            &["AWS_STS_REGIONAL_ENDPOINTS"],
        );
        Ok(())
    }
}
