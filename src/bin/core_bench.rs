//! Inference-core benchmark: segmentation, synthesis and compositing on synthetic
//! frames, with no GStreamer, so it also runs on a GPU box that has none.
//!
//! ```text
//! segsynth-core-bench [--device cpu|cuda|tensorrt|auto] [--frames N] [--sizes 640x360,1280x720,1920x1080]
//!                     [--streams 1,2,4] [--gan foliage] [--threads N]
//! ```
//! Prints a table: per-step p50/p99 ms and frames per second per stream count.

use std::sync::Arc;
use std::time::Instant;

use segsynth::content::{ContentKind, Entry};
use segsynth::frame::{Frame, Matrix, Yuv420};
use segsynth::imgproc::mask::{
    MaskFilter, MaskParams, ScoreMap, Scores, class_alpha, upsample_alpha,
};
use segsynth::imgproc::preprocess::frame_to_tensor;
use segsynth::infer::{Device, Model, Output, SessionOptions};
use segsynth::job::{load_generator, models_dir};
use segsynth::model::{Manifest, for_frame, resolve};
use segsynth::pipeline::composite::Compositor;
use segsynth::pipeline::stats::percentile;
use segsynth::synth::{Generator, SynthParams};

struct Opts {
    device: Device,
    frames: usize,
    sizes: Vec<(usize, usize)>,
    streams: Vec<usize>,
    gan: Option<String>,
    threads: usize,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        device: Device::Cpu,
        frames: 60,
        sizes: vec![(1280, 720), (1920, 1080)],
        streams: vec![1],
        gan: Some("foliage".into()),
        threads: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .cloned()
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--device" => {
                o.device = match v.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::Cuda,
                    "tensorrt" => Device::Tensorrt,
                    "auto" => Device::Auto,
                    _ => {
                        return Err(format!(
                            "--device {v}: expected cpu, cuda, tensorrt or auto"
                        ));
                    }
                }
            }
            "--frames" => o.frames = v.parse().map_err(|_| "--frames expects a number")?,
            "--threads" => o.threads = v.parse().map_err(|_| "--threads expects a number")?,
            "--gan" => o.gan = (v != "none").then_some(v),
            "--sizes" => {
                o.sizes = v
                    .split(',')
                    .map(|s| {
                        s.split_once('x')
                            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                            .ok_or(format!("bad size {s}, expected WxH"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--streams" => {
                o.streams = v
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("bad stream count {s}")))
                    .collect::<Result<_, _>>()?
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

fn run() -> anyhow::Result<()> {
    let o = parse().map_err(anyhow::Error::msg)?;
    let dir = models_dir();
    let session = SessionOptions {
        threads: o.threads,
        device: o.device,
    };
    println!(
        "inference core, device {:?}, {} intra-op thread(s), {} frames per run",
        o.device, o.threads, o.frames
    );
    println!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "size",
        "streams",
        "prep p50",
        "model p50",
        "mask p50",
        "upsm p50",
        "comp p50",
        "synth p50",
        "frame p99",
        "fps/stream"
    );
    for &(w, h) in &o.sizes {
        let frames: Vec<Frame> = (0..8).map(|i| synthetic_frame(w, h, i)).collect();
        for &streams in &o.streams {
            let base = Manifest::load(&resolve("selfie", &dir)?)?;
            let manifest = for_frame(base, w, h)?;
            let mut models: Vec<Model> = (0..streams)
                .map(|_| Model::open(manifest.clone(), &session))
                .collect::<Result<_, _>>()?;
            let provider = models[0].provider;
            let entries = vec![Entry {
                classes: vec!["background".into()],
                content: ContentKind::Blur { radius: 32 },
            }];
            let mut compositors: Vec<Compositor> = (0..streams)
                .map(|_| Compositor::new(&entries, &[]))
                .collect::<Result<_, _>>()?;
            let mut filters: Vec<MaskFilter> = (0..streams)
                .map(|_| MaskFilter::new(MaskParams::default()))
                .collect();
            let mut generator = match &o.gan {
                Some(g) => Some(Generator::new(
                    Model::open(load_generator(g, &dir)?, &session)?,
                    SynthParams::default(),
                )),
                None => None,
            };
            let geometry = manifest.input_geometry();
            let shape = manifest.input.shape.clone();
            let mut t = [
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ];
            let started = Instant::now();
            let mut tensor = Vec::new();
            let mut alpha = Vec::new();
            for i in 0..o.frames {
                let f0 = Instant::now();
                for s in 0..streams {
                    let mut frame = frames[(i + s) % frames.len()].clone();
                    let a = Instant::now();
                    frame_to_tensor(&frame.picture, frame.matrix, &geometry, &mut tensor);
                    let b = Instant::now();
                    let out = models[s].run(&[(&manifest.input.name, &shape, &tensor)])?;
                    let c = Instant::now();
                    let Output::F32 { shape: os, data } = out else {
                        anyhow::bail!("unexpected output")
                    };
                    let map = ScoreMap {
                        scores: Scores::F32(&data),
                        width: os[2] as usize,
                        height: os[1] as usize,
                        channels: 1,
                        layout: manifest
                            .output
                            .layout
                            .unwrap_or(segsynth::imgproc::preprocess::Layout::Nhwc),
                        semantics: segsynth::imgproc::mask::Semantics::Sigmoid,
                    };
                    class_alpha(&map, &[true, false], &mut alpha);
                    filters[s].apply(&mut alpha, map.width, map.height, w);
                    let d = Instant::now();
                    let planes = upsample_alpha(&alpha, map.width, map.height, w, h);
                    let e = Instant::now();
                    compositors[s].composite(&mut frame, &[planes]);
                    let f = Instant::now();
                    t[0].push(ms(a, b));
                    t[1].push(ms(b, c));
                    t[2].push(ms(c, d));
                    t[3].push(ms(d, e));
                    t[4].push(ms(e, f));
                }
                if let Some(g) = generator.as_mut() {
                    let a = Instant::now();
                    g.layer(i as u64 * 33_333_333, w, h, Matrix::Bt709, None)?;
                    t[5].push(ms(a, Instant::now()));
                }
                t[6].push(ms(f0, Instant::now()));
            }
            let fps = o.frames as f64 / started.elapsed().as_secs_f64();
            let p = |v: &Vec<f32>| percentile(v, 50.0);
            println!(
                "{:<10} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1}   [{provider}]",
                format!("{w}x{h}"),
                streams,
                p(&t[0]),
                p(&t[1]),
                p(&t[2]),
                p(&t[3]),
                p(&t[4]),
                p(&t[5]),
                percentile(&t[6], 99.0),
                fps
            );
            let _ = Arc::new(());
        }
    }
    Ok(())
}

fn ms(a: Instant, b: Instant) -> f32 {
    (b - a).as_secs_f32() * 1000.0
}
