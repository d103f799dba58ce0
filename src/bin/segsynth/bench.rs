//! `segsynth bench`: the file job against a GStreamer-only transcode of the same clip,
//! measured in the same run (the machine is shared and noisy, so only ratios mean much).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use segsynth::io::encode::reference_transcode;
use segsynth::io::file_job::FileJob;
use segsynth::job::Stages;
use segsynth::pipeline::stats::{Summary, process_memory_mib};

use crate::args::BenchArgs;
use segsynth::options::Refine;

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
    if args.motion_only {
        return motion_table(&dir, &args);
    }
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
                    still: false,
                };
                segsynth::io::clip::make_clip(&clip, (&rgb, w, h), &spec)?;
            }
            clip
        }
    };
    let settings = crate::options::encoder(&args.processing)?;
    let frames = args.frames as f64;

    let reference = |round: u32| -> anyhow::Result<f64> {
        let out = dir.join(format!("reference-{round}.mp4"));
        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        reference_transcode(&clip, &out, &settings)?;
        Ok(frames / t.elapsed().as_secs_f64())
    };

    let refine = args.processing.refine;
    let mut scenarios: Vec<(String, Vec<String>, f32, Refine)> = Vec::new();
    if args.processing.content.is_empty() {
        scenarios.push((
            "segment + blur background".into(),
            vec!["blur".into()],
            args.processing.synth_scale,
            refine,
        ));
        if refine == Refine::Guided {
            scenarios.push((
                "segment + blur, plain mask edges (--refine off)".into(),
                vec!["blur".into()],
                args.processing.synth_scale,
                Refine::Off,
            ));
        }
        if !args.no_gan {
            scenarios.push((
                "segment + GAN background (foliage)".into(),
                vec!["gan:foliage".into()],
                args.processing.synth_scale,
                refine,
            ));
            scenarios.push((
                "segment + GAN background, full-res synthesis".into(),
                vec!["gan:foliage".into()],
                1.0,
                refine,
            ));
        }
    } else {
        scenarios.push((
            args.processing.content.join(" "),
            args.processing.content.clone(),
            args.processing.synth_scale,
            refine,
        ));
    }
    // Per scenario, one result per round.
    let mut results: Vec<Vec<Round>> = (0..scenarios.len()).map(|_| Vec::new()).collect();
    let mut references = Vec::new();
    for round in 0..args.rounds {
        let reference_fps = reference(round)?;
        references.push(reference_fps);
        for ((_, content, scale, refine), runs) in scenarios.iter().zip(&mut results) {
            let mut p = args.processing.clone();
            p.content = content.clone();
            p.synth_scale = *scale;
            p.refine = *refine;
            let options = crate::options::job_options(&p, false)?;
            let mut stages = Stages::prepare(options)?;
            let out = dir.join("segsynth.mp4");
            let job = FileJob {
                input: &clip,
                output: &out,
                overwrite: true,
                encoder: settings.clone(),
                interrupt: Arc::new(AtomicBool::new(false)),
                progress: Arc::new(segsynth::pipeline::Progress::default()),
            };
            reset_peak_rss();
            let rss_before = process_memory_mib("VmRSS:");
            let before = usage();
            let t = Instant::now();
            let (summary, _) = job.run(&mut stages)?;
            let wall = t.elapsed();
            let after = usage();
            let cpu = (after.cpu - before.cpu).as_secs_f64() / wall.as_secs_f64() / cores() * 100.0;
            let fps = summary.frames_out as f64 / wall.as_secs_f64();
            let added = (process_memory_mib("VmHWM:") - rss_before).max(0.0) as u64;
            runs.push(Round {
                fps,
                ratio: fps / reference_fps,
                summary,
                cpu,
                rss_added: added,
            });
        }
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "clip: {} ({} frames), {} rounds",
        clip.display(),
        args.frames,
        args.rounds
    );
    println!(
        "GStreamer-only transcode (decode -> {} -> mp4mux, audio passed through, the job's encoder chain): median {:.1} fps (rounds: {})",
        settings.x264_launch(),
        median(&references),
        list(&references)
    );
    let peak_rss = usage().max_rss_kb / 1024;
    let mut table = Vec::new();
    for ((name, _, _, _), runs) in scenarios.iter().zip(results) {
        let fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
        let ratios: Vec<f64> = runs.iter().map(|r| r.ratio).collect();
        let cpu: Vec<f64> = runs.iter().map(|r| r.cpu).collect();
        let rss = runs.iter().map(|r| r.rss_added).max().unwrap_or(0);
        println!();
        println!(
            "{name}: median {:.1} fps, ratio to transcode {:.2} (rounds: {}), CPU {:.0}% of {} cores, peak RSS +{rss} MiB during the job",
            median(&fps),
            median(&ratios),
            ratios
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(&cpu),
            cores(),
        );
        // The per-stage table of the median round.
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|&a, &b| runs[a].ratio.total_cmp(&runs[b].ratio));
        if let Some(&mid) = order.get(order.len() / 2) {
            print!("{}", runs[mid].summary);
            table.push(Row {
                fps: median(&fps),
                ratio: median(&ratios),
                cpu: median(&cpu),
                rss,
                summary: runs[mid].summary.clone(),
            });
        }
    }
    println!();
    println!(
        "peak RSS of the whole benchmark process: {peak_rss} MiB (per scenario: its own runs)"
    );
    print_table(&references, &scenarios, &table);
    if !args.no_gan {
        motion_table(&dir, &args)?;
    }
    Ok(())
}

/// Every shipped generator on a still landscape (`--seed 7`, 150 frames at 30 fps),
/// decoded at 640x360: how the content moves, whether a second run while two threads
/// keep the CPU busy decodes identical, and the layer time inside the job.
fn motion_table(dir: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    use segsynth::io::clip::{ClipSpec, decode_luma, landscape, make_clip};
    use segsynth::pipeline::stats::Motion;
    let (w, h) = (args.width, args.height);
    let clip = dir.join(format!("still-{w}x{h}.mp4"));
    if !clip.exists() {
        let photo = landscape(w as usize, h as usize);
        let spec = ClipSpec {
            width: w,
            height: h,
            frames: 150,
            fps: 30,
            audio: false,
            vfr: false,
            still: true,
        };
        make_clip(&clip, (&photo, w as usize, h as usize), &spec)?;
    }
    println!();
    println!(
        "generated content on a still landscape ({w}x{h}, 150 frames at 30 fps, --seed 7), decoded at 640x360 (grey levels):"
    );
    println!(
        "{:<18} {:>12} {:>13} {:>15} {:>22} {:>14}",
        "generator",
        "median step",
        "largest step",
        "least over 1 s",
        "identical under load",
        "layer ms p50/p99"
    );
    let gan_dir = segsynth::job::models_dir().join("gan");
    for name in segsynth::model::list(&gan_dir) {
        let mut p = args.processing.clone();
        p.content = vec![format!("background=gan:{name}")];
        p.seed = 7;
        let quiet = dir.join("motion-quiet.mp4");
        let summary = run_job(&clip, &quiet, &p)?;
        let loaded = dir.join("motion-loaded.mp4");
        with_busy_cores(2, || run_job(&clip, &loaded, &p))?;
        let (a, b) = (
            decode_luma(&quiet, 640, 360)?,
            decode_luma(&loaded, 640, 360)?,
        );
        let m = Motion::of(&a, 30);
        println!(
            "{name:<18} {:>12.2} {:>13.2} {:>15.2} {:>22} {:>14}",
            m.median_step,
            m.max_step,
            m.min_second,
            if a == b { "yes" } else { "NO" },
            stage(&summary, "synth")
        );
    }
    Ok(())
}

/// One file job of `clip` to `out` with the options in `p`.
fn run_job(clip: &Path, out: &Path, p: &crate::args::Processing) -> anyhow::Result<Summary> {
    let mut stages = Stages::prepare(crate::options::job_options(p, false)?)?;
    let job = FileJob {
        input: clip,
        output: out,
        overwrite: true,
        encoder: crate::options::encoder(p)?,
        interrupt: Arc::new(AtomicBool::new(false)),
        progress: Arc::new(segsynth::pipeline::Progress::default()),
    };
    Ok(job.run(&mut stages)?.0)
}

/// A stage's p50/p99 ms in `s`, or `-`.
fn stage(s: &Summary, name: &str) -> String {
    s.stages
        .iter()
        .find(|t| t.name == name && !t.ms.is_empty())
        .map_or("-".to_string(), |t| {
            format!("{:.1}/{:.1}", t.percentile(50.0), t.percentile(99.0))
        })
}

/// Runs `f` while `n` threads spin.
fn with_busy_cores<T>(n: usize, f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..n)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let result = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    result
}

/// One job run of one round.
struct Round {
    fps: f64,
    /// fps over this round's transcode fps.
    ratio: f64,
    summary: Summary,
    /// CPU use in % of all cores.
    cpu: f64,
    /// Peak resident memory the run added, MiB.
    rss_added: u64,
}

/// One scenario's line of the closing table (stages from its median round).
struct Row {
    fps: f64,
    ratio: f64,
    cpu: f64,
    rss: u64,
    summary: Summary,
}

fn print_table(references: &[f64], scenarios: &[(String, Vec<String>, f32, Refine)], rows: &[Row]) {
    println!();
    println!(
        "{:<46} {:>7} {:>6} {:>5} {:>8} {:>12} {:>12} {:>12}",
        "job", "fps", "ratio", "CPU%", "+RSS MiB", "segment ms", "compose ms", "synth ms"
    );
    println!(
        "{:<46} {:>7.1} {:>6.2}",
        "GStreamer-only transcode",
        median(references),
        1.0
    );
    for ((name, _, _, _), r) in scenarios.iter().zip(rows) {
        println!(
            "{:<46} {:>7.1} {:>6.2} {:>5.0} {:>8} {:>12} {:>12} {:>12}",
            name,
            r.fps,
            r.ratio,
            r.cpu,
            r.rss,
            stage(&r.summary, "segment"),
            stage(&r.summary, "composite"),
            stage(&r.summary, "synth"),
        );
    }
    println!(
        "(medians over rounds; +RSS: peak resident memory the job added over the process before it;\n stage columns: p50/p99 of the median round)"
    );
}

/// Resets the kernel's resident-set high-water mark (Linux: `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}
