//! End-to-end tests of the `kwrun` binary on the `floor` and `probe` policies, built to
//! wasm32-wasip1 by the first test that needs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::Value;

const KWRUN: &str = env!("CARGO_BIN_EXE_kwrun");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kwrun lives inside the workspace")
        .to_path_buf()
}

/// The target directory of this test run: `CARGO_TARGET_DIR`, else the one holding kwrun.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(KWRUN)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

struct Guests {
    floor: PathBuf,
    probe: PathBuf,
    /// The probe annotated with probe/metadata.yml.
    annotated_probe: PathBuf,
}

/// Builds floor and probe once per test binary, and annotates the probe.
fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let target = target_dir();
        let status = Command::new(cargo)
            .args(["build", "--target", "wasm32-wasip1", "--release", "-p", "probe", "-p", "floor"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guests failed (is wasm32-wasip1 installed? `rustup target add wasm32-wasip1`)");
        let release = target.join("wasm32-wasip1/release");
        let shared = target.join("kwrun-tests");
        std::fs::create_dir_all(&shared).unwrap();
        let annotated_probe = shared.join("probe-annotated.wasm");
        let output = kwrun(&[
            "annotate",
            "-m",
            workspace_root().join("probe/metadata.yml").to_str().unwrap(),
            "-o",
            annotated_probe.to_str().unwrap(),
            release.join("probe.wasm").to_str().unwrap(),
        ]);
        assert!(output.status.success(), "annotate failed: {}", stderr(&output));
        Guests {
            floor: release.join("floor.wasm"),
            probe: release.join("probe.wasm"),
            annotated_probe,
        }
    })
}

/// A fresh, empty directory for one test.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = target_dir().join("kwrun-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn kwrun(args: &[&str]) -> Output {
    Command::new(KWRUN).args(args).output().expect("kwrun runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// kwctl's flags for a context-aware run replaying `session`.
fn replaying(session: &Path) -> [&str; 3] {
    [
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        path(session),
    ]
}

/// The value of the `probe` annotation the patch adds.
fn probe_annotation(output: &Output) -> String {
    assert!(output.status.success(), "kwrun failed: {}", stderr(output));
    let response: Value = serde_json::from_str(&stdout(output)).unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(patch[0]["path"], "/metadata/annotations/probe", "{patch}");
    patch[0]["value"].as_str().unwrap().to_string()
}

fn run_probe(extra: &[&str], module: &Path) -> Output {
    let request = fixture("request.json");
    let mut args = vec!["run", "--request-path", path(&request)];
    args.extend_from_slice(extra);
    args.push(path(module));
    kwrun(&args)
}

const SA_FOUND: &str = r#"sa=Ok(Object {"x": String("y")})"#;
const NS_NOT_FOUND: &str = r#"ns=Err("error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Cannot find v1/Namespace named 'apps' inside of namespace 'None'")"#;

#[test]
fn probe_reproduces_kwctl_byte_for_byte() {
    let session = fixture("session.yml");
    let output = run_probe(&replaying(&session), &guests().annotated_probe);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = std::fs::read_to_string(fixture("out-mutation.json")).unwrap();
    assert_eq!(stdout(&output), expected);
    assert_eq!(
        probe_annotation(&output),
        format!("{SA_FOUND} {NS_NOT_FOUND}")
    );
    assert!(!stderr(&output).contains("WARN"), "{}", stderr(&output));
}

#[test]
fn lookups_without_allow_context_aware_are_violations() {
    let session = fixture("session.yml");
    let output = run_probe(
        &["--replay-host-capabilities-interactions", path(&session)],
        &guests().annotated_probe,
    );
    assert_eq!(
        probe_annotation(&output),
        "sa=Err(\"error invoking host capability kubernetes.get_resource: Host error: Policy has not been granted access to Kubernetes v1/ServiceAccount resources. The violation has been reported.\") \
         ns=Err(\"error invoking host capability kubernetes.get_resource: Host error: Policy has not been granted access to Kubernetes v1/Namespace resources. The violation has been reported.\")"
    );
    let log = stderr(&output);
    assert!(
        log.contains("ERROR")
            && log
                .contains("Policy tried to access a Kubernetes resource it doesn't have access to"),
        "{log}"
    );
    // Nothing was replayed.
    assert!(
        log.contains("Some of the recorded exchanges have not been replayed"),
        "{log}"
    );
}

#[test]
fn an_unexpected_request_reaches_the_guest_as_a_replay_error() {
    let session = fixture("session-unexpected.yml");
    let output = run_probe(&replaying(&session), &guests().annotated_probe);
    let annotation = probe_annotation(&output);
    assert!(
        annotation.starts_with(
            r#"sa=Err("error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Replay error: unexpected request. Was expecting KubernetesGetResource { api_version: \"v1\", kind: \"ServiceAccount\", name: \"other\", namespace: Some(\"apps\"), disable_cache: false, field_masks: Some({\"metadata.annotations\", \"metadata.ownerReferences\"}) }, got KubernetesGetResource { api_version: \"v1\", kind: \"ServiceAccount\", name: \"default\","#
        ),
        "{annotation}"
    );
    // The mismatched exchange was consumed; the Namespace lookup gets the next one.
    assert!(annotation.ends_with(NS_NOT_FOUND), "{annotation}");
}

#[test]
fn leftover_exchanges_are_a_warning_only() {
    let session = fixture("session-leftover.yml");
    let output = run_probe(&replaying(&session), &guests().annotated_probe);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        probe_annotation(&output),
        format!("{SA_FOUND} {NS_NOT_FOUND}")
    );
    let log = stderr(&output);
    assert!(
        log.contains("WARN kwrun: Some of the recorded exchanges have not been replayed")
            && log.contains(r#"name: "never-asked""#),
        "{log}"
    );
}

#[test]
fn granted_lookups_without_a_session_report_no_cluster() {
    let output = run_probe(&["--allow-context-aware"], &guests().annotated_probe);
    let annotation = probe_annotation(&output);
    assert!(
        annotation.starts_with("sa=Err(\"error invoking host capability kubernetes.get_resource: Host error: Callback evaluation failure: Cannot connect to the Kubernetes cluster"),
        "{annotation}"
    );
}

/// Metadata sections of a module, with their content.
fn metadata_sections(wasm: &[u8]) -> Vec<Value> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(|payload| match payload.unwrap() {
            wasmparser::Payload::CustomSection(section)
                if section.name() == "io.kubewarden.metadata" =>
            {
                Some(serde_json::from_slice(section.data()).unwrap())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn annotate_writes_one_metadata_section() {
    let dir = scratch_dir("annotate");
    let usage = dir.join("README.md");
    std::fs::write(&usage, "# probe\n\nUsed by kwrun's tests.\n").unwrap();
    let metadata = workspace_root().join("probe/metadata.yml");
    let once = dir.join("once.wasm");
    let twice = dir.join("twice.wasm");
    for (input, output) in [(&guests().probe, &once), (&once, &twice)] {
        let result = kwrun(&[
            "annotate",
            "-m",
            path(&metadata),
            "-u",
            path(&usage),
            "-o",
            path(output),
            path(input),
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
    }
    assert!(metadata_sections(&std::fs::read(&guests().probe).unwrap()).is_empty());
    for module in [&once, &twice] {
        let sections = metadata_sections(&std::fs::read(module).unwrap());
        assert_eq!(sections.len(), 1, "{}", module.display());
        let section = &sections[0];
        assert_eq!(section["protocolVersion"], "v1");
        assert_eq!(section["mutating"], true);
        assert_eq!(section["executionMode"], "kubewarden-wapc");
        assert_eq!(section["contextAwareResources"][1]["kind"], "Namespace");
        assert_eq!(
            section["annotations"]["io.kubewarden.policy.usage"],
            "# probe\n\nUsed by kwrun's tests.\n"
        );
        assert_eq!(
            section["annotations"]["io.kubewarden.kwctl"],
            format!("kwrun {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            section["annotations"]["io.kubewarden.policy.title"],
            "probe"
        );
    }
    // The annotated module still runs.
    let output = run_probe(&[], &twice);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn declared_host_capabilities_gate_the_lookups() {
    let dir = scratch_dir("host-capabilities");
    let metadata = dir.join("metadata.yml");
    let probe_metadata =
        std::fs::read_to_string(workspace_root().join("probe/metadata.yml")).unwrap();
    std::fs::write(
        &metadata,
        format!("{probe_metadata}hostCapabilities:\n  - kubernetes/list_resources_all\n"),
    )
    .unwrap();
    let module = dir.join("probe-no-get.wasm");
    let output = kwrun(&[
        "annotate",
        "-m",
        path(&metadata),
        "-o",
        path(&module),
        path(&guests().probe),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let session = fixture("session.yml");
    let output = run_probe(&replaying(&session), &module);
    assert!(
        probe_annotation(&output).starts_with("sa=Err(\"error invoking host capability kubernetes.get_resource: Host error: Policy has not been granted access to the 'kubernetes/get_resource' host capability. The violation has been reported.\")"),
        "{}",
        probe_annotation(&output)
    );
    assert!(
        stderr(&output).contains("Policy tried to use a host capability it doesn't have access to")
    );
}

#[test]
fn annotate_rejects_invalid_metadata() {
    let dir = scratch_dir("annotate-invalid");
    let metadata = dir.join("metadata.yml");
    std::fs::write(&metadata, "mutating: true\n").unwrap();
    let output = kwrun(&[
        "annotate",
        "-m",
        path(&metadata),
        "-o",
        path(&dir.join("out.wasm")),
        path(&guests().probe),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`rules` is missing"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.join("out.wasm").exists());
}

#[test]
fn invalid_settings_fail_like_kwctl() {
    let output = run_probe(
        &["--settings-json", r#"{"reject": "settings say no"}"#],
        &guests().floor,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("Error: Provided settings are not valid: settings say no"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn settings_files_may_be_yaml() {
    let dir = scratch_dir("settings-yaml");
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, "reject: from a YAML file\n").unwrap();
    let output = run_probe(&["--settings-path", path(&settings)], &guests().floor);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("Provided settings are not valid: from a YAML file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unannotated_module_runs_as_mutating_with_a_warning() {
    let output = run_probe(&[], &guests().floor);
    assert!(output.status.success(), "{}", stderr(&output));
    // The floor hands the object back unchanged: an empty patch, "[]".
    assert_eq!(
        stdout(&output),
        "{\"uid\":\"1299d386-525b-4032-98ae-1949f69f9cfc\",\"allowed\":true,\"patchType\":\"JSONPatch\",\"patch\":\"W10=\",\"auditAnnotations\":null,\"warnings\":null}\n"
    );
    assert!(
        stderr(&output).contains("WARN kwrun:") && stderr(&output).contains("is not annotated"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_mutation_from_a_non_mutating_policy_is_rejected() {
    let dir = scratch_dir("non-mutating");
    let metadata = dir.join("metadata.yml");
    std::fs::write(&metadata, "rules: []\nmutating: false\n").unwrap();
    let module = dir.join("floor-validating.wasm");
    let output = kwrun(&[
        "annotate",
        "-m",
        path(&metadata),
        "-o",
        path(&module),
        path(&guests().floor),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run_probe(&[], &module);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "{\"uid\":\"1299d386-525b-4032-98ae-1949f69f9cfc\",\"allowed\":false,\"status\":{\"message\":\"Request rejected by policy floor-validating.wasm. The policy attempted to mutate the request, but it is currently configured to not allow mutations.\"},\"auditAnnotations\":null,\"warnings\":null}\n"
    );
}

#[test]
fn bad_request_files_are_clear_errors() {
    let dir = scratch_dir("bad-requests");
    let missing = dir.join("missing.json");
    let output = run_probe_with_request(&missing);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("Error: cannot read request file")
            && stderr(&output).contains("missing.json"),
        "{}",
        stderr(&output)
    );

    let malformed = dir.join("malformed.json");
    std::fs::write(&malformed, "{\"uid\": ").unwrap();
    let output = run_probe_with_request(&malformed);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("is not valid JSON"),
        "{}",
        stderr(&output)
    );

    let not_a_request = dir.join("pod.json");
    std::fs::write(&not_a_request, r#"{"apiVersion": "v1", "kind": "Pod"}"#).unwrap();
    let output = run_probe_with_request(&not_a_request);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "Error: cannot build AdmissionRequest object from given input: invalid type: string \"Pod\", expected struct GroupVersionKind"
        ),
        "{}",
        stderr(&output)
    );

    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("request.json")).unwrap()).unwrap();
    // Like kwctl, only an AdmissionReview is unwrapped: any other object is the request.
    let review = dir.join("review.json");
    std::fs::write(
        &review,
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
            .to_string(),
    )
    .unwrap();
    let output = run_probe_with_request(&review);
    assert!(output.status.success(), "{}", stderr(&output));
    let wrapped = dir.join("wrapped.json");
    std::fs::write(
        &wrapped,
        serde_json::json!({"request": request}).to_string(),
    )
    .unwrap();
    let output = run_probe_with_request(&wrapped);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("missing field `uid`"),
        "{}",
        stderr(&output)
    );
}

/// kwctl 1.35 reads the request into its AdmissionRequest type, whose `userInfo` (like
/// `uid`, `kind`, `resource` and `operation`) is not optional: it stops with exit status 1
/// and serde's message before evaluating anything.
#[test]
fn a_request_without_user_info_is_refused_like_kwctl() {
    let dir = scratch_dir("no-user-info");
    let mut request: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("request.json")).unwrap()).unwrap();
    request.as_object_mut().unwrap().remove("userInfo");
    let file = dir.join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    for command in ["run", "bench"] {
        let mut args = vec![command, "--request-path", path(&file)];
        if command == "bench" {
            args.extend(["--iterations", "1", "--warmup", "0"]);
        }
        args.push(path(&guests().floor));
        let output = kwrun(&args);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let log = stderr(&output);
        assert!(
            log.contains(&format!(
                "Error: cannot build AdmissionRequest object from given input: missing field `userInfo` (request file {})",
                file.display()
            )),
            "{command}: {log}"
        );
        assert!(stdout(&output).is_empty(), "{command}");
    }
    // An empty userInfo is enough: every field inside it is optional.
    request["userInfo"] = serde_json::json!({});
    std::fs::write(&file, request.to_string()).unwrap();
    let output = run_probe_with_request(&file);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn run_probe_with_request(request: &Path) -> Output {
    kwrun(&[
        "run",
        "--request-path",
        path(request),
        path(&guests().annotated_probe),
    ])
}

#[test]
fn command_line_mistakes_are_errors_and_help_works() {
    for command in ["run", "annotate", "bench"] {
        let output = kwrun(&[command, "--help"]);
        assert!(output.status.success(), "{command} --help");
        assert!(
            stdout(&output).contains("Usage: kwrun"),
            "{}",
            stdout(&output)
        );
    }
    let output = kwrun(&["run", "--no-such-flag"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("--no-such-flag"));
    let output = kwrun(&[
        "run",
        "--request-path",
        "r.json",
        path(&fixture("does-not-exist.wasm")),
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("Error: cannot read policy"),
        "{}",
        stderr(&output)
    );
}

/// A module that exports waPC's `__guest_call` and traps in it.
fn trapping_module() -> Vec<u8> {
    use wasm_encoder::*;
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I32]);
    module.section(&types);
    let mut functions = FunctionSection::new();
    functions.function(0);
    module.section(&functions);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("__guest_call", ExportKind::Func, 0);
    exports.export("memory", ExportKind::Memory, 0);
    module.section(&exports);
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.instruction(&Instruction::Unreachable);
    body.instruction(&Instruction::End);
    code.function(&body);
    module.section(&code);
    module.finish()
}

#[test]
fn a_trapping_module_is_an_error() {
    let dir = scratch_dir("trap");
    let module = dir.join("trap.wasm");
    std::fs::write(&module, trapping_module()).unwrap();
    let output = run_probe(&[], &module);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("Error: the policy's `validate_settings` failed: Guest call failure: error while executing"),
        "{log}"
    );
    assert!(stdout(&output).is_empty());
}

fn copy_into(dir: &Path, from: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

#[test]
fn a_cluster_admission_policy_runs_like_its_module() {
    let dir = scratch_dir("manifest");
    copy_into(&dir, &guests().annotated_probe, "probe.wasm");
    let manifest = copy_into(&dir, &fixture("probe-policy.yml"), "probe-policy.yml");
    let session = fixture("session.yml");
    let output = run_probe(&replaying(&session), &manifest);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        std::fs::read_to_string(fixture("out-mutation.json")).unwrap()
    );
}

#[test]
fn the_manifest_resources_replace_the_module_metadata() {
    let dir = scratch_dir("manifest-sa-only");
    copy_into(&dir, &guests().annotated_probe, "probe.wasm");
    let manifest = copy_into(&dir, &fixture("probe-policy-sa-only.yml"), "policy.yml");
    let session = fixture("session.yml");
    let output = run_probe(&replaying(&session), &manifest);
    assert_eq!(
        probe_annotation(&output),
        format!("{SA_FOUND} ns=Err(\"error invoking host capability kubernetes.get_resource: Host error: Policy has not been granted access to Kubernetes v1/Namespace resources. The violation has been reported.\")")
    );
}

#[test]
fn the_manifest_settings_are_used_unless_overridden() {
    let dir = scratch_dir("manifest-settings");
    copy_into(&dir, &guests().floor, "floor.wasm");
    let manifest = copy_into(&dir, &fixture("floor-policy.yml"), "floor-policy.yml");
    let output = run_probe(&[], &manifest);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "Error: Provided settings are not valid: rejected by the manifest's settings"
        ),
        "{}",
        stderr(&output)
    );
    let output = run_probe(&["--settings-json", "{}"], &manifest);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn registry_modules_come_from_the_kwctl_store() {
    let dir = scratch_dir("manifest-registry");
    let store = dir.join("store");
    let manifest = dir.join("policy.yml");
    std::fs::write(
        &manifest,
        "apiVersion: policies.kubewarden.io/v1\nkind: ClusterAdmissionPolicy\nmetadata: {name: probe}\nspec:\n  module: registry://registry.example.com/kubewarden/probe:v0.1.0\n  mutating: true\n  contextAwareResources:\n  - {apiVersion: v1, kind: ServiceAccount}\n  - {apiVersion: v1, kind: Namespace}\n",
    )
    .unwrap();
    let session = fixture("session.yml");
    let request = fixture("request.json");
    let args = [
        "run",
        "--request-path",
        path(&request),
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        path(&session),
        path(&manifest),
    ];
    let stored = store.join("registry/registry.example.com/kubewarden/probe:v0.1.0");

    let output = Command::new(KWRUN)
        .args(args)
        .env("KWCTL_STORE", &store)
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    let log = stderr(&output);
    assert!(
        log.contains(path(&stored)) && log.contains("kwctl pull"),
        "{log}"
    );

    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::copy(&guests().annotated_probe, &stored).unwrap();
    let output = Command::new(KWRUN)
        .args(args)
        .env("KWCTL_STORE", &store)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        std::fs::read_to_string(fixture("out-mutation.json")).unwrap()
    );
}

#[test]
fn a_manifest_without_exactly_one_policy_is_an_error() {
    let dir = scratch_dir("manifest-none");
    let manifest = dir.join("rbac.yml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n",
    )
    .unwrap();
    let output = run_probe(&[], &manifest);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("expected exactly one ClusterAdmissionPolicy or AdmissionPolicy"),
        "{}",
        stderr(&output)
    );
}

fn bench_lines(extra: &[&str], module: &Path) -> Vec<Value> {
    let request = fixture("request.json");
    let mut args = vec![
        "bench",
        "--request-path",
        path(&request),
        "--iterations",
        "20",
        "--warmup",
        "2",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    args.push(path(module));
    let output = kwrun(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn bench_reports_fresh_and_warm_on_the_floor() {
    let lines = bench_lines(&[], &guests().floor);
    assert_eq!(lines.len(), 2);
    for (line, mode) in lines.iter().zip(["fresh", "warm"]) {
        assert_eq!(line["mode"], mode);
        assert_eq!(line["iterations"], 20);
        assert_eq!(line["lookups_per_evaluation"], 0);
        let (min, median, p99) = (
            line["min_us"].as_f64().unwrap(),
            line["median_us"].as_f64().unwrap(),
            line["p99_us"].as_f64().unwrap(),
        );
        assert!(min > 0.0 && min <= median && median <= p99, "{line}");
        assert!(
            line["evaluations_per_second"].as_f64().unwrap() > 0.0,
            "{line}"
        );
    }
}

#[test]
fn bench_replays_the_session_for_every_evaluation() {
    let session = fixture("session.yml");
    // bench fails when an evaluation's answer differs from the first one, so a session
    // consumed once (the later lookups answered "empty") would fail here.
    let lines = bench_lines(&replaying(&session), &guests().annotated_probe);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["lookups_per_evaluation"], 2, "{line}");
    }
}

#[test]
fn bench_text_output_is_a_table() {
    let request = fixture("request.json");
    let output = kwrun(&[
        "bench",
        "--request-path",
        path(&request),
        "--iterations",
        "3",
        "--warmup",
        "0",
        "--mode",
        "warm",
        path(&guests().floor),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("mode") && lines[1].starts_with("warm"),
        "{text}"
    );
}

#[test]
fn call_sends_raw_bytes_and_prints_the_raw_answer() {
    let dir = scratch_dir("call");
    let payload = dir.join("payload");
    std::fs::write(&payload, b"not json at all").unwrap();
    let floor = path(&guests().floor).to_string();
    let output = kwrun(&[
        "call",
        "--payload-path",
        path(&payload),
        &floor,
        "protocol_version",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"v1\"");
    // The floor's validate cannot parse it: the guest's own error surfaces as a failure.
    let output = kwrun(&["call", "--payload-path", path(&payload), &floor, "validate"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("the policy's `validate` failed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn validation_response_prints_the_policy_answer_itself() {
    let session = fixture("session.yml");
    let mut extra = vec!["--validation-response"];
    extra.extend_from_slice(&replaying(&session));
    let output = run_probe(&extra, &guests().annotated_probe);
    assert!(output.status.success(), "{}", stderr(&output));
    let answer: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["accepted"], true);
    assert_eq!(
        answer["mutated_object"]["metadata"]["annotations"]["probe"],
        format!("{SA_FOUND} {NS_NOT_FOUND}")
    );
    assert_eq!(
        answer["mutated_object"]["spec"],
        serde_json::json!({"containers": [{"name": "app", "image": "nginx:1.27"}]})
    );
    assert!(answer.get("patch").is_none(), "{answer}");
}

/// The floor's settings choose its answer: the echo floor by default, a given object, or no
/// mutation; annotations and warnings pass through.
#[test]
fn the_floor_gives_the_answer_its_settings_hold() {
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("request.json")).unwrap()).unwrap();
    let mut pod = request["object"].clone();
    pod["metadata"]["labels"] = serde_json::json!({"given": "yes"});
    let floor_run = |settings: Value| {
        let settings = settings.to_string();
        let output = run_probe(&["--settings-json", &settings], &guests().floor);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_str::<Value>(&stdout(&output)).unwrap()
    };
    let decoded_patch = |response: &Value| -> Value {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().expect("a patch"))
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };

    let echo = floor_run(serde_json::json!({}));
    assert_eq!(decoded_patch(&echo), serde_json::json!([]));

    let given = floor_run(serde_json::json!({
        "mutatedObject": pod,
        "auditAnnotations": {"floor": "given"},
        "warnings": ["from the settings"],
    }));
    assert_eq!(
        decoded_patch(&given),
        serde_json::json!([{"op": "add", "path": "/metadata/labels", "value": {"given": "yes"}}])
    );
    assert_eq!(
        given["auditAnnotations"],
        serde_json::json!({"floor": "given"})
    );
    assert_eq!(given["warnings"], serde_json::json!(["from the settings"]));

    let unchanged = floor_run(serde_json::json!({"mutatedObject": null}));
    assert_eq!(
        unchanged,
        serde_json::json!({"uid": "1299d386-525b-4032-98ae-1949f69f9cfc", "allowed": true, "auditAnnotations": null, "warnings": null})
    );

    let denied = floor_run(
        serde_json::json!({"accepted": false, "message": "no", "code": 403, "mutatedObject": null}),
    );
    assert_eq!(denied["allowed"], false);
    assert_eq!(
        denied["status"],
        serde_json::json!({"message": "no", "code": 403})
    );

    let output = run_probe(
        &["--settings-json", r#"{"mutatedObject": 7}"#],
        &guests().floor,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("Provided settings are not valid: mutatedObject must be an object or null"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_stops_a_mode_when_its_measurement_time_is_spent() {
    let request = fixture("request.json");
    let bench = |seconds: &str| {
        kwrun(&[
            "bench",
            "--request-path",
            path(&request),
            "--iterations",
            "100000000",
            "--warmup",
            "1",
            "--measurement-time",
            seconds,
            "--output",
            "json",
            path(&guests().floor),
        ])
    };
    let output = bench("0.05");
    assert!(output.status.success(), "{}", stderr(&output));
    for line in stdout(&output).lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let made = line["iterations"].as_u64().unwrap();
        assert!((1..100_000_000).contains(&made), "{line}");
    }
    let output = bench("0");
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("expected a positive number of seconds"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_compares_modules_in_turns_in_one_run() {
    let dir = scratch_dir("bench-compare");
    let answer = dir.join("answer.json");
    std::fs::write(&answer, r#"{"mutatedObject": null}"#).unwrap();
    let session = fixture("session.yml");
    let floor = path(&guests().floor).to_string();
    let floor_with_answer = format!("{floor}:{}", path(&answer));
    let probe = path(&guests().annotated_probe).to_string();
    // The probe again, with a request and session of its own (the long form).
    let own = format!(
        "module={probe},request={},session={}",
        path(&fixture("request.json")),
        path(&session)
    );
    let mut extra = replaying(&session).to_vec();
    extra.extend([
        "--compare",
        &floor,
        "--compare",
        &floor_with_answer,
        "--compare",
        &own,
    ]);
    let lines = bench_lines(&extra, &guests().annotated_probe);
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .map(|line| {
            (
                line["mode"].as_str().unwrap().to_string(),
                line["policy"].as_str().unwrap().to_string(),
                line["lookups_per_evaluation"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, u64)> = ["fresh", "warm"]
        .iter()
        .flat_map(|mode| {
            [
                (mode.to_string(), probe.clone(), 2),
                (mode.to_string(), floor.clone(), 0),
                (mode.to_string(), floor_with_answer.clone(), 0),
                (mode.to_string(), own.clone(), 2),
            ]
        })
        .collect();
    assert_eq!(seen, expected);
    for line in &lines {
        assert_eq!(line["iterations"], 20, "{line}");
    }
    // A competitor whose settings its module rejects stops the run, naming it.
    std::fs::write(&answer, r#"{"reject": "not this answer"}"#).unwrap();
    let request = fixture("request.json");
    let output = kwrun(&[
        "bench",
        "--request-path",
        path(&request),
        "--compare",
        &floor_with_answer,
        &floor,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "Error: --compare {floor_with_answer}: Provided settings are not valid: not this answer"
        )),
        "{}",
        stderr(&output)
    );
}

/// With `lookups`, the floor makes a policy's host calls before answering (the bench's fair
/// floor): replayed from the session like the policy's, and failing the evaluation when an
/// outcome is not the announced one.
#[test]
fn the_floor_makes_the_lookups_its_settings_list() {
    let dir = scratch_dir("floor-lookups");
    let floor = dir.join("floor-annotated.wasm");
    let output = kwrun(&[
        "annotate",
        "-m",
        workspace_root()
            .join("probe/metadata.yml")
            .to_str()
            .unwrap(),
        "-o",
        path(&floor),
        path(&guests().floor),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let session = fixture("session.yml");
    let masks = serde_json::json!(["metadata.annotations", "metadata.ownerReferences"]);
    let service_account = serde_json::json!({"api_version": "v1", "kind": "ServiceAccount",
        "name": "default", "namespace": "apps", "disable_cache": false, "field_masks": masks});
    let namespace = serde_json::json!({"api_version": "v1", "kind": "Namespace", "name": "apps",
        "namespace": null, "disable_cache": false, "field_masks": masks});
    let run = |namespace_fails: bool| {
        let settings = serde_json::json!({"mutatedObject": null, "lookups": [
            {"request": service_account, "fails": false},
            {"request": namespace, "fails": namespace_fails},
        ]})
        .to_string();
        let mut args = vec!["--settings-json", &settings];
        args.extend_from_slice(&replaying(&session));
        run_probe(&args, &floor)
    };

    // The session's two exchanges, the second a recorded error: both consumed, as announced.
    let output = run(true);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("have not been replayed"),
        "{}",
        stderr(&output)
    );
    let answer: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["allowed"], true);

    let output = run(false);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("floor: lookup") && stderr(&output).contains("failed"),
        "{}",
        stderr(&output)
    );
}
