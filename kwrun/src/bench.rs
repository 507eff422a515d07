//! `kwrun bench`: time `validate` on a module compiled once.
//!
//! `fresh` instantiates the module for every evaluation, as the policy server and kwctl do;
//! `warm` reuses one instance, isolating the policy's own work. Both replay the session
//! afresh for every evaluation, so every iteration does the same lookups; an evaluation
//! that errors, looks up a different number of objects or answers differently fails the run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::engine::{evaluate, Evaluation};
use crate::run::{warn_unused_exchanges, EvaluationOptions, PreparedEvaluation};

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

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub evaluation: EvaluationOptions,
    pub iterations: usize,
    pub warmup: usize,
    pub modes: Vec<InstanceMode>,
    /// Stop timing a mode once this much time went by, even before `iterations`.
    pub measurement_time: Option<Duration>,
}

/// The measurements of one mode; also the shape of a `--output json` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeReport {
    pub mode: InstanceMode,
    pub iterations: usize,
    pub warmup: usize,
    pub min_us: f64,
    pub median_us: f64,
    pub p99_us: f64,
    pub evaluations_per_second: f64,
    pub lookups_per_evaluation: usize,
}

pub fn bench(options: &BenchOptions) -> Result<Vec<ModeReport>> {
    if options.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let prepared = PreparedEvaluation::prepare(&options.evaluation)?;
    prepared.check_settings(&prepared.instantiate()?)?;
    let mut consistency = ConsistencyCheck::default();
    options
        .modes
        .iter()
        .map(|&mode| bench_mode(&prepared, mode, options, &mut consistency))
        .collect()
}

fn bench_mode(
    prepared: &PreparedEvaluation,
    mode: InstanceMode,
    options: &BenchOptions,
    consistency: &mut ConsistencyCheck,
) -> Result<ModeReport> {
    let warm_instance = match mode {
        InstanceMode::Warm => Some(prepared.instantiate()?),
        InstanceMode::Fresh => None,
    };
    // Each timed evaluation: instantiation (fresh only), validate, response conversion.
    let evaluate_once = || -> Result<(Duration, Evaluation)> {
        let started = Instant::now();
        let evaluation = match &warm_instance {
            Some(instance) => evaluate(instance, &prepared.input)?,
            None => evaluate(&prepared.instantiate()?, &prepared.input)?,
        };
        Ok((started.elapsed(), evaluation))
    };
    let mut durations = Vec::with_capacity(options.iterations);
    let mut timing_started = None;
    for index in 0..options.warmup + options.iterations {
        if index == options.warmup {
            timing_started = Some(Instant::now());
        }
        let (elapsed, evaluation) = evaluate_once()
            .with_context(|| format!("{} evaluation #{} failed", mode.name(), index + 1))?;
        if index >= options.warmup {
            durations.push(elapsed);
        }
        consistency.check(mode, index, evaluation)?;
        let out_of_time = timing_started
            .zip(options.measurement_time)
            .is_some_and(|(started, limit)| started.elapsed() >= limit);
        if out_of_time {
            break;
        }
    }
    Ok(summarize(
        mode,
        options.warmup,
        &durations,
        consistency.lookups_per_evaluation(),
    ))
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
    mode: InstanceMode,
    warmup: usize,
    durations: &[Duration],
    lookups: usize,
) -> ModeReport {
    let mut micros: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    micros.sort_by(f64::total_cmp);
    let total_seconds: f64 = durations.iter().map(Duration::as_secs_f64).sum();
    ModeReport {
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
    let mut text = format!(
        "{:<6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>13}",
        "mode", "iterations", "min µs", "median µs", "p99 µs", "evals/s", "lookups/eval"
    );
    for report in reports {
        text.push_str(&format!(
            "\n{:<6} {:>10} {:>10.1} {:>10.1} {:>10.1} {:>12} {:>13}",
            report.mode.name(),
            report.iterations,
            report.min_us,
            report.median_us,
            report.p99_us,
            report.evaluations_per_second,
            report.lookups_per_evaluation
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
        let report = summarize(InstanceMode::Warm, 3, &durations, 2);
        assert_eq!(report.min_us, 1.0);
        assert_eq!(report.median_us, 50.5);
        assert_eq!(report.p99_us, 99.0);
        assert_eq!(report.iterations, 100);
        // 100 evaluations in 5050 µs.
        assert_eq!(report.evaluations_per_second, (100.0 / 0.00505_f64).round());
        assert_eq!(report.lookups_per_evaluation, 2);
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
        let report = summarize(InstanceMode::Fresh, 0, &[Duration::from_micros(80)], 0);
        let line = render_json(&[report]).unwrap();
        assert_eq!(
            line,
            r#"{"mode":"fresh","iterations":1,"warmup":0,"min_us":80.0,"median_us":80.0,"p99_us":80.0,"evaluations_per_second":12500.0,"lookups_per_evaluation":0}"#
        );
    }
}
