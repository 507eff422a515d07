//! README.md is the user guide: every `cwii.dev/` key it names must exist, every input key
//! must be documented, and the install steps must apply the RBAC before the policy.

use crate::common::read;
use cwii_kubewarden::admission::parse_settings;
use cwii_kubewarden::keys::{INJECTED_MARKER, SHARED_KEYS};
use cwii_kubewarden::providers;
use cwii_kubewarden::settings::input_key;

const OUTPUT_KEYS: &[&str] = &[INJECTED_MARKER, "cwii.dev/gcp-credentials"];

/// `cwii.dev/<name>` mentions that are keys: not URLs, not paths, not `cwii.dev/<p>-…`
/// placeholders.
fn key_mentions(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (at, _) in text.match_indices("cwii.dev/") {
        if text[..at].ends_with('/') || text[..at].ends_with('.') {
            continue; // https://cwii.dev/..., /var/run/secrets/cwii.dev/...
        }
        let rest = &text[at + "cwii.dev/".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let next = rest[name.len()..].chars().next();
        if name.is_empty() || matches!(next, Some('<' | '*' | '{')) || name.ends_with('-') {
            continue;
        }
        keys.push(format!("cwii.dev/{name}"));
    }
    keys
}

#[test]
fn every_key_the_readme_names_exists() {
    let readme = read("README.md");
    let mentions = key_mentions(&readme);
    assert!(
        mentions.len() > 20,
        "README names too few keys: {mentions:?}"
    );
    for key in mentions {
        assert!(
            input_key(providers::all(), &key).is_some() || OUTPUT_KEYS.contains(&key.as_str()),
            "README.md names {key}, which is neither an input nor an output key"
        );
    }
}

#[test]
fn every_input_key_is_documented() {
    let readme = read("README.md");
    for def in SHARED_KEYS {
        let pattern = format!("cwii.dev/<p>-{}", def.suffix);
        assert!(
            readme.contains(&pattern),
            "README.md does not document {pattern}"
        );
    }
    let settings =
        parse_settings(serde_json::json!({"nativeAnnotations": true})).expect("default settings");
    for provider in providers::all() {
        for def in provider.keys() {
            let key = format!("cwii.dev/{}-{}", provider.name(), def.suffix);
            assert!(readme.contains(&key), "README.md does not document {key}");
        }
        // Drop-in mode: every webhook key read, and every `native.<webhook>` setting.
        if let Some(layout) = provider.native_layout() {
            for native in layout.native_keys(&settings.native[layout.name()]) {
                assert!(
                    readme.contains(&native.key),
                    "README.md does not document {}",
                    native.key
                );
            }
            for field in layout.settings_fields() {
                let name = format!("native.{}.{}", layout.name(), field.name);
                assert!(readme.contains(&name), "README.md does not document {name}");
            }
        }
    }
    for key in OUTPUT_KEYS {
        assert!(readme.contains(key), "README.md does not document {key}");
    }
}

#[test]
fn install_applies_rbac_before_the_policy() {
    let readme = read("README.md");
    let rbac = readme
        .find("kubectl apply -f examples/rbac.yaml")
        .expect("README.md applies examples/rbac.yaml");
    let policy = readme
        .find("kubectl apply -f examples/cluster-admission-policy.yaml")
        .expect("README.md applies examples/cluster-admission-policy.yaml");
    assert!(rbac < policy, "the RBAC step must come before the policy");
}

#[test]
fn keeps_the_testing_and_performance_sections() {
    let readme = read("README.md");
    for needle in ["\n## Testing\n", "\n## Performance\n", "make bench"] {
        assert!(readme.contains(needle), "README.md lost {needle:?}");
    }
}
