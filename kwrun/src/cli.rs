//! Command-line interface.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::{bench, render_json, render_text, BenchOptions, Competitor, InstanceMode};
use crate::run::{run, EvaluationOptions, RunOutput};

#[derive(Parser, Debug)]
#[command(
    name = "kwrun",
    version,
    about = "Runs Kubewarden waPC policy modules the way kwctl does: run, annotate, bench"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate one AdmissionRequest and print kwctl's AdmissionResponse line on stdout
    Run(RunArgs),
    /// Write policy metadata into the module's io.kubewarden.metadata custom section
    Annotate(AnnotateArgs),
    /// Time `validate` on fresh and warm instances of a module compiled once
    Bench(BenchArgs),
    /// Send raw bytes to one waPC export and print the guest's raw answer (kwrun only:
    /// for payloads kwctl cannot send, such as a `validate` payload that is not JSON)
    Call(CallArgs),
}

#[derive(Args, Debug)]
struct CallArgs {
    /// File whose bytes are the payload, unchanged
    #[arg(long, value_name = "FILE")]
    payload_path: PathBuf,
    /// The module (or reference, or manifest) to call
    #[arg(value_name = "MODULE")]
    policy: String,
    /// The export: validate, validate_settings or protocol_version
    #[arg(value_name = "FUNCTION")]
    function: String,
}

#[derive(Args, Debug)]
struct EvaluationArgs {
    /// JSON AdmissionRequest (or an AdmissionReview holding one), with the fields kwctl
    /// requires: uid, kind, resource, operation, userInfo
    #[arg(long, short = 'r', value_name = "FILE")]
    request_path: PathBuf,
    /// Policy settings as JSON
    #[arg(long, value_name = "JSON", conflicts_with = "settings_path")]
    settings_json: Option<String>,
    /// Policy settings file (YAML or JSON)
    #[arg(long, value_name = "FILE")]
    settings_path: Option<PathBuf>,
    /// Grant the Kubernetes lookups listed in the policy's contextAwareResources
    #[arg(long)]
    allow_context_aware: bool,
    /// kwctl session file answering the policy's host calls, in order
    #[arg(long, value_name = "FILE")]
    replay_host_capabilities_interactions: Option<PathBuf>,
    /// Policy: a .wasm module, file:// or registry:// reference, or a YAML file with one
    /// ClusterAdmissionPolicy/AdmissionPolicy
    #[arg(value_name = "MODULE")]
    policy: String,
}

impl From<EvaluationArgs> for EvaluationOptions {
    fn from(args: EvaluationArgs) -> Self {
        Self {
            request_path: args.request_path,
            settings_json: args.settings_json,
            settings_path: args.settings_path,
            allow_context_aware: args.allow_context_aware,
            session_path: args.replay_host_capabilities_interactions,
            policy: args.policy,
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    evaluation: EvaluationArgs,
    /// Print the policy's ValidationResponse (what its `validate` returned, with the whole
    /// `mutated_object`) instead of the AdmissionResponse (kwrun only)
    #[arg(long)]
    validation_response: bool,
}

#[derive(Args, Debug)]
struct AnnotateArgs {
    /// policy-metadata.yml
    #[arg(long, short = 'm', value_name = "FILE")]
    metadata_path: PathBuf,
    /// Usage text (e.g. README.md), stored as io.kubewarden.policy.usage
    #[arg(long, short = 'u', value_name = "FILE")]
    usage_path: Option<PathBuf>,
    /// Where to write the annotated module
    #[arg(long, short = 'o', value_name = "FILE")]
    output_path: PathBuf,
    /// The module to annotate
    #[arg(value_name = "MODULE")]
    module: PathBuf,
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    evaluation: EvaluationArgs,
    /// Timed evaluations per mode
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Untimed evaluations per mode before timing
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Also time this module (kwrun only), taking turns with the policy so that machine load
    /// hits both alike; repeatable. MODULE[:SETTINGS_FILE] runs it on the same request with
    /// those settings (else `{}`) and no lookups; module=M,settings=F,request=F,session=F
    /// gives it its own request and session too
    #[arg(long, value_name = "MODULE[:FILE]", value_parser = Competitor::parse)]
    compare: Vec<Competitor>,
    /// Stop timing a mode after this many seconds (fractions allowed), even if fewer than
    /// --iterations evaluations were made; the report gives the number made
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    measurement_time: Option<Duration>,
    /// fresh: a new instance per evaluation (what the cluster pays); warm: one reused instance
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// text: a table; json: one JSON object per mode and line
    #[arg(long, value_enum, default_value_t = OutputArg::Text)]
    output: OutputArg,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Fresh,
    Warm,
    Both,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum OutputArg {
    Text,
    Json,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!(
            "expected a positive number of seconds, got {text:?}"
        )),
    }
}

fn execute(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Run(args) => {
            let output = if args.validation_response {
                RunOutput::ValidationResponse
            } else {
                RunOutput::AdmissionResponse
            };
            run(&args.evaluation.into(), output)
        }
        Command::Annotate(args) => {
            crate::annotate::annotate(
                &args.metadata_path,
                args.usage_path.as_deref(),
                &args.output_path,
                &args.module,
            )?;
            Ok(String::new())
        }
        Command::Call(args) => {
            let answer = crate::run::call_raw(&args.policy, &args.function, &args.payload_path)?;
            Ok(String::from_utf8_lossy(&answer).into_owned())
        }
        Command::Bench(args) => {
            let modes = match args.mode {
                ModeArg::Fresh => vec![InstanceMode::Fresh],
                ModeArg::Warm => vec![InstanceMode::Warm],
                ModeArg::Both => vec![InstanceMode::Fresh, InstanceMode::Warm],
            };
            let reports = bench(&BenchOptions {
                evaluation: args.evaluation.into(),
                compare: args.compare,
                iterations: args.iterations,
                warmup: args.warmup,
                modes,
                measurement_time: args.measurement_time,
            })?;
            match args.output {
                OutputArg::Text => Ok(render_text(&reports)),
                OutputArg::Json => render_json(&reports),
            }
        }
    }
}

/// Parses the arguments, runs the command, prints its output; errors go to stderr as
/// `Error: …` with exit code 1, like kwctl.
pub fn main() -> ExitCode {
    match execute(Cli::parse()) {
        Ok(output) => {
            if !output.is_empty() {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
