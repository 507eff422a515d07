//! kwrun: a waPC host that runs Kubewarden policy modules the way `kwctl` does.
//!
//! - [`run`]: evaluate one request and print kwctl's AdmissionResponse line;
//! - [`annotate`]: write policy metadata into the module's custom section;
//! - [`bench`]: time evaluations on fresh and warm instances.

pub mod admission;
pub mod annotate;
pub mod bench;
pub mod cli;
pub mod engine;
pub mod host;
pub mod log;
pub mod metadata;
pub mod policy;
pub mod run;
pub mod session;
