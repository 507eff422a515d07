//! Compiling a policy module once and running its waPC exports.
//!
//! `evaluate` is the one per-evaluation code path: `run` calls it once, `bench` calls it in
//! a loop, on a fresh instance each time or on one warm instance.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use wapc::WapcHost;
use wasmtime_provider::{wasmtime, WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

use crate::admission::{
    admission_response, validate_payload, AdmissionRequest, AdmissionResponse, PolicySettings,
    SettingsValidationResponse, ValidationResponse,
};
use crate::host::{wapc_callback, HostEnvironment, HostReport};

/// A module compiled by wasmtime, ready to be instantiated many times (clones share it).
#[derive(Clone)]
pub struct CompiledPolicy {
    pre: WasmtimeEngineProviderPre,
}

impl CompiledPolicy {
    /// Compiles with wasmtime's default engine; `KWRUN_PROFILER=perfmap` adds a perf map.
    pub fn compile(wasm: &[u8]) -> Result<Self> {
        let perf_map = std::env::var_os("KWRUN_PROFILER").is_some_and(|v| v == "perfmap");
        Self::compile_with(wasm, perf_map)
    }

    /// `perf_map`: write /tmp/perf-PID.map, so that `perf report` names the guest's
    /// functions (README, Performance). The engine is otherwise wasmtime's default, the one
    /// the builder makes without it.
    pub fn compile_with(wasm: &[u8], perf_map: bool) -> Result<Self> {
        let mut builder = WasmtimeEngineProviderBuilder::new().module_bytes(wasm);
        if perf_map {
            let mut config = wasmtime::Config::default();
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
            let engine = wasmtime::Engine::new(&config)
                .map_err(|e| anyhow::anyhow!("cannot create a profiling engine: {e}"))?;
            builder = builder.engine(engine);
        }
        let pre = builder
            .build_pre()
            .context("cannot compile the policy module")?;
        Ok(Self { pre })
    }

    /// A new instance whose host calls `host` serves; runs the guest's waPC start functions.
    pub fn instantiate(&self, host: Arc<HostEnvironment>) -> Result<PolicyInstance> {
        let provider = self
            .pre
            .rehydrate(None)
            .context("cannot create a wasmtime store for the policy")?;
        let wapc = WapcHost::new(Box::new(provider), Some(wapc_callback(host.clone())))
            .context("cannot instantiate the policy module")?;
        Ok(PolicyInstance { wapc, host })
    }
}

/// One instance of the policy, with the host environment serving its calls.
pub struct PolicyInstance {
    wapc: WapcHost,
    host: Arc<HostEnvironment>,
}

impl PolicyInstance {
    /// Calls a guest export through waPC.
    pub fn call(&self, operation: &str, payload: &[u8]) -> Result<Vec<u8>> {
        self.wapc
            .call(operation, payload)
            .with_context(|| format!("the policy's `{operation}` failed"))
    }

    pub fn validate_settings(&self, settings: &Value) -> Result<SettingsValidationResponse> {
        let payload = serde_json::to_vec(settings).context("cannot serialize the settings")?;
        let answer = self.call("validate_settings", &payload)?;
        serde_json::from_slice(&answer).with_context(|| {
            format!(
                "the policy's validate_settings returned an invalid answer: {}",
                String::from_utf8_lossy(&answer)
            )
        })
    }

    /// The waPC protocol version the policy speaks, e.g. `v1`.
    pub fn protocol_version(&self) -> Result<String> {
        let answer = self.call("protocol_version", &[])?;
        match serde_json::from_slice(&answer) {
            Ok(Value::String(version)) => Ok(version),
            _ => bail!(
                "the policy's protocol_version returned {:?}, expected a JSON string such as \"v1\"",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
}

/// Everything one evaluation needs besides the instance.
#[derive(Debug, Clone)]
pub struct EvaluationInput {
    pub request: AdmissionRequest,
    pub settings: PolicySettings,
    /// Whether a mutation may pass (`mutating` of the policy); otherwise it is a rejection.
    pub allowed_to_mutate: bool,
    /// Names the policy in host-made rejection messages.
    pub policy_id: String,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub response: AdmissionResponse,
    pub host: HostReport,
}

/// Runs `validate` once on `instance` and converts its answer to an AdmissionResponse.
/// The instance's session is replayed afresh.
pub fn evaluate(instance: &PolicyInstance, input: &EvaluationInput) -> Result<Evaluation> {
    let (validation, host) = validate(instance, input)?;
    let response = admission_response(
        &input.request,
        validation,
        input.allowed_to_mutate,
        &input.policy_id,
    )?;
    Ok(Evaluation { response, host })
}

/// Runs `validate` once on `instance` and returns the policy's own answer, before the host
/// turns it into an AdmissionResponse. The instance's session is replayed afresh.
pub fn validate(
    instance: &PolicyInstance,
    input: &EvaluationInput,
) -> Result<(ValidationResponse, HostReport)> {
    let payload = validate_payload(&input.request, &input.settings)?;
    instance.host.begin_evaluation();
    let answer = instance.call("validate", &payload);
    let host = instance.host.finish_evaluation();
    Ok((ValidationResponse::from_guest(&answer?)?, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_perf_map_names_the_guest_functions() {
        // wasmtime reads the text format too (its `wat` feature).
        let module =
            r#"(module (func $kwrun_perf_map_probe (export "probe") (result i32) i32.const 7))"#;
        CompiledPolicy::compile_with(module.as_bytes(), true).unwrap();
        let map = std::fs::read_to_string(format!("/tmp/perf-{}.map", std::process::id()))
            .expect("wasmtime wrote no perf map");
        assert!(map.contains("kwrun_perf_map_probe"), "{map}");
    }
}
