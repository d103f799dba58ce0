//! `segsynth bench`: the file job against a GStreamer-only transcode of the same clip,
//! measured in the same run (the machine is shared and noisy, so only ratios mean much).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use segsynth::io::encode::{EncoderSettings, reference_transcode};
use segsynth::io::file_job::FileJob;
use segsynth::job::Stages;

use crate::cli::BenchArgs;

struct Usage {
    cpu: Duration,
    max_rss_kb: i64,
}

fn usage() -> Usage {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss,
    }
}

fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir = args
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
    std::fs::create_dir_all(&dir)?;
    let clip = match &args.clip {
        Some(c) => c.clone(),
        None => {
            let clip = dir.join(format!(
                "person-{}x{}-{}.mp4",
                args.width, args.height, args.frames
            ));
            if !clip.exists() {
                eprintln!("making the benchmark clip {} ...", clip.display());
                let photo =
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/astronaut.jpg");
                let (rgb, w, h) = segsynth::content::load_image(&photo)?;
                let spec = segsynth::io::clip::ClipSpec {
                    width: args.width,
                    height: args.height,
                    frames: args.frames,
                    fps: 30,
                    audio: true,
                    vfr: false,
                };
                segsynth::io::clip::make_clip(&clip, (&rgb, w, h), &spec)?;
            }
            clip
        }
    };
    let settings = EncoderSettings {
        preset: args.processing.preset.clone(),
        crf: args.processing.crf,
    };
    let frames = args.frames as f64;

    let reference = |tag: &str| -> anyhow::Result<f64> {
        let out = dir.join(format!("reference-{tag}.mp4"));
        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        reference_transcode(&clip, &out, &settings)?;
        Ok(frames / t.elapsed().as_secs_f64())
    };
    let ref_before = reference("a")?;

    let mut scenarios: Vec<(String, Vec<String>, f32)> = Vec::new();
    if args.processing.content.is_empty() {
        scenarios.push((
            "segment + blur background".into(),
            vec!["blur".into()],
            args.processing.synth_scale,
        ));
        if !args.no_gan {
            scenarios.push((
                "segment + GAN background (foliage)".into(),
                vec!["gan:foliage".into()],
                args.processing.synth_scale,
            ));
            scenarios.push((
                "segment + GAN background, full-res synthesis".into(),
                vec!["gan:foliage".into()],
                1.0,
            ));
        }
    } else {
        scenarios.push((
            args.processing.content.join(" "),
            args.processing.content.clone(),
            args.processing.synth_scale,
        ));
    }
    let mut rows = Vec::new();
    for (name, content, scale) in &scenarios {
        let mut p = args.processing.clone();
        p.content = content.clone();
        p.synth_scale = *scale;
        let options = crate::job_options(&p, false)?;
        let stages = Stages::prepare(options)?;
        let out = dir.join("segsynth.mp4");
        let job = FileJob {
            input: &clip,
            output: &out,
            overwrite: true,
            encoder: settings.clone(),
            interrupt: Arc::new(AtomicBool::new(false)),
            progress: false,
        };
        let before = usage();
        let t = Instant::now();
        let (summary, _) = job.run(&mut crate::Runner(stages))?;
        let wall = t.elapsed();
        let after = usage();
        let cpu = (after.cpu - before.cpu).as_secs_f64() / wall.as_secs_f64() / cores() * 100.0;
        rows.push((name.clone(), summary, wall, cpu, after.max_rss_kb));
    }
    let ref_after = reference("b")?;
    let reference_fps = (ref_before + ref_after) / 2.0;

    println!("clip: {} ({} frames)", clip.display(), args.frames);
    println!(
        "GStreamer-only transcode (decode -> x264enc {} q{} -> mp4mux, audio passed through): {:.1} fps (runs: {:.1}, {:.1})",
        settings.preset, settings.crf, reference_fps, ref_before, ref_after
    );
    for (name, summary, wall, cpu, rss) in rows {
        let fps = summary.frames_out as f64 / wall.as_secs_f64();
        println!();
        println!(
            "{name}: {fps:.1} fps, ratio to transcode {:.2}, CPU {cpu:.0}% of {} cores, peak RSS {} MiB",
            fps / reference_fps,
            cores(),
            rss / 1024
        );
        print!("{summary}");
    }
    Ok(())
}
