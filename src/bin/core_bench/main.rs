//! Inference-core benchmark: segmentation, synthesis and compositing on synthetic
//! frames, with no GStreamer, so it also runs on a GPU box that has none.
//!
//! ```text
//! segsynth-core-bench [--device cpu|cuda|tensorrt|auto] [--frames N] [--sizes 640x360,1280x720,1920x1080]
//!                     [--streams 1,2,4] [--pixels native,graph] [--refine guided,off]
//!                     [--gan foliage|none] [--threads N] [--quality on|off] [--batch off,on]
//! ```
//! Each row is one run: `streams` streams (each on its own thread) work at once, with
//! sessions of their own (`--batch off`) or sharing one session whose batcher runs their
//! frames together, up to all of them in one call, waiting at most 4 ms (`--batch on`;
//! native pixel steps only: the graph chain runs each stream's model on its own). Prints per-step p50, frame p99, frames per second per stream and in total,
//! and the memory the run added (resident set, whole run and per stream).
//! `--pixels graph` runs the per-pixel steps as ONNX graphs (on the chosen device);
//! `native` runs them in Rust on the CPU. `--refine` picks the mask upsampling (the
//! guided filter and edge unmixing, or plain). Then the mask quality figures
//! (`quality.rs` beside this file: halo, interior, flicker, lag) on the astronaut scene, plain
//! against refined.

mod quality;

use std::sync::Mutex;
use std::time::Instant;

use segsynth::content::{ContentKind, Entry};
use segsynth::frame::{Frame, Matrix, Yuv420};
use segsynth::imgproc::mask::MaskParams;
use segsynth::imgproc::refine::DEFAULT_GUIDED;
use segsynth::infer::{Device, Model, SessionOptions};
use segsynth::job::{load_generator, models_dir};
use segsynth::model::{Manifest, resolve};
use segsynth::options::{Pixels, Refine};
use segsynth::pipeline::composite::Compositor;
use segsynth::pipeline::segment::Segmenter;
use segsynth::pipeline::stats::{percentile, process_memory_mib};
use segsynth::pipeline::synth::{Generator, SynthParams};

struct Opts {
    device: Device,
    frames: usize,
    sizes: Vec<(usize, usize)>,
    streams: Vec<usize>,
    pixels: Vec<Pixels>,
    refine: Vec<bool>,
    gan: Option<String>,
    threads: usize,
    quality: bool,
    crops: Option<std::path::PathBuf>,
    batch: Vec<bool>,
}

fn list<T>(v: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.split(',').map(|s| one(s.trim())).collect()
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        device: Device::Cpu,
        frames: 60,
        sizes: vec![(1280, 720), (1920, 1080)],
        streams: vec![1],
        pixels: vec![Pixels::Native, Pixels::Graph],
        refine: vec![true, false],
        gan: Some("foliage".into()),
        threads: 1,
        quality: true,
        crops: None,
        batch: vec![false],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .cloned()
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--device" => o.device = v.parse().map_err(|e| format!("--{e}"))?,
            "--frames" => {
                o.frames = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--frames expects a positive number")?
            }
            "--threads" => o.threads = v.parse().map_err(|_| "--threads expects a number")?,
            "--gan" => o.gan = (v != "none").then_some(v),
            "--sizes" => {
                o.sizes = list(&v, |s| {
                    s.split_once('x')
                        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                        .filter(|&(w, h)| w >= 16 && h >= 16)
                        .ok_or(format!("bad size {s}, expected WxH (at least 16x16)"))
                })?
            }
            "--streams" => {
                o.streams = list(&v, |s| {
                    s.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("bad stream count {s}, expected a positive number"))
                })?
            }
            "--pixels" => {
                o.pixels = list(&v, |s| match s.parse() {
                    Ok(Pixels::Auto) => {
                        Err("--pixels auto: the bench times native or graph".into())
                    }
                    Ok(p) => Ok(p),
                    Err(e) => Err(format!("--{e}")),
                })?
            }
            "--refine" => {
                o.refine = list(&v, |s| {
                    s.parse::<Refine>()
                        .map(|r| r == Refine::Guided)
                        .map_err(|e| format!("--{e}"))
                })?
            }
            "--quality" => {
                o.quality = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--quality {v}: expected on or off")),
                }
            }
            "--crops" => o.crops = Some(v.into()),
            "--batch" => {
                o.batch = list(&v, |s| match s {
                    "on" => Ok(true),
                    "off" => Ok(false),
                    _ => Err(format!("--batch {s}: expected off, on or both (off,on)")),
                })?
            }
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

fn synthetic_frame(w: usize, h: usize, i: usize) -> Frame {
    // A bright disc ("person") moving over a gradient.
    let mut rgb = vec![0u8; w * h * 3];
    let (cx, cy, r) = (
        w as f32 * (0.4 + 0.1 * (i as f32 * 0.1).sin()),
        h as f32 * 0.55,
        h as f32 * 0.3,
    );
    for y in 0..h {
        for x in 0..w {
            let p = (y * w + x) * 3;
            let inside = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt() < r;
            let (rr, g, b) = if inside {
                (220, 170, 140)
            } else {
                ((x * 255 / w) as u8, (y * 255 / h) as u8, 90)
            };
            rgb[p] = rr;
            rgb[p + 1] = g;
            rgb[p + 2] = b;
        }
    }
    Frame {
        index: i as u64,
        pts: Some(i as u64 * 33_333_333),
        duration: Some(33_333_333),
        matrix: Matrix::Bt709,
        picture: Yuv420::from_rgb(&rgb, w, h, Matrix::Bt709),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("segsynth-core-bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// Hands freed heap pages back to the OS, so the next run's growth shows in the RSS.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Per-step samples of one stream, in ms: segment (frame -> alpha planes), composite,
/// whole frame.
type Samples = [Vec<f32>; 3];

/// One stream: the production `Segmenter` and `Compositor`, as the file and live jobs
/// run them, with the per-pixel steps native or as graphs.
struct Stream {
    segmenter: Segmenter,
    compositor: Compositor,
    provider: &'static str,
}

const BLUR: usize = 32;
/// Untimed frames per stream before the clock starts.
const WARMUP: usize = 5;

impl Stream {
    fn new(
        model: Model,
        pixels: Pixels,
        refine: bool,
        first: &Frame,
        session: &SessionOptions,
    ) -> anyhow::Result<Stream> {
        let provider = model.provider;
        let entries = vec![Entry {
            classes: vec!["background".into()],
            content: ContentKind::Blur { radius: BLUR },
        }];
        let params = MaskParams {
            refine: refine.then_some(DEFAULT_GUIDED),
            // The stage timings are per model run: the model on every frame.
            model_every: segsynth::options::ModelEvery::Frames(1),
            ..MaskParams::default()
        };
        let mut segmenter = Segmenter::new(model, &entries, &params)?;
        let mut compositor = Compositor::new(&entries, &[])?;
        compositor.unmix = refine;
        if pixels == Pixels::Graph {
            segmenter.use_graphs(session.clone(), first, false)?;
            compositor.use_graphs(session.clone(), first, false)?;
        }
        Ok(Stream {
            segmenter,
            compositor,
            provider,
        })
    }

    fn step(&mut self, frame: &mut Frame, t: &mut Samples) -> anyhow::Result<()> {
        let a = Instant::now();
        let alphas = self.segmenter.masks(frame)?;
        let b = Instant::now();
        self.compositor.composite(frame, &alphas)?;
        let c = Instant::now();
        for (i, (x, y)) in [(a, b), (b, c), (a, c)].into_iter().enumerate() {
            t[i].push(ms(x, y));
        }
        Ok(())
    }
}

fn run() -> anyhow::Result<()> {
    let o = parse().map_err(anyhow::Error::msg)?;
    let dir = models_dir();
    let session = SessionOptions {
        threads: o.threads,
        device: o.device,
    };
    println!(
        "inference core, device {:?}, {} intra-op thread(s) per session, {} frames per stream, {} CPU(s)",
        o.device,
        o.threads,
        o.frames,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<10} {:>7} {:>5} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "size",
        "streams",
        "batch",
        "pixels",
        "refine",
        "segment",
        "comp",
        "synth",
        "frm p99",
        "fps/strm",
        "fps total",
        "+MiB",
        "MiB/strm"
    );
    let manifest = Manifest::load(&resolve("selfie", &dir)?)?;
    let mut holds = Holds::default();
    for &(w, h) in &o.sizes {
        let frames: Vec<Frame> = (0..8).map(|i| synthetic_frame(w, h, i)).collect();
        for &streams in &o.streams {
            let batches = &o.batch;
            let kinds = o.pixels.iter().flat_map(|&pixels| {
                o.refine.iter().flat_map(move |&refine| {
                    // The graph chain runs each stream's model on its own: no batched rows.
                    let batches = batches
                        .iter()
                        .filter(move |&&b| !(b && pixels == Pixels::Graph));
                    batches.map(move |&batch| Kind {
                        pixels,
                        refine,
                        batch,
                    })
                })
            });
            for kind in kinds {
                let (pixels, refine, batch) = (kind.pixels, kind.refine, kind.batch);
                let (t, wall, added, provider) =
                    time_streams(&manifest, &frames, streams, kind, &session, o.frames)?;
                let synth = match &o.gan {
                    Some(g) => synth_ms(g, &dir, (w, h), &session, o.frames.min(10))?,
                    None => 0.0,
                };
                let total = (streams * o.frames) as f64 / wall;
                let key = format!(
                    "{w}x{h} batch {} {pixels} refine {}",
                    if batch { "on" } else { "off" },
                    if refine { Refine::Guided } else { Refine::Off }
                );
                holds.record(key, streams, total / streams as f64);
                let p = |v: &Vec<f32>| percentile(v, 50.0);
                println!(
                    "{:<10} {:>7} {:>5} {:>6} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>9.1} {:>8.0} {:>8.1}   [{provider}]",
                    format!("{w}x{h}"),
                    streams,
                    if batch { "on" } else { "off" },
                    pixels,
                    if refine { Refine::Guided } else { Refine::Off },
                    p(&t[0]),
                    p(&t[1]),
                    synth,
                    percentile(&t[2], 99.0),
                    total / streams as f64,
                    total,
                    added.max(0.0),
                    added.max(0.0) / streams as f64,
                );
            }
        }
    }
    holds.print();
    if o.pixels.contains(&Pixels::Native) {
        for &(w, h) in &o.sizes {
            roofline(&manifest, &session, (w, h), o.frames)?;
        }
    }
    println!(
        "p50 ms per frame, timing the production Segmenter::masks (frame -> alpha planes; graph: the IoBinding chain,\n\
         pre-processing graph -> model -> mask graph) and Compositor::composite (blur + blend; graph: the blend graph);\n\
         synth = one GAN layer (alone); +MiB = resident memory the run added; fps counts the frames after\n\
         {WARMUP} untimed ones per stream."
    );
    if o.quality {
        quality(&manifest, &session, o.crops.as_deref())?;
    }
    Ok(())
}

/// The native pixel steps against the memory floor, one stream at `size`: a plain copy
/// of the frame (every byte read and written once), the model alone, and segment +
/// composite without the model (guided refine, unmixing, blur and blend), in p50 ms.
fn roofline(
    manifest: &Manifest,
    session: &SessionOptions,
    (w, h): (usize, usize),
    frames: usize,
) -> anyhow::Result<()> {
    let pics: Vec<Frame> = (0..8).map(|i| synthetic_frame(w, h, i)).collect();
    let n = frames.max(10);
    let mut copy = pics[0].clone();
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let src = &pics[i % pics.len()].picture;
        let a = Instant::now();
        copy.picture.y.data.copy_from_slice(&src.y.data);
        copy.picture.u.data.copy_from_slice(&src.u.data);
        copy.picture.v.data.copy_from_slice(&src.v.data);
        t.push(ms(a, Instant::now()));
    }
    let copy_ms = percentile(&t, 50.0);
    let model = model_ms(manifest, session, &pics[0], n)?;
    let kind = Kind {
        pixels: Pixels::Native,
        refine: true,
        batch: false,
    };
    let (steps, ..) = time_streams(manifest, &pics, 1, kind, session, n)?;
    let pixels = percentile(&steps[0], 50.0) - model + percentile(&steps[1], 50.0);
    println!(
        "roofline {w}x{h}: a plain copy of the frame {copy_ms:.2} ms; the model alone {model:.2} ms; \
         the pixel steps (segment without the model + composite, refine guided) {pixels:.2} ms = {:.0}x the copy",
        pixels / copy_ms.max(1e-3)
    );
    Ok(())
}

/// The segmentation model alone on one frame's input, p50 ms over `n` runs.
fn model_ms(
    manifest: &Manifest,
    session: &SessionOptions,
    frame: &Frame,
    n: usize,
) -> anyhow::Result<f32> {
    let mut model = Model::open(manifest.clone(), session)?;
    let mut input = Vec::new();
    let g = manifest.input_geometry();
    segsynth::imgproc::preprocess::frame_to_tensor(&frame.picture, frame.matrix, &g, &mut input);
    let (name, shape) = (manifest.input.name.clone(), manifest.input.shape.clone());
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let a = Instant::now();
        model.run(&[(&name, &shape, &input)])?;
        t.push(ms(a, Instant::now()));
    }
    Ok(percentile(&t, 50.0))
}

/// Per kind of row, the largest stream count whose every stream held 30 fps.
#[derive(Default)]
struct Holds(Vec<(String, Option<usize>)>);

impl Holds {
    fn record(&mut self, key: String, streams: usize, fps_per_stream: f64) {
        let held = (fps_per_stream >= 30.0).then_some(streams);
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, best)) => *best = (*best).max(held),
            None => self.0.push((key, held)),
        }
    }

    fn print(&self) {
        for (key, best) in &self.0 {
            match best {
                Some(n) => println!("largest N at 30 fps per stream, {key}: {n}"),
                None => println!("largest N at 30 fps per stream, {key}: none of those run"),
            }
        }
    }
}

/// What a row runs: the per-pixel path, the refine, and whether the streams' frames are
/// batched through one shared session.
#[derive(Clone, Copy)]
struct Kind {
    pixels: Pixels,
    refine: bool,
    batch: bool,
}

/// `streams` streams, each on its own thread, through the production segmenter and
/// compositor: per-stage samples, wall seconds after the warm-up, memory added, provider.
fn time_streams(
    manifest: &Manifest,
    frames: &[Frame],
    streams: usize,
    kind: Kind,
    session: &SessionOptions,
    frames_per_stream: usize,
) -> anyhow::Result<(Samples, f64, f64, &'static str)> {
    release_free_memory();
    let before = process_memory_mib("VmRSS:");
    let mut shared = None;
    if kind.batch {
        let mut m = Model::open(manifest.clone(), session)?;
        let most = segsynth::options::Batch::Frames(streams as u32);
        if !m.batch(most, std::time::Duration::from_millis(4)) {
            anyhow::bail!(
                "--batch on: the model's batch dimension is fixed; run ./segsynth.sh setup to convert it again"
            );
        }
        shared = Some(m);
    }
    let model = || match &shared {
        Some(m) => Ok(m.share()),
        None => Model::open(manifest.clone(), session),
    };
    let mut set: Vec<Stream> = (0..streams)
        .map(|_| Stream::new(model()?, kind.pixels, kind.refine, &frames[0], session))
        .collect::<anyhow::Result<_>>()?;
    let provider = set[0].provider;
    let results: Mutex<Vec<anyhow::Result<Samples>>> = Mutex::new(Vec::new());
    // Every stream first runs WARMUP untimed frames (a CUDA session tunes its
    // kernels on its first runs, for seconds with many sessions); the clock
    // starts when all of them are through.
    let warm = std::sync::Barrier::new(streams + 1);
    let started = std::thread::scope(|scope| {
        for (s, stream) in set.iter_mut().enumerate() {
            let (frames, results, warm) = (&frames, &results, &warm);
            scope.spawn(move || {
                let mut run = |n: usize, t: &mut Samples| {
                    (0..n).try_for_each(|i| {
                        let mut frame = frames[(i + s) % frames.len()].clone();
                        stream.step(&mut frame, t)
                    })
                };
                let warmed = run(WARMUP, &mut Default::default());
                warm.wait();
                let mut t: Samples = Default::default();
                let r = warmed
                    .and_then(|_| run(frames_per_stream, &mut t))
                    .map(|_| t);
                if let Ok(mut all) = results.lock() {
                    all.push(r);
                }
            });
        }
        warm.wait();
        Instant::now()
    });
    let wall = started.elapsed().as_secs_f64();
    let added = process_memory_mib("VmRSS:") - before;
    drop(set);
    let mut t: Samples = Default::default();
    for r in results.into_inner().unwrap_or_default() {
        for (all, one) in t.iter_mut().zip(r?) {
            all.extend(one);
        }
    }
    Ok((t, wall, added, provider))
}

/// The mask quality figures, plain against refined (see `quality.rs`).
fn quality(
    manifest: &Manifest,
    session: &SessionOptions,
    crops: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let photo = models_dir().join("../tests/data/astronaut.jpg");
    if !photo.exists() {
        anyhow::bail!(
            "{} is missing: the mask quality figures need the astronaut photo (or pass --quality off)",
            photo.display()
        );
    }
    let open = || Model::open(manifest.clone(), session);
    let (w, h) = (640, 360);
    let scene = quality::photo_scene(&photo, &open, w, h)?;
    let entries = [Entry {
        classes: vec!["background".into()],
        content: ContentKind::Color {
            rgb: quality::CONTENT,
        },
    }];
    println!(
        "\nmask quality, the astronaut cut out over a light wall ({w}x{h}, known mask), background -> dark green:"
    );
    println!(
        "{:<8} {:>8} {:>9} {:>8} {:>12}",
        "refine", "halo", "interior", "flicker", "lag frames"
    );
    for (name, refine) in [("off", None), ("guided", Some(DEFAULT_GUIDED))] {
        let params = MaskParams {
            refine,
            ..MaskParams::default()
        };
        let f = quality::measure(&scene, &entries, &params, &open)?;
        println!(
            "{name:<8} {:>8.2} {:>9.2} {:>8.3} {:>12.2}",
            f.halo, f.interior, f.flicker, f.lag_frames
        );
    }
    model_rate_table(&photo, &scene, &open)?;
    if let Some(path) = crops {
        let mut outs = Vec::new();
        for refine in [None, Some(DEFAULT_GUIDED)] {
            let params = MaskParams {
                refine,
                ..MaskParams::default()
            };
            outs.push(quality::still(&scene, &entries, &params, &open)?.1.picture);
        }
        write_crops(path, &outs)?;
        println!("wrote {} (plain feather | refined)", path.display());
    }
    println!(
        "halo = mean |output - content| luma 2-10 px outside the person; interior = mean |output - input| more\n\
         than 10 px inside; flicker = mean frame-to-frame alpha change (of 255) within 10 px of the edge on a\n\
         still scene with +-6 levels of noise; lag = frames the temporal filter makes the edge trail a 4 px/frame move."
    );
    Ok(())
}

/// p50 time of one GAN layer at this frame size, run alone.
fn synth_ms(
    gan: &str,
    dir: &std::path::Path,
    (w, h): (usize, usize),
    session: &SessionOptions,
    n: usize,
) -> anyhow::Result<f32> {
    let mut g = Generator::new(
        Model::open(load_generator(gan, dir)?, session)?,
        SynthParams::default(),
    );
    // `image` generators make their layer from a frame: the bench's synthetic one.
    let frame = synthetic_frame(w, h, 0).picture;
    let mut t = Vec::new();
    for i in 0..n.max(2) {
        let a = Instant::now();
        g.layer(i as u64 * 33_333_333, w, h, Matrix::Bt709, Some(&frame))?;
        t.push(ms(a, Instant::now()));
    }
    Ok(percentile(&t, 50.0))
}

/// A 100x100 crop at the astronaut's shoulder of each picture, 3x nearest, side by side.
fn write_crops(path: &std::path::Path, pics: &[Yuv420]) -> anyhow::Result<()> {
    let (cx, cy, side, zoom) = (170usize, 150usize, 100usize, 3usize);
    let width = side * zoom * pics.len() + 4 * (pics.len() - 1);
    let mut img = image::RgbImage::new(width as u32, (side * zoom) as u32);
    for (k, pic) in pics.iter().enumerate() {
        for y in 0..side * zoom {
            for x in 0..side * zoom {
                let (sx, sy) = (cx + x / zoom, cy + y / zoom);
                let (py, pu, pv) = (
                    pic.y.data[sy * pic.y.width + sx],
                    pic.u.data[sy / 2 * pic.u.width + sx / 2],
                    pic.v.data[sy / 2 * pic.v.width + sx / 2],
                );
                let rgb =
                    segsynth::frame::yuv_to_rgb01(Matrix::Bt709, py as f32, pu as f32, pv as f32);
                let px = rgb.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8);
                img.put_pixel((k * (side * zoom + 4) + x) as u32, y as u32, image::Rgb(px));
            }
        }
    }
    img.save(path)?;
    Ok(())
}

fn ms(a: Instant, b: Instant) -> f32 {
    (b - a).as_secs_f32() * 1000.0
}

/// `--model-every auto` against the model on every frame (see `quality::rate_figures`).
fn model_rate_table(
    photo: &std::path::Path,
    scene: &quality::Scene,
    open: &dyn Fn() -> Result<Model, segsynth::infer::InferError>,
) -> anyhow::Result<()> {
    let (rgb, pw, ph) = segsynth::content::load_image(photo)?;
    let person = [Entry {
        classes: vec!["person".into()],
        content: ContentKind::Mask,
    }];
    let figures =
        quality::rate_figures((&rgb, pw, ph), scene, &person, &MaskParams::default(), open)?;
    println!(
        "\n--model-every auto against the model on every frame (person mask IoU, 90 frames each):"
    );
    println!(
        "{:<16} {:>12} {:>9} {:>9}",
        "clip", "model runs", "IoU mean", "worst"
    );
    for (name, a) in figures {
        println!(
            "{name:<16} {:>12} {:>9.4} {:>9.4}",
            format!("{}/{}", a.runs, a.frames),
            a.mean_iou,
            a.worst_iou
        );
    }
    Ok(())
}
