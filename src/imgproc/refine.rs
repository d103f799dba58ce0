//! Edge-aware mask refinement: the guided filter (He et al. 2010) with the frame's
//! luma as the guide. The low-resolution soft mask is fitted locally as
//! `alpha = a * luma + b` on a grid of about 320 pixels across (the luma box-averaged by
//! an integer factor), so the mask's step moves onto the image's edge instead of lying
//! across it as a smooth ramp. The filter leaves the low-resolution spill beside the
//! step (the local mean of the mask over each flat side); the edge curve applied after
//! it (`mask::MaskFilter`) removes that, so replaced content meets the person at the
//! edge, not a few pixels before it.
//!
//! Evaluated on the grid, not at full resolution: the grid's averaged luma carries a
//! fraction of the sensor noise, which the curve would otherwise turn into flicker.
//! Everything is f32 with the same steps as the graph twin (`infer::graphs`): the
//! box-averaged guide (u8, rounded), the mask resampled half-pixel bilinear onto the
//! grid, box filters with replicated edges.

use super::blur::box_blur_channels;
use super::resize::{downscale_box, half_pixel_taps};
use super::simd::multiversion;
use crate::frame::Plane;

/// Guided-filter settings, in frame pixels and guide units (luma / 255).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guided {
    /// Window radius in frame pixels.
    pub radius: f32,
    /// Regulariser: a local luma variance well below it keeps the input mask (flat
    /// regions), one well above it lets the luma edge through.
    pub eps: f32,
}

pub const DEFAULT_GUIDED: Guided = Guided {
    radius: 12.0,
    eps: 1e-3,
};

/// Width of the reduced grid the filter is fitted on.
const GRID_WIDTH: usize = 320;

/// The integer factor from the frame to the grid the coefficients are fitted on.
pub fn grid_factor(width: usize) -> usize {
    ((width as f32 / GRID_WIDTH as f32).round() as usize).max(1)
}

/// The window radius in grid pixels (at least one).
pub fn grid_radius(g: &Guided, factor: usize) -> usize {
    ((g.radius / factor as f32).round() as usize).max(1)
}

/// Half-pixel bilinear resample of a float map (separable, float weights).
pub fn resize_f32(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let rows = horizontal_f32(src, sw, sh, dw);
    let yt = half_pixel_taps(sh, dh);
    let mut out = Vec::with_capacity(dw * dh);
    for ((&i0, &i1), &w) in yt.i0.iter().zip(&yt.i1).zip(&yt.frac) {
        let r0 = &rows[i0 as usize * dw..][..dw];
        let r1 = &rows[i1 as usize * dw..][..dw];
        out.extend(r0.iter().zip(r1).map(|(&a, &b)| a + (b - a) * w));
    }
    out
}

fn horizontal_f32(src: &[f32], sw: usize, sh: usize, dw: usize) -> Vec<f32> {
    let xt = half_pixel_taps(sw, dw);
    let mut rows = Vec::with_capacity(sh * dw);
    for s in src.chunks_exact(sw).take(sh) {
        rows.extend(
            xt.i0
                .iter()
                .zip(&xt.i1)
                .zip(&xt.frac)
                .map(|((&i0, &i1), &w)| {
                    let (a, b) = (s[i0 as usize], s[i1 as usize]);
                    a + (b - a) * w
                }),
        );
    }
    rows
}

/// The fitted coefficients on the grid, interleaved: `alpha ~= ab[2k] * guide[k] + ab[2k+1]`.
struct Coefficients {
    ab: Vec<f32>,
    guide: Vec<f32>,
    width: usize,
    height: usize,
}

fn fit(alpha: &[f32], mw: usize, mh: usize, luma: &Plane, g: &Guided) -> Coefficients {
    let factor = grid_factor(luma.width);
    let guide_u8 = downscale_box(luma, factor);
    let (gw, gh) = (guide_u8.width, guide_u8.height);
    let guide: Vec<f32> = guide_u8.data.iter().map(|&v| v as f32 / 255.0).collect();
    let p = resize_f32(alpha, mw, mh, gw, gh);
    let r = grid_radius(g, factor);
    // The four window means in one interleaved pass: I, p, I*p, I*I.
    let mut stats = vec![0f32; gw * gh * 4];
    window_inputs(&mut stats, &guide, &p);
    box_blur_channels::<4>(&mut stats, gw, gh, r);
    let mut ab = vec![0f32; gw * gh * 2];
    linear_fit(&mut ab, &stats, g.eps);
    box_blur_channels::<2>(&mut ab, gw, gh, r);
    Coefficients {
        ab,
        guide,
        width: gw,
        height: gh,
    }
}

multiversion! {
    /// `stats[4k..4k + 4] = [I, p, I*p, I*I]` of pixel `k`.
    fn window_inputs(stats: &mut [f32], guide: &[f32], p: &[f32]) {
        for ((s, &i), &p) in stats.chunks_exact_mut(4).zip(guide).zip(p) {
            s[0] = i;
            s[1] = p;
            s[2] = i * p;
            s[3] = i * i;
        }
    }
}

multiversion! {
    /// Per pixel, from the window means `[I, p, I*p, I*I]`: the local linear fit
    /// `p ~= a * I + b`, written as `[a, b]`.
    fn linear_fit(ab: &mut [f32], stats: &[f32], eps: f32) {
        for (o, m) in ab.chunks_exact_mut(2).zip(stats.chunks_exact(4)) {
            let (mean_i, mean_p, corr_ip, corr_ii) = (m[0], m[1], m[2], m[3]);
            let var = corr_ii - mean_i * mean_i;
            let cov = corr_ip - mean_i * mean_p;
            let a = cov / (var + eps);
            o[0] = a;
            o[1] = mean_p - a * mean_i;
        }
    }
}

multiversion! {
    /// The filter's output `a * I + b` from the window-averaged coefficients, in [0, 1].
    fn apply_fit(q: &mut [f32], ab: &[f32], guide: &[f32]) {
        for ((q, ab), &i) in q.iter_mut().zip(ab.chunks_exact(2)).zip(guide) {
            *q = (ab[0] * i + ab[1]).clamp(0.0, 1.0);
        }
    }
}

/// The guided filter's output on the reduced grid: the model-resolution alpha
/// (`mw x mh`, values in [0,1]) fitted to the frame luma's edges, clamped to [0,1],
/// with the grid's width and height. The caller shapes it and upsamples it.
pub fn guided_grid(
    alpha: &[f32],
    mw: usize,
    mh: usize,
    luma: &Plane,
    g: &Guided,
) -> (Vec<f32>, usize, usize) {
    let c = fit(alpha, mw, mh, luma, g);
    let mut q = vec![0f32; c.width * c.height];
    apply_fit(&mut q, &c.ab, &c.guide);
    (q, c.width, c.height)
}

/// The grid the guided filter works on for a frame `width x height`.
pub fn grid_size(width: usize, height: usize) -> (usize, usize) {
    let f = grid_factor(width);
    (width.div_ceil(f), height.div_ceil(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_guide_keeps_the_input_mask() {
        // No luma structure: a = 0, b = the mask's local mean, so the result is the
        // mask smoothed by the window (never a new edge).
        let (w, h) = (64, 32);
        let luma = Plane::new(w, h, 120);
        let alpha: Vec<f32> = (0..16 * 8).map(|i| (i % 16) as f32 / 15.0).collect();
        let (q, gw, gh) = guided_grid(&alpha, 16, 8, &luma, &DEFAULT_GUIDED);
        assert_eq!((gw, gh), (64, 32));
        let row = &q[16 * gw..17 * gw];
        assert!(row.windows(2).all(|p| p[0] <= p[1] + 1e-6), "{row:?}");
        assert!(row[0] < 0.15 && row[gw - 1] > 0.85, "{row:?}");
    }

    #[test]
    fn the_grid_is_about_320_wide() {
        assert_eq!(grid_size(1280, 720), (320, 180));
        assert_eq!(grid_size(1920, 1080), (320, 180));
        assert_eq!(grid_size(640, 360), (320, 180));
        assert_eq!(grid_size(100, 50), (100, 50));
        assert_eq!(grid_size(641, 361), (321, 181));
    }

    #[test]
    fn float_resize_keeps_constants_and_interpolates() {
        let v = resize_f32(&[0.25; 12], 4, 3, 9, 7);
        assert!(v.iter().all(|&x| (x - 0.25).abs() < 1e-6));
        let r = resize_f32(&[0.0, 1.0], 2, 1, 4, 1);
        assert_eq!(r, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
