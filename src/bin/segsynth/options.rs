//! From what the user typed to validated options: range checks (exit 2, naming the
//! option), the preset overlay, and the library's option structs.

use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;

use std::path::Path;

use segsynth::endpoint::{Credentials, Preset, Secret};
use segsynth::imgproc::mask::{DEFAULT_MOTION_THRESHOLD, MaskParams};
use segsynth::infer::SessionOptions;
use segsynth::io::encode::{EncoderSettings, MAX_QUANTIZER, RateControl};
use segsynth::job::JobOptions;
use segsynth::pipeline::Backpressure;
use segsynth::pipeline::synth::SynthParams;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use segsynth::io::batch::Batch;

use crate::args::{ProcessArgs, Processing};

/// A value the user gave that is out of range: exit code 2, like clap's own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(Usage(message))
}

/// Checks a number the user gave: finite and within `lo..=hi`, or a usage error naming it.
pub fn check_range(option: &str, value: f64, lo: f64, hi: f64, unit: &str) -> anyhow::Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(usage(format!(
            "{option} {value} is out of range; expected {lo} to {hi}{unit}"
        )))
    }
}

/// `--fps` and `--grain` of a generated clip (`make-clip`, `bench`).
pub fn clip_motion(fps: u32, grain: f32) -> anyhow::Result<()> {
    check_range("--fps", fps as f64, 1.0, 240.0, "")?;
    check_range("--grain", grain as f64, 0.0, 64.0, " grey levels")
}

pub fn job_options(p: &Processing, live: bool) -> anyhow::Result<JobOptions> {
    check_range("--temporal", p.temporal as f64, 0.0, 0.95, " (0 = off)")?;
    let (lo, hi) = (p.edge.lo, p.edge.hi);
    check_range("--feather", p.feather as f64, 0.0, 200.0, " pixels")?;
    if !(p.synth_scale > 0.0 && p.synth_scale <= 1.0) {
        return Err(usage(format!(
            "--synth-scale {} is out of range; expected a fraction in (0, 1]",
            p.synth_scale
        )));
    }
    check_range(
        "--synth-period",
        p.synth_period as f64,
        0.01,
        3600.0,
        " seconds",
    )?;
    check_range(
        "--synth-budget-ms",
        p.synth_budget_ms as f64,
        0.0,
        60_000.0,
        " ms",
    )?;
    check_range("--threads", p.threads as f64, 1.0, 256.0, "")?;
    check_range(
        "--batch-window-ms",
        p.batch_window_ms as f64,
        0.0,
        1000.0,
        " ms",
    )?;
    check_range("--gan-threads", p.gan_threads as f64, 1.0, 256.0, "")?;
    check_range(
        "--crf",
        p.crf as f64,
        0.0,
        MAX_QUANTIZER as f64,
        " (x264enc's range)",
    )?;
    Ok(JobOptions {
        model: p.model.clone(),
        classes: p.classes.clone(),
        content: p.content.clone(),
        mask: MaskParams {
            temporal: p.temporal,
            motion_threshold: DEFAULT_MOTION_THRESHOLD,
            lo,
            hi,
            feather: p.feather,
            refine: p.refine.guided(),
            model_every: p.model_every,
        },
        synth: SynthParams {
            period: p.synth_period,
            seed: p.seed,
            scale: p.synth_scale,
            budget: Duration::from_millis(p.synth_budget_ms),
            exact: !live,
        },
        session: SessionOptions {
            threads: p.threads,
            device: p.device,
        },
        gan_threads: p.gan_threads,
        pixels: p.pixels,
        stages: if live {
            (Backpressure::DropOldest, 2)
        } else {
            (Backpressure::Block, 4)
        },
        batch: (p.batch, Duration::from_millis(p.batch_window_ms)),
    })
}

/// The files of a `process` call, its options checked.
pub fn batch(args: ProcessArgs, interrupt: Arc<AtomicBool>) -> anyhow::Result<Batch> {
    Ok(Batch {
        encoder: encoder(&args.processing)?,
        options: job_options(&args.processing, false)?,
        inputs: args.inputs,
        output: args.output,
        overwrite: args.overwrite,
        jobs: args.jobs as usize,
        interrupt,
    })
}

/// x264 settings from `--crf`/`--qp`/`--preset` (`--qp` wins: it is the explicit one).
pub fn encoder(p: &Processing) -> anyhow::Result<EncoderSettings> {
    let rate = match p.qp {
        Some(qp) => {
            check_range(
                "--qp",
                qp as f64,
                0.0,
                MAX_QUANTIZER as f64,
                " (x264enc's range)",
            )?;
            RateControl::Qp(qp)
        }
        None => RateControl::Crf(p.crf),
    };
    Ok(EncoderSettings {
        preset: p.preset.clone(),
        rate,
        ..EncoderSettings::default()
    })
}

/// Preset values apply where the command line did not set the option.
pub fn overlay_preset(p: &mut Processing, preset: &Preset, matches: Option<&ArgMatches>) {
    let given =
        |id: &str| matches.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine);
    if !given("classes")
        && let Some(c) = &preset.classes
    {
        p.classes = c.clone();
    }
    if !given("content")
        && let Some(c) = &preset.content
    {
        p.content = c.clone();
    }
    if !given("model")
        && let Some(m) = &preset.model
    {
        p.model = m.clone();
    }
    if !given("device")
        && let Some(d) = preset.device
    {
        p.device = d;
    }
    if !given("pixels")
        && let Some(x) = preset.pixels
    {
        p.pixels = x;
    }
    if !given("threads")
        && let Some(t) = preset.threads
    {
        p.threads = t;
    }
    if !given("batch")
        && let Some(b) = preset.batch
    {
        p.batch = b;
    }
    overlay_mask(p, preset, |id| !given(id));
}

/// The preset's mask keys onto `p` where `take(option id)` says so.
pub fn overlay_mask(p: &mut Processing, preset: &Preset, take: impl Fn(&str) -> bool) {
    if take("feather")
        && let Some(f) = preset.feather
    {
        p.feather = f;
    }
    if take("temporal")
        && let Some(t) = preset.temporal
    {
        p.temporal = t;
    }
    if take("edge")
        && let Some(e) = preset.edge
    {
        p.edge = e;
    }
    if take("refine")
        && let Some(r) = preset.refine
    {
        p.refine = r;
    }
    if take("model_every")
        && let Some(m) = preset.model_every
    {
        p.model_every = m;
    }
}

/// A password from, in order: the flag, the file (first line), the environment variable.
pub fn password(
    flag: Option<&str>,
    file: Option<&Path>,
    env: &str,
) -> anyhow::Result<Option<Secret>> {
    if let Some(p) = flag {
        return Ok(Some(Secret::new(p)));
    }
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read the password file {}: {e}", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        return Ok(Some(Secret::new(line)));
    }
    Ok(std::env::var(env)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new))
}

/// Both halves of a credential pair or neither: half a pair is a usage error.
pub fn pair(
    user: Option<String>,
    password: Option<Secret>,
    (user_flag, password_flag): (&str, &str),
) -> anyhow::Result<Option<Credentials>> {
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some(Credentials { user, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(usage(format!(
            "{user_flag} was given without {password_flag}; give both or neither"
        ))),
        (None, Some(_)) => Err(usage(format!(
            "{password_flag} was given without {user_flag}; give both or neither"
        ))),
    }
}
