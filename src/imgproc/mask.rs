//! Model output -> soft alpha for the chosen classes, then temporal smoothing,
//! edge shaping and feathering at model resolution, then smooth upsampling.

use super::blur::box_blur_f32;
use super::preprocess::Layout;
use super::refine::{DEFAULT_GUIDED, Guided, guided_grid};
use super::resize::upsample_unit_to_plane;
use crate::frame::{AlphaPlanes, Plane, chroma_size};

/// What the numbers in a segmentation output mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantics {
    /// One channel: probability of `classes[1]`; `classes[0]` gets `1 - p`.
    Sigmoid,
    /// C channels that already sum to one.
    Probabilities,
    /// C channels of raw scores; softmax is applied here.
    Logits,
    /// One integer class index per pixel (argmax done in the graph).
    Labels,
}

/// A borrowed segmentation output.
pub enum Scores<'a> {
    F32(&'a [f32]),
    Labels(&'a [i64]),
}

pub struct ScoreMap<'a> {
    pub scores: Scores<'a>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub layout: Layout,
    pub semantics: Semantics,
}

/// Soft alpha in [0,1] per model pixel: the probability that the pixel belongs to
/// any class with `selected[class] == true`.
pub fn class_alpha(map: &ScoreMap, selected: &[bool], out: &mut Vec<f32>) {
    let n = map.width * map.height;
    out.clear();
    out.resize(n, 0.0);
    let c = map.channels;
    let at = |d: &[f32], p: usize, k: usize| match map.layout {
        Layout::Nhwc => d[p * c + k],
        Layout::Nchw => d[k * n + p],
    };
    match (&map.scores, map.semantics) {
        (Scores::Labels(labels), _) => {
            for (o, &l) in out.iter_mut().zip(labels.iter()) {
                *o = if usize::try_from(l).is_ok_and(|l| selected.get(l).copied().unwrap_or(false))
                {
                    1.0
                } else {
                    0.0
                };
            }
        }
        (Scores::F32(d), Semantics::Sigmoid) => {
            let (neg, pos) = (
                selected.first().copied().unwrap_or(false),
                selected.get(1).copied().unwrap_or(false),
            );
            for (p, o) in out.iter_mut().enumerate() {
                let v = sanitize(d[p]).clamp(0.0, 1.0);
                *o = match (neg, pos) {
                    (true, true) => 1.0,
                    (false, true) => v,
                    (true, false) => 1.0 - v,
                    (false, false) => 0.0,
                };
            }
        }
        (Scores::F32(d), Semantics::Probabilities) => {
            for (p, o) in out.iter_mut().enumerate() {
                let s: f32 = (0..c)
                    .filter(|&k| selected[k])
                    .map(|k| sanitize(at(d, p, k)))
                    .sum();
                *o = s.clamp(0.0, 1.0);
            }
        }
        (Scores::F32(d), Semantics::Logits) => {
            for (p, o) in out.iter_mut().enumerate() {
                let max = (0..c)
                    .map(|k| sanitize(at(d, p, k)))
                    .fold(f32::MIN, f32::max);
                let (mut total, mut chosen) = (0.0f32, 0.0f32);
                for (k, &kept) in selected.iter().enumerate().take(c) {
                    let e = (sanitize(at(d, p, k)) - max).exp();
                    total += e;
                    if kept {
                        chosen += e;
                    }
                }
                *o = chosen / total;
            }
        }
        (Scores::F32(d), Semantics::Labels) => {
            for (p, o) in out.iter_mut().enumerate() {
                let l = d[p];
                *o = if l >= 0.0 && selected.get(l as usize).copied().unwrap_or(false) {
                    1.0
                } else {
                    0.0
                };
            }
        }
    }
}

fn sanitize(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(-1e4, 1e4) }
}

/// Mask shaping settings. Defaults were picked by looking at the selfie model on real clips.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskParams {
    /// Weight of the previous mask in the temporal filter (0 = off) for still pixels.
    pub temporal: f32,
    /// Changes larger than this (in alpha units) bypass the temporal filter so motion doesn't ghost.
    pub motion_threshold: f32,
    /// Alpha below `lo` becomes 0 and above `hi` becomes 1, smoothstep between: firmer edges
    /// without a hard threshold.
    pub lo: f32,
    pub hi: f32,
    /// Feather radius in frame pixels.
    pub feather: f32,
    /// Edge-aware upsampling guided by the frame's luma (`None`: plain bilinear).
    pub refine: Option<Guided>,
    /// How often the model runs (`--model-every`); frames between reuse its scores.
    pub model_every: crate::options::ModelEvery,
}

pub const DEFAULT_TEMPORAL: f32 = 0.6;
pub const DEFAULT_MOTION_THRESHOLD: f32 = 0.35;
pub const DEFAULT_EDGE: [f32; 2] = [0.2, 0.8];
pub const DEFAULT_FEATHER: f32 = 4.0;

impl Default for MaskParams {
    fn default() -> Self {
        MaskParams {
            temporal: DEFAULT_TEMPORAL,
            motion_threshold: DEFAULT_MOTION_THRESHOLD,
            lo: DEFAULT_EDGE[0],
            hi: DEFAULT_EDGE[1],
            feather: DEFAULT_FEATHER,
            refine: Some(DEFAULT_GUIDED),
            model_every: crate::options::ModelEvery::Auto,
        }
    }
}

/// Per-stream mask state (the temporal history).
pub struct MaskFilter {
    params: MaskParams,
    previous: Option<Vec<f32>>,
}

impl MaskFilter {
    pub fn new(params: MaskParams) -> Self {
        MaskFilter {
            params,
            previous: None,
        }
    }

    /// Shapes `alpha` (model resolution `w x h`) in place: temporal filter, edge
    /// curve, feather. `frame_width` converts the feather radius from frame pixels
    /// into model pixels.
    pub fn apply(&mut self, alpha: &mut [f32], w: usize, h: usize, frame_width: usize) {
        self.temporal(alpha);
        self.curve(alpha);
        let radius = feather_radius(self.params.feather, w, h, frame_width);
        box_blur_f32(alpha, w, h, radius);
    }

    /// The shaped alpha at the frame's luma and chroma sizes. Without refinement:
    /// `apply`, then a plain bilinear upsample. With it: feather the model's alpha,
    /// fit it to the luma's edges on the guide grid (`refine::guided_grid`), then the
    /// temporal filter and the edge curve there, then the upsample.
    pub fn frame_alpha(
        &mut self,
        alpha: &mut [f32],
        w: usize,
        h: usize,
        luma: &Plane,
    ) -> AlphaPlanes {
        let Some(g) = self.params.refine else {
            self.apply(alpha, w, h, luma.width);
            return upsample_alpha(alpha, w, h, luma.width, luma.height);
        };
        let radius = feather_radius(self.params.feather, w, h, luma.width);
        box_blur_f32(alpha, w, h, radius);
        let (mut q, gw, gh) = guided_grid(alpha, w, h, luma, &g);
        self.temporal(&mut q);
        self.curve(&mut q);
        upsample_alpha(&q, gw, gh, luma.width, luma.height)
    }

    /// Motion-adaptive EMA against the previous frame's map (of the same size).
    fn temporal(&mut self, alpha: &mut [f32]) {
        let p = &self.params;
        if let Some(prev) = self
            .previous
            .as_ref()
            .filter(|prev| prev.len() == alpha.len())
            && p.temporal > 0.0
        {
            for (a, &old) in alpha.iter_mut().zip(prev) {
                // Small flicker is averaged, real movement is followed at once.
                let change = (*a - old).abs();
                let keep = p.temporal * (1.0 - (change / p.motion_threshold).min(1.0));
                *a = keep * old + (1.0 - keep) * *a;
            }
        }
        match &mut self.previous {
            Some(prev) if prev.len() == alpha.len() => prev.copy_from_slice(alpha),
            slot => *slot = Some(alpha.to_vec()),
        }
    }

    /// The edge curve: smoothstep from `lo` to `hi`.
    fn curve(&self, alpha: &mut [f32]) {
        let p = &self.params;
        if p.hi > p.lo {
            for a in alpha.iter_mut() {
                let t = ((*a - p.lo) / (p.hi - p.lo)).clamp(0.0, 1.0);
                *a = t * t * (3.0 - 2.0 * t);
            }
        }
    }
}

/// The feather radius in mask pixels for a mask `w x h` over a frame `frame_width` wide,
/// capped at half the mask (a wider box only flattens the mask; tiny frames would
/// otherwise ask for radii far beyond it).
pub fn feather_radius(feather: f32, w: usize, h: usize, frame_width: usize) -> usize {
    let r = (feather * w as f32 / frame_width.max(1) as f32).round();
    (r.max(0.0) as usize).min(w.max(h) / 2)
}

pub fn upsample_alpha(
    alpha: &[f32],
    w: usize,
    h: usize,
    frame_w: usize,
    frame_h: usize,
) -> AlphaPlanes {
    let (cw, ch) = chroma_size(frame_w, frame_h);
    AlphaPlanes {
        luma: upsample_unit_to_plane(alpha, w, h, frame_w, frame_h),
        chroma: upsample_unit_to_plane(alpha, w, h, cw, ch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(
        scores: Scores<'a>,
        channels: usize,
        layout: Layout,
        semantics: Semantics,
    ) -> ScoreMap<'a> {
        ScoreMap {
            scores,
            width: 2,
            height: 1,
            channels,
            layout,
            semantics,
        }
    }

    #[test]
    fn sigmoid_selects_person_or_background() {
        let d = [0.9f32, 0.2];
        let mut out = Vec::new();
        class_alpha(
            &map(Scores::F32(&d), 1, Layout::Nhwc, Semantics::Sigmoid),
            &[false, true],
            &mut out,
        );
        assert_eq!(out, vec![0.9, 0.2]);
        class_alpha(
            &map(Scores::F32(&d), 1, Layout::Nhwc, Semantics::Sigmoid),
            &[true, false],
            &mut out,
        );
        assert!((out[0] - 0.1).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn logits_softmax_sums_selected_classes_in_either_layout() {
        // pixel 0 strongly class 2, pixel 1 strongly class 0.
        let nhwc = [0.0f32, 0.0, 10.0, 10.0, 0.0, 0.0];
        let nchw = [0.0f32, 10.0, 0.0, 0.0, 10.0, 0.0];
        let mut a = Vec::new();
        let mut b = Vec::new();
        class_alpha(
            &map(Scores::F32(&nhwc), 3, Layout::Nhwc, Semantics::Logits),
            &[false, false, true],
            &mut a,
        );
        class_alpha(
            &map(Scores::F32(&nchw), 3, Layout::Nchw, Semantics::Logits),
            &[false, false, true],
            &mut b,
        );
        assert!(a[0] > 0.99 && a[1] < 0.01);
        assert!((a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6);
    }

    #[test]
    fn labels_and_nan_are_safe() {
        let labels = [2i64, -1];
        let mut out = Vec::new();
        class_alpha(
            &map(Scores::Labels(&labels), 1, Layout::Nchw, Semantics::Labels),
            &[false, false, true],
            &mut out,
        );
        assert_eq!(out, vec![1.0, 0.0]);
        let d = [f32::NAN, 0.7];
        class_alpha(
            &map(Scores::F32(&d), 1, Layout::Nhwc, Semantics::Sigmoid),
            &[false, true],
            &mut out,
        );
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn temporal_filter_damps_flicker_but_follows_motion() {
        let params = MaskParams {
            refine: None,
            lo: 0.0,
            hi: 0.0,
            feather: 0.0,
            ..MaskParams::default()
        };
        let mut f = MaskFilter::new(params);
        let mut a = vec![0.5f32, 0.0];
        f.apply(&mut a, 2, 1, 2);
        let mut b = vec![0.6f32, 1.0]; // small flicker, big move
        f.apply(&mut b, 2, 1, 2);
        assert!(b[0] < 0.58 && b[0] > 0.5, "flicker damped: {}", b[0]);
        assert!(b[1] > 0.99, "motion followed: {}", b[1]);
    }

    /// A frame whose luma has a sharp vertical edge at `edge`, and the soft ramp a low
    /// resolution model gives across it: refined, far less of the mask lies on the
    /// wrong side of the edge (the halo band), and the flat sides stay as they were.
    #[test]
    fn refinement_moves_the_mask_edge_onto_the_luma_edge() {
        let (w, h) = (320, 64);
        let edge = 150;
        let mut luma = Plane::new(w, h, 40);
        for row in luma.data.chunks_exact_mut(w) {
            row[edge..].fill(200);
        }
        // Model resolution 64x16 (5 frame pixels each): a ramp 3 model pixels wide,
        // centred on the luma edge.
        let (mw, mh) = (64, 16);
        let centre = edge as f32 * mw as f32 / w as f32;
        let ramp: Vec<f32> = (0..mw * mh)
            .map(|i| (((i % mw) as f32 + 0.5 - centre) / 3.0 + 0.5).clamp(0.0, 1.0))
            .collect();
        let run = |refine| {
            let mut f = MaskFilter::new(MaskParams {
                temporal: 0.0,
                refine,
                ..MaskParams::default()
            });
            f.frame_alpha(&mut ramp.clone(), mw, mh, &luma)
        };
        let (plain, refined) = (run(None), run(Some(DEFAULT_GUIDED)));
        let row = h / 2 * w;
        // Mask 2..10 pixels outside the edge, in alpha levels.
        let band = |p: &Plane, x0: usize, x1: usize, r: usize| -> f32 {
            (x0..x1).map(|x| p.data[r + x] as f32).sum::<f32>() / (x1 - x0) as f32
        };
        let before = band(&plain.luma, edge - 10, edge - 2, row);
        let after = band(&refined.luma, edge - 10, edge - 2, row);
        assert!(
            before > 10.0,
            "the plain ramp spills over the edge: {before:.1}"
        );
        assert!(
            after < before * 0.5,
            "plain {before:.1}, refined {after:.1}"
        );
        // Away from the edge the mask is what it was.
        assert!(refined.luma.data[row + 5] < 3 && refined.luma.data[row + w - 5] > 252);
        assert_eq!((refined.chroma.width, refined.chroma.height), (160, 32));
        let crow = 16 * 160;
        let (cb, ca) = (
            band(&plain.chroma, edge / 2 - 5, edge / 2 - 1, crow),
            band(&refined.chroma, edge / 2 - 5, edge / 2 - 1, crow),
        );
        assert!(ca < cb * 0.5, "chroma: plain {cb:.1}, refined {ca:.1}");
    }

    #[test]
    fn edge_shaping_is_soft_not_binary() {
        let params = MaskParams {
            temporal: 0.0,
            feather: 0.0,
            refine: None,
            ..MaskParams::default()
        };
        let mut f = MaskFilter::new(params);
        let mut a = vec![0.1f32, 0.5, 0.9];
        let mut one = |v: &mut Vec<f32>| f.apply(v, 3, 1, 3);
        one(&mut a);
        assert_eq!(a[0], 0.0);
        assert!((a[1] - 0.5).abs() < 1e-6);
        assert_eq!(a[2], 1.0);
    }
}
