//! Blending content over a frame through an 8-bit alpha.

use super::resize::{half_pixel_taps, horizontal_rows, vertical};
use super::simd::multiversion;
use crate::frame::{AlphaPlanes, Plane, Yuv420};

multiversion! {
    /// `dst = content * a + dst * (1 - a)`, `a` in 0..=255.
    pub fn blend_plane(dst: &mut Plane, content: &Plane, alpha: &Plane) {
        debug_assert_eq!(dst.data.len(), alpha.data.len());
        for ((d, &c), &a) in dst.data.iter_mut().zip(&content.data).zip(&alpha.data) {
            *d = mix(*d, c, a);
        }
    }
}

multiversion! {
    /// Same with a constant content value.
    pub fn blend_value(dst: &mut Plane, value: u8, alpha: &Plane) {
        for (d, &a) in dst.data.iter_mut().zip(&alpha.data) {
            *d = mix(*d, value, a);
        }
    }
}

#[inline(always)]
pub fn mix(base: u8, over: u8, a: u8) -> u8 {
    let a = a as u32;
    let v = over as u32 * a + base as u32 * (255 - a) + 128;
    ((v + (v >> 8)) >> 8) as u8
}

pub fn blend_picture(dst: &mut Yuv420, content: &Yuv420, alpha: &AlphaPlanes) {
    blend_plane(&mut dst.y, &content.y, &alpha.luma);
    blend_plane(&mut dst.u, &content.u, &alpha.chroma);
    blend_plane(&mut dst.v, &content.v, &alpha.chroma);
}

pub fn blend_color(dst: &mut Yuv420, (y, u, v): (u8, u8, u8), alpha: &AlphaPlanes) {
    blend_value(&mut dst.y, y, &alpha.luma);
    blend_value(&mut dst.u, u, &alpha.chroma);
    blend_value(&mut dst.v, v, &alpha.chroma);
}

multiversion! {
    /// `blend_plane(dst, &resize_plane(small, ..), alpha)` in one pass: each upsampled row
    /// is blended as it is made, so the full-size blurred plane is never written.
    pub fn blend_upsampled(dst: &mut Plane, small: &Plane, alpha: &Plane) {
        let (dw, dh) = (dst.width, dst.height);
        let rows = horizontal_rows(&small.data, small.width, small.height, dw);
        let yt = half_pixel_taps(small.height, dh);
        let lines = dst.data.chunks_exact_mut(dw).zip(alpha.data.chunks_exact(dw));
        for ((d, a), ((&i0, &i1), &w)) in lines.zip(yt.i0.iter().zip(&yt.i1).zip(&yt.w1)) {
            let r0 = &rows[i0 as usize * dw..][..dw];
            let r1 = &rows[i1 as usize * dw..][..dw];
            let w = w as i32;
            for (((d, &a), &p), &q) in d.iter_mut().zip(a).zip(r0).zip(r1) {
                *d = mix(*d, vertical(p, q, w), a);
            }
        }
    }
}

/// One plane of two keyframe layers, measured for their crossfade: means, standard
/// deviations and correlation, in grey levels, from every 4th pixel of every 4th row.
///
/// Mixing two partly independent textures `(1-w)·A + w·B` lowers their spread: its
/// variance is `(1-w)²σa² + w²σb² + 2w(1-w)ρσaσb`, below the `((1-w)σa + wσb)²` a
/// viewer expects, most at `w = 1/2`. The crossfade scales the mix about its mean by the
/// ratio (`gain`), so the content's contrast does not dip between keyframes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossfadeStats {
    mean: [f64; 2],
    sd: [f64; 2],
    rho: f64,
}

impl CrossfadeStats {
    /// A pair that needs no correction (gain 1 at every weight).
    pub const PLAIN: CrossfadeStats = CrossfadeStats {
        mean: [0.0; 2],
        sd: [0.0; 2],
        rho: 1.0,
    };

    pub fn of(a: &Plane, b: &Plane) -> CrossfadeStats {
        let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) =
            (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
        let rows = a
            .data
            .chunks_exact(a.width.max(1))
            .zip(b.data.chunks_exact(b.width.max(1)));
        for (ra, rb) in rows.step_by(4) {
            for (&x, &y) in ra.iter().zip(rb).step_by(4) {
                let (x, y) = (x as f64, y as f64);
                (n, sa, sb) = (n + 1.0, sa + x, sb + y);
                (saa, sbb, sab) = (saa + x * x, sbb + y * y, sab + x * y);
            }
        }
        if n < 2.0 {
            return CrossfadeStats::PLAIN;
        }
        let mean = [sa / n, sb / n];
        let var = [
            (saa / n - mean[0] * mean[0]).max(0.0),
            (sbb / n - mean[1] * mean[1]).max(0.0),
        ];
        let sd = [var[0].sqrt(), var[1].sqrt()];
        let cov = sab / n - mean[0] * mean[1];
        let rho = if sd[0] * sd[1] > 1e-6 {
            (cov / (sd[0] * sd[1])).clamp(-1.0, 1.0)
        } else {
            1.0
        };
        CrossfadeStats { mean, sd, rho }
    }

    /// The three planes of two pictures.
    pub fn of_pictures(a: &Yuv420, b: &Yuv420) -> [CrossfadeStats; 3] {
        [
            CrossfadeStats::of(&a.y, &b.y),
            CrossfadeStats::of(&a.u, &b.u),
            CrossfadeStats::of(&a.v, &b.v),
        ]
    }

    /// The mix's mean and the gain that restores its spread at weight `w` (of 256), both
    /// in 256ths; the gain at most 2.
    fn correction(&self, w: u16) -> (i32, i32) {
        let w = w as f64 / 256.0;
        let [ma, mb] = self.mean;
        let [da, db] = self.sd;
        let mixed = (1.0 - w).powi(2) * da * da
            + w * w * db * db
            + 2.0 * w * (1.0 - w) * self.rho * da * db;
        let wanted = (1.0 - w) * da + w * db;
        let gain = if mixed > 1e-9 {
            (wanted / mixed.sqrt()).clamp(1.0, 2.0)
        } else {
            1.0
        };
        let mean = (1.0 - w) * ma + w * mb;
        ((mean * 256.0).round() as i32, (gain * 256.0).round() as i32)
    }
}

/// `out = frame + fade·(mix - frame)`, `mix` the two generated keyframe layers `a` and
/// `b` mixed by where a frame falls between them (`w`), its spread restored about its
/// mean with `stats` (one per plane, `CrossfadeStats`); `w` and `fade` in 256ths.
pub fn mix_pictures(
    out: &mut Yuv420,
    (a, b): (&Yuv420, &Yuv420),
    w: u32,
    stats: &[CrossfadeStats; 3],
    frame: &Yuv420,
    fade: u32,
) {
    let planes = [
        (&mut out.y, &a.y, &b.y, &frame.y),
        (&mut out.u, &a.u, &b.u, &frame.u),
        (&mut out.v, &a.v, &b.v, &frame.v),
    ];
    let (w, fade) = (w.min(256) as u16, fade.min(256) as u16);
    for ((o, a, b, f), s) in planes.into_iter().zip(stats) {
        let (mean, gain) = s.correction(w);
        let weights = MixWeights {
            w: w as i32,
            mean,
            gain,
            fade: fade as i32,
        };
        mix_plane(
            &mut o.data,
            &a.data,
            &b.data,
            weights,
            &f.data,
            o.width,
            dither_tile(),
        );
    }
}

/// Side of the square tile of rounding thresholds `mix_plane` repeats over a plane.
const DITHER_SIDE: usize = 64;

/// Rounding thresholds for the crossfade, one per pixel of a 64x64 tile: a fixed shuffle
/// of 4096 evenly spaced values in [0, 65536), so their mean is the plain rounding's half.
/// Two keyframe layers that differ by one or two levels in most pixels (correlated layers,
/// `foliage_transfer`'s in particular) would otherwise flip all those pixels on the same
/// frame, where the weight crosses the half-way point: a step of half a level over the
/// whole picture once a keyframe interval. With a threshold of its own each pixel flips on
/// its own frame, and the change spreads over the interval.
fn dither_tile() -> &'static [i32] {
    static TILE: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    TILE.get_or_init(|| {
        let n = DITHER_SIDE * DITHER_SIDE;
        let mut tile: Vec<i32> = (0..n as i32).map(|v| v * 16 + 8).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for i in (1..n).rev() {
            let r = super::noise::splitmix64(&mut state) >> 33;
            tile.swap(i, r as usize % (i + 1));
        }
        tile
    })
}

/// The weights of one plane's crossfade, all in 256ths: `w` of the second layer, the
/// mix's `mean` and `gain` about it (`CrossfadeStats`), and `fade` over the frame.
#[derive(Clone, Copy)]
struct MixWeights {
    w: i32,
    mean: i32,
    gain: i32,
    fade: i32,
}

multiversion! {
    /// `mix_pictures` on one plane `width` pixels wide, in 32-bit lanes: the mix `m` in
    /// 256ths (at most 65280), scaled about `mean` by `gain` (at most 512) and rounded at
    /// the pixel's threshold in `tile` (`dither_tile`; below 2^26 before the shift).
    fn mix_plane(out: &mut [u8], a: &[u8], b: &[u8], k: MixWeights, frame: &[u8], width: usize, tile: &[i32]) {
        let width = width.max(1);
        let rows = out.chunks_mut(width).zip(a.chunks(width)).zip(b.chunks(width)).zip(frame.chunks(width));
        for (y, (((o, a), b), f)) in rows.enumerate() {
            let thresholds = &tile[(y % DITHER_SIDE) * DITHER_SIDE..][..DITHER_SIDE];
            let pieces = o.chunks_mut(DITHER_SIDE).zip(a.chunks(DITHER_SIDE)).zip(b.chunks(DITHER_SIDE)).zip(f.chunks(DITHER_SIDE));
            for (((o, a), b), f) in pieces {
                let px = o.iter_mut().zip(a).zip(b).zip(f).zip(thresholds);
                if k.fade >= 256 {
                    // File jobs, and live ones once faded in: the frame does not show.
                    px.for_each(|((((o, &a), &b), _), &t)| *o = crossfaded(a, b, t, k) as u8);
                } else {
                    px.for_each(|((((o, &a), &b), &f), &t)| {
                        let c = crossfaded(a, b, t, k);
                        *o = ((f as i32 * (256 - k.fade) + c * k.fade + 128) >> 8) as u8;
                    });
                }
            }
        }
    }
}

/// One pixel of the crossfade: `a + w·(b - a)` in 256ths, scaled about the mean by the
/// gain and rounded at threshold `t` (in 65536ths), clamped to 0..=255.
#[inline(always)]
fn crossfaded(a: u8, b: u8, t: i32, k: MixWeights) -> i32 {
    let m = ((a as i32) << 8) + (b as i32 - a as i32) * k.w;
    (((k.mean << 8) + (m - k.mean) * k.gain + t) >> 16).clamp(0, 255)
}

/// Block size and radius (in blocks) of the local background estimate `unmix_plane` uses.
pub const UNMIX_BLOCK: usize = 8;
pub const UNMIX_RADIUS: usize = 2;

/// Removes the replaced region's colour from the edge band before content goes over it.
///
/// An edge pixel `I` with alpha `a` is a mix `I = (1 - a) F + a B` of the kept colour
/// `F` and the colour `B` of the region being replaced. `B` is estimated locally from
/// the confidently replaced pixels (`a == 255`) nearby (8x8 blocks, every other row, averaged over a 5x5
/// block window); `F = B + (I - B) / (1 - a)`, clamped, replaces `I`. Blending content
/// over `F` then no longer lets the old background show through the edge as a halo.
/// Pixels with no confident region nearby are left as they are.
pub fn unmix_plane(plane: &mut Plane, alpha: &Plane) {
    let (w, h) = (plane.width, plane.height);
    let (bw, bh) = (w.div_ceil(UNMIX_BLOCK), h.div_ceil(UNMIX_BLOCK));
    let mut sums = BlockSums {
        sum: vec![0f32; bw * bh],
        count: vec![0f32; bw * bh],
        edge: vec![0u32; bw * bh],
    };
    // Every other row is plenty for a mean over 40x40-pixel windows, and for finding
    // the blocks the edge band crosses.
    for (y, (row, arow)) in plane
        .data
        .chunks_exact(w)
        .zip(alpha.data.chunks_exact(w))
        .enumerate()
        .step_by(2)
    {
        let at = y / UNMIX_BLOCK * bw..(y / UNMIX_BLOCK + 1) * bw;
        block_sums(row, arow, &mut sums, at);
    }
    if sums.edge.iter().all(|&e| e == 0) {
        return;
    }
    let BlockSums {
        mut sum,
        mut count,
        edge,
    } = sums;
    super::blur::box_blur_f32(&mut sum, bw, bh, UNMIX_RADIUS);
    super::blur::box_blur_f32(&mut count, bw, bh, UNMIX_RADIUS);
    // Each block's background estimate, NaN where the block is left as it is.
    let background: Vec<f32> = (0..bw * bh)
        .map(|i| {
            if edge[i] == 0 || count[i] < 0.5 {
                f32::NAN
            } else {
                sum[i] / count[i]
            }
        })
        .collect();
    for (y, (row, arow)) in plane
        .data
        .chunks_exact_mut(w)
        .zip(alpha.data.chunks_exact(w))
        .enumerate()
    {
        let base = y / UNMIX_BLOCK * bw;
        if edge[base..base + bw].iter().all(|&e| e == 0) {
            continue;
        }
        unmix_row(row, arow, &background[base..base + bw]);
    }
}

multiversion! {
    /// One row of `unmix_plane`: the edge pixels of each block (0 < alpha < 255) become
    /// `F = B + (I - B) * 255 / (255 - alpha)`, `B` the block's background (NaN: skip).
    fn unmix_row(row: &mut [u8], arow: &[u8], background: &[f32]) {
        // Whole blocks as fixed-size arrays, so that the compiler vectorises them.
        let (blocks, tail) = row.as_chunks_mut::<UNMIX_BLOCK>();
        let (alphas, atail) = arow.as_chunks::<UNMIX_BLOCK>();
        for ((px, ax), &b) in blocks.iter_mut().zip(alphas).zip(background) {
            if !b.is_nan() {
                px.iter_mut().zip(ax).for_each(|(v, &a)| unmix_pixel(v, a, b));
            }
        }
        if let Some(&b) = background.get(blocks.len()).filter(|b| !b.is_nan()) {
            tail.iter_mut().zip(atail).for_each(|(v, &a)| unmix_pixel(v, a, b));
        }
    }
}

/// `F = B + (I - B) / (1 - a)` for an edge pixel; other pixels keep their value.
#[inline(always)]
fn unmix_pixel(v: &mut u8, a: u8, b: f32) {
    let gain = 255.0 / (255.0 - a as f32).max(1.0);
    let f = b + (*v as f32 - b) * gain;
    let kept = (f.clamp(0.0, 255.0) + 0.5) as u8;
    *v = if a != 0 && a != 255 { kept } else { *v };
}

/// Per 8x8 block: the sum and count of the pixels with alpha 255, and the count of
/// edge pixels (0 < alpha < 255), over the rows sampled.
struct BlockSums {
    sum: Vec<f32>,
    count: Vec<f32>,
    edge: Vec<u32>,
}

multiversion! {
    /// Adds one row to the block sums of the blocks `at`.
    fn block_sums(row: &[u8], arow: &[u8], sums: &mut BlockSums, at: std::ops::Range<usize>) {
        let blocks = row.chunks(UNMIX_BLOCK).zip(arow.chunks(UNMIX_BLOCK));
        let sum = &mut sums.sum[at.clone()];
        let count = &mut sums.count[at.clone()];
        let edge = &mut sums.edge[at];
        for (((px, ax), s), (n, e)) in blocks.zip(sum).zip(count.iter_mut().zip(edge)) {
            let (mut bs, mut bn, mut be) = (0u32, 0u32, 0u32);
            for (&v, &a) in px.iter().zip(ax) {
                let full = (a == 255) as u32;
                bs += v as u32 * full;
                bn += full;
                be += (a.wrapping_sub(1) < 254) as u32;
            }
            *s += bs as f32;
            *n += bn as f32;
            *e += be;
        }
    }
}

/// `unmix_plane` on the three planes with the entry's luma and chroma alpha.
pub fn unmix_picture(pic: &mut Yuv420, alpha: &AlphaPlanes) {
    unmix_plane(&mut pic.y, &alpha.luma);
    unmix_plane(&mut pic.u, &alpha.chroma);
    unmix_plane(&mut pic.v, &alpha.chroma);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: u8) -> Yuv420 {
        Yuv420::filled(4, 2, (v, v, v))
    }

    #[test]
    fn mixing_is_exact_at_the_ends_and_halfway() {
        let (a, b, f) = (flat(100), flat(200), flat(0));
        let plain = [CrossfadeStats::PLAIN; 3];
        let mut out = flat(7);
        mix_pictures(&mut out, (&a, &b), 0, &plain, &f, 256);
        assert_eq!(out, a);
        mix_pictures(&mut out, (&a, &b), 256, &plain, &f, 256);
        assert_eq!(out, b);
        mix_pictures(&mut out, (&a, &b), 128, &plain, &f, 256);
        assert_eq!(out, flat(150));
        mix_pictures(&mut out, (&a, &b), 128, &plain, &f, 128);
        assert_eq!(out, flat(75));
        // Flat layers have no spread to restore: measured statistics change nothing.
        let measured = [CrossfadeStats::of(&a.y, &b.y); 3];
        mix_pictures(&mut out, (&a, &b), 128, &measured, &f, 256);
        assert_eq!(out, flat(150));
    }

    #[test]
    fn layers_a_level_apart_cross_over_gradually() {
        // 100 against 101 everywhere: a plain rounding would flip every pixel at once,
        // where the weight passes 128.
        let (a, b) = (
            Yuv420::filled(128, 64, (100, 100, 100)),
            Yuv420::filled(128, 64, (101, 101, 101)),
        );
        let plain = [CrossfadeStats::PLAIN; 3];
        let mut out = a.clone();
        for w in [32u32, 64, 128, 192, 224] {
            mix_pictures(&mut out, (&a, &b), w, &plain, &a, 256);
            let flipped =
                out.y.data.iter().filter(|&&v| v == 101).count() as f64 / out.y.data.len() as f64;
            let expected = w as f64 / 256.0;
            assert!(
                (flipped - expected).abs() < 0.02,
                "w {w}: {flipped:.3} of the pixels at 101"
            );
            assert!(out.y.data.iter().all(|&v| v == 100 || v == 101));
        }
    }

    /// Standard deviation of a plane, in grey levels.
    fn spread(p: &Plane) -> f64 {
        let n = p.data.len() as f64;
        let mean = p.data.iter().map(|&v| v as f64).sum::<f64>() / n;
        (p.data
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    }

    #[test]
    fn the_crossfade_keeps_the_spread_of_independent_and_of_equal_layers() {
        let noise = |seed: u64| {
            let mut s = seed;
            let mut p = Yuv420::filled(256, 128, (128, 128, 128));
            for v in p.y.data.iter_mut() {
                // 98..=161, spread about 18.5
                *v = 98 + (crate::imgproc::noise::splitmix64(&mut s) >> 58) as u8;
            }
            p
        };
        let (a, b, frame) = (noise(1), noise(2), noise(3));
        let stats = [
            CrossfadeStats::of(&a.y, &b.y),
            CrossfadeStats::PLAIN,
            CrossfadeStats::PLAIN,
        ];
        let mut out = frame.clone();
        for w in [64, 128, 192] {
            mix_pictures(
                &mut out,
                (&a, &b),
                w,
                &[CrossfadeStats::PLAIN; 3],
                &frame,
                256,
            );
            let plain = spread(&out.y);
            mix_pictures(&mut out, (&a, &b), w, &stats, &frame, 256);
            let kept = spread(&out.y);
            assert!(
                plain < 0.85 * spread(&a.y),
                "w {w}: the plain mix dips ({plain:.2})"
            );
            assert!(
                (kept / spread(&a.y) - 1.0).abs() < 0.02,
                "w {w}: {kept:.2} against {:.2}",
                spread(&a.y)
            );
        }
        // Identical layers mix to themselves.
        let same = [CrossfadeStats::of(&a.y, &a.y); 3];
        mix_pictures(&mut out, (&a, &a), 128, &same, &frame, 256);
        assert_eq!(out.y, a.y);
    }

    #[test]
    fn mix_is_exact_at_the_ends_and_rounds_in_between() {
        for base in [0u8, 17, 200, 255] {
            for over in [0u8, 99, 255] {
                assert_eq!(mix(base, over, 0), base);
                assert_eq!(mix(base, over, 255), over);
            }
        }
        assert_eq!(mix(0, 255, 128), 128);
        assert_eq!(mix(100, 200, 64), 125); // 100 + 100*64/255 = 125.1
    }

    #[test]
    fn blend_picture_uses_luma_and_chroma_alpha() {
        let mut dst = Yuv420::filled(4, 2, (16, 128, 128));
        let content = Yuv420::filled(4, 2, (235, 0, 255));
        let alpha = AlphaPlanes {
            luma: Plane {
                width: 4,
                height: 2,
                data: vec![0, 0, 255, 255, 0, 0, 255, 255],
            },
            chroma: Plane {
                width: 2,
                height: 1,
                data: vec![0, 255],
            },
        };
        blend_picture(&mut dst, &content, &alpha);
        assert_eq!(dst.y.data, vec![16, 16, 235, 235, 16, 16, 235, 235]);
        assert_eq!(dst.u.data, vec![128, 0]);
        assert_eq!(dst.v.data, vec![128, 255]);
    }

    #[test]
    fn an_unmixed_row_follows_the_formula_in_whole_blocks_and_the_tail() {
        // 61 pixels: seven whole blocks and a tail of five; block 2 is skipped (NaN).
        let alpha: Vec<u8> = (0..61u32)
            .map(|i| [0, 255, 1, 128, 254, 37][i as usize % 6])
            .collect();
        let before: Vec<u8> = (0..61u32).map(|i| (i * 37 % 256) as u8).collect();
        let background = [10.0, 200.0, f32::NAN, 0.0, 255.0, 99.5, 128.0, 60.0];
        let mut row = before.clone();
        unmix_row(&mut row, &alpha, &background);
        for (i, ((&v, &a), &old)) in row.iter().zip(&alpha).zip(&before).enumerate() {
            let b = background[i / UNMIX_BLOCK];
            let expected = if a == 0 || a == 255 || b.is_nan() {
                old
            } else {
                let f = b + (old as f32 - b) * 255.0 / (255 - a) as f32;
                (f.clamp(0.0, 255.0) + 0.5) as u8
            };
            assert_eq!(v, expected, "pixel {i}, alpha {a}, background {b}");
        }
        assert_ne!(row, before);
    }

    #[test]
    fn unmixing_recovers_the_kept_colour_at_the_edge() {
        // Kept colour 200 on the left, replaced colour 40 on the right, a 4-pixel ramp
        // of alpha between them: the ramp pixels mix the two.
        let (w, h) = (48, 16);
        let alpha = Plane {
            width: w,
            height: h,
            data: (0..w * h)
                .map(|i| match i % w {
                    x if x < 20 => 0,
                    x if x >= 24 => 255,
                    x => ((x - 19) * 51) as u8,
                })
                .collect(),
        };
        let mut plane = Plane::new(w, h, 0);
        for (v, &a) in plane.data.iter_mut().zip(&alpha.data) {
            *v = mix(200, 40, a);
        }
        let before = plane.clone();
        unmix_plane(&mut plane, &alpha);
        for x in 20..24 {
            let (was, now) = (before.data[8 * w + x], plane.data[8 * w + x]);
            assert!(was < 190, "the edge is mixed before: {was}");
            assert!(now.abs_diff(200) <= 2, "x {x}: {was} -> {now}");
        }
        // Outside the band nothing moves.
        assert_eq!(plane.data[8 * w + 5], 200);
        assert_eq!(plane.data[8 * w + 40], 40);
        // No confident replaced region at all: left alone.
        let soft = Plane {
            width: w,
            height: h,
            data: vec![128; w * h],
        };
        let mut p = before.clone();
        unmix_plane(&mut p, &soft);
        assert_eq!(p.data, before.data);
    }

    #[test]
    fn fused_upsample_blend_equals_upsample_then_blend() {
        let mut src = Plane::new(97, 61, 0);
        for (i, v) in src.data.iter_mut().enumerate() {
            *v = ((i * 37 + i / 97 * 11) % 256) as u8;
        }
        let mut alpha = Plane::new(97, 61, 0);
        for (i, v) in alpha.data.iter_mut().enumerate() {
            *v = ((i % 97) * 255 / 96) as u8;
        }
        // Any small plane will do: a box-downscaled one, as the blur makes.
        let small = crate::imgproc::resize::downscale_box(&src, 3);
        let mut expected = src.clone();
        blend_plane(
            &mut expected,
            &crate::imgproc::resize::resize_plane(&small, 97, 61),
            &alpha,
        );
        let mut fused = src.clone();
        blend_upsampled(&mut fused, &small, &alpha);
        assert_eq!(fused.data, expected.data);
        assert_ne!(fused.data, src.data);
    }
}
