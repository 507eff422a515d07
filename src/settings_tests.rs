//! Settings validation: defaults, every field, and every error naming its field.

use crate::providers;
use crate::settings::*;
use serde_json::{json, Value};

fn err(settings: Value) -> String {
    match Settings::from_value(settings, providers::all()) {
        Ok(_) => panic!("settings should be rejected"),
        Err(message) => message,
    }
}

#[test]
fn empty_and_null_mean_defaults() {
    let defaults = Settings::from_value(json!({}), providers::all()).unwrap();
    assert_eq!(
        Settings::from_slice(b"null", providers::all()),
        Ok(defaults.clone())
    );
    assert_eq!(
        Settings::from_slice(b"{}", providers::all()),
        Ok(defaults.clone())
    );
    assert_eq!(
        Settings::from_slice(b"", providers::all()),
        Ok(defaults.clone())
    );
    assert_eq!(defaults.mount_root, "/var/run/secrets/cwii.dev");
    assert_eq!(defaults.token_expiration_seconds, 3600);
    assert!(!defaults.native_annotations);
    assert_eq!(defaults.lookup_failure, LookupFailure::Deny);
    assert_eq!(defaults.injected_container_resources, None);
    assert_eq!(
        defaults.container_resources(),
        &json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
    );
    let gcp = &defaults.providers["gcp"];
    assert!(gcp.enabled);
    assert_eq!(gcp.default_audience, None);
    assert_eq!(gcp.verify_image, "google/cloud-sdk:572.0.0-slim");
    assert_eq!(gcp.fields["delivery"], "downward-api");
    assert_eq!(gcp.fields["initImage"], "busybox:1.38.0");
    let aws = &defaults.providers["aws"];
    assert_eq!(aws.default_audience.as_deref(), Some("sts.amazonaws.com"));
    assert_eq!(aws.verify_image, "amazon/aws-cli:2.35.4");
    let az = &defaults.providers["az"];
    assert_eq!(
        az.default_audience.as_deref(),
        Some("api://AzureADTokenExchange")
    );
    assert_eq!(az.verify_image, "mcr.microsoft.com/azure-cli:2.84.0");
}

#[test]
fn full_example_parses() {
    let s = Settings::from_value(
        json!({
        "mountRoot": "/cwii/",
        "tokenExpirationSeconds": 7200,
        "nativeAnnotations": true,
        "lookupFailure": "ignore",
        "injectedContainerResources": {"requests": {"cpu": "10m", "memory": 1000}, "limits": {"memory": "1Gi"}},
        "providers": {"gcp": {"enabled": false, "defaultAudience": "//iam.googleapis.com/x", "delivery": "init-container", "initImage": "busybox:1", "verifyImage": "gcloud:1"},
                      "aws": {"defaultAudience": "sts.example"}},
        "defaults": {"cwii.dev/az-tenant-id": "t", "cwii.dev/az-inject": true, "cwii.dev/aws-token-expiration": 900}
        }),
        providers::all(),
    )
    .unwrap();
    assert_eq!(s.mount_root, "/cwii");
    assert_eq!(s.token_expiration_seconds, 7200);
    assert!(s.native_annotations);
    assert_eq!(s.lookup_failure, LookupFailure::Ignore);
    assert_eq!(s.container_resources()["requests"]["memory"], "1000");
    assert!(!s.providers["gcp"].enabled);
    assert_eq!(s.providers["gcp"].fields["delivery"], "init-container");
    assert_eq!(
        s.providers["aws"].default_audience.as_deref(),
        Some("sts.example")
    );
    assert_eq!(s.defaults["cwii.dev/az-inject"], "true");
    assert_eq!(s.defaults["cwii.dev/aws-token-expiration"], "900");
}

#[test]
fn every_invalid_case_names_its_field() {
    let cases = [
        (json!({"bogus": 1}), "bogus"),
        (
            json!({"tokenExpirationSeconds": 599}),
            "tokenExpirationSeconds",
        ),
        (
            json!({"tokenExpirationSeconds": "abc"}),
            "tokenExpirationSeconds",
        ),
        (json!({"lookupFailure": "maybe"}), "lookupFailure"),
        (json!({"mountRoot": "relative/path"}), "mountRoot"),
        (json!({"mountRoot": "/a b"}), "mountRoot"),
        (json!({"mountRoot": "/"}), "mountRoot"),
        (
            json!({"providers": {"gcp": {"delivery": "carrier-pigeon"}}}),
            "providers.gcp.delivery",
        ),
        (
            json!({"providers": {"gcp": {"initImage": ""}}}),
            "providers.gcp.initImage",
        ),
        (
            json!({"providers": {"az": {"verifyImage": " "}}}),
            "providers.az.verifyImage",
        ),
        (
            json!({"providers": {"aws": {"delivery": "downward-api"}}}),
            "providers.aws.delivery",
        ),
        (json!({"providers": {"ibm": {}}}), "providers.ibm"),
        (
            json!({"providers": {"aws": {"enabled": "yes"}}}),
            "providers.aws.enabled",
        ),
        (
            json!({"defaults": {"cwii.dev/injected": "az"}}),
            "defaults.cwii.dev/injected",
        ),
        (
            json!({"defaults": {"cwii.dev/az-nope": "x"}}),
            "defaults.cwii.dev/az-nope",
        ),
        (json!({"defaults": {"team": "x"}}), "defaults.team"),
        (
            json!({"defaults": {"cwii.dev/az-inject": "maybe"}}),
            "defaults.cwii.dev/az-inject",
        ),
        (
            json!({"defaults": {"cwii.dev/gcp-token-expiration": "60"}}),
            "defaults.cwii.dev/gcp-token-expiration",
        ),
        (
            json!({"defaults": {"cwii.dev/aws-role-arn": "  "}}),
            "defaults.cwii.dev/aws-role-arn",
        ),
        (
            json!({"defaults": {"cwii.dev/gcp-delivery": "x"}}),
            "defaults.cwii.dev/gcp-delivery",
        ),
        (
            json!({"injectedContainerResources": {"requests": {"cpu": "lots"}}}),
            "injectedContainerResources.requests.cpu",
        ),
        (
            json!({"injectedContainerResources": {"claims": {}}}),
            "injectedContainerResources.claims",
        ),
        (
            json!({"injectedContainerResources": "small"}),
            "injectedContainerResources",
        ),
    ];
    for (settings, field) in cases {
        let message = err(settings.clone());
        assert!(
            message.contains(&format!("`{field}`")) || message.contains(&format!("`{field}")),
            "{settings} -> {message} should name {field}"
        );
        // The text the policy is given is read without a tree: the same message.
        let text = serde_json::to_vec_pretty(&settings).unwrap();
        assert_eq!(
            Settings::from_slice(&text, providers::all()),
            Err(message),
            "{settings}"
        );
    }
}

#[test]
fn settings_read_from_text_are_those_read_from_a_tree() {
    let cases = [
        json!({}),
        json!({"mountRoot": "/var/run/cwii", "tokenExpirationSeconds": 7200}),
        json!({"lookupFailure": "ignore", "nativeAnnotations": true}),
        json!({"defaults": {"cwii.dev/az-tenant-id": "t", "cwii.dev/aws-region": "eu-west-1",
            "cwii.dev/az-inject": true, "cwii.dev/gcp-token-expiration": 3600}}),
        json!({"providers": {"gcp": {"delivery": "config-map", "enabled": false},
            "az": {"defaultAudience": " api://x ", "verifyImage": "mcr.microsoft.com/azure-cli:2"}}}),
        json!({"native": {"azwi": {}}, "nativeAnnotations": true}),
        json!({"injectedContainerResources": {"requests": {"cpu": 1, "memory": "64Mi"}}}),
    ];
    for settings in cases {
        let text = serde_json::to_vec(&settings).unwrap();
        let from_tree = Settings::from_value(settings.clone(), providers::all());
        assert!(from_tree.is_ok(), "{settings}: {from_tree:?}");
        assert_eq!(
            Settings::from_slice(&text, providers::all()),
            from_tree,
            "{settings}"
        );
    }
    for (text, why) in [
        (
            &b"{\"mountRoot\": "[..],
            "settings are not valid JSON: EOF while parsing",
        ),
        (b"{} {}", "settings are not valid JSON: trailing characters"),
        (b"[[[", "settings are not valid JSON: EOF while parsing"),
        (b"[1, 2", "settings are not valid JSON: EOF while parsing"),
        (
            b"{\"mountRoot\": \"/x\"",
            "settings are not valid JSON: EOF while parsing",
        ),
        (b"  null  ", ""),
    ] {
        match Settings::from_slice(text, providers::all()) {
            Err(message) => assert!(message.starts_with(why), "{message}"),
            Ok(settings) => assert!(why.is_empty(), "{settings:?}"),
        }
    }
}

#[test]
fn quantities() {
    for ok in ["50m", "128Mi", "1", "0.5", "1e3", "2Gi", "+1k", "1E-2"] {
        assert!(is_quantity(ok), "{ok}");
    }
    for bad in ["", "m", "1.2.3", "5 Mi", "lots", "1e", "Mi5"] {
        assert!(!is_quantity(bad), "{bad}");
    }
}

#[test]
fn every_fields_default_passes_its_own_check() {
    // Defaults are taken without their check (settings are parsed on every fresh
    // instance's request): given explicitly, each must be accepted and mean the same.
    for provider in providers::all() {
        let layouts = provider.native_layout().into_iter();
        let fields = (provider.settings_fields().iter())
            .chain(layouts.flat_map(|layout| layout.settings_fields()));
        for field in fields {
            let default = (field.check)(None)
                .unwrap_or_else(|e| panic!("{}.{}: {e}", provider.name(), field.name));
            assert_eq!(
                (field.check)(Some(&default)),
                Ok(default.clone()),
                "{}.{}",
                provider.name(),
                field.name
            );
        }
    }
}
