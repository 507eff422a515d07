//! The clouds, one module each behind [`Provider`]; their webhooks' layouts beside them.
//! This is the one list of providers: the core gets it as a parameter and never names a
//! cloud, so a fourth one means a new module and one line in [`all`].

mod aws;
mod az;
mod gcp;

use crate::provider::Provider;

static PROVIDERS: [&dyn Provider; 3] = [&gcp::Gcp, &aws::Aws, &az::Az];

/// Every provider, in the order verify containers are placed: gcp, aws, az.
pub fn all() -> &'static [&'static dyn Provider] {
    &PROVIDERS
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}
