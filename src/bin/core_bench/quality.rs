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
