//! Model output -> soft alpha for the chosen classes, then temporal smoothing,
//! edge shaping and feathering at model resolution, then smooth upsampling.

use super::blur::box_blur_f32;
use super::preprocess::Layout;
use super::resize::upsample_unit_to_plane;
use crate::frame::{AlphaPlanes, chroma_size};

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
                for k in 0..c {
                    let e = (sanitize(at(d, p, k)) - max).exp();
                    total += e;
                    if selected[k] {
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

    /// Shapes `alpha` (model resolution `w x h`) in place. `frame_width` converts the
    /// feather radius from frame pixels into model pixels.
    pub fn apply(&mut self, alpha: &mut [f32], w: usize, h: usize, frame_width: usize) {
        let p = &self.params;
        if let Some(prev) = self
            .previous
            .as_ref()
            .filter(|prev| prev.len() == alpha.len())
            && p.temporal > 0.0
        {
            for (a, &old) in alpha.iter_mut().zip(prev) {
                // Motion-adaptive EMA: small flicker is averaged, real movement is followed at once.
                let change = (*a - old).abs();
                let keep = p.temporal * (1.0 - (change / p.motion_threshold).min(1.0));
                *a = keep * old + (1.0 - keep) * *a;
            }
        }
        match &mut self.previous {
            Some(prev) if prev.len() == alpha.len() => prev.copy_from_slice(alpha),
            slot => *slot = Some(alpha.to_vec()),
        }
        if p.hi > p.lo {
            for a in alpha.iter_mut() {
                let t = ((*a - p.lo) / (p.hi - p.lo)).clamp(0.0, 1.0);
                *a = t * t * (3.0 - 2.0 * t);
            }
        }
        let radius = feather_radius(p.feather, w, h, frame_width);
        box_blur_f32(alpha, w, h, radius);
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

    #[test]
    fn edge_shaping_is_soft_not_binary() {
        let params = MaskParams {
            temporal: 0.0,
            feather: 0.0,
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
