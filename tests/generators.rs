//! Generator contracts with tiny models whose outputs are known, the real trained
//! generator (determinism, temporal smoothness), bad generators, and GAN content
//! through the CLI.

use segsynth::frame::{Matrix, Yuv420, rgb_to_yuv};
use segsynth::infer::{Device, Model, SessionOptions};
use segsynth::model::Manifest;
use segsynth::pipeline::synth::{Generator, SynthParams, interval_ns, noise_at};

use crate::support::*;

fn generator(manifest: &std::path::Path, params: SynthParams) -> Generator {
    let m = Manifest::load(manifest).expect("manifest");
    let model = Model::open(
        m,
        &SessionOptions {
            threads: 1,
            device: Device::Cpu,
        },
    )
    .expect("open generator");
    Generator::new(model, params)
}

fn params(scale: f32) -> SynthParams {
    SynthParams {
        scale,
        seed: 11,
        period: 2.0,
        ..SynthParams::default()
    }
}

fn to_u8(v: f32) -> u8 {
    (((v + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

#[test]
fn spatial_contract_matches_known_output() {
    let mut g = generator(&data("gen_spatial.toml"), params(1.0));
    let (w, h) = (32, 16);
    let t_ns = 700_000_000u64;
    let layer = g.layer(t_ns, w, h, Matrix::Bt709, None).unwrap();
    assert_eq!(layer, upsampled_tanh(11, 0.7, w, h));
}

/// gen_spatial's (and gen_image_noise's) known layer: image[c,y,x] = tanh(noise[c, y/4,
/// x/4]) for the walk's noise [1,4,h/4,w/4] with `seed` at `t` seconds (period 2 s).
fn upsampled_tanh(seed: u64, t: f32, w: usize, h: usize) -> Yuv420 {
    let noise = noise_at(seed, 4 * (h / 4) * (w / 4), 2.0, t);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                rgb[(y * w + x) * 3 + c] =
                    to_u8(noise[c * (h / 4) * (w / 4) + (y / 4) * (w / 4) + x / 4].tanh());
            }
        }
    }
    Yuv420::from_rgb(&rgb, w, h, Matrix::Bt709)
}

#[test]
fn latent_contract_matches_known_output() {
    let mut g = generator(&data("gen_latent.toml"), params(1.0));
    let layer = g.layer(300_000_000, 40, 20, Matrix::Bt601, None).unwrap();
    let z = noise_at(11, 8, 2.0, 0.3);
    let expected = rgb_to_yuv(
        Matrix::Bt601,
        to_u8(z[0].tanh()),
        to_u8(z[1].tanh()),
        to_u8(z[2].tanh()),
    );
    for (plane, want) in layer
        .planes()
        .iter()
        .zip([expected.0, expected.1, expected.2])
    {
        assert!(
            plane.data.iter().all(|&v| v.abs_diff(want) <= 1),
            "constant colour {want} expected"
        );
    }
}

#[test]
fn image_contract_matches_known_output() {
    let mut g = generator(&data("gen_image.toml"), params(1.0));
    let (y, u, v) = rgb_to_yuv(Matrix::Bt709, 255, 0, 0);
    let frame = Yuv420::filled(24, 16, (y, u, v));
    let layer = g.layer(0, 24, 16, Matrix::Bt709, Some(&frame)).unwrap();
    // gen_image inverts: red becomes cyan.
    let cyan = rgb_to_yuv(Matrix::Bt709, 0, 255, 255);
    assert!(
        layer.y.data.iter().all(|&p| p.abs_diff(cyan.0) <= 3),
        "{:?} vs {cyan:?}",
        &layer.y.data[..4]
    );
    assert!(layer.u.data.iter().all(|&p| p.abs_diff(cyan.1) <= 3));
}

/// An `image` generator with a `[noise_input]` gets the frame and the walked noise in
/// cells of its `scale` covering the frame: gen_image_noise is gen_spatial's formula
/// behind the image contract, so its layer is the same known output.
#[test]
fn image_contract_with_noise_matches_known_output() {
    let mut g = generator(&data("gen_image_noise.toml"), params(1.0));
    let (w, h) = (32, 16);
    let frame = Yuv420::filled(w, h, rgb_to_yuv(Matrix::Bt709, 200, 30, 90));
    for t_ns in [700_000_000u64, 1_300_000_000] {
        let layer = g.layer(t_ns, w, h, Matrix::Bt709, Some(&frame)).unwrap();
        assert_eq!(
            layer,
            upsampled_tanh(11, t_ns as f32 / 1e9, w, h),
            "layer at {t_ns} ns"
        );
    }
}

#[test]
fn nan_output_is_clamped_and_counted() {
    let mut g = generator(&data("gen_nan.toml"), params(1.0));
    let layer = g.layer(0, 32, 32, Matrix::Bt709, None).unwrap();
    assert!(g.nonfinite > 0, "NaNs counted");
    assert_eq!(layer.y.data.len(), 32 * 32);
}

#[test]
fn trained_generator_is_seeded_smooth_and_covers_any_size() {
    let foliage = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gan/foliage.toml");
    let p = SynthParams {
        scale: 0.5,
        seed: 3,
        period: 6.0,
        ..SynthParams::default()
    };
    let mut g = generator(&foliage, p.clone());
    let (w, h) = (321, 181); // odd: spatial output is cropped to cover it exactly
    let frame_ns = 33_333_333u64;
    let a = g.layer(5 * frame_ns, w, h, Matrix::Bt709, None).unwrap();
    assert_eq!((a.width(), a.height()), (w, h));
    let mut again = generator(&foliage, p.clone());
    assert_eq!(
        again
            .layer(5 * frame_ns, w, h, Matrix::Bt709, None)
            .unwrap(),
        a,
        "same seed, same content"
    );
    let mut other = generator(
        &foliage,
        SynthParams {
            seed: 4,
            ..p.clone()
        },
    );
    let b = other
        .layer(5 * frame_ns, w, h, Matrix::Bt709, None)
        .unwrap();
    assert!(
        mean_abs_diff(&a.y.data, &b.y.data) > 5.0,
        "another seed gives other content"
    );
    // Not flat: it is texture.
    let mean = a.y.data.iter().map(|&v| v as f32).sum::<f32>() / a.y.data.len() as f32;
    let var =
        a.y.data
            .iter()
            .map(|&v| (v as f32 - mean).powi(2))
            .sum::<f32>()
            / a.y.data.len() as f32;
    assert!(var.sqrt() > 8.0, "textured output, std {}", var.sqrt());

    // Temporal smoothness at 30 fps around a keyframe (t = 6 s): mean |ΔY| per frame stays
    // under 2 levels of 255 (well under what reads as flicker), and the step across the
    // keyframe is no larger than steps elsewhere (no pop).
    let keyframe = (6.0 / (frame_ns as f64 / 1e9)) as u64; // frame 180
    let mut prev = g
        .layer((keyframe - 4) * frame_ns, w, h, Matrix::Bt709, None)
        .unwrap();
    let mut steps = Vec::new();
    for i in keyframe - 3..=keyframe + 3 {
        let cur = g.layer(i * frame_ns, w, h, Matrix::Bt709, None).unwrap();
        steps.push(mean_abs_diff(&prev.y.data, &cur.y.data));
        prev = cur;
    }
    let mid = g
        .layer(keyframe / 2 * frame_ns, w, h, Matrix::Bt709, None)
        .unwrap();
    let mid_next = g
        .layer((keyframe / 2 + 1) * frame_ns, w, h, Matrix::Bt709, None)
        .unwrap();
    let mid_step = mean_abs_diff(&mid.y.data, &mid_next.y.data);
    eprintln!("content change per frame around the keyframe: {steps:?}, mid-segment: {mid_step}");
    assert!(steps.iter().all(|&s| s < 2.0), "smooth: {steps:?}");
    assert!(
        steps.iter().cloned().fold(0.0, f32::max) <= mid_step + 0.5,
        "no pop at the keyframe: {steps:?} vs {mid_step}"
    );
    assert!(mid_step > 0.05, "but it does move: {mid_step}");
}

#[test]
fn bad_generators_fail_before_output_exists() {
    let clip = person_clip(320, 180, 45);
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    let run = |content: &str| process(&clip, &out, &["-q", "--content", content]);
    // A segmentation model is not a generator.
    assert_clean_error(
        &run(&format!("gan:{}", data("seg3_nchw_logits.toml").display())),
        &["expected a generator"],
    );
    // Manifest names an input the model doesn't have.
    let bad = dir.path().join("gen_wrong.toml");
    let text = std::fs::read_to_string(data("gen_spatial.toml"))
        .unwrap()
        .replace("name = \"noise\"", "name = \"latent\"")
        .replace(
            "file = \"gen_spatial.onnx\"",
            &format!("file = \"{}\"", data("gen_spatial.onnx").display()),
        );
    std::fs::write(&bad, text).unwrap();
    assert_clean_error(
        &run(&format!("gan:{}", bad.display())),
        &["\"latent\" is not in the model", "noise"],
    );
    // Wrong contract for the model's shapes: a latent contract on a spatial model.
    let wrong = dir.path().join("gen_contract.toml");
    let text = std::fs::read_to_string(data("gen_latent.toml"))
        .unwrap()
        .replace(
            "file = \"gen_latent.onnx\"",
            &format!("file = \"{}\"", data("gen_spatial.onnx").display()),
        );
    std::fs::write(&wrong, text).unwrap();
    assert_clean_error(
        &run(&format!("gan:{}", wrong.display())),
        &["\"z\" is not in the model"],
    );
    assert_clean_error(
        &run("gan:/nonexistent/gen.onnx"),
        &["/nonexistent/gen.onnx"],
    );
    assert_eq!(
        files_in(dir.path()),
        vec!["gen_contract.toml", "gen_wrong.toml"],
        "no output written"
    );
}

#[test]
fn gan_background_lives_and_person_stays() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let out = dir.path().join("gan.mp4");
    let o = process(
        &input,
        &out,
        &[
            "-q",
            "--content",
            "gan:foliage",
            "--synth-period",
            "0.5",
            "--content",
            "person=blur:2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a = probe(&input, &[5, 40], 64, 36);
    let b = probe(&out, &[5, 40], 64, 36);
    assert_eq!(b.pts, a.pts);
    let region = (0.85, 0.05, 0.98, 0.45);
    let bg_in = region_mean(a.thumb(5), a.thumb_size, region);
    let bg5 = region_mean(b.thumb(5), b.thumb_size, region);
    assert!(
        (bg5[0] - bg_in[0]).abs() + (bg5[1] - bg_in[1]).abs() + (bg5[2] - bg_in[2]).abs() > 40.0,
        "background replaced: {bg_in:?} -> {bg5:?}"
    );
    // Living texture: the same background region changes between frames 5 and 40.
    let crop = |t: &[u8]| -> Vec<u8> {
        t.chunks(3)
            .enumerate()
            .filter(|(i, _)| i % 64 > 54)
            .flat_map(|(_, p)| p.to_vec())
            .collect()
    };
    assert!(
        mean_abs_diff(&crop(b.thumb(5)), &crop(b.thumb(40))) > 3.0,
        "background animates"
    );
    let face = (0.30, 0.60, 0.45, 0.85);
    let fa = region_mean(a.thumb(40), a.thumb_size, face);
    let fb = region_mean(b.thumb(40), b.thumb_size, face);
    assert!(
        fa.iter().zip(&fb).map(|(x, y)| (x - y).abs()).sum::<f32>() / 3.0 < 12.0,
        "person kept: {fa:?} {fb:?}"
    );
}

/// `segsynth run` from the test source at 320x180 for `seconds` into `rec`, with `content`.
fn record_test_source(rec: &std::path::Path, content: &str, seconds: &str) -> std::process::Output {
    segsynth(&[
        "run",
        "-i",
        "test:",
        "-o",
        rec.to_str().unwrap(),
        "--width",
        "320",
        "--height",
        "180",
        "--duration",
        seconds,
        "--content",
        content,
    ])
}

/// Every shipped generator by name, from `segsynth process` and from `segsynth run`:
/// the background turns into that generator's content (it differs from the input and
/// from every other generator's there) and the person stays.
#[test]
fn every_shipped_generator_runs_from_process_and_run() {
    let names = ["foliage", "stone", "stars", "foliage_transfer"];
    let input = person_clip(320, 180, 20);
    let dir = tmpdir();
    let region = (0.85, 0.05, 0.98, 0.45);
    let face = (0.30, 0.60, 0.45, 0.85);
    let a = probe(&input, &[10], 64, 36);
    let bg_in = region_mean(a.thumb(10), a.thumb_size, region);
    let face_in = region_mean(a.thumb(10), a.thumb_size, face);
    let mut backgrounds: Vec<(String, Vec<u8>)> = Vec::new();
    for name in names {
        let out = dir.path().join(format!("{name}.mp4"));
        let content = format!("gan:{name}");
        let o = process(
            &input,
            &out,
            &["-q", "--content", &content, "--synth-budget-ms", "500"],
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let b = probe(&out, &[10], 64, 36);
        assert_eq!(b.pts, a.pts, "{name}: every frame kept");
        let bg = region_mean(b.thumb(10), b.thumb_size, region);
        let change: f32 = bg.iter().zip(&bg_in).map(|(x, y)| (x - y).abs()).sum();
        assert!(change > 30.0, "{name}: background {bg_in:?} -> {bg:?}");
        let f = region_mean(b.thumb(10), b.thumb_size, face);
        let kept: f32 = f.iter().zip(&face_in).map(|(x, y)| (x - y).abs()).sum();
        assert!(kept / 3.0 < 12.0, "{name}: person kept {face_in:?} {f:?}");
        let crop: Vec<u8> = b
            .thumb(10)
            .chunks(3)
            .enumerate()
            .filter(|(i, _)| i % 64 > 54 && i / 64 < 16)
            .flat_map(|(_, p)| p.to_vec())
            .collect();
        for (other, theirs) in &backgrounds {
            assert!(
                mean_abs_diff(&crop, theirs) > 8.0,
                "{name} and {other} give the same background"
            );
        }
        backgrounds.push((name.to_string(), crop));

        let rec = dir.path().join(format!("{name}.mkv"));
        let o = record_test_source(&rec, &content, "1");
        assert!(o.status.success(), "{name} (run): {}", stderr(&o));
        let r = probe(&rec, &[5], 32, 18);
        assert!(
            r.pts.len() >= 10,
            "{name} (run): recording holds {} frames",
            r.pts.len()
        );
    }
}

#[test]
fn image_generator_is_fed_the_real_mask() {
    let mut g = generator(&data("gen_image_mask.toml"), params(1.0));
    let (y, u, v) = rgb_to_yuv(Matrix::Bt709, 255, 0, 0);
    let frame = Yuv420::filled(32, 16, (y, u, v));
    // Replace the left half only: the generator keeps the frame there, inverts the rest.
    let mask = segsynth::frame::Plane {
        width: 32,
        height: 16,
        data: (0..32 * 16)
            .map(|i| if i % 32 < 16 { 255 } else { 0 })
            .collect(),
    };
    let layer = g
        .conditioned_layer(0, &frame, Matrix::Bt709, Some(&mask))
        .expect("layer");
    let cyan = rgb_to_yuv(Matrix::Bt709, 0, 255, 255);
    let row = &layer.y.data[8 * 32..9 * 32];
    assert!(row[..12].iter().all(|&p| p.abs_diff(y) <= 3), "{row:?}");
    assert!(
        row[20..].iter().all(|&p| p.abs_diff(cyan.0) <= 3),
        "{row:?}"
    );
}

/// The person clip through an `image` generator: where the background is replaced,
/// the output is the inverted input (gen_image: image = -frame), frame for frame.
#[test]
fn image_generators_run_from_process_and_run() {
    let input = person_clip(320, 180, 30);
    let dir = tmpdir();
    let out = dir.path().join("inverted.mp4");
    let manifest = data("gen_image.toml");
    let content = format!("gan:{}", manifest.display());
    // Keyframes every 10 ms of video: a frame's layer is made from it or the frame
    // before (an `image` layer comes from the frame two keyframes earlier).
    let o = process(
        &input,
        &out,
        &["-q", "--content", &content, "--synth-period", "0.12"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a = probe(&input, &[5, 25], 64, 36);
    let b = probe(&out, &[5, 25], 64, 36);
    assert_eq!(b.pts, a.pts, "every frame kept");
    let region = (0.85, 0.05, 0.98, 0.45);
    for i in [5, 25] {
        let bg_in = region_mean(a.thumb(i), a.thumb_size, region);
        let bg_out = region_mean(b.thumb(i), b.thumb_size, region);
        for c in 0..3 {
            assert!(
                (bg_out[c] - (255.0 - bg_in[c])).abs() < 30.0,
                "frame {i}: background {bg_in:?} should come out inverted, got {bg_out:?}"
            );
        }
    }
    // The same generator, with the mask input, from a live run into a recording.
    let rec = dir.path().join("live.mkv");
    let content = format!("gan:{}", data("gen_image_mask.toml").display());
    let o = record_test_source(&rec, &content, "2");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = probe(&rec, &[10], 32, 18);
    assert!(r.pts.len() >= 20, "recording holds {} frames", r.pts.len());
}

fn frame_at(pts: u64, w: usize, h: usize) -> segsynth::frame::Frame {
    segsynth::frame::Frame {
        index: 0,
        pts: Some(pts),
        duration: None,
        matrix: Matrix::Bt709,
        picture: Yuv420::filled(w, h, (100, 128, 128)),
    }
}

/// A synth stage and the compositor's track over it.
fn track(
    manifest: &std::path::Path,
    p: &SynthParams,
) -> (
    segsynth::pipeline::synth::SynthStage,
    segsynth::pipeline::synth::LayerTrack,
) {
    use segsynth::pipeline::synth::{LayerTrack, SynthStage};
    let stage = SynthStage::start(generator(manifest, p.clone()), p, None).expect("synth stage");
    let track = LayerTrack::new(std::sync::Arc::clone(&stage.slot), p.timing());
    (stage, track)
}

/// A file job's frame shows the keyframe layers around its time, mixed by where it falls
/// between them: at a keyframe exactly that layer, halfway the even mix; whatever the
/// thread's speed (the track waits).
#[test]
fn file_frames_show_keyframes_mixed_by_video_time() {
    use segsynth::imgproc::blend::{CrossfadeStats, mix_pictures};
    let (w, h) = (32, 16);
    let p = SynthParams {
        exact: true,
        period: 2.4, // keyframes 800 ms apart: halfway is a whole number of ns
        ..params(1.0)
    };
    let interval = interval_ns(p.period, false);
    let (stage, mut track) = track(&data("gen_spatial.toml"), &p);
    let mask = segsynth::frame::Plane::new(w, h, 255);
    let mut reference = generator(&data("gen_spatial.toml"), p.clone());
    let mut key = |k: u64| {
        reference
            .layer(k * interval, w, h, Matrix::Bt709, None)
            .unwrap()
    };
    let (k3, k4) = (key(3), key(4));
    let at_key = track.content(&frame_at(3 * interval, w, h), &mask).unwrap();
    assert_eq!(*at_key.expect("content"), k3);
    let half = track
        .content(&frame_at(3 * interval + interval / 2, w, h), &mask)
        .unwrap()
        .expect("content");
    let mut expected = k3.clone();
    let stats = CrossfadeStats::of_pictures(&k3, &k4);
    mix_pictures(&mut expected, (&k3, &k4), 128, &stats, &k3, 256);
    assert_eq!(*half, expected);
    assert_ne!(k3, k4, "the walk moves between keyframes");
    assert_eq!(track.held, 0, "a file job never holds");
    stage.finish().expect("synth thread ends cleanly");
}

/// Live, a frame never waits for a slow generator: the input shows until the first
/// layer exists, the content then fades in, and when layers come late the motion holds
/// or slows; from frame to frame the content never jumps.
#[test]
fn live_content_fades_in_and_holds_without_jumps() {
    use std::time::{Duration, Instant};
    let foliage = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gan/foliage.toml");
    // Full-resolution 1280x720 layers take far longer than a frame or the 5 ms budget
    // (the first, with the session's warm-up, seconds on a loaded machine).
    let p = SynthParams {
        exact: false,
        budget: Duration::from_millis(5),
        period: 6.0,
        ..params(1.0)
    };
    let (w, h) = (1280, 720);
    let (stage, mut track) = track(&foliage, &p);
    let mask = segsynth::frame::Plane::new(w, h, 255);
    let started = Instant::now();
    let (mut shown, mut previous, mut worst, mut slowest) =
        (0, None::<Yuv420>, 0.0f32, Duration::ZERO);
    // Frames at 30 fps of video time, fed in real time, until content showed on 60 of
    // them (the first layer takes seconds on a loaded machine).
    let mut i = 0u64;
    while shown < 60 && started.elapsed() < Duration::from_secs(120) {
        let frame = frame_at(i * 33_333_333, w, h);
        let call = Instant::now();
        let content = track.content(&frame, &mask).unwrap();
        slowest = slowest.max(call.elapsed());
        let picture = content.map_or(frame.picture.clone(), |c| (*c).clone());
        if let Some(prev) = &previous {
            worst = worst.max(mean_abs_diff(&prev.y.data, &picture.y.data));
        }
        shown += usize::from(picture != frame.picture);
        previous = Some(picture);
        std::thread::sleep(Duration::from_millis(33));
        i += 1;
    }
    assert_eq!(shown, 60, "content never showed in {:?}", started.elapsed());
    // The promise: a frame waits for its layers at most the budget (5 ms). A thread on a
    // busy machine may wake later than asked (with two other jobs on both cores: 2 of 80
    // frames 3 ms late, once one 11 ms late; CI runs other tests beside this one): three
    // frames in four within 2 ms of the budget, none past 250 ms. The whole call also mixes
    // two 1280x720 layers.
    eprintln!(
        "live waits: longest {:?}, {} of {i} frames over 2 ms past the budget",
        track.longest_wait, track.overslept
    );
    assert!(
        track.overslept * 4 <= i && track.longest_wait < p.budget + Duration::from_millis(250),
        "live frames waited up to {:?} for their layers, {} of {i} over 2 ms past the budget {:?}",
        track.longest_wait,
        track.overslept,
        p.budget
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a live frame took {slowest:?}"
    );
    assert!(track.held > 0, "the generator kept up, nothing was held");
    assert!(
        worst < 2.0,
        "the content jumped by {worst} levels between frames"
    );
    stage.finish().expect("synth thread ends cleanly");
}

/// The upsampling grid of a 16x generator shows as extra power at multiples of 1/16
/// cycle per pixel. Returns the power at those frequencies (every (u, v) on the grid
/// but DC) and the mean power of their eight neighbours, summed, on the luma of an
/// n x n layer (mean removed); the grid ratio is the first over the second, with both
/// summed over several layers (an averaged periodogram: one layer's bins are too noisy).
///
/// The spectrum is that of the layer's periodic component (Moisan, "Periodic plus smooth
/// image decomposition", 2011): the DFT treats the layer as a tile, and the jumps where
/// opposite borders meet add a cross of power along both axes that falls off with
/// frequency. On the axes a grid bin's neighbours are mostly off the cross, so a smooth
/// texture with large features (foliage) read about 1.2-1.3 with no grid at all. The
/// smooth component is the solution of a Poisson equation whose right-hand side `b` is
/// only the border jumps, so its DFT is `B(u, v) / (2 cos(2 pi u / n) + 2 cos(2 pi v / n) - 4)`.
fn grid_powers(luma: &[u8], n: usize, cell: usize) -> (f64, f64) {
    use std::f64::consts::TAU;
    let mean = luma.iter().map(|&v| v as f64).sum::<f64>() / luma.len() as f64;
    let image: Vec<f64> = luma.iter().map(|&v| v as f64 - mean).collect();
    let mut jumps = vec![0.0f64; n * n];
    for i in 0..n {
        let (top, bottom) = (image[i], image[(n - 1) * n + i]);
        jumps[i] += bottom - top;
        jumps[(n - 1) * n + i] += top - bottom;
        let (left, right) = (image[i * n], image[i * n + n - 1]);
        jumps[i * n] += right - left;
        jumps[i * n + n - 1] += left - right;
    }
    let step = n / cell;
    let wanted: Vec<usize> = (0..cell)
        .flat_map(|m| [n + m * step - 1, n + m * step, n + m * step + 1])
        .map(|k| k % n)
        .collect();
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|k| {
            (
                (TAU * k as f64 / n as f64).cos(),
                (TAU * k as f64 / n as f64).sin(),
            )
        })
        .unzip();
    // Row transforms at the wanted horizontal frequencies.
    let rows = |plane: &[f64]| -> Vec<(f64, f64)> {
        let mut rows = vec![(0.0f64, 0.0f64); n * wanted.len()];
        for y in 0..n {
            for (j, &u) in wanted.iter().enumerate() {
                let (mut re, mut im) = (0.0, 0.0);
                for x in 0..n {
                    let v = plane[y * n + x];
                    let k = (u * x) % n;
                    re += v * cos[k];
                    im -= v * sin[k];
                }
                rows[y * wanted.len() + j] = (re, im);
            }
        }
        rows
    };
    let (image_rows, jump_rows) = (rows(&image), rows(&jumps));
    let dft = |rows: &[(f64, f64)], ju: usize, v: usize| -> (f64, f64) {
        let (mut re, mut im) = (0.0, 0.0);
        for y in 0..n {
            let (a, b) = rows[y * wanted.len() + ju];
            let k = (v * y) % n;
            // (a + ib)(cos - i sin)
            re += a * cos[k] + b * sin[k];
            im += b * cos[k] - a * sin[k];
        }
        (re, im)
    };
    let index = |u: usize| {
        wanted
            .iter()
            .position(|&w| w == u)
            .expect("wanted frequency")
    };
    let power = |u: usize, v: usize| -> f64 {
        let ju = index(u);
        let (re, im) = dft(&image_rows, ju, v);
        let (bre, bim) = dft(&jump_rows, ju, v);
        let d = 2.0 * cos[u] + 2.0 * cos[v] - 4.0;
        let (re, im) = (re - bre / d, im - bim / d);
        re * re + im * im
    };
    let (mut on, mut around) = (0.0, 0.0);
    for mu in 0..cell {
        for mv in 0..cell {
            if mu == 0 && mv == 0 {
                continue;
            }
            let (u, v) = (mu * step, mv * step);
            on += power(u, v);
            let mut ring = 0.0;
            for du in [n - 1, 0, 1] {
                for dv in [n - 1, 0, 1] {
                    if du != 0 || dv != 0 {
                        ring += power((u + du) % n, (v + dv) % n);
                    }
                }
            }
            around += ring / 8.0;
        }
    }
    (on, around)
}

/// The grid ratio of n x n luma planes, their powers summed (an averaged periodogram).
fn grid_ratio<'a>(lumas: impl IntoIterator<Item = &'a [u8]>, n: usize, cell: usize) -> f64 {
    let (on, around) = lumas
        .into_iter()
        .map(|luma| grid_powers(luma, n, cell))
        .fold((0.0, 0.0), |(on, around), (a, b)| (on + a, around + b));
    on / around
}

/// The lumas of `layers`, for `grid_ratio`.
fn lumas(layers: &[Yuv420]) -> impl Iterator<Item = &[u8]> {
    layers.iter().map(|l| l.y.data.as_slice())
}

/// Layers of n x n from `manifest` with each of `seeds` (at time 0).
fn seeded_layers(
    manifest: &std::path::Path,
    seeds: std::ops::RangeInclusive<u64>,
    n: usize,
) -> Vec<Yuv420> {
    seeds
        .map(|seed| {
            let mut g = generator(
                manifest,
                SynthParams {
                    seed,
                    ..params(1.0)
                },
            );
            g.layer(0, n, n, Matrix::Bt709, None).expect("layer")
        })
        .collect()
}

#[test]
fn grid_ratio_finds_a_checkerboard_and_passes_smooth_noise() {
    let n = 256;
    // A smooth random field (bilinear upsampled noise) has no grid...
    let coarse: Vec<u8> = (0..33 * 33)
        .map(|i| ((i * 7919 + i / 33 * 104_729) % 251) as u8)
        .collect();
    let smooth = segsynth::imgproc::resize::resize_plane(
        &segsynth::frame::Plane {
            width: 33,
            height: 33,
            data: coarse,
        },
        n,
        n,
    );
    let clean = grid_ratio([&smooth.data[..]], n, 16);
    // ...and the same field with a faint 16-pixel periodic pattern has one.
    let gridded: Vec<u8> = smooth
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            v.saturating_add(if (i % n) % 16 < 2 || (i / n) % 16 < 2 {
                6
            } else {
                0
            })
        })
        .collect();
    let grid = grid_ratio([&gridded[..]], n, 16);
    assert!(
        clean < 1.15 && grid > 1.5,
        "smooth {clean:.2}, gridded {grid:.2}"
    );
    // models/gan/fidelity.py computes the same measure for the training scripts: held
    // to this one on the same planes (grey RGB, so its luma weights give the plane back),
    // one at a time and averaged together.
    for (planes, rust) in [
        (vec![&smooth.data[..]], clean),
        (vec![&gridded[..]], grid),
        (
            vec![&smooth.data[..], &gridded[..]],
            grid_ratio([&smooth.data[..], &gridded[..]], n, 16),
        ),
    ] {
        let python = python_grid_ratio(&planes, n, 16);
        assert!(
            (python - rust).abs() <= 1e-6 * rust,
            "fidelity.py grid_ratio {python} against the test's {rust}"
        );
    }
}

/// `grid_ratio` of models/gan/fidelity.py on n x n luma planes, in the set-up's venv.
fn python_grid_ratio(planes: &[&[u8]], n: usize, cell: usize) -> f64 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tmpdir();
    let raw = dir.path().join("planes.u8");
    std::fs::write(&raw, planes.concat()).unwrap();
    let script = format!(
        "import sys, numpy as np; sys.path.insert(0, 'models/gan'); from fidelity import grid_ratio; \
         y = np.fromfile(sys.argv[1], np.uint8).reshape(-1, {n}, {n}).astype(np.float64); \
         print(float(grid_ratio([np.stack([p, p, p], -1) for p in y], {cell})))"
    );
    let python = venv_python();
    let o = std::process::Command::new(&python)
        .current_dir(root)
        .args(["-c", &script])
        .arg(&raw)
        .output()
        .unwrap_or_else(|e| panic!("{} (made by ./segsynth.sh setup): {e}", python.display()));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.trim().parse().expect("a number")
}

/// The shipped generators' manifests (models/gan) with this contract, by name.
fn shipped_generators(contract: segsynth::model::Contract) -> Vec<(Manifest, std::path::PathBuf)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gan");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("models/gan")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| (Manifest::load(&p).expect("manifest"), p))
        .filter(|(m, _)| m.generator.as_ref().is_some_and(|g| g.contract == contract))
        .collect()
}

fn shipped_spatial_generators() -> Vec<(Manifest, std::path::PathBuf)> {
    shipped_generators(segsynth::model::Contract::Spatial)
}

/// A layer's edges look like its middle. The outermost pixels of a convolutional
/// generator see its padding, not texture; the manifests' `border` has one noise cell
/// generated beyond each edge and cropped away. Without it foliage's 4-pixel edge bands
/// sat 0.63 standard deviations (of the interior's luma) off the interior's mean (the
/// generators of 2026-11); with it 0.12 (16 layers of 256x256).
#[test]
fn shipped_generators_have_no_edge_band() {
    for (m, manifest) in shipped_spatial_generators() {
        let n = 256;
        let layers = seeded_layers(&manifest, 1..=16, n);
        let stats = |pick: &dyn Fn(usize, usize) -> bool| {
            let v: Vec<f64> = lumas(&layers)
                .flat_map(|l| {
                    l.iter()
                        .enumerate()
                        .filter(|(i, _)| pick(i % n, i / n))
                        .map(|(_, &p)| p as f64)
                })
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
            (mean, var.sqrt())
        };
        let (mean, sd) = stats(&|x, y| (64..192).contains(&x) && (64..192).contains(&y));
        type Pick<'a> = &'a dyn Fn(usize, usize) -> bool;
        let bands: [(&str, Pick); 4] = [
            ("top", &|_, y| y < 4),
            ("bottom", &|_, y| y >= n - 4),
            ("left", &|x, _| x < 4),
            ("right", &|x, _| x >= n - 4),
        ];
        for (edge, pick) in bands {
            let (band, _) = stats(pick);
            let shift = (band - mean).abs() / sd.max(1.0);
            assert!(
                shift < 0.25,
                "{}: the {edge} band's mean luma is {shift:.2} standard deviations off the interior's",
                m.name
            );
        }
    }
}

/// Every shipped spatial generator, on seeded noise (32 layers of 256x256: a single
/// layer's estimate swings by 20 %): no upsampling grid.
#[test]
fn shipped_generators_have_no_upsampling_grid() {
    let mut ratios = Vec::new();
    for (m, manifest) in shipped_spatial_generators() {
        let cell = m.generator.as_ref().and_then(|g| g.scale).unwrap_or(1);
        let layers = seeded_layers(&manifest, 1..=32, 256);
        ratios.push((m.name.clone(), grid_ratio(lumas(&layers), 256, cell)));
    }
    eprintln!("grid ratios: {ratios:?}");
    // foliage, stars and stone (petals was dropped for its fidelity).
    assert!(
        ratios.len() >= 3,
        "at least three spatial generators ship: {ratios:?}"
    );
    // The transposed-convolution generators measured 10 to 34 here, the resize-convolution
    // ones that followed 1.06 to 1.43; the shift-invariant ones have no grid by design.
    for (name, r) in &ratios {
        assert!(*r < 1.15, "{name}: grid ratio {r:.2} (bound 1.15)");
    }
}

/// A seeded scene without a lattice: a vertical light gradient and 80 soft-edged
/// discs of random colour, size and (sub-pixel) place.
fn random_scene(n: usize, seed: u64) -> Yuv420 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f32 / (1u64 << 53) as f32
    };
    let mut rgb: Vec<[f32; 3]> = (0..n * n)
        .map(|i| {
            let t = (i / n) as f32 / n as f32;
            [0.3 + 0.4 * t, 0.35 + 0.3 * t, 0.4 + 0.2 * t]
        })
        .collect();
    for _ in 0..80 {
        let (cx, cy) = (next() * n as f32, next() * n as f32);
        let r = 4.0 + 40.0 * next() * next();
        let colour = [next(), next(), next()];
        for (i, px) in rgb.iter_mut().enumerate() {
            let (x, y) = ((i % n) as f32 + 0.5, (i / n) as f32 + 0.5);
            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            let a = (r + 1.0 - d).clamp(0.0, 1.0);
            for c in 0..3 {
                px[c] += a * (colour[c] - px[c]);
            }
        }
    }
    let bytes: Vec<u8> = rgb
        .iter()
        .flat_map(|px| px.map(|v| (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8))
        .collect();
    Yuv420::from_rgb(&bytes, n, n, Matrix::Bt709)
}

/// The shipped frame-conditioned generators have no grid either: over 16 seeded
/// scenes, the grid ratio at the 4-, 8- and 16-pixel periods stays under the same 1.15
/// (the scenes themselves read about 1; the stride-2 encoder-decoder shipped before read
/// 20 at the 4-pixel period).
#[test]
fn frame_conditioned_generators_have_no_grid() {
    let shipped = shipped_generators(segsynth::model::Contract::Image);
    assert!(!shipped.is_empty(), "a frame-conditioned generator ships");
    let n = 256;
    let scenes: Vec<Yuv420> = (1..=16).map(|seed| random_scene(n, seed)).collect();
    for (m, manifest) in &shipped {
        let mut g = generator(manifest, params(1.0));
        // Each scene at its own time, a minute apart: independent noise keyframes, so the
        // periodograms average over 16 noise fields, not one.
        let layers: Vec<Yuv420> = scenes
            .iter()
            .enumerate()
            .map(|(i, scene)| {
                let pts = i as u64 * 60_000_000_000;
                g.layer(pts, n, n, Matrix::Bt709, Some(scene))
                    .expect("layer")
            })
            .collect();
        for cell in [4, 8, 16] {
            let input = grid_ratio(lumas(&scenes), n, cell);
            let r = grid_ratio(lumas(&layers), n, cell);
            eprintln!(
                "{}: grid ratio at {cell} px {r:.2} (scenes {input:.2})",
                m.name
            );
            assert!(
                r < 1.15,
                "{}: grid ratio at the {cell}-pixel period {r:.2} (bound 1.15; the scenes read {input:.2})",
                m.name
            );
        }
    }
}

/// Pearson correlation of two equally long sample lists.
fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-6)
}

/// The project's frame-conditioned generator through the CLI: its background follows
/// the scene's light and shapes (the luma of output and input correlate, frame after
/// frame, as the clip moves), clearly more than the noise-driven texture's does.
#[test]
fn the_frame_conditioned_generator_follows_the_scene() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let run = |content: &str, name: &str| {
        let out = dir.path().join(name);
        let o = process(
            &input,
            &out,
            &["-q", "--content", content, "--synth-budget-ms", "500"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let transfer = run("gan:foliage_transfer", "transfer.mp4");
    let texture = run("gan:foliage", "texture.mp4");
    let frames = [8usize, 20, 32, 44];
    let a = probe(&input, &frames, 32, 18);
    let (t, f) = (
        probe(&transfer, &frames, 32, 18),
        probe(&texture, &frames, 32, 18),
    );
    assert_eq!(t.pts, a.pts);
    // Luma of the upper right quarter (background in the person clip).
    let luma = |p: &Probe, i: usize| -> Vec<f32> {
        p.thumb(i)
            .chunks(3)
            .enumerate()
            .filter(|(k, _)| k % 32 >= 20 && k / 32 < 8)
            .map(|(_, px)| 0.2126 * px[0] as f32 + 0.7152 * px[1] as f32 + 0.0722 * px[2] as f32)
            .collect()
    };
    let mut rs = Vec::new();
    for i in frames {
        let (ct, cf) = (
            correlation(&luma(&a, i), &luma(&t, i)),
            correlation(&luma(&a, i), &luma(&f, i)),
        );
        eprintln!("frame {i}: r(input, transfer) {ct:.2}, r(input, texture) {cf:.2}");
        rs.push((ct, cf));
        assert!(
            ct > cf,
            "frame {i}: follows the frame more than a texture does ({ct:.2} vs {cf:.2})"
        );
        // It is content, not the frame passed through.
        assert!(
            mean_abs_diff(a.thumb(i), t.thumb(i)) > 10.0,
            "frame {i}: the background is replaced"
        );
    }
    // Measured: 0.49-0.61 against -0.47-0.06 for the noise-driven foliage (the
    // encoder-decoder shipped before: 0.27-0.49).
    let n = rs.len() as f32;
    let (mt, mf) = (
        rs.iter().map(|r| r.0).sum::<f32>() / n,
        rs.iter().map(|r| r.1).sum::<f32>() / n,
    );
    assert!(
        mt > 0.25 && mt - mf > 0.15,
        "the output follows the scene: mean r {mt:.2} against {mf:.2} for a texture"
    );
    // And from a live run.
    let rec = dir.path().join("live.mkv");
    let o = record_test_source(&rec, "gan:foliage_transfer", "1.5");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(probe(&rec, &[], 16, 9).pts.len() >= 20);
}

/// A still landscape (no person) as a clip: generated content is all that moves.
fn still_clip(dir: &std::path::Path, w: u32, h: u32) -> std::path::PathBuf {
    let photo = dir.join(format!("landscape-{w}x{h}.png"));
    let rgb = segsynth::io::clip::landscape(w as usize, h as usize);
    image::RgbImage::from_raw(w, h, rgb)
        .expect("landscape")
        .save(&photo)
        .expect("save landscape");
    let clip = dir.join(format!("still-{w}x{h}.mp4"));
    let o = make_clip(
        &clip,
        &photo,
        (w, h, 150),
        &["--still", "--no-audio", "--fps", "30"],
    );
    assert!(o.status.success(), "make-clip: {}", stderr(&o));
    clip
}

/// `process --content background=gan:NAME --seed 7` decoded at 640x360, as luma.
fn generated(input: &std::path::Path, out: &std::path::Path, name: &str) -> Vec<Vec<u8>> {
    let content = format!("background=gan:{name}");
    let o = process(
        input,
        out,
        &["-q", "--overwrite", "--content", &content, "--seed", "7"],
    );
    assert!(o.status.success(), "gan:{name}: {}", stderr(&o));
    segsynth::io::clip::decode_luma(out, 640, 360).expect("decode the output")
}

/// What a viewer sees, for every shipped generator: on a still photo the content moves
/// like video (no step above 2 grey levels from frame to frame, at least 1 level of
/// change over every second), from the first frame on.
#[test]
fn shipped_generators_move_like_video_in_the_output() {
    use segsynth::pipeline::stats::Motion;
    let dir = tmpdir();
    let input = still_clip(dir.path(), 640, 360);
    let mut names: Vec<String> = shipped_generators(segsynth::model::Contract::Spatial)
        .into_iter()
        .chain(shipped_generators(segsynth::model::Contract::Image))
        .map(|(m, _)| m.name)
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no shipped generators found");
    for name in names {
        let frames = generated(&input, &dir.path().join(format!("{name}.mp4")), &name);
        assert_eq!(frames.len(), 150, "gan:{name}: frames decoded");
        let m = Motion::of(&frames, 30);
        eprintln!("gan:{name}: {m}");
        assert!(m.max_step <= 2.0, "gan:{name} jumps: {m}");
        assert!(m.min_second >= 1.0, "gan:{name} stands still: {m}");
    }
}

/// The same command gives the same decoded video, also while other processes load the CPU.
#[test]
fn generated_content_is_the_same_run_after_run_under_load() {
    let dir = tmpdir();
    let input = still_clip(dir.path(), 1280, 720);
    let quiet = generated(&input, &dir.path().join("quiet.mp4"), "foliage");
    let mut load: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("start a busy loop")
        })
        .collect();
    let loaded = generated(&input, &dir.path().join("loaded.mp4"), "foliage");
    for child in &mut load {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(quiet.len(), 150);
    let differing = quiet.iter().zip(&loaded).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} of 150 decoded frames differ between the runs"
    );
}
