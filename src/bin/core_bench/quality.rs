//! Mask quality figures on a scene whose person mask is known: the halo the replaced
//! background leaves around the person, how much the mask flickers on a still scene,
//! and how far its edge lags on a moving one. The tests hold the figures to bounds and
//! the core benchmark prints them.
//!
//! The scene: the astronaut photo's person (cut out with the selfie model's own mask on
//! the photo, thresholded: that cut-out *is* the truth) over a flat light backdrop, so
//! every pixel outside the truth is known backdrop. The frames are the cut-out moved
//! across the frame, or held still with seeded sensor noise.

use segsynth::content::{Entry, cover};
use segsynth::frame::{AlphaPlanes, Frame, Matrix, Yuv420, rgb_to_yuv};
use segsynth::imgproc::mask::MaskParams;
use segsynth::infer::{InferError, Model};
use segsynth::options::ModelEvery;
use segsynth::pipeline::composite::Compositor;
use segsynth::pipeline::segment::Segmenter;

/// The backdrop behind the cut-out person: a light, slightly blue wall.
pub const BACKDROP: [u8; 3] = [205, 215, 230];
/// The replacement content in the halo figure: dark foliage green, so a light fringe shows.
pub const CONTENT: [u8; 3] = [30, 70, 30];

pub struct Scene {
    /// The person photo scaled to the frame height, RGB, and its truth mask.
    person: Vec<u8>,
    truth: Vec<bool>,
    side: usize,
    pub width: usize,
    pub height: usize,
}

/// One frame of a scene with its truth mask (true = person).
pub struct Shot {
    pub frame: Frame,
    pub truth: Vec<bool>,
}

impl Scene {
    /// `rgb` is a square person photo; `person_alpha` the soft person mask at the
    /// photo's size (0..=255). The frame is `width x height` with the photo scaled to
    /// its height.
    pub fn new(rgb: &[u8], side: usize, person_alpha: &[u8], width: usize, height: usize) -> Scene {
        let mut cut = rgb.to_vec();
        for (px, &a) in cut.chunks_exact_mut(3).zip(person_alpha) {
            if a < 128 {
                px.copy_from_slice(&BACKDROP);
            }
        }
        // Scaled with a filter (the cut edge gets the 1-2 pixel softness a camera
        // gives); the truth is the thresholded mask scaled the same way.
        let person = cover(&cut, side, side, height, height);
        let mask: Vec<u8> = person_alpha
            .iter()
            .flat_map(|&a| {
                let v = if a < 128 { 0 } else { 255 };
                [v, v, v]
            })
            .collect();
        let truth = cover(&mask, side, side, height, height)
            .chunks_exact(3)
            .map(|p| p[0] >= 128)
            .collect();
        Scene {
            person,
            truth,
            side: height,
            width,
            height,
        }
    }

    /// The frame with the person's left edge at `x0`, and luma noise of amplitude
    /// `noise` (uniform, seeded by `seed`; 0 = none).
    pub fn shot(&self, index: u64, x0: usize, noise: u8, seed: u64) -> Shot {
        let (w, h, s) = (self.width, self.height, self.side);
        let mut rgb = Vec::with_capacity(w * h * 3);
        let mut truth = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let inside = x >= x0 && x < x0 + s;
                let i = y * s + x.wrapping_sub(x0);
                if inside {
                    rgb.extend_from_slice(&self.person[i * 3..i * 3 + 3]);
                    truth[y * w + x] = self.truth[i];
                } else {
                    rgb.extend_from_slice(&BACKDROP);
                }
            }
        }
        let mut picture = Yuv420::from_rgb(&rgb, w, h, Matrix::Bt709);
        if noise > 0 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for v in &mut picture.y.data {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = (state % (2 * noise as u64 + 1)) as i32 - noise as i32;
                *v = (*v as i32 + n).clamp(0, 255) as u8;
            }
        }
        Shot {
            frame: Frame {
                index,
                pts: Some(index * 33_333_333),
                duration: Some(33_333_333),
                matrix: Matrix::Bt709,
                picture,
            },
            truth,
        }
    }
}

/// The scene from a person photo (`tests/data/astronaut.jpg`): the truth is the
/// model's own person probability on the photo, thresholded at one half.
pub fn photo_scene(
    photo: &std::path::Path,
    open: &dyn Fn() -> Result<Model, InferError>,
    width: usize,
    height: usize,
) -> Result<Scene, segsynth::job::JobError> {
    let (rgb, pw, ph) = segsynth::content::load_image(photo)?;
    let side = pw.min(ph);
    let square = cover(&rgb, pw, ph, side, side);
    let raw = MaskParams {
        temporal: 0.0,
        lo: 0.0,
        hi: 0.0,
        feather: 0.0,
        refine: None,
        ..MaskParams::default()
    };
    let person = [Entry {
        classes: vec!["person".into()],
        content: segsynth::content::ContentKind::Mask,
    }];
    let mut seg = Segmenter::new(open()?, &person, &raw)?;
    let frame = Frame {
        index: 0,
        pts: None,
        duration: None,
        matrix: Matrix::Bt709,
        picture: Yuv420::from_rgb(&square, side, side, Matrix::Bt709),
    };
    let alpha = seg.masks(&frame)?.swap_remove(0);
    Ok(Scene::new(&square, side, &alpha.luma.data, width, height))
}

/// Chessboard distance of every pixel to the truth's edge: positive outside the
/// person, negative inside, capped at `cap`.
pub fn edge_distance(truth: &[bool], w: usize, h: usize, cap: i32) -> Vec<i32> {
    let side = |inside: bool| -> Vec<i32> {
        // Distance to the nearest pixel of the other side, by repeated 3x3 dilation.
        let mut d: Vec<i32> = truth
            .iter()
            .map(|&t| if t == inside { 0 } else { cap })
            .collect();
        for step in 1..cap {
            let prev = d.clone();
            for y in 0..h {
                for x in 0..w {
                    if prev[y * w + x] != cap {
                        continue;
                    }
                    let near = (y.saturating_sub(1)..(y + 2).min(h)).any(|yy| {
                        (x.saturating_sub(1)..(x + 2).min(w))
                            .any(|xx| prev[yy * w + xx] == step - 1)
                    });
                    if near {
                        d[y * w + x] = step;
                    }
                }
            }
        }
        d
    };
    let to_person = side(true);
    let to_outside = side(false);
    truth
        .iter()
        .zip(to_person.iter().zip(&to_outside))
        .map(|(&t, (&p, &o))| if t { -o } else { p })
        .collect()
}

/// The x centroid of the person weight (255 - alpha: entry 0 covers the background).
fn centroid_x(a: &AlphaPlanes, w: usize) -> f64 {
    let (mut sx, mut sw) = (0.0, 0.0);
    for (k, &al) in a.luma.data.iter().enumerate() {
        let p = (255 - al) as f64;
        sx += p * (k % w) as f64;
        sw += p;
    }
    sx / sw.max(1.0)
}

/// The figures of one mask configuration.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    /// Mean |output - content| (luma levels) in the band 2-10 px outside the person.
    pub halo: f64,
    /// Mean |output - input| (luma levels) more than 10 px inside the person.
    pub interior: f64,
    /// Mean frame-to-frame change of the alpha (levels of 255) within 10 px of the
    /// edge, on a still scene with sensor noise.
    pub flicker: f64,
    /// How many frames the temporal filter makes the mask trail a person moving at
    /// 4 px a frame (alpha-weighted centroids, against the same steps without it).
    pub lag_frames: f64,
}

const SPEED: usize = 4;

/// The scene's still frame and its composited output, after three frames that settle
/// the temporal filter.
pub fn still(
    scene: &Scene,
    entries: &[Entry],
    params: &MaskParams,
    open: &dyn Fn() -> Result<Model, InferError>,
) -> Result<(Shot, Frame), segsynth::job::JobError> {
    let x0 = (scene.width - scene.side) / 2;
    let mut seg = Segmenter::new(open()?, entries, params)?;
    let mut comp = Compositor::new(entries, &[])?;
    comp.unmix = params.refine.is_some();
    let mut last = None;
    for i in 0..4 {
        let shot = scene.shot(i, x0, 0, 0);
        let masks = seg.masks(&shot.frame)?;
        let mut out = shot.frame.clone();
        comp.composite(&mut out, &masks)?;
        last = Some((shot, out));
    }
    Ok(last.expect("four frames"))
}

/// Measures `params` on `scene` with the model `open` gives (called once per run).
pub fn measure(
    scene: &Scene,
    entries: &[Entry],
    params: &MaskParams,
    open: &dyn Fn() -> Result<Model, InferError>,
) -> Result<Figures, segsynth::job::JobError> {
    let (w, h) = (scene.width, scene.height);
    let x0 = (w - scene.side) / 2;
    // Halo and interior: one still frame after a few to settle the temporal filter.
    let (shot, out) = still(scene, entries, params, open)?;
    let dist = edge_distance(&shot.truth, w, h, 12);
    let (cy, _, _) = rgb_to_yuv(Matrix::Bt709, CONTENT[0], CONTENT[1], CONTENT[2]);
    let mean = |pick: &dyn Fn(usize) -> Option<f64>| -> f64 {
        let v: Vec<f64> = (0..w * h).filter_map(pick).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let y_out = &out.picture.y.data;
    let y_in = &shot.frame.picture.y.data;
    let halo = mean(&|i| {
        (2..=10)
            .contains(&dist[i])
            .then(|| (y_out[i] as f64 - cy as f64).abs())
    });
    let interior = mean(&|i| (dist[i] < -10).then(|| (y_out[i] as f64 - y_in[i] as f64).abs()));

    // Flicker: a still scene with +-6 levels of luma noise.
    let mut seg = Segmenter::new(open()?, entries, params)?;
    let mut previous: Option<AlphaPlanes> = None;
    let mut changes = Vec::new();
    for i in 0..16 {
        let shot = scene.shot(i, x0, 6, i + 1);
        let a = seg.masks(&shot.frame)?.swap_remove(0);
        if let Some(p) = &previous
            && i > 2
        {
            changes.push(mean(&|k| {
                (dist[k].abs() <= 10).then(|| a.luma.data[k].abs_diff(p.luma.data[k]) as f64)
            }));
        }
        previous = Some(a);
    }
    let flicker = changes.iter().sum::<f64>() / changes.len().max(1) as f64;

    // Lag: the person crosses the frame at SPEED px per frame. The same frames through
    // the same steps without the temporal filter give the mask's own offset (the model
    // is not symmetric about the person); the difference is what the filter adds.
    let mut seg = Segmenter::new(open()?, entries, params)?;
    let instant = MaskParams {
        temporal: 0.0,
        ..params.clone()
    };
    let mut reference = Segmenter::new(open()?, entries, &instant)?;
    let mut lags = Vec::new();
    let frames = ((w - scene.side) / SPEED).min(40);
    for i in 0..frames {
        let shot = scene.shot(i as u64, i * SPEED, 0, 0);
        let a = seg.masks(&shot.frame)?.swap_remove(0);
        let r = reference.masks(&shot.frame)?.swap_remove(0);
        if i >= 4 {
            lags.push((centroid_x(&r, w) - centroid_x(&a, w)) / SPEED as f64);
        }
    }
    let lag_frames = lags.iter().sum::<f64>() / lags.len().max(1) as f64;
    Ok(Figures {
        halo,
        interior,
        flicker,
        lag_frames,
    })
}

/// How the masks of `params` (its `model_every`) agree with the model run on every frame.
#[derive(Clone, Copy, Debug)]
pub struct Agreement {
    /// Intersection over union of the person (the entry's alpha at or above one half).
    pub mean_iou: f64,
    pub worst_iou: f64,
    /// Frames the model ran on, of `frames`.
    pub runs: u64,
    pub frames: u64,
}

/// `params` against the same settings with the model on every frame, over `frames`;
/// `entries` must select the person (entry 0).
pub fn agreement(
    frames: impl Iterator<Item = Frame>,
    entries: &[Entry],
    params: &MaskParams,
    open: &dyn Fn() -> Result<Model, InferError>,
) -> Result<Agreement, segsynth::job::JobError> {
    let every = MaskParams {
        model_every: ModelEvery::Frames(1),
        ..params.clone()
    };
    let mut sparse = Segmenter::new(open()?, entries, params)?;
    let mut full = Segmenter::new(open()?, entries, &every)?;
    let mut ious = Vec::new();
    for frame in frames {
        let a = sparse.masks(&frame)?.swap_remove(0);
        let b = full.masks(&frame)?.swap_remove(0);
        ious.push(iou(&a.luma.data, &b.luma.data));
    }
    let (runs, frames) = sparse.model_runs();
    Ok(Agreement {
        mean_iou: ious.iter().sum::<f64>() / ious.len().max(1) as f64,
        worst_iou: ious.iter().copied().fold(1.0, f64::min),
        runs,
        frames,
    })
}

/// Intersection over union of the pixels at or above one half (1 when both are empty).
fn iou(a: &[u8], b: &[u8]) -> f64 {
    let (mut both, mut either) = (0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x >= 128, y >= 128);
        both += (x && y) as u64;
        either += (x || y) as u64;
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

impl Scene {
    /// `n` frames of the person walking across the frame at `speed` pixels a frame
    /// (back and forth), with a little sensor noise.
    pub fn walk(&self, n: u64, speed: usize) -> impl Iterator<Item = Frame> + '_ {
        let span = (self.width - self.side).max(1);
        (0..n).map(move |i| {
            let d = (i as usize * speed) % (2 * span);
            let x0 = if d < span { d } else { 2 * span - d };
            self.shot(i, x0, 3, i + 1).frame
        })
    }
}

/// The first `n` of `period` frames (`w x h`) of a camera panning and zooming over a
/// photo (RGB, `pw x ph`): over the period the view narrows to 70 % while it drifts
/// sideways and back.
pub fn pan_zoom(
    rgb: &[u8],
    (pw, ph): (usize, usize),
    (w, h): (usize, usize),
    (n, period): (u64, u64),
) -> impl Iterator<Item = Frame> + '_ {
    (0..n).map(move |i| {
        let t = i as f64 / period.max(1) as f64;
        let cw = (pw as f64 * (1.0 - 0.3 * t)).min(ph as f64 * w as f64 / h as f64);
        let ch = cw * h as f64 / w as f64;
        let cx = (pw as f64 - cw) * (0.5 + 0.5 * (t * std::f64::consts::TAU).sin());
        let cy = (ph as f64 - ch) * 0.5;
        let (x0, y0, cw, ch) = (cx as usize, cy as usize, cw as usize, ch as usize);
        let mut crop = Vec::with_capacity(cw * ch * 3);
        for y in y0..y0 + ch {
            crop.extend_from_slice(&rgb[(y * pw + x0) * 3..(y * pw + x0 + cw) * 3]);
        }
        let pixels = cover(&crop, cw, ch, w, h);
        Frame {
            index: i,
            pts: Some(i * 33_333_333),
            duration: Some(33_333_333),
            matrix: Matrix::Bt709,
            picture: Yuv420::from_rgb(&pixels, w, h, Matrix::Bt709),
        }
    })
}

/// The clips the model rate is judged on (each 90 frames, 640x360-like, from `scene`
/// and its photo): a camera sweeping across the photo in 3 s and in 10 s, the person
/// walking across the frame at 4 px a frame, and the person still with sensor noise.
pub fn rate_figures(
    (rgb, pw, ph): (&[u8], usize, usize),
    scene: &Scene,
    entries: &[Entry],
    params: &MaskParams,
    open: &dyn Fn() -> Result<Model, InferError>,
) -> Result<Vec<(&'static str, Agreement)>, segsynth::job::JobError> {
    let size = (scene.width, scene.height);
    Ok(vec![
        (
            "fast pan/zoom",
            agreement(
                pan_zoom(rgb, (pw, ph), size, (90, 90)),
                entries,
                params,
                open,
            )?,
        ),
        (
            "slow pan/zoom",
            agreement(
                pan_zoom(rgb, (pw, ph), size, (90, 300)),
                entries,
                params,
                open,
            )?,
        ),
        (
            "walking person",
            agreement(scene.walk(90, 4), entries, params, open)?,
        ),
        (
            "still person",
            agreement(scene.walk(90, 0), entries, params, open)?,
        ),
    ])
}
