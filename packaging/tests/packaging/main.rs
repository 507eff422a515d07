//! Checks of every file a registry or the cluster reads: `policy-metadata.yml`,
//! `artifacthub-pkg.yml`, the manifests in `examples/`, and the parts of `README.md` that
//! name keys and install steps. They run on the host with `cargo test -p packaging`.

mod artifacthub;
mod common;
mod examples;
mod metadata;
mod rbac;
mod readme;
mod versions;
