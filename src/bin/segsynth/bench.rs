//! `segsynth bench`: the file job against a GStreamer-only transcode of the same clip,
//! measured in the same run (the machine is shared and noisy, so only ratios mean much).

use segsynth::content::{ContentKind, ContentSpec, DEFAULT_BLUR_RADIUS};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use segsynth::io::encode::reference_transcode;
use segsynth::io::file_job::FileJob;
use segsynth::job::Stages;
use segsynth::pipeline::stats::{Summary, process_memory_mib};

use crate::args::BenchArgs;
use crate::peer::Peer;
use segsynth::options::{ModelEvery, Refine};

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
    let peer = args.peer.as_deref().map(Peer::check).transpose()?;
    let clip = bench_clip(&args, &dir)?;
    let settings = crate::options::encoder(&args.processing)?;
    let scenarios = scenarios(&args);
    // Per scenario, one result per round.
    let mut results: Vec<Vec<Round>> = scenarios.iter().map(|_| Vec::new()).collect();
    let (mut references, mut peers) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let transcode = |settings: &segsynth::io::encode::EncoderSettings| -> anyhow::Result<f64> {
            let out = dir.join(format!("reference-{round}.mp4"));
            let _ = std::fs::remove_file(&out);
            let t = Instant::now();
            reference_transcode(&clip, &out, settings)?;
            Ok(args.frames as f64 / t.elapsed().as_secs_f64())
        };
        let reference_fps = transcode(&settings)?;
        references.push(reference_fps);
        if let Some(p) = &peer {
            peers.push(p.fps(&clip, &dir.join("peer.mp4"))?);
        }
        for (scenario, runs) in scenarios.iter().zip(&mut results) {
            let p = scenario.processing(&args.processing);
            runs.push(measure(
                &clip,
                &dir.join("segsynth.mp4"),
                &p,
                reference_fps,
            )?);
        }
    }
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
        list(&references, 1)
    );
    let first: Vec<f64> = results[0].iter().map(|r| r.fps).collect();
    let table: Vec<Row> = scenarios
        .iter()
        .zip(results)
        .filter_map(|(s, runs)| report(&s.name, &runs))
        .collect();
    println!();
    println!(
        "peak RSS of the whole benchmark process: {} MiB (per scenario: its own runs)",
        usage().max_rss_kb / 1024
    );
    print_table(&references, &scenarios, &table);
    if !peers.is_empty() {
        print_peer(&peers, &references, (&scenarios[0].name, &first));
    }
    if !args.no_gan {
        motion_table(&dir, &args)?;
    }
    Ok(())
}

/// The generated benchmark clip (made once), or the user's.
fn bench_clip(args: &BenchArgs, dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(c) = &args.clip {
        return Ok(c.clone());
    }
    crate::options::clip_motion(args.fps, args.grain)?;
    let grain = if args.grain > 0.0 {
        format!("-grain{}", args.grain)
    } else {
        String::new()
    };
    let clip = dir.join(format!(
        "person-{}x{}-{}-{}fps{grain}.mp4",
        args.width, args.height, args.frames, args.fps
    ));
    if !clip.exists() {
        eprintln!("making the benchmark clip {} ...", clip.display());
        let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/astronaut.jpg");
        let (rgb, w, h) = segsynth::content::load_image(&photo)?;
        let spec = segsynth::io::clip::ClipSpec {
            width: args.width,
            height: args.height,
            frames: args.frames,
            fps: args.fps,
            audio: true,
            vfr: false,
            still: false,
            grain: args.grain,
        };
        segsynth::io::clip::make_clip(&clip, (&rgb, w, h), &spec)?;
    }
    Ok(clip)
}

/// One job the benchmark times against the transcode.
struct Scenario {
    name: String,
    content: Vec<ContentSpec>,
    scale: f32,
    refine: Refine,
    model_every: ModelEvery,
}

impl Scenario {
    fn processing(&self, base: &crate::args::Processing) -> crate::args::Processing {
        let mut p = base.clone();
        p.content = self.content.clone();
        p.synth_scale = self.scale;
        p.refine = self.refine;
        p.model_every = self.model_every;
        p
    }
}

/// A content the bench runs, for the classes of `--classes`.
fn spec(kind: ContentKind) -> ContentSpec {
    ContentSpec { class: None, kind }
}

fn blur() -> ContentKind {
    ContentKind::Blur {
        radius: DEFAULT_BLUR_RADIUS,
    }
}

fn gan(name: &str) -> ContentKind {
    ContentKind::Gan { model: name.into() }
}

/// The user's content, or the default set: blur (refined and plain edges, and with the
/// model on every frame) and GAN foliage (at the synth scale and at full resolution).
fn scenarios(args: &BenchArgs) -> Vec<Scenario> {
    let p = &args.processing;
    let scenario = |name: &str, content: ContentKind, scale: f32, refine: Refine| Scenario {
        name: name.into(),
        content: vec![spec(content)],
        scale,
        refine,
        model_every: p.model_every,
    };
    if !p.content.is_empty() {
        return vec![Scenario {
            name: segsynth::content::specs_text(&p.content),
            content: p.content.clone(),
            scale: p.synth_scale,
            refine: p.refine,
            model_every: p.model_every,
        }];
    }
    let mut v = vec![scenario(
        "segment + blur background",
        blur(),
        p.synth_scale,
        p.refine,
    )];
    if p.model_every != ModelEvery::Frames(1) {
        v.push(Scenario {
            model_every: ModelEvery::Frames(1),
            ..scenario(
                "segment + blur, model on every frame (--model-every 1)",
                blur(),
                p.synth_scale,
                p.refine,
            )
        });
    }
    if p.refine == Refine::Guided {
        let name = "segment + blur, plain mask edges (--refine off)";
        v.push(scenario(name, blur(), p.synth_scale, Refine::Off));
    }
    if !args.no_gan {
        let name = "segment + GAN background (foliage)";
        v.push(scenario(name, gan("foliage"), p.synth_scale, p.refine));
        let name = "segment + GAN background, full-res synthesis";
        v.push(scenario(name, gan("foliage"), 1.0, p.refine));
    }
    v
}

/// One timed file job: fps, its ratio to this round's transcode, CPU and memory.
fn measure(
    clip: &Path,
    out: &Path,
    p: &crate::args::Processing,
    reference_fps: f64,
) -> anyhow::Result<Round> {
    let mut stages = Stages::prepare(crate::options::job_options(p, false)?)?;
    let job = FileJob {
        input: clip,
        output: out,
        overwrite: true,
        encoder: crate::options::encoder(p)?,
        interrupt: Arc::new(AtomicBool::new(false)),
        progress: Arc::new(segsynth::pipeline::Progress::default()),
    };
    reset_peak_rss();
    let rss_before = process_memory_mib("VmRSS:");
    let before = usage();
    let t = Instant::now();
    let (summary, _) = job.run(&mut stages)?;
    let wall = t.elapsed();
    let cpu = (usage().cpu - before.cpu).as_secs_f64() / wall.as_secs_f64() / cores() * 100.0;
    let fps = summary.frames_out as f64 / wall.as_secs_f64();
    Ok(Round {
        fps,
        ratio: fps / reference_fps,
        summary,
        cpu,
        rss_added: (process_memory_mib("VmHWM:") - rss_before).max(0.0) as u64,
    })
}

/// Prints a scenario's medians over its rounds and the per-stage figures of its median
/// round; returns its line of the closing table.
fn report(name: &str, runs: &[Round]) -> Option<Row> {
    let fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
    let ratios: Vec<f64> = runs.iter().map(|r| r.ratio).collect();
    let cpu: Vec<f64> = runs.iter().map(|r| r.cpu).collect();
    let rss = runs.iter().map(|r| r.rss_added).max().unwrap_or(0);
    println!();
    println!(
        "{name}: median {:.1} fps, ratio to transcode {:.2} (rounds: {}), CPU {:.0}% of {} cores, peak RSS +{rss} MiB during the job",
        median(&fps),
        median(&ratios),
        list(&ratios, 2),
        median(&cpu),
        cores(),
    );
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| runs[a].ratio.total_cmp(&runs[b].ratio));
    let mid = &runs[*order.get(order.len() / 2)?];
    print!("{}", mid.summary);
    Some(Row {
        fps: median(&fps),
        ratio: median(&ratios),
        best: ratios.iter().copied().fold(0.0, f64::max),
        cpu: median(&cpu),
        rss,
        summary: mid.summary.clone(),
    })
}

/// The peer's figures, each per round: its frame rate, its ratio to the transcode, and how
/// many times its speed the first scenario (`name`, `fps`) ran.
fn print_peer(peers: &[f64], references: &[f64], (name, fps): (&str, &[f64])) {
    let ratios: Vec<f64> = peers.iter().zip(references).map(|(p, r)| p / r).collect();
    let times: Vec<f64> = fps.iter().zip(peers).map(|(s, p)| s / p).collect();
    println!();
    println!(
        "Python peer (scripts/python_peer.py: OpenCV decode, the same model in TFLite, a quarter-size box blur, the same x264; audio dropped): median {:.1} fps, ratio to transcode {:.2} (rounds: {})",
        median(peers),
        median(&ratios),
        list(&ratios, 2)
    );
    println!(
        "{name}: {:.2}x the Python peer's speed (rounds: {})",
        median(&times),
        list(&times, 2)
    );
}

/// `a, b, c` with `digits` decimals.
fn list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
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
            grain: 0.0,
        };
        make_clip(&clip, (&photo, w as usize, h as usize), &spec)?;
    }
    println!();
    println!(
        "generated content on a still landscape ({w}x{h}, 150 frames at 30 fps, --seed 7), decoded at 640x360 (grey levels):"
    );
    println!(
        "{:<18} {:>12} {:>13} {:>15} {:>15} {:>22} {:>14}",
        "generator",
        "median step",
        "largest step",
        "least over 1 s",
        "contrast swing",
        "identical under load",
        "layer ms p50/p99"
    );
    let gan_dir = segsynth::job::models_dir().join("gan");
    for name in segsynth::model::list(&gan_dir) {
        let mut p = args.processing.clone();
        p.content = vec![ContentSpec {
            class: Some("background".into()),
            kind: gan(&name),
        }];
        p.seed = 7;
        let quiet = dir.join("motion-quiet.mp4");
        let summary = measure(&clip, &quiet, &p, 1.0)?.summary;
        let loaded = dir.join("motion-loaded.mp4");
        with_busy_cores(2, || measure(&clip, &loaded, &p, 1.0))?;
        let (a, b) = (
            decode_luma(&quiet, 640, 360)?,
            decode_luma(&loaded, 640, 360)?,
        );
        let m = Motion::of(&a, 30);
        println!(
            "{name:<18} {:>12.2} {:>13.2} {:>15.2} {:>14.1}% {:>22} {:>14}",
            m.median_step,
            m.max_step,
            m.min_second,
            m.contrast_swing,
            if a == b { "yes" } else { "NO" },
            stage(&summary, "synth")
        );
    }
    Ok(())
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
    best: f64,
    cpu: f64,
    rss: u64,
    summary: Summary,
}

fn print_table(references: &[f64], scenarios: &[Scenario], rows: &[Row]) {
    println!();
    println!(
        "{:<54} {:>7} {:>6} {:>6} {:>6} {:>5} {:>8} {:>12} {:>12} {:>12}",
        "job",
        "fps",
        "ratio",
        "best",
        "model",
        "CPU%",
        "+RSS MiB",
        "segment ms",
        "compose ms",
        "synth ms"
    );
    println!(
        "{:<54} {:>7.1} {:>6.2}",
        "GStreamer-only transcode",
        median(references),
        1.0
    );
    for (Scenario { name, .. }, r) in scenarios.iter().zip(rows) {
        println!(
            "{:<54} {:>7.1} {:>6.2} {:>6.2} {:>6} {:>5.0} {:>8} {:>12} {:>12} {:>12}",
            name,
            r.fps,
            r.ratio,
            r.best,
            model_rate(&r.summary),
            r.cpu,
            r.rss,
            stage(&r.summary, "segment"),
            stage(&r.summary, "composite"),
            stage(&r.summary, "synth"),
        );
    }
    println!(
        "(ratio: to the transcode with the job's own encoder settings in the same round, median over\n rounds; best: the best round's; model: the share of frames the segmentation model ran on\n (--model-every); +RSS: peak resident memory the job added over the process before it; stage\n columns: p50/p99 of the median round)"
    );
}

/// The share of frames the segmentation model ran on, in %.
fn model_rate(s: &Summary) -> String {
    let (runs, frames) = s.model_runs;
    if frames == 0 {
        return "-".into();
    }
    format!("{:.0}%", 100.0 * runs as f64 / frames as f64)
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
