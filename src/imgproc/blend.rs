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

#[cfg(test)]
mod tests {
    use super::*;

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
