//! The suffixes of az's own keys (`cwii.dev/az-<suffix>`), shared by both layouts.

pub const CLIENT_ID: &str = "client-id";
pub const TENANT_ID: &str = "tenant-id";
pub const AUTHORITY_HOST: &str = "authority-host";
