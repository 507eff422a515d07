//! `kwrun run`: evaluate one request, print kwctl's AdmissionResponse line.
//! The preparation here is shared with `kwrun bench`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::admission::{AdmissionRequest, PolicySettings};
use crate::engine::{evaluate, validate, CompiledPolicy, EvaluationInput, PolicyInstance};
use crate::host::{HostCapabilities, HostEnvironment, KubernetesAccess};
use crate::log;
use crate::policy::PolicySource;
use crate::session::{Exchange, Session};

/// The inputs `run` and `bench` share (their common command-line flags).
#[derive(Debug, Clone, Default)]
pub struct EvaluationOptions {
    pub request_path: PathBuf,
    pub settings_json: Option<String>,
    pub settings_path: Option<PathBuf>,
    pub allow_context_aware: bool,
    pub session_path: Option<PathBuf>,
    /// A module, `file://`/`registry://` reference, or a policy manifest.
    pub policy: String,
}

/// A policy compiled and configured, with the request to evaluate.
pub struct PreparedEvaluation {
    pub policy: PolicySource,
    pub compiled: CompiledPolicy,
    pub host: Arc<HostEnvironment>,
    pub input: EvaluationInput,
}

/// Compiled modules by their bytes, so that one named several times is compiled once.
#[derive(Default)]
pub struct ModuleCache(HashMap<Vec<u8>, CompiledPolicy>);

impl ModuleCache {
    fn compile(&mut self, policy: &PolicySource) -> Result<CompiledPolicy> {
        if let Some(compiled) = self.0.get(&policy.wasm) {
            return Ok(compiled.clone());
        }
        let compiled = CompiledPolicy::compile(&policy.wasm)
            .with_context(|| format!("policy module {}", policy.module_path.display()))?;
        self.0.insert(policy.wasm.clone(), compiled.clone());
        Ok(compiled)
    }
}

impl PreparedEvaluation {
    /// Reads every input (failing before any compilation on bad files), then compiles.
    pub fn prepare(options: &EvaluationOptions) -> Result<Self> {
        Self::prepare_with(options, &mut ModuleCache::default())
    }

    /// `prepare`, taking an already compiled module from `modules` when it is there.
    pub fn prepare_with(options: &EvaluationOptions, modules: &mut ModuleCache) -> Result<Self> {
        let policy = PolicySource::load(&options.policy)?;
        policy.warn_if_not_annotated();
        let request = AdmissionRequest::from_file(&options.request_path)?;
        let settings = resolve_settings(options, &policy)?;
        let session = options
            .session_path
            .as_deref()
            .map(Session::from_file)
            .transpose()?;
        let access = if options.allow_context_aware {
            KubernetesAccess::Granted(policy.context_aware_resources())
        } else {
            KubernetesAccess::Denied
        };
        let compiled = modules.compile(&policy)?;
        let input = EvaluationInput {
            request,
            settings: PolicySettings::new(settings)?,
            allowed_to_mutate: policy.mutating(),
            policy_id: policy.id.clone(),
        };
        let capabilities = HostCapabilities::from_metadata(
            policy
                .metadata
                .as_ref()
                .and_then(|metadata| metadata.host_capabilities.as_deref()),
        );
        let host = HostEnvironment::new(access, session).with_capabilities(capabilities);
        Ok(Self {
            policy,
            compiled,
            host: Arc::new(host),
            input,
        })
    }

    pub fn instantiate(&self) -> Result<PolicyInstance> {
        self.compiled.instantiate(self.host.clone())
    }

    /// Fails like kwctl when the policy rejects its settings.
    pub fn check_settings(&self, instance: &PolicyInstance) -> Result<()> {
        let verdict = instance.validate_settings(self.input.settings.value())?;
        if !verdict.valid {
            bail!(
                "Provided settings are not valid: {}",
                verdict.message.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Settings by precedence: `--settings-json`, `--settings-path` (YAML or JSON), the
/// manifest's `spec.settings`, else `{}`.
fn resolve_settings(options: &EvaluationOptions, policy: &PolicySource) -> Result<Value> {
    let settings = if let Some(json) = &options.settings_json {
        serde_json::from_str(json).context("--settings-json is not valid JSON")?
    } else if let Some(path) = &options.settings_path {
        read_settings_file(path)?
    } else if let Some(settings) = policy.manifest.as_ref().and_then(|m| m.settings.clone()) {
        settings
    } else {
        Value::Null
    };
    Ok(if settings.is_null() {
        Value::Object(Default::default())
    } else {
        settings
    })
}

fn read_settings_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    // YAML is a superset of JSON: one parser reads both.
    let settings: Option<Value> = serde_yaml::from_str(&text)
        .with_context(|| format!("settings file {} is neither YAML nor JSON", path.display()))?;
    Ok(settings.unwrap_or(Value::Null))
}

/// Logs exchanges the policy never asked for (not an error, as in kwctl).
pub fn warn_unused_exchanges(unused: &[Exchange]) {
    if unused.is_empty() {
        return;
    }
    let requests: Vec<String> = unused
        .iter()
        .map(|exchange| exchange.request.to_string())
        .collect();
    log::warn(format!(
        "Some of the recorded exchanges have not been replayed: [{}]",
        requests.join(", ")
    ));
}

/// What `run` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOutput {
    /// kwctl's AdmissionResponse line.
    #[default]
    AdmissionResponse,
    /// The policy's ValidationResponse as its `validate` returned it (kwrun only): the
    /// `mutated_object` itself rather than a patch, e.g. to build a benchmark floor's answer.
    ValidationResponse,
}

/// Runs the policy once and returns the line to print.
pub fn run(options: &EvaluationOptions, output: RunOutput) -> Result<String> {
    let prepared = PreparedEvaluation::prepare(options)?;
    let instance = prepared.instantiate()?;
    prepared.check_settings(&instance)?;
    match output {
        RunOutput::AdmissionResponse => {
            let evaluation = evaluate(&instance, &prepared.input)?;
            warn_unused_exchanges(&evaluation.host.unused_exchanges);
            evaluation.response.to_json_line()
        }
        RunOutput::ValidationResponse => {
            let (validation, host) = validate(&instance, &prepared.input)?;
            warn_unused_exchanges(&host.unused_exchanges);
            serde_json::to_string(&validation).context("cannot serialize the ValidationResponse")
        }
    }
}

/// Calls one export with a file's bytes as the payload, with no cluster access: for inputs
/// kwctl cannot express. Returns the guest's answer bytes.
pub fn call_raw(policy: &str, function: &str, payload_path: &Path) -> Result<Vec<u8>> {
    let policy = PolicySource::load(policy)?;
    let payload = std::fs::read(payload_path)
        .with_context(|| format!("cannot read the payload file {}", payload_path.display()))?;
    let compiled = CompiledPolicy::compile(&policy.wasm)
        .with_context(|| format!("policy module {}", policy.module_path.display()))?;
    let host = HostEnvironment::new(KubernetesAccess::Denied, None);
    let instance = compiled.instantiate(Arc::new(host))?;
    instance.call(function, &payload)
}
