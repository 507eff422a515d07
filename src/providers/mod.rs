//! The clouds, one module each behind [`Provider`]; their webhooks' layouts beside them.
//! This is the one list of providers: the core gets it as a parameter and never names a
//! cloud, so a fourth one means a new module and one line in [`all`] (and one in
//! [`POD_FIELDS`]).

mod aws;
mod az;
mod gcp;

use crate::provider::Provider;

/// How many providers there are: [`all`] and [`POD_FIELDS`] list each once.
const COUNT: usize = 3;

static PROVIDERS: [&dyn Provider; COUNT] = [&gcp::Gcp, &aws::Aws, &az::Az];

/// The pod fields each provider and its layout read through `PlanContext::pod`, as paths
/// such as `spec.nodeSelector`: only declared fields are in that view. Constants, so that
/// the pod reader's field tree is built at compile time rather than in every fresh instance.
pub const POD_FIELDS: [&[&str]; COUNT] = [gcp::POD_FIELDS, aws::POD_FIELDS, az::POD_FIELDS];

/// Every provider, in the order verify containers are placed: gcp, aws, az.
pub fn all() -> &'static [&'static dyn Provider] {
    &PROVIDERS
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}
