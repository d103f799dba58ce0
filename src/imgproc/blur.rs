//! Cheap large-radius blur: box-downscale, three box passes (close to a Gaussian),
//! then bilinear upsample. A blurred background looks the same computed at 1/8 size.

use super::resize::{downscale_box, resize_plane};
use super::simd::multiversion;
use crate::frame::Plane;

/// Blurs `src` with a Gaussian-like kernel of roughly `radius` source pixels.
pub fn blur_plane(src: &Plane, radius: usize) -> Plane {
    if radius == 0 {
        return src.clone();
    }
    resize_plane(&blur_small(src, radius), src.width, src.height)
}

/// The blur before its upsample: `src` box-downscaled and box-filtered.
pub fn blur_small(src: &Plane, radius: usize) -> Plane {
    let factor = (radius / 4).clamp(1, 16);
    let mut small = downscale_box(src, factor);
    let r = (radius / factor / 2).max(1);
    for _ in 0..3 {
        box_pass(&mut small, r);
    }
    small
}

/// One horizontal and one vertical running-sum box filter of radius `r`, clamped edges.
pub fn box_pass(p: &mut Plane, r: usize) {
    let (w, h) = (p.width, p.height);
    if w == 0 || h == 0 {
        return;
    }
    let div = Divider::new(2 * r + 1);
    let mut line = vec![0u8; w];
    for row in p.data.chunks_exact_mut(w) {
        line.copy_from_slice(row);
        box_line(&line, row, r, div);
    }
    box_columns(p, r, div);
}

/// Rounded division by the window size as a multiply and shift; exact while
/// `sum * window < 2^23`, far above 255 * 65 * 65.
#[derive(Clone, Copy)]
struct Divider {
    half: u32,
    inv: u32,
}

impl Divider {
    fn new(window: usize) -> Self {
        let window = window.max(1) as u32;
        Divider {
            half: window / 2,
            inv: (1u32 << 23).div_ceil(window),
        }
    }
    #[inline(always)]
    fn apply(self, sum: u32) -> u8 {
        (((sum + self.half) * self.inv) >> 23) as u8
    }
}

fn box_line(src: &[u8], dst: &mut [u8], r: usize, div: Divider) {
    let n = src.len() as isize;
    let r = r as isize;
    let at = |i: isize| src[i.clamp(0, n - 1) as usize] as u32;
    let mut sum: u32 = (-r..=r).map(at).sum();
    for i in 0..n {
        dst[i as usize] = div.apply(sum);
        sum += at(i + r + 1);
        sum -= at(i - r);
    }
}

multiversion! {
    /// The vertical pass, a whole row at a time so the column sums vectorise.
    fn box_columns(p: &mut Plane, r: usize, div: Divider) {
        let (w, h) = (p.width, p.height as isize);
        let src = p.data.clone();
        let row = |y: isize| &src[y.clamp(0, h - 1) as usize * w..][..w];
        let r = r as isize;
        let mut sums = vec![0u32; w];
        for y in -r..=r {
            for (s, &v) in sums.iter_mut().zip(row(y)) {
                *s += v as u32;
            }
        }
        for (y, out) in p.data.chunks_exact_mut(w).enumerate() {
            for (o, &s) in out.iter_mut().zip(&sums) {
                *o = div.apply(s);
            }
            let y = y as isize;
            for ((s, &a), &b) in sums.iter_mut().zip(row(y + r + 1)).zip(row(y - r)) {
                *s = *s + a as u32 - b as u32;
            }
        }
    }
}

/// Box blur of radius `r` for float maps (mask feathering, unmixing's block sums),
/// edges replicated.
pub fn box_blur_f32(data: &mut [f32], w: usize, h: usize, r: usize) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    let ri = r as isize;
    let win = 1.0 / (2 * r + 1) as f32;
    // Horizontal: running sums of LANES rows side by side, so the additions of one
    // step are independent (a single running sum is one long dependency chain).
    const LANES: usize = 8;
    let clamp = |i: isize| i.clamp(0, w as isize - 1) as usize;
    let mut tmp = vec![0f32; w * LANES];
    for rows in data.chunks_mut(w * LANES) {
        let n = rows.len() / w;
        let mut sum = [0f32; LANES];
        for (k, s) in sum.iter_mut().enumerate().take(n) {
            *s = (-ri..=ri).map(|i| rows[k * w + clamp(i)]).sum();
        }
        for x in 0..w {
            let (add, sub) = (clamp(x as isize + ri + 1), clamp(x as isize - ri));
            for (k, s) in sum.iter_mut().enumerate().take(n) {
                tmp[k * w + x] = *s * win;
                *s += rows[k * w + add] - rows[k * w + sub];
            }
        }
        rows.copy_from_slice(&tmp[..n * w]);
    }
    vertical_box_f32(data, w, h, r);
}

/// `box_blur_f32` on `K` channels stored interleaved (`data[(y * w + x) * K + k]`), all in
/// one pass: each channel comes out exactly as its own `box_blur_f32` would give it (the
/// same sums in the same order), and every step updates K independent running sums.
pub fn box_blur_channels<const K: usize>(data: &mut [f32], w: usize, h: usize, r: usize) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    let win = 1.0 / (2 * r + 1) as f32;
    let mut tmp = vec![0f32; w * K];
    for row in data.chunks_exact_mut(w * K) {
        horizontal_box::<K>(row, &mut tmp, r, win);
        row.copy_from_slice(&tmp);
    }
    vertical_box_f32(data, w * K, h, r);
}

/// One row of `box_blur_channels`' horizontal pass: a running sum per channel, edges
/// replicated; only the first and last `r + 1` pixels need their indices clamped.
fn horizontal_box<const K: usize>(row: &[f32], out: &mut [f32], r: usize, win: f32) {
    let w = row.len() / K;
    let ri = r as isize;
    let at = |i: isize| i.clamp(0, w as isize - 1) as usize * K;
    let mut sum = [0f32; K];
    for i in -ri..=ri {
        for (s, &v) in sum.iter_mut().zip(&row[at(i)..at(i) + K]) {
            *s += v;
        }
    }
    // Pixels in [lo, hi) add `x + r + 1` and drop `x - r`, both inside the row.
    let lo = r.min(w);
    let hi = w.saturating_sub(r + 1).max(lo);
    let mut step = |x: usize, add: usize, sub: usize| {
        let (add, sub) = (&row[add..add + K], &row[sub..sub + K]);
        for ((o, s), (&p, &m)) in out[x * K..x * K + K]
            .iter_mut()
            .zip(&mut sum)
            .zip(add.iter().zip(sub))
        {
            *o = *s * win;
            *s += p - m;
        }
    };
    for x in 0..lo {
        step(x, at(x as isize + ri + 1), at(x as isize - ri));
    }
    for x in lo..hi {
        step(x, (x + r + 1) * K, (x - r) * K);
    }
    for x in hi..w {
        step(x, at(x as isize + ri + 1), at(x as isize - ri));
    }
}

/// The vertical pass of the float box filters: a running sum of whole rows (`w` values
/// each), so every step is a vectorised row update; edges replicated.
fn vertical_box_f32(data: &mut [f32], w: usize, h: usize, r: usize) {
    let ri = r as isize;
    let win = 1.0 / (2 * r + 1) as f32;
    let src = data.to_vec();
    let row = |i: isize| {
        let i = i.clamp(0, h as isize - 1) as usize;
        &src[i * w..(i + 1) * w]
    };
    let mut acc = vec![0f32; w];
    for k in -ri..=ri {
        for (a, &v) in acc.iter_mut().zip(row(k)) {
            *a += v;
        }
    }
    for (y, out) in data.chunks_exact_mut(w).enumerate() {
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = a * win;
        }
        let (add, sub) = (row(y as isize + ri + 1), row(y as isize - ri));
        for ((a, &p), &m) in acc.iter_mut().zip(add).zip(sub) {
            *a += p - m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_channels_blur_exactly_like_one_channel_each() {
        let (w, h) = (37, 23);
        let channel = |k: usize| -> Vec<f32> {
            (0..w * h)
                .map(|i| ((i * 31 + k * 17) % 97) as f32 / 96.0)
                .collect()
        };
        for r in [1, 3, 12] {
            let mut interleaved: Vec<f32> = (0..w * h)
                .flat_map(|i| (0..3).map(move |k| (i, k)))
                .map(|(i, k)| channel(k)[i])
                .collect();
            box_blur_channels::<3>(&mut interleaved, w, h, r);
            for k in 0..3 {
                let mut one = channel(k);
                box_blur_f32(&mut one, w, h, r);
                let got: Vec<f32> = interleaved.iter().skip(k).step_by(3).copied().collect();
                assert_eq!(got, one, "channel {k}, radius {r}");
            }
        }
    }

    #[test]
    fn blur_keeps_flat_regions_and_softens_edges() {
        let mut p = Plane::new(64, 32, 0);
        for y in 0..32 {
            for x in 32..64 {
                p.data[y * 64 + x] = 255;
            }
        }
        let b = blur_plane(&p, 16);
        assert!(b.data[16 * 64 + 2] < 10, "far left stays dark");
        assert!(b.data[16 * 64 + 61] > 245, "far right stays bright");
        let mid = b.data[16 * 64 + 32];
        assert!(mid > 60 && mid < 200, "edge is softened: {mid}");
    }

    #[test]
    fn box_pass_matches_a_direct_window_average() {
        let (w, h, r) = (23usize, 17usize, 3usize);
        let mut p = Plane::new(w, h, 0);
        for (i, v) in p.data.iter_mut().enumerate() {
            *v = ((i * 97 + i / 7 * 31) % 256) as u8;
        }
        let at = |d: &[u8], x: isize, y: isize| {
            d[y.clamp(0, h as isize - 1) as usize * w + x.clamp(0, w as isize - 1) as usize] as u32
        };
        let win = (2 * r + 1) as u32;
        let ri = r as isize;
        // Reference: rounded horizontal average, then rounded vertical average.
        let mut horizontal = p.data.clone();
        for y in 0..h as isize {
            for x in 0..w as isize {
                let s: u32 = (-ri..=ri).map(|d| at(&p.data, x + d, y)).sum();
                horizontal[y as usize * w + x as usize] = ((s + win / 2) / win) as u8;
            }
        }
        let mut expected = horizontal.clone();
        for y in 0..h as isize {
            for x in 0..w as isize {
                let s: u32 = (-ri..=ri).map(|d| at(&horizontal, x, y + d)).sum();
                expected[y as usize * w + x as usize] = ((s + win / 2) / win) as u8;
            }
        }
        box_pass(&mut p, r);
        assert_eq!(p.data, expected);
    }

    #[test]
    fn float_blur_preserves_mean_of_constant() {
        let mut d = vec![0.25f32; 12 * 9];
        box_blur_f32(&mut d, 12, 9, 2);
        assert!(d.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}
