//! Reading the annotations and owners of cluster objects. The policy only needs two fields
//! of each object, so every lookup asks the host for exactly those (field masks).

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The two fields the policy reads from every object it looks up.
pub const FIELD_MASKS: [&str; 2] = ["metadata.annotations", "metadata.ownerReferences"];

/// A cluster object to look up. apiVersion and kind are fixed per kind (SPEC §3), never taken
/// from the pod, so a forged ownerReference cannot steer the lookup to another API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    /// `None` for cluster-scoped objects (Namespace).
    pub namespace: Option<String>,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Every kind the policy may look up, with its apiVersion. `policy-metadata.yml`'s
/// `contextAwareResources` must list exactly these (a test checks it).
pub const LOOKUP_KINDS: [(&str, &str); 8] = [
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "ServiceAccount"),
    ("v1", "Namespace"),
];

/// The apiVersion and canonical kind name for a kind the policy knows, else `None`.
pub fn known_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    LOOKUP_KINDS.iter().copied().find(|(_, k)| *k == kind)
}

/// The part of an object the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ObjectMeta {
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "ownerReferences",
        deserialize_with = "null_as_default"
    )]
    pub owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub controller: bool,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// What the host returns; older hosts ignore field masks and send the whole object, whose
/// other fields serde skips.
#[derive(Clone, Deserialize)]
struct FetchedObject {
    #[serde(default, deserialize_with = "null_as_default")]
    metadata: ObjectMeta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The object does not exist: an empty level.
    NotFound,
    /// Anything else (RBAC, API server down, resource not granted, bad response).
    Failed(String),
}

pub trait Lookup {
    fn get(&mut self, object: &ObjectRef) -> Result<ObjectMeta, LookupError>;

    /// Whether `get` keeps nothing it allocates beyond returning it, so that an
    /// evaluation's arena may hold it (and take it back at the end). Not for a lookup
    /// that records its calls or caches answers.
    fn keeps_nothing(&self) -> bool {
        false
    }
}

/// Classifies a host error text. The host's "not found" text sits behind prefixes added by
/// the SDK and the host, so it is searched for, never matched at the start.
pub fn classify_host_error(object: &ObjectRef, message: &str) -> LookupError {
    let not_found = format!(
        "Cannot find {}/{} named '{}'",
        object.api_version, object.kind, object.name
    );
    if message.contains(&not_found) {
        LookupError::NotFound
    } else {
        LookupError::Failed(message.to_string())
    }
}

pub fn parse_object(bytes: &[u8]) -> Result<ObjectMeta, LookupError> {
    serde_json::from_slice::<FetchedObject>(bytes)
        .map(|o| o.metadata)
        .map_err(|e| LookupError::Failed(format!("unreadable response from the host: {e}")))
}

/// Lookups through Kubewarden's `kubernetes/get_resource` host capability.
#[derive(Debug, Default)]
pub struct HostLookup;

impl Lookup for HostLookup {
    fn get(&mut self, object: &ObjectRef) -> Result<ObjectMeta, LookupError> {
        use kubewarden_policy_sdk::host_capabilities::kubernetes::{
            get_resource, GetResourceRequest,
        };
        let request = GetResourceRequest {
            api_version: object.api_version.to_string(),
            kind: object.kind.to_string(),
            name: object.name.clone(),
            namespace: object.namespace.clone(),
            disable_cache: false,
            field_masks: Some(FIELD_MASKS.iter().map(|m| m.to_string()).collect()),
        };
        // Deserialise straight into the small view: no k8s-openapi types on this path.
        get_resource::<FetchedObject>(&request)
            .map(|o| o.metadata)
            .map_err(|e| classify_host_error(object, &e.to_string()))
    }

    /// The SDK's request, the waPC buffers and the answer are all the call's own.
    fn keeps_nothing(&self) -> bool {
        true
    }
}

/// An in-memory cluster for tests, fuzzing and benchmarks. It records every call so tests
/// can check the exact lookup sequence.
#[derive(Debug, Default, Clone)]
pub struct InMemoryLookup {
    objects: BTreeMap<(String, Option<String>, String), Result<ObjectMeta, LookupError>>,
    pub calls: Vec<ObjectRef>,
}

impl InMemoryLookup {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(kind: &str, namespace: Option<&str>, name: &str) -> (String, Option<String>, String) {
        (
            kind.to_string(),
            namespace.map(str::to_string),
            name.to_string(),
        )
    }

    /// Adds an object with annotations and owner references `(kind, name, controller)`.
    pub fn with(
        mut self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        annotations: &[(&str, &str)],
        owners: &[(&str, &str, bool)],
    ) -> Self {
        let meta = ObjectMeta {
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            owner_references: owners
                .iter()
                .map(|(kind, name, controller)| OwnerReference {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    controller: *controller,
                })
                .collect(),
        };
        self.objects
            .insert(Self::slot(kind, namespace, name), Ok(meta));
        self
    }

    /// Makes the lookup of an object fail with a host error text.
    pub fn failing(
        mut self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        message: &str,
    ) -> Self {
        self.objects.insert(
            Self::slot(kind, namespace, name),
            Err(LookupError::Failed(message.to_string())),
        );
        self
    }

    /// The calls made so far, rendered as `Kind ns/name`.
    pub fn call_log(&self) -> Vec<String> {
        self.calls.iter().map(ToString::to_string).collect()
    }

    /// Distinct objects asked for (each must be asked at most once).
    pub fn distinct_calls(&self) -> usize {
        self.calls.iter().collect::<BTreeSet<_>>().len()
    }
}

impl Lookup for InMemoryLookup {
    fn get(&mut self, object: &ObjectRef) -> Result<ObjectMeta, LookupError> {
        self.calls.push(object.clone());
        self.objects
            .get(&Self::slot(
                object.kind,
                object.namespace.as_deref(),
                &object.name,
            ))
            .cloned()
            .unwrap_or(Err(LookupError::NotFound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_ref() -> ObjectRef {
        ObjectRef {
            api_version: "v1",
            kind: "Namespace",
            name: "apps".into(),
            namespace: None,
        }
    }

    #[test]
    fn not_found_is_recognised_behind_prefixes() {
        let text = "error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Cannot find v1/Namespace named 'apps' inside of namespace 'None'\nstack backtrace: ...";
        assert_eq!(classify_host_error(&ns_ref(), text), LookupError::NotFound);
    }

    #[test]
    fn other_errors_and_other_objects_are_failures() {
        let rbac =
            "Host error: Policy has not been granted access to Kubernetes v1/Namespace resources.";
        assert!(matches!(
            classify_host_error(&ns_ref(), rbac),
            LookupError::Failed(_)
        ));
        // "not found" for a different object is not this object's absence.
        let other = "Cannot find v1/Namespace named 'other' inside of namespace 'None'";
        assert!(matches!(
            classify_host_error(&ns_ref(), other),
            LookupError::Failed(_)
        ));
    }

    #[test]
    fn parses_masked_and_whole_objects() {
        let masked = br#"{"metadata":{"annotations":{"a":"b"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"1","controller":true}]}}"#;
        let meta = parse_object(masked).unwrap();
        assert_eq!(meta.annotations["a"], "b");
        assert_eq!(meta.owner_references[0].kind, "Deployment");
        assert!(meta.owner_references[0].controller);
        let whole = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"apps","labels":{"x":"y"},"annotations":null},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#;
        assert_eq!(parse_object(whole).unwrap(), ObjectMeta::default());
        assert!(matches!(
            parse_object(b"not json"),
            Err(LookupError::Failed(_))
        ));
    }
}
