//! cwii for Kubewarden: a mutating, context-aware policy that gives pods cloud identity
//! (Azure, AWS, GCP) through projected ServiceAccount tokens.
//!
//! The data flows resolve → plan → mutate:
//! - [`resolve`] reads each `cwii.dev/` key by precedence (pod > workload > ServiceAccount >
//!   namespace > settings.defaults) through a [`lookup::Lookup`];
//! - [`plan`] turns one provider's keys into what the pod must contain, with the provider's
//!   own part coming from its module in [`providers`] — or, in drop-in mode, the whole pod
//!   its webhook (azwi, EKS) would return, from that webhook's layout;
//! - [`provider`] is the contract between them: the traits and types providers implement
//!   and import, so that the core depends on no cloud and no cloud on the core;
//! - [`mutate`] applies the plans to the untyped pod JSON — the fields of it that
//!   [`sparse`] read; the rest of the pod is copied into the answer as text.
//!
//! The waPC exports below are the only wasm-specific code.

pub mod admission;
pub mod arena;
pub mod keys;
pub mod lookup;
pub mod mutate;
pub mod plan;
pub mod provider;
pub mod providers;
pub mod resolve;
pub mod settings;
pub mod sparse;
pub mod warnings;

#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod settings_tests;

use kubewarden_policy_sdk::wapc_guest as guest;

#[no_mangle]
pub extern "C" fn wapc_init() {
    guest::register_function("validate", validate);
    guest::register_function("validate_settings", validate_settings);
    guest::register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
}

fn validate(payload: &[u8]) -> guest::CallResult {
    Ok(admission::validate_text(payload, &mut lookup::HostLookup)?)
}

fn validate_settings(payload: &[u8]) -> guest::CallResult {
    Ok(serde_json::to_vec(&admission::validate_settings(payload))?)
}
