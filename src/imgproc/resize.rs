//! Bilinear resampling with the two coordinate conventions the pipeline needs.

use super::simd::multiversion;
use crate::frame::{Plane, Yuv420};

/// Precomputed taps for one axis: source index pair and the weight of the second, in
/// 8.8 fixed point (0..=256) and as the exact fraction (for float kernels).
pub struct Taps {
    pub i0: Vec<u32>,
    pub i1: Vec<u32>,
    pub w1: Vec<u16>,
    pub frac: Vec<f32>,
}

/// Half-pixel-centre taps (`src = (dst + 0.5) * s/d - 0.5`), as OpenCV and MediaPipe's
/// mask upsampling use.
pub fn half_pixel_taps(src: usize, dst: usize) -> Taps {
    let scale = src as f32 / dst as f32;
    taps(src, dst, |d| (d as f32 + 0.5) * scale - 0.5)
}

/// Corner-aligned taps (`src = dst * s/d`), as MediaPipe's input stretch uses.
pub fn corner_taps(src: usize, dst: usize) -> Taps {
    let scale = src as f32 / dst as f32;
    taps(src, dst, |d| d as f32 * scale)
}

fn taps(src: usize, dst: usize, map: impl Fn(usize) -> f32) -> Taps {
    let last = src.saturating_sub(1) as f32;
    let mut t = Taps {
        i0: Vec::with_capacity(dst),
        i1: Vec::with_capacity(dst),
        w1: Vec::with_capacity(dst),
        frac: Vec::with_capacity(dst),
    };
    for d in 0..dst {
        let s = map(d).clamp(0.0, last);
        let i0 = s.floor();
        let frac = s - i0;
        let i0 = i0 as usize;
        t.i0.push(i0 as u32);
        t.i1.push((i0 + 1).min(src - 1) as u32);
        t.w1.push((frac * 256.0).round() as u16);
        t.frac.push(frac);
    }
    t
}

/// Half-pixel bilinear upsample of a float map in [0,1] into an 8-bit plane (0..=255).
pub fn upsample_unit_to_plane(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Plane {
    let q: Vec<u8> = src
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8)
        .collect();
    resize_u8_to_plane(&q, sw, sh, dw, dh)
}

/// Scales a picture into `w x h` keeping its aspect ratio, centred on black (letterbox
/// or pillarbox), as ffmpeg does when a stream changes size mid-way.
pub fn fit_picture(src: &Yuv420, w: usize, h: usize) -> Yuv420 {
    let (sw, sh) = (src.width().max(1), src.height().max(1));
    let scale = (w as f64 / sw as f64).min(h as f64 / sh as f64);
    // Even sizes and offsets keep the chroma planes aligned with the luma.
    let even = |v: f64, max: usize| ((v.round() as usize) & !1).clamp(2.min(max), max);
    let (nw, nh) = (even(sw as f64 * scale, w), even(sh as f64 * scale, h));
    let (x0, y0) = (((w - nw) / 2) & !1, ((h - nh) / 2) & !1);
    let mut out = Yuv420::filled(w, h, (16, 128, 128));
    let parts = [
        (&src.y, &mut out.y, nw, nh, x0, y0),
        (
            &src.u,
            &mut out.u,
            nw.div_ceil(2),
            nh.div_ceil(2),
            x0 / 2,
            y0 / 2,
        ),
        (
            &src.v,
            &mut out.v,
            nw.div_ceil(2),
            nh.div_ceil(2),
            x0 / 2,
            y0 / 2,
        ),
    ];
    for (from, to, pw, ph, px, py) in parts {
        let (pw, ph) = (pw.min(to.width - px), ph.min(to.height - py));
        if pw == 0 || ph == 0 || from.width == 0 || from.height == 0 {
            continue;
        }
        let scaled = resize_plane(from, pw, ph);
        for (row, line) in scaled.data.chunks_exact(pw).enumerate() {
            let start = (py + row) * to.width + px;
            to.data[start..start + pw].copy_from_slice(line);
        }
    }
    out
}

/// Scales a picture to exactly `w x h`, cropping its centre to that aspect first
/// (CSS `cover`), so content never looks stretched.
pub fn cover_picture(src: &Yuv420, w: usize, h: usize) -> Yuv420 {
    let (sw, sh) = (src.width().max(1), src.height().max(1));
    // The largest centred window of the target aspect; even sizes and offsets keep the
    // chroma planes aligned with the luma.
    let (cw, ch) = if sw * h > sh * w {
        ((sh * w / h.max(1)).max(2).min(sw), sh)
    } else {
        (sw, (sw * h / w.max(1)).max(2).min(sh))
    };
    let (cw, ch) = (cw & !1, ch & !1);
    let (x0, y0) = (((sw - cw) / 2) & !1, ((sh - ch) / 2) & !1);
    let window = |p: &Plane, div: usize| -> Plane {
        let (px, py, pw, ph) = (x0 / div, y0 / div, (cw / div).max(1), (ch / div).max(1));
        let mut data = Vec::with_capacity(pw * ph);
        for row in p.data.chunks_exact(p.width).skip(py).take(ph) {
            data.extend_from_slice(&row[px..(px + pw).min(p.width)]);
        }
        Plane {
            width: pw.min(p.width - px),
            height: ph.min(p.height - py),
            data,
        }
    };
    let (uw, uh) = crate::frame::chroma_size(w, h);
    Yuv420 {
        y: resize_plane(&window(&src.y, 1), w, h),
        u: resize_plane(&window(&src.u, 2), uw, uh),
        v: resize_plane(&window(&src.v, 2), uw, uh),
    }
}

/// Half-pixel bilinear resize of an 8-bit plane.
pub fn resize_plane(src: &Plane, dw: usize, dh: usize) -> Plane {
    resize_u8_to_plane(&src.data, src.width, src.height, dw, dh)
}

multiversion! {
    fn resize_u8_to_plane(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Plane {
        let rows = horizontal_rows(src, sw, sh, dw);
        let yt = half_pixel_taps(sh, dh);
        let mut data: Vec<u8> = Vec::with_capacity(dw * dh);
        for ((&i0, &i1), &w) in yt.i0.iter().zip(&yt.i1).zip(&yt.w1) {
            let r0 = &rows[i0 as usize * dw..][..dw];
            let r1 = &rows[i1 as usize * dw..][..dw];
            let w = w as i32;
            data.extend(r0.iter().zip(r1).map(|(&a, &b)| vertical(a, b, w)));
        }
        Plane {
            width: dw,
            height: dh,
            data,
        }
    }
}

/// Half-pixel horizontal pass of a bilinear upsample: each source row widened to `dw`
/// values in 8.8 fixed point. The vertical pass (`vertical`) then costs one multiply
/// per output pixel and needs no zero-filled output first. An upsample by exactly 2, 4
/// or 8 (the mask's grid to the frame, the default blur's small planes) repeats one set
/// of weights per source pixel, so its inside is made block by block without gathering;
/// the same values either way.
#[inline(always)]
pub(super) fn horizontal_rows(src: &[u8], sw: usize, sh: usize, dw: usize) -> Vec<i32> {
    let xt = half_pixel_taps(sw, dw);
    let factor = [8, 4, 2].into_iter().find(|&f| periodic(&xt, sw, dw, f));
    let mut rows = vec![0i32; sh * dw];
    for (s, out) in src.chunks_exact(sw).take(sh).zip(rows.chunks_exact_mut(dw)) {
        let (lo, hi) = match factor {
            Some(f) => (f / 2, f / 2 + (sw - 1) * f),
            None => (dw, dw),
        };
        let w = &xt.w1[lo..];
        match factor {
            Some(8) => blocks::<8>(&mut out[lo..hi], s, w),
            Some(4) => blocks::<4>(&mut out[lo..hi], s, w),
            Some(2) => blocks::<2>(&mut out[lo..hi], s, w),
            _ => {}
        }
        for x in (0..lo).chain(hi..dw) {
            let (a, b) = (s[xt.i0[x] as usize] as i32, s[xt.i1[x] as usize] as i32);
            let w = xt.w1[x] as i32;
            out[x] = a * (256 - w) + b * w;
        }
    }
    rows
}

/// Whether `dw = f * sw` and, inside the first and last `f / 2` outputs, output
/// `f / 2 + j * f + k` mixes source pixels `j` and `j + 1` with the weight of `k`.
fn periodic(t: &Taps, sw: usize, dw: usize, f: usize) -> bool {
    if sw < 2 || dw != sw * f {
        return false;
    }
    let lo = f / 2;
    (lo..lo + (sw - 1) * f).all(|x| {
        let (j, k) = ((x - lo) / f, (x - lo) % f);
        t.i0[x] as usize == j && t.i1[x] as usize == j + 1 && t.w1[x] == t.w1[lo + k]
    })
}

/// `F` outputs per pair of neighbouring source pixels, weights `w[..F]`.
#[inline(always)]
fn blocks<const F: usize>(out: &mut [i32], s: &[u8], w: &[u16]) {
    let mut wk = [0i32; F];
    for (d, &v) in wk.iter_mut().zip(w) {
        *d = v as i32;
    }
    for (o, p) in out.chunks_exact_mut(F).zip(s.windows(2)) {
        let (a, b) = (p[0] as i32, p[1] as i32);
        for (o, &w) in o.iter_mut().zip(&wk) {
            *o = a * (256 - w) + b * w;
        }
    }
}

/// Vertical bilinear step between two 8.8 rows, weight `w` of the second (0..=256).
#[inline(always)]
pub(super) fn vertical(a: i32, b: i32, w: i32) -> u8 {
    (((a << 8) + (b - a) * w + (1 << 15)) >> 16) as u8
}

multiversion! {
    /// Averages `factor x factor` blocks (partial blocks at the edges average what they cover).
    pub fn downscale_box(src: &Plane, factor: usize) -> Plane {
        let factor = factor.max(1);
        let (w, h) = (src.width, src.height);
        let (dw, dh) = (w.div_ceil(factor), h.div_ceil(factor));
        let mut data = Vec::with_capacity(dw * dh);
        // Column sums of one band of `factor` rows, then block sums across the band.
        let mut cols = vec![0u32; w];
        for by in 0..dh {
            let rows = &src.data[by * factor * w..((by + 1) * factor).min(h) * w];
            cols.fill(0);
            for row in rows.chunks_exact(w) {
                for (c, &v) in cols.iter_mut().zip(row) {
                    *c += v as u32;
                }
            }
            let band = (rows.len() / w.max(1)) as u32;
            for block in cols.chunks(factor) {
                let n = band * block.len() as u32;
                let s: u32 = block.iter().sum();
                data.push(((s + n / 2) / n) as u8);
            }
        }
        Plane {
            width: dw,
            height: dh,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_by_2_4_and_8_gives_what_the_gathered_taps_give() {
        let src: Vec<u8> = (0..37 * 3).map(|i| (i * 97 % 256) as u8).collect();
        for (sw, dw) in [(37, 296), (37, 148), (37, 74), (37, 100), (1, 4), (2, 8)] {
            let sh = src.len() / 37;
            let src = &src[..sw * sh];
            let xt = half_pixel_taps(sw, dw);
            let gathered: Vec<i32> = src
                .chunks_exact(sw)
                .flat_map(|s| {
                    (0..dw).map(|x| {
                        let (a, b, w) = (s[xt.i0[x] as usize], s[xt.i1[x] as usize], xt.w1[x]);
                        a as i32 * (256 - w as i32) + b as i32 * w as i32
                    })
                })
                .collect();
            assert_eq!(horizontal_rows(src, sw, sh, dw), gathered, "{sw} -> {dw}");
        }
        assert!(periodic(&half_pixel_taps(37, 296), 37, 296, 8));
        assert!(periodic(&half_pixel_taps(37, 148), 37, 148, 4));
        assert!(periodic(&half_pixel_taps(37, 74), 37, 74, 2));
        assert!(periodic(&half_pixel_taps(320, 1280), 320, 1280, 4));
        assert!(periodic(&half_pixel_taps(320, 640), 320, 640, 2));
        assert!(!periodic(&half_pixel_taps(214, 1280), 214, 1280, 6));
    }

    #[test]
    fn constant_plane_stays_constant() {
        let p = Plane::new(7, 5, 99);
        let r = resize_plane(&p, 31, 17);
        assert!(r.data.iter().all(|&v| v == 99));
    }

    #[test]
    fn upsample_is_smooth_not_blocky() {
        // A 2-pixel ramp upsampled 8x must produce intermediate values, not two blocks.
        let r = upsample_unit_to_plane(&[0.0, 1.0], 2, 1, 16, 1);
        let distinct: std::collections::BTreeSet<u8> = r.data.iter().copied().collect();
        assert!(distinct.len() > 6, "{:?}", r.data);
        assert!(r.data.windows(2).all(|w| w[0] <= w[1]), "{:?}", r.data);
        assert_eq!((r.data[0], r.data[15]), (0, 255));
    }

    #[test]
    fn corner_taps_follow_mediapipe_mapping() {
        // 1280 -> 256: dst 1 samples src 5 exactly, no half-pixel shift.
        let t = corner_taps(1280, 256);
        assert_eq!((t.i0[1], t.w1[1]), (5, 0));
        let h = half_pixel_taps(1280, 256);
        assert_eq!(h.i0[1], 7); // (1.5*5 - 0.5) = 7.0
    }

    #[test]
    fn box_downscale_averages_blocks() {
        let p = Plane {
            width: 4,
            height: 2,
            data: vec![0, 10, 100, 200, 20, 30, 100, 200],
        };
        let d = downscale_box(&p, 2);
        assert_eq!(d.data, vec![15, 150]);
        // Partial blocks at the right and bottom edges average only what they cover.
        let p = Plane {
            width: 3,
            height: 3,
            data: vec![10, 20, 90, 30, 40, 90, 200, 100, 7],
        };
        assert_eq!(downscale_box(&p, 2).data, vec![25, 90, 150, 7]);
    }
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_pads_with_black() {
        // A 16:9 white picture into a 4:3 frame: white band in the middle, black above and below.
        let src = Yuv420::filled(320, 180, (235, 128, 128));
        let out = fit_picture(&src, 160, 120);
        assert_eq!((out.width(), out.height()), (160, 120));
        assert_eq!((out.u.width, out.u.height), (80, 60));
        let row = |r: usize| &out.y.data[r * 160..(r + 1) * 160];
        assert!(row(0).iter().all(|&v| v == 16), "top should be black");
        assert!(row(119).iter().all(|&v| v == 16), "bottom should be black");
        assert!(
            row(60).iter().all(|&v| v == 235),
            "middle should be the picture"
        );
        assert!(out.u.data.iter().all(|&v| v == 128));
    }

    #[test]
    fn cover_crops_to_the_aspect_then_scales() {
        // A 4:1 picture, left half dark, right half bright, covering a 1:1 target: the
        // centre square is kept, so both halves show, each half the width.
        let mut src = Yuv420::filled(400, 100, (50, 128, 128));
        for row in src.y.data.chunks_exact_mut(400) {
            row[200..].fill(200);
        }
        let out = cover_picture(&src, 64, 64);
        assert_eq!(
            (out.width(), out.height(), out.u.width, out.u.height),
            (64, 64, 32, 32)
        );
        let row = &out.y.data[32 * 64..33 * 64];
        assert_eq!((row[2], row[61]), (50, 200));
        assert!(row[28] < 60 && row[36] > 190, "{row:?}");
        // Odd sizes and upscaling.
        let tiny = cover_picture(&Yuv420::filled(3, 5, (90, 100, 110)), 17, 9);
        assert_eq!((tiny.width(), tiny.height()), (17, 9));
        assert!(tiny.y.data.iter().all(|&v| v == 90));
    }

    #[test]
    fn fit_upscales_and_handles_odd_targets() {
        let src = Yuv420::filled(64, 36, (100, 90, 160));
        let out = fit_picture(&src, 641, 361);
        assert_eq!((out.width(), out.height()), (641, 361));
        assert_eq!(out.y.data.len(), 641 * 361);
        assert_eq!(out.y.data[180 * 641 + 320], 100);
        assert_eq!(out.v.data[90 * out.v.width + 160], 160);
    }
}
