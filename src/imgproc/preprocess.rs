//! Frame -> model input tensor.

use super::resize::{Taps, corner_taps, half_pixel_taps};
use crate::frame::{Matrix, Yuv420, yuv_to_rgb01};

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
    let (w, h) = (pic.width(), pic.height());
    let taps = |src: usize, dst: usize| match g.sampling {
        Sampling::Corner => corner_taps(src, dst),
        Sampling::HalfPixel => half_pixel_taps(src, dst),
    };
    let (xt, yt) = (taps(w, g.width), taps(h, g.height));
    out.clear();
    out.resize(g.len(), 0.0);
    let plane_size = g.width * g.height;
    for ty in 0..g.height {
        for tx in 0..g.width {
            let sx = xt.i0[tx] as f32 + xt.w1[tx] as f32 / 256.0;
            let sy = yt.i0[ty] as f32 + yt.w1[ty] as f32 / 256.0;
            let yv = bilinear_at(&pic.y.data, pic.y.width, &xt, &yt, tx, ty);
            // Chroma sits at half resolution; sample it at the matching centre position.
            let cx = ((sx + 0.5) / 2.0 - 0.5).max(0.0);
            let cy = ((sy + 0.5) / 2.0 - 0.5).max(0.0);
            let uv = sample(&pic.u.data, pic.u.width, pic.u.height, cx, cy);
            let vv = sample(&pic.v.data, pic.v.width, pic.v.height, cx, cy);
            let rgb = yuv_to_rgb01(matrix, yv, uv, vv);
            let p = ty * g.width + tx;
            for c in 0..3 {
                let value = rgb[c] * g.scale[c] + g.offset[c];
                match g.layout {
                    Layout::Nhwc => out[p * 3 + c] = value,
                    Layout::Nchw => out[c * plane_size + p] = value,
                }
            }
        }
    }
}

#[inline]
fn bilinear_at(d: &[u8], w: usize, xt: &Taps, yt: &Taps, tx: usize, ty: usize) -> f32 {
    let (x0, x1, wx) = (
        xt.i0[tx] as usize,
        xt.i1[tx] as usize,
        xt.w1[tx] as f32 / 256.0,
    );
    let (y0, y1, wy) = (
        yt.i0[ty] as usize,
        yt.i1[ty] as usize,
        yt.w1[ty] as f32 / 256.0,
    );
    let top = d[y0 * w + x0] as f32 * (1.0 - wx) + d[y0 * w + x1] as f32 * wx;
    let bot = d[y1 * w + x0] as f32 * (1.0 - wx) + d[y1 * w + x1] as f32 * wx;
    top * (1.0 - wy) + bot * wy
}

#[inline]
fn sample(d: &[u8], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.min((w - 1) as f32);
    let y = y.min((h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = d[y0 * w + x0] as f32 * (1.0 - fx) + d[y0 * w + x1] as f32 * fx;
    let bot = d[y1 * w + x0] as f32 * (1.0 - fx) + d[y1 * w + x1] as f32 * fx;
    top * (1.0 - fy) + bot * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::rgb_to_yuv;

    fn geometry(layout: Layout) -> TensorGeometry {
        TensorGeometry {
            width: 4,
            height: 2,
            layout,
            sampling: Sampling::Corner,
            scale: [1.0; 3],
            offset: [0.0; 3],
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
