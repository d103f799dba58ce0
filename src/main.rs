//! Thin entry point: parse, dispatch, print errors with their whole chain.

mod bench;
mod cli;
mod run;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cli::{Cli, Command, Processing};
use segsynth::content::build_map;
use segsynth::imgproc::mask::MaskParams;
use segsynth::infer::SessionOptions;
use segsynth::io::file_job::{Ending, FileJob, StageRunner};
use segsynth::job::{JobOptions, Stages};
use segsynth::pipeline::Backpressure;
use segsynth::synth::SynthParams;

/// Exit codes (documented in README): 0 done, 1 error, 2 usage, 3 input incomplete
/// (output written with what decoded), 130 interrupted (output written, playable).
const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INCOMPLETE: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

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

fn main() -> ExitCode {
    // Past a size limit (ulimit -f) a write should fail with EFBIG and be reported,
    // not kill the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // A panic is a bug: one line naming it, no backtrace hint (stages turn it into an error).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current().name().unwrap_or("main").to_string();
        eprintln!("segsynth: internal error in thread {thread}: {info}");
    }));
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!("segsynth={0},{0}", cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Process(args) => process(args),
        Command::Run(args) => {
            let explicit = matches.subcommand_matches("run").cloned();
            run::run(args, explicit.as_ref())
        }
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Command::Models => list_models().map(|()| ExitCode::SUCCESS),
        Command::MakeClip(args) => make_clip(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("segsynth: error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

pub fn job_options(p: &Processing, live: bool) -> anyhow::Result<JobOptions> {
    let entries = build_map(&p.classes, &p.content)?;
    check_range("--temporal", p.temporal as f64, 0.0, 0.95, " (0 = off)")?;
    let (lo, hi) = (p.edge[0], p.edge[1]);
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
        return Err(usage(format!(
            "--edge {lo},{hi} is invalid; expected LO,HI with 0 <= LO <= HI <= 1"
        )));
    }
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
    check_range("--gan-threads", p.gan_threads as f64, 1.0, 256.0, "")?;
    check_range("--crf", p.crf as f64, 0.0, 51.0, " (x264's range)")?;
    Ok(JobOptions {
        model: p.model.clone(),
        entries,
        mask: MaskParams {
            temporal: p.temporal,
            motion_threshold: 0.35,
            lo,
            hi,
            feather: p.feather,
        },
        synth: SynthParams {
            period: p.synth_period,
            seed: p.seed,
            scale: p.synth_scale,
            budget: Duration::from_millis(p.synth_budget_ms),
            ..SynthParams::default()
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
    })
}

pub struct Runner(pub Stages);

impl StageRunner for Runner {
    fn run(
        &mut self,
        first: &segsynth::frame::Frame,
        source: &mut dyn segsynth::pipeline::FrameSource,
        sink: &mut dyn segsynth::pipeline::FrameSink,
        stop: &AtomicBool,
        progress: &Arc<segsynth::pipeline::Progress>,
    ) -> anyhow::Result<segsynth::pipeline::stats::Summary> {
        self.0.run(first, source, sink, stop, progress)
    }
}

pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

fn process(args: cli::ProcessArgs) -> anyhow::Result<ExitCode> {
    segsynth::io::file_job::check_output(&args.output, args.overwrite)
        .map_err(anyhow::Error::msg)?;
    segsynth::io::file_job::check_input(&args.input).map_err(anyhow::Error::msg)?;
    let options = job_options(&args.processing, false)?;
    let stages = Stages::prepare(options)?;
    let job = FileJob {
        input: &args.input,
        output: &args.output,
        overwrite: args.overwrite,
        encoder: segsynth::io::encode::EncoderSettings {
            preset: args.processing.preset.clone(),
            crf: args.processing.crf,
        },
        interrupt: interrupt_flag()?,
        progress: !args.quiet,
    };
    let (summary, ending) = job.run(&mut Runner(stages))?;
    eprint!("{summary}");
    Ok(match ending {
        Ending::Complete => {
            eprintln!("wrote {}", args.output.display());
            ExitCode::SUCCESS
        }
        Ending::Interrupted => {
            eprintln!(
                "interrupted: wrote {} with the {} frames processed so far",
                args.output.display(),
                summary.frames_out
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Ending::InputIncomplete(why) => {
            eprintln!(
                "warning: the input ended early ({why}); wrote {} with the {} frames that decoded",
                args.output.display(),
                summary.frames_out
            );
            ExitCode::from(EXIT_INCOMPLETE)
        }
    })
}

fn make_clip(args: cli::MakeClipArgs) -> anyhow::Result<()> {
    segsynth::io::file_job::check_output(&args.output, args.overwrite)
        .map_err(anyhow::Error::msg)?;
    let side = segsynth::pipeline::MAX_FRAME_SIDE as f64;
    check_range("--width", args.width as f64, 2.0, side, " pixels")?;
    check_range("--height", args.height as f64, 2.0, side, " pixels")?;
    check_range("--frames", args.frames as f64, 1.0, 1_000_000.0, "")?;
    check_range("--fps", args.fps as f64, 1.0, 240.0, "")?;
    let (rgb, w, h) = segsynth::content::load_image(&args.photo)?;
    let spec = segsynth::io::clip::ClipSpec {
        width: args.width,
        height: args.height,
        frames: args.frames,
        fps: args.fps,
        audio: !args.no_audio,
        vfr: args.vfr,
    };
    segsynth::io::clip::make_clip(&args.output, (&rgb, w, h), &spec)?;
    Ok(())
}

fn list_models() -> anyhow::Result<()> {
    let dir = segsynth::job::models_dir();
    for name in segsynth::model::list(&dir) {
        let path = dir.join(format!("{name}.toml"));
        match segsynth::model::Manifest::load(&path) {
            Ok(m) => {
                let what = match m.task {
                    segsynth::model::Task::Segmentation => {
                        format!("segmentation, classes {}", m.classes().join(", "))
                    }
                    segsynth::model::Task::Generator => {
                        format!("generator, use as --content gan:{}", m.name)
                    }
                };
                let licence: String = m.licence.chars().take(60).collect();
                println!("{name:<20} {what}  [{licence}]");
            }
            Err(e) => println!("{name:<24} invalid: {e}"),
        }
    }
    Ok(())
}
