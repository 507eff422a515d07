//! The suffixes of aws's own keys (`cwii.dev/aws-<suffix>`) and the facts both layouts share.

pub const ROLE_ARN: &str = "role-arn";
pub const REGION: &str = "region";
pub const ROLE_SESSION_NAME: &str = "role-session-name";
pub const STS_REGIONAL_ENDPOINTS: &str = "sts-regional-endpoints";

/// boto3 and the v1 CLI read the second, the other SDKs the first: they go together.
pub const REGION_VARS: &[&str] = &["AWS_REGION", "AWS_DEFAULT_REGION"];

/// boto3 falls back to the global STS endpoint without a region; these SDKs fail instead.
pub const MISSING_REGION: &str = "cwii: aws has no region: set cwii.dev/aws-region on the pod, workload, ServiceAccount or namespace, or in settings.defaults; the AWS SDKs for JavaScript v3, Go v2 and Java v2 need AWS_REGION to build an STS client";
