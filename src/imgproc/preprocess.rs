//! Frame -> model input tensor.

use super::resize::{Taps, corner_taps, half_pixel_taps};
use super::simd::multiversion;
use crate::frame::{Matrix, Yuv420, coefficients};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// How the frame is stretched onto the model's input grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// `src = dst * W / w`: what MediaPipe's runtime does; the selfie models expect it.
    #[default]
    Corner,
    /// `src = (dst + 0.5) * W / w - 0.5`: OpenCV / PyTorch `align_corners=False`.
    HalfPixel,
}

/// Everything needed to turn a frame into an RGB float tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorGeometry {
    pub width: usize,
    pub height: usize,
    pub layout: Layout,
    pub sampling: Sampling,
    /// Per-channel `value = rgb01 * scale + offset` (covers both [lo,hi] ranges and mean/std).
    pub scale: [f32; 3],
    pub offset: [f32; 3],
}

impl TensorGeometry {
    /// RGB in [0, 1], corner sampling: the plain geometry unit tests use.
    #[cfg(test)]
    pub fn unit(width: usize, height: usize, layout: Layout) -> TensorGeometry {
        TensorGeometry {
            width,
            height,
            layout,
            sampling: Sampling::Corner,
            scale: [1.0; 3],
            offset: [0.0; 3],
        }
    }

    pub fn len(&self) -> usize {
        self.width * self.height * 3
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Samples `pic` bilinearly onto the tensor grid, converts to RGB and normalises.
/// `out` is resized to `geometry.len()`.
pub fn frame_to_tensor(pic: &Yuv420, matrix: Matrix, g: &TensorGeometry, out: &mut Vec<f32>) {
    // Per-axis sample positions, computed once: luma taps, and the chroma position
    // that sits at the same spot (chroma is at half resolution, centre-aligned).
    let (lx, ly) = axes(pic.width(), pic.height(), g);
    let (cx, cy) = (
        Axis::chroma(&lx, pic.u.width),
        Axis::chroma(&ly, pic.u.height),
    );
    out.clear();
    out.resize(g.len(), 0.0);
    let m = YuvToRgb::new(matrix);
    // Row by row, separably: the two source rows blended at full width (a vectorised
    // pass), then sampled at the tensor's columns, then converted.
    let mut line = Vec::new();
    let (mut yuv, mut rgb) = (<[Vec<f32>; 3]>::default(), <[Vec<f32>; 3]>::default());
    for ty in 0..g.height {
        let planes = [(&pic.y, &lx, &ly), (&pic.u, &cx, &cy), (&pic.v, &cx, &cy)];
        for ((plane, xa, ya), samples) in planes.into_iter().zip(&mut yuv) {
            blend_rows(plane, ya, ty, &mut line);
            xa.sample(&line, samples);
        }
        store_row(&m, g, ty, &yuv, &mut rgb, out);
    }
}

multiversion! {
    /// Tensor row `ty`'s two source rows of `plane` blended by its vertical weight.
    fn blend_rows(plane: &crate::frame::Plane, ya: &Axis, ty: usize, line: &mut Vec<f32>) {
        let w = plane.width;
        let (r0, r1, f) = (
            &plane.data[ya.i0[ty] * w..][..w],
            &plane.data[ya.i1[ty] * w..][..w],
            ya.f[ty],
        );
        line.clear();
        line.extend(r0.iter().zip(r1).map(|(&a, &b)| {
            let a = a as f32;
            a + (b as f32 - a) * f
        }));
    }
}

multiversion! {
    /// One tensor row from its Y, U and V samples: RGB, normalised, in the tensor's
    /// layout. Each channel is its own pass over the row (vectorised), then stored.
    fn store_row(
        m: &YuvToRgb,
        g: &TensorGeometry,
        ty: usize,
        yuv: &[Vec<f32>; 3],
        rgb: &mut [Vec<f32>; 3],
        out: &mut [f32],
    ) {
        let [ys, us, vs] = yuv;
        for (c, (out, w)) in rgb.iter_mut().zip(m.weights()).enumerate() {
            let (scale, offset) = (g.scale[c], g.offset[c]);
            out.clear();
            out.extend(
                ys.iter()
                    .zip(us)
                    .zip(vs)
                    .map(|((&y, &u), &v)| channel(y, u, v, w) * scale + offset),
            );
        }
        let (row, n) = (ty * g.width, g.width * g.height);
        match g.layout {
            Layout::Nhwc => {
                let px = out[row * 3..(row + g.width) * 3].chunks_exact_mut(3);
                for (((p, &r), &gr), &b) in px.zip(&rgb[0]).zip(&rgb[1]).zip(&rgb[2]) {
                    p.copy_from_slice(&[r, gr, b]);
                }
            }
            Layout::Nchw => {
                for (c, channel) in rgb.iter().enumerate() {
                    out[c * n + row..][..g.width].copy_from_slice(channel);
                }
            }
        }
    }
}

/// `frame::yuv_to_rgb01` with its divisions folded into constants.
pub struct YuvToRgb {
    rv: f32,
    bu: f32,
    gu: f32,
    gv: f32,
}

impl YuvToRgb {
    pub fn new(matrix: Matrix) -> Self {
        let (kr, kb) = coefficients(matrix);
        let kg = 1.0 - kr - kb;
        let (rv, bu) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
        YuvToRgb {
            rv,
            bu,
            gu: -kb * bu / kg,
            gv: -kr * rv / kg,
        }
    }

    /// The conversion as `rgb = W * [y, u, v] + b` on 0..=255 inputs (before clamping):
    /// `W` row-major, one row per output channel.
    pub fn affine(&self) -> ([f32; 9], [f32; 3]) {
        let (ky, kc) = (1.0 / 219.0, 1.0 / 224.0);
        let w = [
            ky,
            0.0,
            self.rv * kc,
            ky,
            self.gu * kc,
            self.gv * kc,
            ky,
            self.bu * kc,
            0.0,
        ];
        let b = [
            -16.0 * ky - 128.0 * self.rv * kc,
            -16.0 * ky - 128.0 * (self.gu + self.gv) * kc,
            -16.0 * ky - 128.0 * self.bu * kc,
        ];
        (w, b)
    }

    /// The (U, V) weights of R, G and B: `R = y + rv v`, `G = y + gu u + gv v`, `B = y + bu u`.
    fn weights(&self) -> [(f32, f32); 3] {
        [(0.0, self.rv), (self.gu, self.gv), (self.bu, 0.0)]
    }

    /// All three channels of one pixel (what `store_row` computes channel by channel).
    #[cfg(test)]
    fn apply(&self, y: f32, u: f32, v: f32) -> [f32; 3] {
        self.weights().map(|w| channel(y, u, v, w))
    }
}

/// One RGB channel in [0, 1] from 0..=255 Y, U, V and the channel's (U, V) weights.
#[inline(always)]
fn channel(y: f32, u: f32, v: f32, (cu, cv): (f32, f32)) -> f32 {
    let y = (y - 16.0) * (1.0 / 219.0);
    let (u, v) = ((u - 128.0) * (1.0 / 224.0), (v - 128.0) * (1.0 / 224.0));
    (y + cu * u + cv * v).clamp(0.0, 1.0)
}

/// Where `frame_to_tensor` samples the source for each tensor pixel, in source pixel
/// coordinates: luma columns/rows and the matching chroma columns/rows.
pub struct SamplePositions {
    pub luma_x: Vec<f32>,
    pub luma_y: Vec<f32>,
    pub chroma_x: Vec<f32>,
    pub chroma_y: Vec<f32>,
}

pub fn sample_positions(width: usize, height: usize, g: &TensorGeometry) -> SamplePositions {
    let (cw, ch) = crate::frame::chroma_size(width, height);
    let (lx, ly) = axes(width, height, g);
    let (cx, cy) = (Axis::chroma(&lx, cw), Axis::chroma(&ly, ch));
    SamplePositions {
        luma_x: lx.positions(),
        luma_y: ly.positions(),
        chroma_x: cx.positions(),
        chroma_y: cy.positions(),
    }
}

fn axes(width: usize, height: usize, g: &TensorGeometry) -> (Axis, Axis) {
    let taps = |src: usize, dst: usize| match g.sampling {
        Sampling::Corner => corner_taps(src, dst),
        Sampling::HalfPixel => half_pixel_taps(src, dst),
    };
    (
        Axis::from_taps(&taps(width, g.width)),
        Axis::from_taps(&taps(height, g.height)),
    )
}

/// Sample positions along one axis: two source indices and the weight of the second.
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    f: Vec<f32>,
}

impl Axis {
    fn from_taps(t: &Taps) -> Axis {
        Axis {
            i0: t.i0.iter().map(|&i| i as usize).collect(),
            i1: t.i1.iter().map(|&i| i as usize).collect(),
            f: t.w1.iter().map(|&w| w as f32 / 256.0).collect(),
        }
    }

    fn positions(&self) -> Vec<f32> {
        self.i0
            .iter()
            .zip(&self.f)
            .map(|(&i, &f)| i as f32 + f)
            .collect()
    }

    /// `line` (a row already blended vertically) sampled at this axis' positions.
    fn sample(&self, line: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let taps = self.i0.iter().zip(&self.i1).zip(&self.f);
        out.extend(taps.map(|((&i0, &i1), &f)| {
            let a = line[i0];
            a + (line[i1] - a) * f
        }));
    }

    /// The chroma position (plane length `len`) under each luma position of `luma`.
    fn chroma(luma: &Axis, len: usize) -> Axis {
        let last = len.saturating_sub(1);
        let mut a = Axis {
            i0: Vec::new(),
            i1: Vec::new(),
            f: Vec::new(),
        };
        for (&i, &f) in luma.i0.iter().zip(&luma.f) {
            let s = i as f32 + f;
            let c = ((s + 0.5) / 2.0 - 0.5).clamp(0.0, last as f32);
            let i0 = c as usize;
            a.i0.push(i0);
            a.i1.push((i0 + 1).min(last));
            a.f.push(c - i0 as f32);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::rgb_to_yuv;

    fn geometry(layout: Layout) -> TensorGeometry {
        TensorGeometry::unit(4, 2, layout)
    }

    #[test]
    fn folded_conversion_matches_the_reference_formula() {
        for m in [Matrix::Bt601, Matrix::Bt709] {
            let folded = YuvToRgb::new(m);
            for (y, u, v) in [
                (16.0, 128.0, 128.0),
                (81.0, 90.0, 240.0),
                (200.0, 30.0, 100.0),
            ] {
                let a = folded.apply(y, u, v);
                let b = crate::frame::yuv_to_rgb01(m, y, u, v);
                for c in 0..3 {
                    assert!(
                        (a[c] - b[c]).abs() < 1e-5,
                        "{m:?} {y},{u},{v}: {a:?} vs {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn solid_colour_maps_to_rgb_in_both_layouts() {
        let (y, u, v) = rgb_to_yuv(Matrix::Bt709, 255, 0, 0);
        let pic = Yuv420::filled(64, 32, (y, u, v));
        let mut out = Vec::new();
        frame_to_tensor(&pic, Matrix::Bt709, &geometry(Layout::Nhwc), &mut out);
        assert_eq!(out.len(), 24);
        assert!(
            out[0] > 0.95 && out[1] < 0.05 && out[2] < 0.05,
            "{:?}",
            &out[..3]
        );
        frame_to_tensor(&pic, Matrix::Bt709, &geometry(Layout::Nchw), &mut out);
        assert!(out[..8].iter().all(|&r| r > 0.95) && out[8..].iter().all(|&c| c < 0.05));
    }

    #[test]
    fn normalisation_maps_to_minus_one_one() {
        let pic = Yuv420::filled(8, 8, (235, 128, 128)); // white
        let mut g = geometry(Layout::Nchw);
        g.scale = [2.0; 3];
        g.offset = [-1.0; 3];
        let mut out = Vec::new();
        frame_to_tensor(&pic, Matrix::Bt601, &g, &mut out);
        assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-3));
    }

    #[test]
    fn left_half_red_right_half_blue_keeps_position() {
        let (w, h) = (64, 32);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                if x < w / 2 {
                    rgb[i] = 255
                } else {
                    rgb[i + 2] = 255
                }
            }
        }
        let pic = Yuv420::from_rgb(&rgb, w, h, Matrix::Bt709);
        let mut out = Vec::new();
        frame_to_tensor(&pic, Matrix::Bt709, &geometry(Layout::Nhwc), &mut out);
        assert!(out[0] > 0.9 && out[2] < 0.1, "left is red");
        assert!(out[3 * 3] < 0.1 && out[3 * 3 + 2] > 0.9, "right is blue");
    }
}
