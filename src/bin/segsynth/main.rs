//! Thin entry point: parse, dispatch, print errors with their whole chain.
//!
//! `args` is what the user typed (clap), `options` turns it into validated library
//! options, and each command has its own module.

mod args;
mod bench;
mod logging;
mod metrics;
mod options;
mod peer;
mod process;
mod progress;
mod run;
mod signals;
mod watch;
mod web;

use std::process::ExitCode;

use args::{Cli, Command};
use options::{Usage, check_range};

/// Exit codes (documented in README): 0 done, 1 error, 2 usage, 3 input incomplete
/// (output written with what decoded), 130 interrupted (output written, playable).
const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INCOMPLETE: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    signals::install();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    logging::install(&cli.log);
    let result = match cli.command {
        Command::Process(args) => process::process(args),
        Command::Run(args) => {
            few_malloc_arenas();
            let explicit = matches.subcommand_matches("run").cloned();
            run::run(args, explicit.as_ref())
        }
        Command::Web(args) => {
            few_malloc_arenas();
            web::run(args)
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

/// Servers start threads per session (stages, GStreamer, ICE); glibc gives threads
/// arenas of their own, up to 8 per core, and their freed memory stays mapped: `web`'s
/// RSS rose by about 2.5 MB per connect/disconnect cycle and kept rising over 40 cycles.
/// With four arenas it stays flat (`tests/webrtc.rs` holds it). Set before threads start.
fn few_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

fn make_clip(args: args::MakeClipArgs) -> anyhow::Result<()> {
    segsynth::io::sink::file::check_output(&args.output, args.overwrite)?;
    let side = segsynth::pipeline::MAX_FRAME_SIDE as f64;
    check_range("--width", args.width as f64, 2.0, side, " pixels")?;
    check_range("--height", args.height as f64, 2.0, side, " pixels")?;
    check_range("--frames", args.frames as f64, 1.0, 1_000_000.0, "")?;
    options::clip_motion(args.fps, args.grain)?;
    let (rgb, w, h) = segsynth::content::load_image(&args.photo)?;
    let spec = segsynth::io::clip::ClipSpec {
        width: args.width,
        height: args.height,
        frames: args.frames,
        fps: args.fps,
        audio: !args.no_audio,
        vfr: args.vfr,
        still: args.still,
        grain: args.grain,
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
