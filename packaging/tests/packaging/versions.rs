//! One version everywhere: Cargo.toml, policy-metadata.yml, artifacthub-pkg.yml, the OCI tag
//! in the examples, and the Makefile's default push reference.

use crate::common::{cargo_version, kind_of, metadata, read, yaml_documents, OCI_REPOSITORY};

fn example_policy_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(crate::common::repo_root().join("examples"))
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .map(|path| format!("examples/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// Every policy manifest in examples/ (file, document).
pub fn example_policies() -> Vec<(String, serde_yaml::Value)> {
    example_policy_files()
        .into_iter()
        .flat_map(|file| {
            yaml_documents(&file)
                .into_iter()
                .filter(|doc| kind_of(doc).ends_with("AdmissionPolicy"))
                .map(move |doc| (file.clone(), doc))
        })
        .collect()
}

#[test]
fn metadata_version_is_the_cargo_version() {
    let version = cargo_version();
    assert_eq!(
        metadata().annotations["io.kubewarden.policy.version"],
        version,
        "io.kubewarden.policy.version in policy-metadata.yml"
    );
}

#[test]
fn artifacthub_version_and_image_tag_are_the_cargo_version() {
    let version = cargo_version();
    let pkg: serde_yaml::Value = serde_yaml::from_str(&read("artifacthub-pkg.yml")).unwrap();
    assert_eq!(
        pkg["version"].as_str(),
        Some(version.as_str()),
        "artifacthub-pkg.yml version"
    );
    let image = format!("{OCI_REPOSITORY}:v{version}");
    let images = pkg["containersImages"]
        .as_sequence()
        .expect("containersImages");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"].as_str(), Some("policy"));
    assert_eq!(images[0]["image"].as_str(), Some(image.as_str()));
    let install = pkg["install"].as_str().expect("install notes");
    assert!(
        install.contains(&format!("kwctl pull registry://{image}")),
        "install: {install}"
    );
    for link in pkg["links"].as_sequence().expect("links") {
        let url = link["url"].as_str().unwrap();
        if url.contains("/releases/download/") {
            assert!(url.contains(&format!("/v{version}/")), "stale link {url}");
        }
    }
    for line in install
        .lines()
        .filter(|l| l.contains("raw.githubusercontent.com"))
    {
        assert!(
            line.contains(&format!("/v{version}/examples/")),
            "stale install line {line}"
        );
    }
    assert_eq!(
        metadata().annotations["io.kubewarden.policy.ociUrl"],
        OCI_REPOSITORY
    );
}

#[test]
fn example_manifests_use_the_released_module() {
    let module = format!("registry://{OCI_REPOSITORY}:v{}", cargo_version());
    let policies = example_policies();
    assert!(
        policies.len() >= 2,
        "expected the cluster-wide and one-namespace examples"
    );
    for (file, doc) in policies {
        assert_eq!(
            doc["spec"]["module"].as_str(),
            Some(module.as_str()),
            "{file}"
        );
    }
}

#[test]
fn make_push_defaults_to_the_released_reference() {
    let makefile = read("Makefile");
    assert!(
        makefile.contains("REGISTRY_REF ?= registry://ghcr.io/cwii-dev/policies/cwii:v$(VERSION)"),
        "Makefile push target: documented REGISTRY_REF default"
    );
    assert!(makefile.contains("$(KWCTL) push annotated-policy.wasm $(REGISTRY_REF)"));
}
