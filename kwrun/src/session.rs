//! Recorded host-capability sessions (`--replay-host-capabilities-interactions`).
//!
//! A session is kwctl's YAML list of exchanges. Each `request` is a YAML *string* holding a
//! tagged enum such as `!KubernetesGetResource {api_version, kind, ...}`; the host replays
//! the exchanges strictly in order and fails a call whose request differs from the next
//! recorded one.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The tag kwctl writes for a `kubernetes/get_resource` request.
pub const GET_RESOURCE_TAG: &str = "KubernetesGetResource";

/// What the guest sends to `kubewarden/kubernetes/get_resource`, and what a session records.
///
/// `field_masks` is a sorted set, so two requests naming the same masks in another order are
/// equal. An empty list means the same as no list (the whole object).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GetResourceRequest {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub disable_cache: bool,
    #[serde(default, deserialize_with = "deserialize_field_masks")]
    pub field_masks: Option<BTreeSet<String>>,
}

fn deserialize_field_masks<'de, D>(deserializer: D) -> Result<Option<BTreeSet<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let masks = Option::<BTreeSet<String>>::deserialize(deserializer)?;
    Ok(masks.filter(|masks| !masks.is_empty()))
}

impl GetResourceRequest {
    /// Parses the JSON payload the guest passed to the host call.
    pub fn from_guest_payload(payload: &[u8]) -> Result<Self> {
        serde_json::from_slice(payload)
            .context("cannot parse the get_resource request of the policy")
    }
}

/// A request recorded in a session: the capability it names, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedRequest {
    KubernetesGetResource(GetResourceRequest),
    /// A capability kwrun cannot serve (e.g. `!OciManifestDigest`); kept so that the
    /// session still loads and the mismatch is reported when it is reached.
    Unsupported {
        tag: String,
    },
}

impl RecordedRequest {
    /// Parses the YAML string of an exchange's `request`.
    pub fn parse(text: &str) -> Result<Self> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).context("the request is not valid YAML")?;
        let serde_yaml::Value::Tagged(tagged) = value else {
            bail!("the request has no type tag (expected e.g. `!{GET_RESOURCE_TAG}`)");
        };
        let tag = tagged.tag.to_string();
        let tag = tag.trim_start_matches('!');
        if tag == GET_RESOURCE_TAG {
            let request: GetResourceRequest = serde_yaml::from_value(tagged.value)
                .with_context(|| format!("invalid !{GET_RESOURCE_TAG} request"))?;
            Ok(Self::KubernetesGetResource(request))
        } else {
            Ok(Self::Unsupported {
                tag: tag.to_string(),
            })
        }
    }
}

/// Renders like Rust's `Debug` of kwctl's request enum, the form its replay errors show:
/// `KubernetesGetResource { api_version: "v1", ..., namespace: Some("apps"), ... }`.
impl fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KubernetesGetResource(request) => f
                .debug_struct(GET_RESOURCE_TAG)
                .field("api_version", &request.api_version)
                .field("kind", &request.kind)
                .field("name", &request.name)
                .field("namespace", &request.namespace)
                .field("disable_cache", &request.disable_cache)
                .field("field_masks", &request.field_masks)
                .finish(),
            Self::Unsupported { tag } => write!(f, "{tag} {{ .. }}"),
        }
    }
}

/// The recorded answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum RecordedResponse {
    /// `payload` is the JSON text handed back to the guest.
    Success {
        payload: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: RecordedRequest,
    pub response: RecordedResponse,
}

/// The on-disk shape of one list item.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum SessionItem {
    Exchange {
        request: String,
        response: RecordedResponse,
    },
}

/// A whole recorded session, in replay order. The exchanges are shared, so a replay (one
/// per evaluation) is a cursor over them, not a copy: the bench times the policy, not
/// kwrun's bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub exchanges: Arc<[Exchange]>,
}

impl Session {
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        // An empty file is an empty session.
        let items: Option<Vec<SessionItem>> =
            serde_yaml::from_str(text).context("not a list of `type: Exchange` items")?;
        let exchanges = items
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, SessionItem::Exchange { request, response })| {
                let request = RecordedRequest::parse(&request)
                    .with_context(|| format!("exchange #{}: invalid request", index + 1))?;
                Ok(Exchange { request, response })
            })
            .collect::<Result<Arc<[_]>>>()?;
        Ok(Self { exchanges })
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read session file {}", path.display()))?;
        Self::from_yaml_str(&text)
            .with_context(|| format!("invalid session file {}", path.display()))
    }

    /// A replay from the first exchange.
    pub fn replay(&self) -> Replay {
        Replay {
            exchanges: self.exchanges.clone(),
            next: 0,
        }
    }
}

/// One evaluation's position in a session: the exchanges before `next` are consumed.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    exchanges: Arc<[Exchange]>,
    next: usize,
}

impl Replay {
    /// Pops the next exchange and answers `actual` with it: the recorded payload, or the
    /// error text the host gives the guest (without the callback wrapper).
    pub fn answer(&mut self, actual: &RecordedRequest) -> Result<Vec<u8>, String> {
        let Some(exchange) = self.exchanges.get(self.next) else {
            return Err("Replay error: the list of recorded responses is empty".to_string());
        };
        self.next += 1;
        if exchange.request != *actual {
            return Err(format!(
                "Replay error: unexpected request. Was expecting {}, got {} instead",
                exchange.request, actual
            ));
        }
        match &exchange.response {
            RecordedResponse::Success { payload } => Ok(payload.as_bytes().to_vec()),
            RecordedResponse::Error { message } => Err(message.clone()),
        }
    }

    /// The exchanges left over once the evaluation is done.
    pub fn into_unused(self) -> Vec<Exchange> {
        self.exchanges[self.next..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/fixtures/session.yml");

    fn service_account_request(masks: &[&str]) -> RecordedRequest {
        RecordedRequest::KubernetesGetResource(GetResourceRequest {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: "default".into(),
            namespace: Some("apps".into()),
            disable_cache: false,
            field_masks: Some(masks.iter().map(|m| m.to_string()).collect()),
        })
    }

    #[test]
    fn parses_the_recorded_kwctl_session() {
        let session = Session::from_yaml_str(SAMPLE).unwrap();
        assert_eq!(session.exchanges.len(), 2);
        assert_eq!(
            session.exchanges[0].request,
            service_account_request(&["metadata.annotations", "metadata.ownerReferences"])
        );
        let RecordedRequest::KubernetesGetResource(namespace) = &session.exchanges[1].request
        else {
            panic!("second exchange is not a get_resource");
        };
        assert_eq!(namespace.kind, "Namespace");
        assert_eq!(namespace.namespace, None);
        assert_eq!(
            session.exchanges[1].response,
            RecordedResponse::Error {
                message: "Cannot find v1/Namespace named 'apps' inside of namespace 'None'".into()
            }
        );
        match &session.exchanges[0].response {
            RecordedResponse::Success { payload } => assert!(payload.contains(r#""x":"y""#)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn field_masks_compare_as_a_sorted_set() {
        let guest = GetResourceRequest::from_guest_payload(
            br#"{"api_version":"v1","kind":"ServiceAccount","name":"default","namespace":"apps",
                "disable_cache":false,"field_masks":["metadata.ownerReferences","metadata.annotations","metadata.annotations"]}"#,
        )
        .unwrap();
        assert_eq!(
            RecordedRequest::KubernetesGetResource(guest),
            service_account_request(&["metadata.annotations", "metadata.ownerReferences"])
        );
        assert_ne!(
            service_account_request(&["metadata.annotations"]),
            service_account_request(&["metadata.annotations", "metadata.ownerReferences"])
        );
    }

    #[test]
    fn empty_and_missing_field_masks_are_the_same_request() {
        let without = GetResourceRequest::from_guest_payload(
            br#"{"api_version":"v1","kind":"Namespace","name":"apps","namespace":null,"disable_cache":true}"#,
        )
        .unwrap();
        let empty = GetResourceRequest::from_guest_payload(
            br#"{"api_version":"v1","kind":"Namespace","name":"apps","namespace":null,"disable_cache":true,"field_masks":[]}"#,
        )
        .unwrap();
        assert_eq!(without, empty);
        assert_eq!(without.field_masks, None);
    }

    #[test]
    fn null_and_named_namespaces_differ() {
        let mut cluster_scoped = service_account_request(&[]);
        if let RecordedRequest::KubernetesGetResource(request) = &mut cluster_scoped {
            request.namespace = None;
        }
        assert_ne!(cluster_scoped, service_account_request(&[]));
    }

    #[test]
    fn replay_answers_in_order_then_reports_an_empty_list() {
        let session = Session::from_yaml_str(SAMPLE).unwrap();
        let mut replay = session.replay();
        let first = session.exchanges[0].request.clone();
        let second = session.exchanges[1].request.clone();
        let payload = replay.answer(&first).unwrap();
        assert!(String::from_utf8(payload)
            .unwrap()
            .starts_with(r#"{"apiVersion":"v1""#));
        assert_eq!(
            replay.answer(&second).unwrap_err(),
            "Cannot find v1/Namespace named 'apps' inside of namespace 'None'"
        );
        assert_eq!(
            replay.answer(&first).unwrap_err(),
            "Replay error: the list of recorded responses is empty"
        );
        // A fresh replay starts over.
        assert!(session.replay().answer(&first).is_ok());
    }

    #[test]
    fn replay_reports_an_unexpected_request_with_both_requests() {
        let session = Session::from_yaml_str(SAMPLE).unwrap();
        let mut replay = session.replay();
        let wrong = session.exchanges[1].request.clone();
        let error = replay.answer(&wrong).unwrap_err();
        assert_eq!(
            error,
            "Replay error: unexpected request. Was expecting KubernetesGetResource { \
             api_version: \"v1\", kind: \"ServiceAccount\", name: \"default\", \
             namespace: Some(\"apps\"), disable_cache: false, field_masks: \
             Some({\"metadata.annotations\", \"metadata.ownerReferences\"}) }, got \
             KubernetesGetResource { api_version: \"v1\", kind: \"Namespace\", name: \"apps\", \
             namespace: None, disable_cache: false, field_masks: \
             Some({\"metadata.annotations\", \"metadata.ownerReferences\"}) } instead"
        );
        // The mismatched exchange is consumed, like kwctl's pop.
        assert_eq!(replay.into_unused().len(), 1);
    }

    #[test]
    fn unsupported_capabilities_load_and_fail_when_reached() {
        let text = "- type: Exchange\n  request: |\n    !OciManifestDigest\n    image: busybox\n  response:\n    type: Success\n    payload: '\"sha256:0\"'\n";
        let session = Session::from_yaml_str(text).unwrap();
        assert_eq!(
            session.exchanges[0].request,
            RecordedRequest::Unsupported {
                tag: "OciManifestDigest".into()
            }
        );
        let error = session
            .replay()
            .answer(&service_account_request(&[]))
            .unwrap_err();
        assert!(error.starts_with("Replay error: unexpected request. Was expecting OciManifestDigest { .. }, got KubernetesGetResource {"), "{error}");
    }

    #[test]
    fn rejects_malformed_sessions() {
        assert!(Session::from_yaml_str("- type: Something\n").is_err());
        assert!(Session::from_yaml_str("- type: Exchange\n  request: 'api_version: v1'\n  response: {type: Success, payload: '{}'}\n").is_err());
        assert!(Session::from_yaml_str("- type: Exchange\n  request: '!KubernetesGetResource {kind: Pod}'\n  response: {type: Success, payload: '{}'}\n").is_err());
        assert_eq!(Session::from_yaml_str("").unwrap().exchanges.len(), 0);
    }
}
