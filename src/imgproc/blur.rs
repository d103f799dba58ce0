//! Cheap large-radius blur: box-downscale, three box passes (close to a Gaussian),
//! then bilinear upsample. A blurred background looks the same computed at 1/8 size.

use super::resize::{downscale_box, resize_plane};
use crate::frame::Plane;

/// Blurs `src` with a Gaussian-like kernel of roughly `radius` source pixels.
pub fn blur_plane(src: &Plane, radius: usize) -> Plane {
    if radius == 0 {
        return src.clone();
    }
    let factor = (radius / 4).clamp(1, 16);
    let mut small = downscale_box(src, factor);
    let r = (radius / factor / 2).max(1);
    for _ in 0..3 {
        box_pass(&mut small, r);
    }
    resize_plane(&small, src.width, src.height)
}

/// One horizontal and one vertical running-sum box filter of radius `r`, clamped edges.
pub fn box_pass(p: &mut Plane, r: usize) {
    let (w, h) = (p.width, p.height);
    let mut line = vec![0u8; w.max(h)];
    for y in 0..h {
        line[..w].copy_from_slice(&p.data[y * w..(y + 1) * w]);
        box_line(&line[..w], &mut p.data[y * w..(y + 1) * w], r);
    }
    let mut col = vec![0u8; h];
    for x in 0..w {
        for y in 0..h {
            col[y] = p.data[y * w + x];
        }
        let mut out = vec![0u8; h];
        box_line(&col, &mut out, r);
        for y in 0..h {
            p.data[y * w + x] = out[y];
        }
    }
}

fn box_line(src: &[u8], dst: &mut [u8], r: usize) {
    let n = src.len() as isize;
    let r = r as isize;
    let at = |i: isize| src[i.clamp(0, n - 1) as usize] as u32;
    let win = (2 * r + 1) as u32;
    let mut sum: u32 = (-r..=r).map(at).sum();
    for i in 0..n {
        dst[i as usize] = ((sum + win / 2) / win) as u8;
        sum += at(i + r + 1);
        sum -= at(i - r);
    }
}

/// Blur for float maps at model resolution (mask feathering).
pub fn box_blur_f32(data: &mut [f32], w: usize, h: usize, r: usize) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    let ri = r as isize;
    let win = (2 * r + 1) as f32;
    let mut tmp = vec![0f32; w.max(h)];
    for y in 0..h {
        let row = &mut data[y * w..(y + 1) * w];
        let at = |i: isize| row[i.clamp(0, w as isize - 1) as usize];
        let mut sum: f32 = (-ri..=ri).map(at).sum();
        for x in 0..w as isize {
            tmp[x as usize] = sum / win;
            sum += at(x + ri + 1) - at(x - ri);
        }
        row.copy_from_slice(&tmp[..w]);
    }
    for x in 0..w {
        let at = |i: isize, d: &[f32]| d[i.clamp(0, h as isize - 1) as usize * w + x];
        let mut sum: f32 = (-ri..=ri).map(|i| at(i, data)).sum();
        for y in 0..h as isize {
            tmp[y as usize] = sum / win;
            sum += at(y + ri + 1, data) - at(y - ri, data);
        }
        for y in 0..h {
            data[y * w + x] = tmp[y];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn float_blur_preserves_mean_of_constant() {
        let mut d = vec![0.25f32; 12 * 9];
        box_blur_f32(&mut d, 12, 9, 2);
        assert!(d.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}
