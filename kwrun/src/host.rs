//! The host side of waPC `host_call`: what a policy gets when it asks the host for
//! something (binding `kubewarden`).
//!
//! Kubernetes lookups are checked against the granted resources, then answered from the
//! recorded session. Error texts follow kwctl: an access violation is returned as is, while
//! errors from the lookup itself are wrapped as `Callback evaluation failure: …` (the waPC
//! guest then adds `Host error: `).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::log;
use crate::metadata::ContextAwareResource;
use crate::session::{Exchange, GetResourceRequest, RecordedRequest, Replay, Session};

/// The binding the Kubewarden SDK uses for every host call.
pub const KUBEWARDEN_BINDING: &str = "kubewarden";

const CALLBACK_FAILURE: &str = "Callback evaluation failure: ";

/// What kwrun answers when a lookup is granted but there is no session to answer it from.
pub const NO_CLUSTER_MESSAGE: &str = "Cannot connect to the Kubernetes cluster: no kubeconfig available (kwrun has no cluster client; pass --replay-host-capabilities-interactions)";

/// Which Kubernetes resources the policy may look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubernetesAccess {
    /// Run without `--allow-context-aware`: every lookup is a violation.
    Denied,
    /// Run with `--allow-context-aware`: only these `apiVersion`/`kind` pairs.
    Granted(Vec<ContextAwareResource>),
}

impl KubernetesAccess {
    fn allows(&self, api_version: &str, kind: &str) -> bool {
        match self {
            Self::Denied => false,
            Self::Granted(resources) => resources
                .iter()
                .any(|resource| resource.api_version == api_version && resource.kind == kind),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Denied => "none (run without --allow-context-aware)".to_string(),
            Self::Granted(resources) => {
                let names: Vec<String> = resources
                    .iter()
                    .map(|r| format!("{}/{}", r.api_version, r.kind))
                    .collect();
                format!("[{}]", names.join(", "))
            }
        }
    }
}

/// Which host calls (`namespace/operation`) the policy may make at all: the metadata's
/// `hostCapabilities` (Kubewarden >= 1.35). Logging is never gated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostCapabilities {
    /// No `hostCapabilities` in the metadata: every call, as on older hosts.
    #[default]
    AllowAll,
    /// Only these; an entry ending in `*` allows every path starting with what precedes it.
    Only(Vec<String>),
}

impl HostCapabilities {
    pub fn from_metadata(declared: Option<&[String]>) -> Self {
        declared.map_or(Self::AllowAll, |list| Self::Only(list.to_vec()))
    }

    fn allows(&self, capability: &str) -> bool {
        match self {
            Self::AllowAll => true,
            Self::Only(list) => list.iter().any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => capability.starts_with(prefix),
                None => entry == capability,
            }),
        }
    }
}

/// What the host saw during one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReport {
    /// Kubernetes host calls the policy made (granted or not).
    pub lookups: usize,
    /// Recorded exchanges the policy never asked for.
    pub unused_exchanges: Vec<Exchange>,
}

#[derive(Default)]
struct EvaluationState {
    replay: Replay,
    lookups: usize,
}

/// Serves the host calls of one policy instance. One environment may serve many
/// evaluations (a warm instance); each `begin_evaluation` replays the session afresh.
pub struct HostEnvironment {
    capabilities: HostCapabilities,
    access: KubernetesAccess,
    session: Option<Session>,
    state: Mutex<EvaluationState>,
}

impl HostEnvironment {
    pub fn new(access: KubernetesAccess, session: Option<Session>) -> Self {
        let environment = Self {
            capabilities: HostCapabilities::AllowAll,
            access,
            session,
            state: Mutex::new(EvaluationState::default()),
        };
        environment.begin_evaluation();
        environment
    }

    /// Restricts the host calls to the declared capabilities.
    pub fn with_capabilities(mut self, capabilities: HostCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Resets the replay and the lookup count for the next evaluation.
    pub fn begin_evaluation(&self) {
        let replay = self
            .session
            .as_ref()
            .map(Session::replay)
            .unwrap_or_default();
        *self.lock_state() = EvaluationState { replay, lookups: 0 };
    }

    /// Reports on the evaluation since the last `begin_evaluation`.
    pub fn finish_evaluation(&self) -> HostReport {
        let state = std::mem::take(&mut *self.lock_state());
        HostReport {
            lookups: state.lookups,
            unused_exchanges: if self.session.is_some() {
                state.replay.into_unused()
            } else {
                Vec::new()
            },
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, EvaluationState> {
        // A panic while holding the lock leaves nothing half-written worth refusing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one `host_call` of the guest; `Err` is the text the guest receives.
    pub fn handle_host_call(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        match (binding, namespace, operation) {
            (KUBEWARDEN_BINDING, "tracing", "log") => {
                print_guest_log(payload);
                Ok(Vec::new())
            }
            (KUBEWARDEN_BINDING, namespace, operation)
                if !self
                    .capabilities
                    .allows(&format!("{namespace}/{operation}")) =>
            {
                if namespace == "kubernetes" {
                    self.lock_state().lookups += 1;
                }
                Err(self.capability_denied(&format!("{namespace}/{operation}")))
            }
            (KUBEWARDEN_BINDING, "kubernetes", operation) => {
                self.lock_state().lookups += 1;
                match operation {
                    "get_resource" => self.get_resource(payload),
                    _ => Err(unsupported(namespace, operation)),
                }
            }
            (KUBEWARDEN_BINDING, namespace, operation) => Err(unsupported(namespace, operation)),
            (binding, namespace, operation) => {
                Err(unsupported(&format!("{binding}/{namespace}"), operation))
            }
        }
    }

    fn capability_denied(&self, capability: &str) -> String {
        let allowed = match &self.capabilities {
            HostCapabilities::AllowAll => "all".to_string(),
            HostCapabilities::Only(list) => format!("[{}]", list.join(", ")),
        };
        log::error(format!(
            "Policy tried to use a host capability it doesn't have access to \
             capability={capability} allowed_capabilities={allowed}"
        ));
        format!(
            "Policy has not been granted access to the '{capability}' host capability. The violation has been reported."
        )
    }

    fn get_resource(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let request =
            GetResourceRequest::from_guest_payload(payload).map_err(|e| format!("{e:#}"))?;
        if !self.access.allows(&request.api_version, &request.kind) {
            log::error(format!(
                "Policy tried to access a Kubernetes resource it doesn't have access to \
                 resource_requested={}/{} resources_allowed={}",
                request.api_version,
                request.kind,
                self.access.describe()
            ));
            return Err(format!(
                "Policy has not been granted access to Kubernetes {}/{} resources. The violation has been reported.",
                request.api_version, request.kind
            ));
        }
        if self.session.is_none() {
            return Err(format!("{CALLBACK_FAILURE}{NO_CLUSTER_MESSAGE}"));
        }
        let actual = RecordedRequest::KubernetesGetResource(request);
        self.lock_state()
            .replay
            .answer(&actual)
            .map_err(|message| format!("{CALLBACK_FAILURE}{message}"))
    }
}

fn unsupported(namespace: &str, operation: &str) -> String {
    format!("{CALLBACK_FAILURE}kwrun: host capability {namespace}/{operation} is not supported")
}

/// Prints a log event the SDK's logger sent (`kubewarden/tracing/log`) on stderr.
fn print_guest_log(payload: &[u8]) {
    let Ok(serde_json::Value::Object(mut event)) = serde_json::from_slice(payload) else {
        eprintln!("INFO policy: {}", String::from_utf8_lossy(payload));
        return;
    };
    let level = match event.remove("level").as_ref().and_then(|l| l.as_str()) {
        Some("debug") => "DEBUG",
        Some("warning") => "WARN",
        Some("error") => "ERROR",
        _ => "INFO",
    };
    let message = match event.remove("message") {
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    for location in ["file", "line", "column"] {
        event.remove(location);
    }
    let fields: Vec<String> = event
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    eprintln!("{level} policy: {message} {}", fields.join(" "));
}

/// The waPC host callback serving `environment`.
pub fn wapc_callback(environment: Arc<HostEnvironment>) -> Box<wapc::HostCallback> {
    Box::new(move |_id, binding, namespace, operation, payload| {
        environment
            .handle_host_call(binding, namespace, operation, payload)
            .map_err(Into::into)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA_PAYLOAD: &[u8] = br#"{"api_version":"v1","kind":"ServiceAccount","name":"default","namespace":"apps","disable_cache":false,"field_masks":["metadata.annotations","metadata.ownerReferences"]}"#;
    const NS_PAYLOAD: &[u8] = br#"{"api_version":"v1","kind":"Namespace","name":"apps","namespace":null,"disable_cache":false,"field_masks":["metadata.annotations","metadata.ownerReferences"]}"#;

    fn granted() -> KubernetesAccess {
        KubernetesAccess::Granted(vec![
            ContextAwareResource {
                api_version: "v1".into(),
                kind: "ServiceAccount".into(),
            },
            ContextAwareResource {
                api_version: "v1".into(),
                kind: "Namespace".into(),
            },
        ])
    }

    fn sample_session() -> Session {
        Session::from_yaml_str(include_str!("../tests/fixtures/session.yml")).unwrap()
    }

    fn get(environment: &HostEnvironment, payload: &[u8]) -> Result<Vec<u8>, String> {
        environment.handle_host_call("kubewarden", "kubernetes", "get_resource", payload)
    }

    #[test]
    fn denies_lookups_without_allow_context_aware() {
        let environment = HostEnvironment::new(KubernetesAccess::Denied, Some(sample_session()));
        assert_eq!(
            get(&environment, SA_PAYLOAD).unwrap_err(),
            "Policy has not been granted access to Kubernetes v1/ServiceAccount resources. The violation has been reported."
        );
        let report = environment.finish_evaluation();
        assert_eq!(report.lookups, 1);
        // A denied lookup does not consume the session.
        assert_eq!(report.unused_exchanges.len(), 2);
    }

    #[test]
    fn denies_resources_not_listed() {
        let only_namespaces = KubernetesAccess::Granted(vec![ContextAwareResource {
            api_version: "v1".into(),
            kind: "Namespace".into(),
        }]);
        let environment = HostEnvironment::new(only_namespaces, Some(sample_session()));
        assert!(get(&environment, SA_PAYLOAD)
            .unwrap_err()
            .starts_with("Policy has not been granted access to Kubernetes v1/ServiceAccount"));
    }

    #[test]
    fn replays_the_session_and_wraps_errors_like_the_callback_channel() {
        let environment = HostEnvironment::new(granted(), Some(sample_session()));
        let service_account = get(&environment, SA_PAYLOAD).unwrap();
        assert!(String::from_utf8(service_account)
            .unwrap()
            .contains(r#""annotations":{"x":"y"}"#));
        assert_eq!(
            get(&environment, NS_PAYLOAD).unwrap_err(),
            "Callback evaluation failure: Cannot find v1/Namespace named 'apps' inside of namespace 'None'"
        );
        assert_eq!(
            get(&environment, NS_PAYLOAD).unwrap_err(),
            "Callback evaluation failure: Replay error: the list of recorded responses is empty"
        );
        assert_eq!(
            environment.finish_evaluation(),
            HostReport {
                lookups: 3,
                unused_exchanges: vec![]
            }
        );
    }

    #[test]
    fn each_evaluation_replays_the_session_afresh() {
        let environment = HostEnvironment::new(granted(), Some(sample_session()));
        for _ in 0..3 {
            environment.begin_evaluation();
            assert!(get(&environment, SA_PAYLOAD).is_ok());
            let report = environment.finish_evaluation();
            assert_eq!(report.lookups, 1);
            assert_eq!(report.unused_exchanges.len(), 1);
        }
    }

    #[test]
    fn granted_lookups_without_a_session_cannot_reach_a_cluster() {
        let environment = HostEnvironment::new(granted(), None);
        assert_eq!(
            get(&environment, SA_PAYLOAD).unwrap_err(),
            format!("Callback evaluation failure: {NO_CLUSTER_MESSAGE}")
        );
    }

    #[test]
    fn other_capabilities_are_not_supported() {
        let environment = HostEnvironment::new(granted(), Some(sample_session()));
        assert_eq!(
            environment
                .handle_host_call("kubewarden", "kubernetes", "list_resources_by_namespace", b"{}")
                .unwrap_err(),
            "Callback evaluation failure: kwrun: host capability kubernetes/list_resources_by_namespace is not supported"
        );
        assert_eq!(
            environment
                .handle_host_call("kubewarden", "oci", "v1/manifest_digest", b"{}")
                .unwrap_err(),
            "Callback evaluation failure: kwrun: host capability oci/v1/manifest_digest is not supported"
        );
        assert!(environment
            .handle_host_call(
                "kubewarden",
                "tracing",
                "log",
                br#"{"level":"info","message":"hi"}"#
            )
            .unwrap()
            .is_empty());
    }

    #[test]
    fn host_capabilities_gate_every_call_but_logging() {
        let least_privilege = HostCapabilities::Only(vec!["kubernetes/get_resource".to_string()]);
        let environment = HostEnvironment::new(granted(), Some(sample_session()))
            .with_capabilities(least_privilege);
        assert!(get(&environment, SA_PAYLOAD).is_ok());
        assert_eq!(
            environment
                .handle_host_call("kubewarden", "kubernetes", "list_resources_all", b"{}")
                .unwrap_err(),
            "Policy has not been granted access to the 'kubernetes/list_resources_all' host capability. The violation has been reported."
        );
        assert!(environment
            .handle_host_call("kubewarden", "net", "v1/dns_lookup_host", b"\"x\"")
            .unwrap_err()
            .contains("'net/v1/dns_lookup_host' host capability"));
        assert!(environment
            .handle_host_call("kubewarden", "tracing", "log", b"{}")
            .is_ok());
        assert_eq!(environment.finish_evaluation().lookups, 2);

        let wildcard = HostCapabilities::Only(vec!["kubernetes/*".to_string()]);
        assert!(wildcard.allows("kubernetes/get_resource"));
        assert!(!wildcard.allows("oci/v1/verify"));
        assert!(!HostCapabilities::Only(vec![]).allows("x/y"));
        assert!(HostCapabilities::from_metadata(None).allows("oci/v1/verify"));
    }

    #[test]
    fn malformed_lookup_requests_are_errors() {
        let environment = HostEnvironment::new(granted(), Some(sample_session()));
        assert!(get(&environment, b"{\"kind\":\"Pod\"}")
            .unwrap_err()
            .contains("cannot parse the get_resource request"));
    }
}
