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
const EXIT_INCOMPLETE: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
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
            ExitCode::from(EXIT_ERROR)
        }
    }
}

pub fn job_options(p: &Processing, live: bool) -> anyhow::Result<JobOptions> {
    let entries = build_map(&p.classes, &p.content)?;
    if !(0.0..=0.95).contains(&p.temporal) {
        anyhow::bail!(
            "--temporal {} is out of range; expected 0 (off) to 0.95",
            p.temporal
        );
    }
    let (lo, hi) = (p.edge[0], p.edge[1]);
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
        anyhow::bail!("--edge {lo},{hi} is invalid; expected LO,HI with 0 <= LO <= HI <= 1");
    }
    if !(p.feather >= 0.0 && p.feather <= 200.0) {
        anyhow::bail!(
            "--feather {} is out of range; expected 0 to 200 pixels",
            p.feather
        );
    }
    if !(p.synth_scale > 0.0 && p.synth_scale <= 1.0) {
        anyhow::bail!(
            "--synth-scale {} is out of range; expected a fraction in (0, 1]",
            p.synth_scale
        );
    }
    if !(p.synth_period > 0.0) {
        anyhow::bail!("--synth-period must be positive seconds");
    }
    if p.threads == 0 || p.gan_threads == 0 {
        anyhow::bail!("--threads and --gan-threads must be at least 1");
    }
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
    if args.width < 2 || args.height < 2 || args.frames == 0 || args.fps == 0 {
        anyhow::bail!("make-clip needs --width/--height >= 2 and --frames/--fps >= 1");
    }
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
