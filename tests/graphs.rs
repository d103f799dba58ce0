//! The ONNX pixel graphs (`infer::graphs`) against the native reference (`imgproc`),
//! run through real ONNX Runtime on synthetic frames and scores.

use segsynth::content::{ContentKind, Entry};
use segsynth::frame::{AlphaPlanes, Frame, Matrix, Plane, Yuv420};
use segsynth::imgproc::blend::blend_picture;
use segsynth::imgproc::mask::{MaskFilter, MaskParams, ScoreMap, Scores, Semantics, class_alpha};
use segsynth::imgproc::preprocess::{Layout, Sampling, TensorGeometry, frame_to_tensor};
use segsynth::infer::chain::SegmentChain;
use segsynth::infer::graphs::{BlendGraph, BlendLayer, MaskGraph, PrepGraph, ScoreLayout};
use segsynth::infer::{Device, Model, SessionOptions};
use segsynth::job::models_dir;
use segsynth::model::{Manifest, resolve};
use segsynth::pipeline::composite::Compositor;
use segsynth::pipeline::segment::Segmenter;

fn cpu() -> SessionOptions {
    SessionOptions {
        threads: 1,
        device: Device::Cpu,
    }
}

/// A busy test picture: gradients, a disc and a hard edge, so resampling errors show.
fn picture(w: usize, h: usize, seed: usize) -> Yuv420 {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let d =
                ((x as f32 - w as f32 * 0.45).powi(2) + (y as f32 - h as f32 * 0.5).powi(2)).sqrt();
            let disc = d < h as f32 * 0.3;
            rgb[i] = if disc { 230 } else { ((x * 255) / w) as u8 };
            rgb[i + 1] = ((y * 255 / h + seed * 17) % 256) as u8;
            rgb[i + 2] = if x % 37 < 18 { 40 } else { 200 };
        }
    }
    Yuv420::from_rgb(&rgb, w, h, Matrix::Bt709)
}

fn diff_u8(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    let mean = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64;
    (max, mean)
}

#[test]
fn prep_graph_matches_native_sampling_and_normalisation() {
    // Odd sizes on purpose: chroma planes are ceil(w/2) x ceil(h/2).
    let (w, h) = (333, 187);
    let pic = picture(w, h, 1);
    for (layout, sampling, scale, offset) in [
        (Layout::Nhwc, Sampling::Corner, [1.0; 3], [0.0; 3]),
        (
            Layout::Nchw,
            Sampling::HalfPixel,
            [2.0, 4.0, 1.0],
            [-1.0, -2.0, 0.5],
        ),
    ] {
        let g = TensorGeometry {
            width: 64,
            height: 40,
            layout,
            sampling,
            scale,
            offset,
        };
        let mut native = Vec::new();
        frame_to_tensor(&pic, Matrix::Bt709, &g, &mut native);
        let mut graph = PrepGraph::new(w, h, Matrix::Bt709, &g, &cpu()).expect("build prep graph");
        let mut out = Vec::new();
        graph.run(&pic, &mut out).expect("run prep graph");
        assert_eq!(out.len(), native.len());
        let max = out
            .iter()
            .zip(&native)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-3, "{layout:?} {sampling:?}: max diff {max}");
    }
}

/// Native alpha planes for one entry, frames in a row (so the temporal filter acts).
fn native_alpha(
    frames: &[Vec<f32>],
    layout: &ScoreLayout,
    selected: &[bool],
    params: &MaskParams,
    luma: &Plane,
) -> AlphaPlanes {
    let s = &layout.shape;
    let (channels, mh, mw) = match layout.layout {
        Layout::Nchw => (s[1], s[2], s[3]),
        Layout::Nhwc => (s[3], s[1], s[2]),
    };
    let mut filter = MaskFilter::new(params.clone());
    let mut alpha = Vec::new();
    let mut last = None;
    for f in frames {
        let m = ScoreMap {
            scores: Scores::F32(f),
            width: mw as usize,
            height: mh as usize,
            channels: channels as usize,
            layout: layout.layout,
            semantics: layout.semantics,
        };
        class_alpha(&m, selected, &mut alpha);
        last = Some(filter.frame_alpha(&mut alpha, m.width, m.height, luma));
    }
    last.expect("at least one frame")
}

#[test]
fn mask_graph_matches_native_selection_filter_and_upsampling() {
    let (w, h) = (320, 180);
    let (mw, mh) = (32, 18);
    let params = MaskParams::default();
    // Sigmoid (NHWC, one channel) with both entries, then logits (NCHW, 3 classes).
    let ramp = |t: f32| -> Vec<f32> {
        (0..mw * mh)
            .map(|i| {
                let (x, y) = ((i % mw) as f32, (i / mw) as f32);
                (((x - 12.0 - t) / 4.0).tanh() * 0.5 + 0.5) * (0.8 + 0.2 * (y / mh as f32))
            })
            .collect()
    };
    let sigmoid = ScoreLayout {
        shape: vec![1, mh as i64, mw as i64, 1],
        layout: Layout::Nhwc,
        semantics: Semantics::Sigmoid,
    };
    check_mask(
        &[ramp(0.0), ramp(1.5)],
        &sigmoid,
        &[vec![true, false], vec![false, true]],
        &params,
        (w, h),
    );
    // Non-finite scores are cleaned the same way (NaN -> 0, clamped) in both.
    let mut poisoned = ramp(0.5);
    for i in (0..poisoned.len()).step_by(7) {
        poisoned[i] = if i % 2 == 0 { f32::NAN } else { f32::INFINITY };
    }
    check_mask(
        &[ramp(0.0), poisoned, ramp(1.0)],
        &sigmoid,
        &[vec![true, false], vec![false, true]],
        &params,
        (w, h),
    );
    let logits = |t: f32| -> Vec<f32> {
        let mut d = vec![0.0f32; 3 * mw * mh];
        for i in 0..mw * mh {
            let (x, y) = ((i % mw) as f32, (i / mw) as f32);
            d[i] = (x - 8.0 - t) * 0.7;
            d[mw * mh + i] = (y - 9.0) * 0.9;
            d[2 * mw * mh + i] = 2.0 - (x - 20.0).abs() * 0.5;
        }
        d
    };
    check_mask(
        &[logits(0.0), logits(2.0)],
        &ScoreLayout {
            shape: vec![1, 3, mh as i64, mw as i64],
            layout: Layout::Nchw,
            semantics: Semantics::Logits,
        },
        &[vec![true, false, true], vec![false, true, false]],
        &params,
        (w, h),
    );
}

fn check_mask(
    frames: &[Vec<f32>],
    layout: &ScoreLayout,
    selections: &[Vec<bool>],
    params: &MaskParams,
    (w, h): (usize, usize),
) {
    // Both upsampling steps: guided by the picture's luma (the default) and plain.
    let luma = picture(w, h, 3).y;
    for params in [
        params.clone(),
        MaskParams {
            refine: None,
            ..params.clone()
        },
    ] {
        check_mask_steps(frames, layout, selections, &params, &luma);
    }
}

fn check_mask_steps(
    frames: &[Vec<f32>],
    layout: &ScoreLayout,
    selections: &[Vec<bool>],
    params: &MaskParams,
    luma: &Plane,
) {
    let (w, h) = (luma.width, luma.height);
    let mut graph =
        MaskGraph::new(layout, selections, params, w, h, &cpu()).expect("build mask graph");
    let mut planes = Vec::new();
    for f in frames {
        planes = graph.run(f, &layout.shape, luma).expect("run mask graph");
    }
    assert_eq!(planes.len(), selections.len());
    for (e, selected) in selections.iter().enumerate() {
        let native = native_alpha(frames, layout, selected, params, luma);
        let (luma, chroma) = (&planes[e].luma.data, &planes[e].chroma.data);
        let what = format!(
            "{:?} entry {e} refine {:?}",
            layout.semantics, params.refine
        );
        let (max, mean) = diff_u8(luma, &native.luma.data);
        assert!(max <= 2 && mean < 0.2, "{what} luma: max {max} mean {mean}");
        let (max, mean) = diff_u8(chroma, &native.chroma.data);
        assert!(
            max <= 2 && mean < 0.2,
            "{what} chroma: max {max} mean {mean}"
        );
        // Not vacuous: the alpha has both ends and a soft edge.
        assert!(
            luma.contains(&0) && luma.contains(&255) && luma.iter().any(|&a| a > 60 && a < 200),
            "{what}: alpha lacks range"
        );
    }
}

fn ramp_alpha(w: usize, h: usize, reverse: bool) -> AlphaPlanes {
    let plane = |pw: usize, ph: usize| segsynth::frame::Plane {
        width: pw,
        height: ph,
        data: (0..pw * ph)
            .map(|i| {
                let x = (i % pw) * 255 / (pw - 1);
                (if reverse { 255 - x } else { x }) as u8
            })
            .collect(),
    };
    let (cw, ch) = segsynth::frame::chroma_size(w, h);
    AlphaPlanes {
        luma: plane(w, h),
        chroma: plane(cw, ch),
    }
}

#[test]
fn blend_graph_matches_the_compositor() {
    let (w, h) = (321, 181);
    let pic = picture(w, h, 2);
    let content = picture(w, h, 7);
    let alphas = [
        ramp_alpha(w, h, false),
        ramp_alpha(w, h, true),
        ramp_alpha(w, h, false),
    ];
    // Native: blur + colour through the compositor, then a picture layer.
    let entries = vec![
        Entry {
            classes: vec!["background".into()],
            content: ContentKind::Blur { radius: 24 },
        },
        Entry {
            classes: vec!["person".into()],
            content: ContentKind::Color { rgb: [30, 200, 90] },
        },
    ];
    let mut native = Frame {
        index: 0,
        pts: Some(0),
        duration: None,
        matrix: Matrix::Bt709,
        picture: pic.clone(),
    };
    Compositor::new(&entries, &[])
        .expect("compositor")
        .composite(&mut native, &alphas[..2])
        .expect("native composite");
    blend_picture(&mut native.picture, &content, &alphas[2]);

    let colour = segsynth::frame::rgb_to_yuv(Matrix::Bt709, 30, 200, 90);
    let layers = [
        BlendLayer::Blur(24),
        BlendLayer::Value(colour.0, colour.1, colour.2),
        BlendLayer::Picture,
    ];
    let mut graph =
        BlendGraph::new(&layers, false, false, w, h, &cpu()).expect("build blend graph");
    let mut out = pic.clone();
    graph
        .run(&mut out, &alphas, &[&content])
        .expect("run blend graph");
    for (name, a, b) in [
        ("y", &out.y.data, &native.picture.y.data),
        ("u", &out.u.data, &native.picture.u.data),
        ("v", &out.v.data, &native.picture.v.data),
    ] {
        let (max, mean) = diff_u8(a, b);
        assert!(
            max <= 4 && mean < 0.6,
            "plane {name}: max {max} mean {mean}"
        );
    }
    assert_ne!(out, pic, "the blend changed the frame");
}

/// Alpha 0 on the left third, 255 on the right third, a ramp between.
fn band_alpha(w: usize, h: usize) -> AlphaPlanes {
    let plane = |pw: usize, ph: usize| Plane {
        width: pw,
        height: ph,
        data: (0..pw * ph)
            .map(|i| ((i % pw) as f32 * 3.0 / pw as f32 - 1.0).clamp(0.0, 1.0))
            .map(|t| (t * 255.0).round() as u8)
            .collect(),
    };
    let (cw, ch) = segsynth::frame::chroma_size(w, h);
    AlphaPlanes {
        luma: plane(w, h),
        chroma: plane(cw, ch),
    }
}

#[test]
fn blend_graph_unmixes_the_edge_like_the_compositor() {
    let (w, h) = (203, 77);
    let pic = picture(w, h, 4);
    let alphas = [band_alpha(w, h)];
    let entries = vec![Entry {
        classes: vec!["background".into()],
        content: ContentKind::Color { rgb: [30, 70, 30] },
    }];
    let frame = |picture: Yuv420| Frame {
        index: 0,
        pts: Some(0),
        duration: None,
        matrix: Matrix::Bt709,
        picture,
    };
    let mut plain = frame(pic.clone());
    Compositor::new(&entries, &[])
        .expect("compositor")
        .composite(&mut plain, &alphas)
        .expect("plain composite");
    let mut native = frame(pic.clone());
    let mut compositor = Compositor::new(&entries, &[]).expect("compositor");
    compositor.unmix = true;
    compositor
        .composite(&mut native, &alphas)
        .expect("native composite");
    let colour = segsynth::frame::rgb_to_yuv(Matrix::Bt709, 30, 70, 30);
    let layers = [BlendLayer::Value(colour.0, colour.1, colour.2)];
    let mut graph = BlendGraph::new(&layers, false, true, w, h, &cpu()).expect("build blend graph");
    let mut out = pic.clone();
    graph.run(&mut out, &alphas, &[]).expect("run blend graph");
    for (name, a, b, p) in [
        (
            "y",
            &out.y.data,
            &native.picture.y.data,
            &plain.picture.y.data,
        ),
        (
            "u",
            &out.u.data,
            &native.picture.u.data,
            &plain.picture.u.data,
        ),
        (
            "v",
            &out.v.data,
            &native.picture.v.data,
            &plain.picture.v.data,
        ),
    ] {
        let (max, mean) = diff_u8(a, b);
        assert!(max <= 2 && mean < 0.1, "{name}: max {max} mean {mean}");
        // Not vacuous: unmixing changed the edge band.
        let (_, moved) = diff_u8(b, p);
        assert!(moved > 0.5, "{name}: unmixing moved the band by {moved}");
    }
}

/// The astronaut photo as a frame: a real person for the real selfie model.
fn astronaut(w: usize, h: usize) -> Yuv420 {
    let (rgb, sw, sh) =
        segsynth::content::load_image(&crate::support::data("astronaut.jpg")).expect("photo");
    let fitted = segsynth::content::cover(&rgb, sw, sh, w, h);
    Yuv420::from_rgb(&fitted, w, h, Matrix::Bt709)
}

#[test]
fn bound_chain_matches_the_native_segmenter_on_the_selfie_model() {
    let (w, h) = (480, 270);
    // The landscape variant: the chain must follow a non-square model input too.
    let manifest = Manifest::load(&resolve("selfie_landscape", &models_dir()).expect("manifest"))
        .expect("load");
    let entries = vec![
        Entry {
            classes: vec!["background".into()],
            content: ContentKind::Blur { radius: 16 },
        },
        Entry {
            classes: vec!["person".into()],
            content: ContentKind::Mask,
        },
    ];
    // The chain runs the model on every frame; so does the native path here.
    let params = MaskParams {
        model_every: segsynth::options::ModelEvery::Frames(1),
        ..MaskParams::default()
    };
    let mut native = Segmenter::new(
        Model::open(manifest.clone(), &cpu()).expect("open model"),
        &entries,
        &params,
    )
    .expect("segmenter");
    let mut chain = SegmentChain::new(
        Model::open(manifest, &cpu()).expect("open model"),
        &[vec![true, false], vec![false, true]],
        &params,
        (w, h),
        Matrix::Bt709,
        &cpu(),
    )
    .map_err(|(_, e)| e)
    .expect("bound chain");
    assert_eq!(chain.provider(), "CPUExecutionProvider");
    let still = astronaut(w, h);
    // Three frames: the temporal state is carried (and ping-pongs) inside the chain.
    for i in 0..3 {
        let mut pic = still.clone();
        // Shift the photo a little each frame so the state matters.
        pic.y.data.rotate_left(i * 6);
        let frame = Frame {
            index: i as u64,
            pts: Some(i as u64),
            duration: None,
            matrix: Matrix::Bt709,
            picture: pic,
        };
        let a = native.masks(&frame).expect("native masks");
        let b = chain.alphas(&frame.picture).expect("chain alphas");
        assert_eq!(a.len(), b.len());
        for (e, (a, b)) in a.iter().zip(&b).enumerate() {
            let (max, mean) = diff_u8(&a.luma.data, &b.luma.data);
            // The guided filter divides by the local variance: a few pixels move by
            // more than the plain path's rounding.
            assert!(
                max <= 6 && mean < 0.3,
                "frame {i} entry {e}: max {max} mean {mean}"
            );
            let (max, mean) = diff_u8(&a.chroma.data, &b.chroma.data);
            assert!(
                max <= 6 && mean < 0.3,
                "frame {i} entry {e} chroma: max {max} mean {mean}"
            );
        }
        let person = &b[1].luma.data;
        let covered = person.iter().filter(|&&v| v > 200).count() as f64 / person.len() as f64;
        assert!(
            covered > 0.1 && covered < 0.9,
            "the astronaut is found: {covered:.2}"
        );
    }
}

#[test]
fn file_job_with_pixel_graphs_matches_native_kernels() {
    use crate::support::*;
    let input = person_clip(320, 180, 20);
    let dir = tmpdir();
    let mut thumbs = Vec::new();
    for (pixels, content) in [
        ("native", "blur:24"),
        ("graph", "blur:24"),
        ("native", "color:#00ff00"),
        ("graph", "color:#00ff00"),
    ] {
        let out = dir
            .path()
            .join(format!("{pixels}-{}.mp4", content.replace([':', '#'], "")));
        // High quality, so the comparison sees the pixel paths and not coding noise.
        let o = process(
            &input,
            &out,
            &["--content", content, "--pixels", pixels, "--crf", "12"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let label = if pixels == "graph" {
            "ONNX graphs"
        } else {
            "native kernels"
        };
        assert!(
            stderr(&o).contains(&format!("per-pixel steps: {label}")),
            "summary names the pixel path:\n{}",
            stderr(&o)
        );
        thumbs.push(probe(&out, &[15], 160, 90).thumb(15).to_vec());
    }
    let input_thumb = probe(&input, &[15], 160, 90).thumb(15).to_vec();
    for (pair, what) in [(0, "blur"), (2, "colour")] {
        let d = mean_abs_diff(&thumbs[pair], &thumbs[pair + 1]);
        assert!(d < 1.5, "{what}: graph and native outputs differ by {d}");
        // Not vacuous: both really changed the frame.
        let changed = mean_abs_diff(&thumbs[pair], &input_thumb);
        assert!(changed > 3.0, "{what}: content applied ({changed})");
    }
}

#[test]
fn tiny_frames_cap_the_feather_in_both_paths() {
    // A 3x5 frame asks for a feather of 4 * 32 / 3 mask pixels; both paths cap it at half
    // the mask and agree (before the cap the graph's box filter took minutes).
    let (w, h) = (3, 5);
    let (mw, mh) = (32usize, 18usize);
    let scores: Vec<f32> = (0..mw * mh)
        .map(|i| if i % mw < 16 { 0.9 } else { 0.1 })
        .collect();
    let layout = ScoreLayout {
        shape: vec![1, mh as i64, mw as i64, 1],
        layout: Layout::Nhwc,
        semantics: Semantics::Sigmoid,
    };
    let params = MaskParams::default();
    assert_eq!(
        segsynth::imgproc::mask::feather_radius(params.feather, mw, mh, w),
        16
    );
    let mut graph = MaskGraph::new(&layout, &[vec![false, true]], &params, w, h, &cpu())
        .expect("build mask graph");
    let luma = picture(w, h, 1).y;
    let planes = graph
        .run(&scores, &layout.shape, &luma)
        .expect("run mask graph");
    let native = native_alpha(
        std::slice::from_ref(&scores),
        &layout,
        &[false, true],
        &params,
        &luma,
    );
    let (max, _) = diff_u8(&planes[0].luma.data, &native.luma.data);
    assert!(max <= 2, "tiny frame: graph and native differ by {max}");
}
