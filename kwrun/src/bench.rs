//! `kwrun bench`: time `validate` on a module compiled once.
//!
//! `fresh` instantiates the module for every evaluation, as the policy server and kwctl do;
//! `warm` reuses one instance, isolating the policy's own work. Both replay the session
//! afresh for every evaluation, so every iteration does the same lookups; an evaluation
//! that errors, looks up a different number of objects or answers differently fails the run.
//!
//! `--compare` (kwrun only) times other modules on the same request in the same process,
//! taking turns in slices of a few milliseconds, so that whatever else the machine does
//! slows all of them alike: the way to compare a policy with a floor.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::{evaluate, Evaluation, PolicyInstance};
use crate::run::{warn_unused_exchanges, EvaluationOptions, ModuleCache, PreparedEvaluation};

/// How long one module keeps the CPU before the next one's turn, when comparing.
const TURN: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    Fresh,
    Warm,
}

impl InstanceMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Warm => "warm",
        }
    }
}

/// A module timed beside the policy: by default on the same request, with its own settings
/// (else `{}`), no context-aware access and no session; or with a request and a session of
/// its own (which grants it the lookups its metadata lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competitor {
    /// The text it was given as, which names it in the report.
    pub label: String,
    pub module: String,
    pub settings_path: Option<PathBuf>,
    pub request_path: Option<PathBuf>,
    pub session_path: Option<PathBuf>,
}

impl Competitor {
    /// `MODULE`, `MODULE:SETTINGS_FILE`, or comma-separated `key=value` pairs with the keys
    /// `module` (required), `settings`, `request` and `session`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut competitor = Self {
            label: text.to_string(),
            module: String::new(),
            settings_path: None,
            request_path: None,
            session_path: None,
        };
        if text.split(',').any(|part| part.starts_with("module=")) {
            for part in text.split(',') {
                let (key, value) = part
                    .split_once('=')
                    .filter(|(_, value)| !value.is_empty())
                    .ok_or_else(|| format!("expected key=value, got {part:?} in {text:?}"))?;
                match key {
                    "module" => competitor.module = value.to_string(),
                    "settings" => competitor.settings_path = Some(PathBuf::from(value)),
                    "request" => competitor.request_path = Some(PathBuf::from(value)),
                    "session" => competitor.session_path = Some(PathBuf::from(value)),
                    _ => {
                        return Err(format!(
                            "unknown key {key:?} in {text:?} (module, settings, request, session)"
                        ))
                    }
                }
            }
        } else {
            let (module, settings) = match text.split_once(':') {
                Some((module, settings)) if !settings.is_empty() => {
                    (module, Some(PathBuf::from(settings)))
                }
                _ => (text, None),
            };
            competitor.module = module.to_string();
            competitor.settings_path = settings;
        }
        if competitor.module.is_empty() {
            return Err(format!(
                "expected MODULE, MODULE:SETTINGS_FILE or module=…,settings=…,request=…,session=…, got {text:?}"
            ));
        }
        Ok(competitor)
    }

    fn evaluation(&self, main: &EvaluationOptions) -> EvaluationOptions {
        EvaluationOptions {
            request_path: self
                .request_path
                .clone()
                .unwrap_or_else(|| main.request_path.clone()),
            settings_path: self.settings_path.clone(),
            allow_context_aware: self.session_path.is_some(),
            session_path: self.session_path.clone(),
            policy: self.module.clone(),
            ..EvaluationOptions::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub evaluation: EvaluationOptions,
    /// Modules timed beside the policy, in turns.
    pub compare: Vec<Competitor>,
    pub iterations: usize,
    pub warmup: usize,
    pub modes: Vec<InstanceMode>,
    /// Stop timing a mode once this much time went by, even before `iterations`.
    pub measurement_time: Option<Duration>,
}

/// The measurements of one module in one mode; also the shape of a `--output json` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeReport {
    /// The module as named on the command line (`MODULE:SETTINGS` for a competitor).
    pub policy: String,
    pub mode: InstanceMode,
    pub iterations: usize,
    pub warmup: usize,
    pub min_us: f64,
    pub median_us: f64,
    pub p99_us: f64,
    pub evaluations_per_second: f64,
    pub lookups_per_evaluation: usize,
}

/// One module being timed: its prepared evaluation and what was measured so far.
struct Contender {
    label: String,
    prepared: PreparedEvaluation,
    consistency: ConsistencyCheck,
}

pub fn bench(options: &BenchOptions) -> Result<Vec<ModeReport>> {
    if options.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    // Modules named more than once are compiled once.
    let mut modules = ModuleCache::default();
    let mut contenders = vec![Contender::prepare(
        options.evaluation.policy.clone(),
        &options.evaluation,
        &mut modules,
    )?];
    for competitor in &options.compare {
        contenders.push(
            Contender::prepare(
                competitor.label.clone(),
                &competitor.evaluation(&options.evaluation),
                &mut modules,
            )
            .with_context(|| format!("--compare {}", competitor.label))?,
        );
    }
    let mut reports = Vec::new();
    for &mode in &options.modes {
        reports.extend(bench_mode(&mut contenders, mode, options)?);
    }
    Ok(reports)
}

impl Contender {
    fn prepare(
        label: String,
        options: &EvaluationOptions,
        modules: &mut ModuleCache,
    ) -> Result<Self> {
        let prepared = PreparedEvaluation::prepare_with(options, modules)?;
        prepared.check_settings(&prepared.instantiate()?)?;
        Ok(Self {
            label,
            prepared,
            consistency: ConsistencyCheck::default(),
        })
    }
}

/// One contender's state while a mode is timed.
struct Timing {
    warm_instance: Option<PolicyInstance>,
    durations: Vec<Duration>,
    /// Wall time of this contender's turns so far.
    spent: Duration,
    evaluations: usize,
}

impl Timing {
    fn finished(&self, options: &BenchOptions) -> bool {
        self.durations.len() >= options.iterations
            || options
                .measurement_time
                .is_some_and(|limit| self.spent >= limit)
    }
}

fn bench_mode(
    contenders: &mut [Contender],
    mode: InstanceMode,
    options: &BenchOptions,
) -> Result<Vec<ModeReport>> {
    let mut timings = Vec::with_capacity(contenders.len());
    for contender in contenders.iter() {
        timings.push(Timing {
            warm_instance: match mode {
                InstanceMode::Warm => Some(contender.prepared.instantiate()?),
                InstanceMode::Fresh => None,
            },
            durations: Vec::with_capacity(options.iterations.min(1 << 16)),
            spent: Duration::ZERO,
            evaluations: 0,
        });
    }
    // Each evaluation: instantiation (fresh only), validate, response conversion.
    let evaluate_once = |contender: &mut Contender, timing: &mut Timing| -> Result<Duration> {
        let started = Instant::now();
        let prepared = &contender.prepared;
        let evaluation = match &timing.warm_instance {
            Some(instance) => evaluate(instance, &prepared.input),
            None => evaluate(&prepared.instantiate()?, &prepared.input),
        }
        .with_context(|| {
            format!(
                "{}: {} evaluation #{} failed",
                contender.label,
                mode.name(),
                timing.evaluations + 1
            )
        })?;
        let elapsed = started.elapsed();
        contender
            .consistency
            .check(mode, timing.evaluations, evaluation)
            .with_context(|| contender.label.clone())?;
        timing.evaluations += 1;
        Ok(elapsed)
    };
    for (contender, timing) in contenders.iter_mut().zip(&mut timings) {
        for _ in 0..options.warmup {
            evaluate_once(contender, timing)?;
        }
    }
    // Turns: each unfinished contender evaluates for about TURN, then the next one.
    loop {
        let mut any = false;
        for (contender, timing) in contenders.iter_mut().zip(&mut timings) {
            if timing.finished(options) {
                continue;
            }
            any = true;
            let turn = Instant::now();
            loop {
                let elapsed = evaluate_once(contender, timing)?;
                timing.durations.push(elapsed);
                if timing.durations.len() >= options.iterations || turn.elapsed() >= TURN {
                    break;
                }
            }
            timing.spent += turn.elapsed();
        }
        if !any {
            break;
        }
    }
    Ok(contenders
        .iter()
        .zip(&timings)
        .map(|(contender, timing)| {
            summarize(
                contender.label.clone(),
                mode,
                options.warmup,
                &timing.durations,
                contender.consistency.lookups_per_evaluation(),
            )
        })
        .collect())
}

/// Every evaluation must make the same host lookups and give the same answer; otherwise the
/// timings compare different work (e.g. a session that ran dry after the first iteration).
#[derive(Default)]
struct ConsistencyCheck {
    first: Option<Evaluation>,
}

impl ConsistencyCheck {
    fn check(&mut self, mode: InstanceMode, index: usize, evaluation: Evaluation) -> Result<()> {
        let Some(first) = &self.first else {
            warn_unused_exchanges(&evaluation.host.unused_exchanges);
            self.first = Some(evaluation);
            return Ok(());
        };
        let made = evaluation.host.lookups;
        if made != first.host.lookups {
            bail!(
                "{} evaluation #{} made {made} host lookups, the first evaluation made {}: \
                 the policy's lookups vary between evaluations",
                mode.name(),
                index + 1,
                first.host.lookups
            );
        }
        if evaluation.response != first.response {
            bail!(
                "{} evaluation #{} answered differently from the first evaluation:\n  first: {:?}\n  now:   {:?}",
                mode.name(),
                index + 1,
                first.response,
                evaluation.response
            );
        }
        Ok(())
    }

    fn lookups_per_evaluation(&self) -> usize {
        self.first.as_ref().map_or(0, |first| first.host.lookups)
    }
}

fn summarize(
    policy: String,
    mode: InstanceMode,
    warmup: usize,
    durations: &[Duration],
    lookups: usize,
) -> ModeReport {
    let mut micros: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    micros.sort_by(f64::total_cmp);
    let total_seconds: f64 = durations.iter().map(Duration::as_secs_f64).sum();
    ModeReport {
        policy,
        mode,
        iterations: durations.len(),
        warmup,
        min_us: round_tenth(micros.first().copied().unwrap_or_default()),
        median_us: round_tenth(median(&micros)),
        p99_us: round_tenth(nearest_rank(&micros, 0.99)),
        evaluations_per_second: if total_seconds > 0.0 {
            (durations.len() as f64 / total_seconds).round()
        } else {
            0.0
        },
        lookups_per_evaluation: lookups,
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The smallest value with at least `quantile` of the samples at or below it.
fn nearest_rank(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round_tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// One JSON object per line, for scripts.
pub fn render_json(reports: &[ModeReport]) -> Result<String> {
    let lines = reports
        .iter()
        .map(|report| serde_json::to_string(report).context("cannot serialize the bench report"))
        .collect::<Result<Vec<_>>>()?;
    Ok(lines.join("\n"))
}

pub fn render_text(reports: &[ModeReport]) -> String {
    // Name the module on each line only when there is more than one.
    let named = reports.iter().any(|r| r.policy != reports[0].policy);
    let mut text = format!(
        "{:<6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>13}{}",
        "mode",
        "iterations",
        "min µs",
        "median µs",
        "p99 µs",
        "evals/s",
        "lookups/eval",
        if named { "  policy" } else { "" }
    );
    for report in reports {
        text.push_str(&format!(
            "\n{:<6} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>12} {:>13}{}",
            report.mode.name(),
            report.iterations,
            report.min_us,
            report.median_us,
            report.p99_us,
            report.evaluations_per_second,
            report.lookups_per_evaluation,
            if named {
                format!("  {}", report.policy)
            } else {
                String::new()
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_samples() {
        let durations: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let report = summarize("p.wasm".into(), InstanceMode::Warm, 3, &durations, 2);
        assert_eq!(report.min_us, 1.0);
        assert_eq!(report.median_us, 50.5);
        assert_eq!(report.p99_us, 99.0);
        assert_eq!(report.iterations, 100);
        // 100 evaluations in 5050 µs.
        assert_eq!(report.evaluations_per_second, (100.0 / 0.00505_f64).round());
        assert_eq!(report.lookups_per_evaluation, 2);
    }

    #[test]
    fn competitors_name_a_module_and_optionally_settings_request_and_session() {
        let bare = Competitor::parse("floor.wasm").unwrap();
        assert_eq!(
            (
                bare.module.as_str(),
                &bare.settings_path,
                &bare.request_path
            ),
            ("floor.wasm", &None, &None)
        );
        let short = Competitor::parse("floor.wasm:answer.json").unwrap();
        assert_eq!(short.settings_path, Some(PathBuf::from("answer.json")));
        assert_eq!(short.label, "floor.wasm:answer.json");
        let long = Competitor::parse("module=p.wasm,request=r.json,session=s.yml,settings=x.json")
            .unwrap();
        assert_eq!(long.module, "p.wasm");
        assert_eq!(long.request_path, Some(PathBuf::from("r.json")));
        assert_eq!(long.session_path, Some(PathBuf::from("s.yml")));
        assert_eq!(long.settings_path, Some(PathBuf::from("x.json")));
        let main = EvaluationOptions {
            request_path: PathBuf::from("main.json"),
            ..EvaluationOptions::default()
        };
        let options = long.evaluation(&main);
        assert!(options.allow_context_aware);
        assert_eq!(options.request_path, PathBuf::from("r.json"));
        assert_eq!(
            short.evaluation(&main).request_path,
            PathBuf::from("main.json")
        );
        assert!(!short.evaluation(&main).allow_context_aware);
        for bad in [
            ":x.json",
            "",
            "module=p.wasm,color=red",
            "module=p.wasm,request",
            "settings=x.json,module=",
        ] {
            assert!(Competitor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_of_small_samples() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 9.0], 0.99), 9.0);
        assert_eq!(nearest_rank(&[4.0], 0.99), 4.0);
        assert_eq!(nearest_rank(&[], 0.99), 0.0);
    }

    #[test]
    fn json_lines_name_the_mode() {
        let report = summarize(
            "p.wasm".into(),
            InstanceMode::Fresh,
            0,
            &[Duration::from_micros(80)],
            0,
        );
        let line = render_json(&[report]).unwrap();
        assert_eq!(
            line,
            r#"{"policy":"p.wasm","mode":"fresh","iterations":1,"warmup":0,"min_us":80.0,"median_us":80.0,"p99_us":80.0,"evaluations_per_second":12500.0,"lookups_per_evaluation":0}"#
        );
    }
}
