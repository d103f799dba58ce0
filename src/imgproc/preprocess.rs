//! Frame -> model input tensor.

use super::resize::{Taps, corner_taps, half_pixel_taps};
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
    let n = g.width * g.height;
    out.clear();
    out.resize(g.len(), 0.0);
    let yuv = [
        sample_plane(&pic.y, &lx, &ly),
        sample_plane(&pic.u, &cx, &cy),
        sample_plane(&pic.v, &cx, &cy),
    ];
    let m = YuvToRgb::new(matrix);
    for (p, ((&y, &u), &v)) in yuv[0].iter().zip(&yuv[1]).zip(&yuv[2]).enumerate() {
        let rgb = m.apply(y, u, v);
        for c in 0..3 {
            let value = rgb[c] * g.scale[c] + g.offset[c];
            match g.layout {
                Layout::Nhwc => out[p * 3 + c] = value,
                Layout::Nchw => out[c * n + p] = value,
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

    #[inline]
    fn apply(&self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let y = (y - 16.0) * (1.0 / 219.0);
        let u = (u - 128.0) * (1.0 / 224.0);
        let v = (v - 128.0) * (1.0 / 224.0);
        [
            (y + self.rv * v).clamp(0.0, 1.0),
            (y + self.gu * u + self.gv * v).clamp(0.0, 1.0),
            (y + self.bu * u).clamp(0.0, 1.0),
        ]
    }
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

/// Bilinear samples of `plane` at every (x, y) of the two axes, row by row.
fn sample_plane(plane: &crate::frame::Plane, xa: &Axis, ya: &Axis) -> Vec<f32> {
    let w = plane.width;
    let mut out = Vec::with_capacity(xa.f.len() * ya.f.len());
    for ((&y0, &y1), &wy) in ya.i0.iter().zip(&ya.i1).zip(&ya.f) {
        let r0 = &plane.data[y0 * w..(y0 + 1) * w];
        let r1 = &plane.data[y1 * w..(y1 + 1) * w];
        for ((&x0, &x1), &wx) in xa.i0.iter().zip(&xa.i1).zip(&xa.f) {
            let top = r0[x0] as f32 * (1.0 - wx) + r0[x1] as f32 * wx;
            let bot = r1[x0] as f32 * (1.0 - wx) + r1[x1] as f32 * wx;
            out.push(top * (1.0 - wy) + bot * wy);
        }
    }
    out
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
