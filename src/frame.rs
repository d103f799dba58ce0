//! Video frames as the stages see them: tightly packed I420 planes plus timing.
//!
//! The GStreamer I/O layer copies decoded buffers (which may have padded strides)
//! into this layout and back, so every pure function can assume `stride == width`.

/// Nanosecond timestamps, as GStreamer gives them.
pub type ClockTime = u64;

/// Which YUV<->RGB matrix the stream uses. Taken from the caps' colorimetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Matrix {
    Bt601,
    #[default]
    Bt709,
}

/// An 8-bit single-channel image with `stride == width`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Plane {
    pub fn new(width: usize, height: usize, fill: u8) -> Self {
        Plane {
            width,
            height,
            data: vec![fill; width * height],
        }
    }
}

/// An I420 (4:2:0 planar) picture. Chroma planes are `ceil(w/2) x ceil(h/2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Yuv420 {
    pub y: Plane,
    pub u: Plane,
    pub v: Plane,
}

pub fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

impl Yuv420 {
    pub fn filled(width: usize, height: usize, (y, u, v): (u8, u8, u8)) -> Self {
        let (cw, ch) = chroma_size(width, height);
        Yuv420 {
            y: Plane::new(width, height, y),
            u: Plane::new(cw, ch, u),
            v: Plane::new(cw, ch, v),
        }
    }
    pub fn width(&self) -> usize {
        self.y.width
    }
    pub fn height(&self) -> usize {
        self.y.height
    }
    pub fn planes(&self) -> [&Plane; 3] {
        [&self.y, &self.u, &self.v]
    }
    /// Builds an I420 picture from packed RGB8 (`width*3` bytes a row).
    pub fn from_rgb(rgb: &[u8], width: usize, height: usize, matrix: Matrix) -> Self {
        let mut out = Yuv420::filled(width, height, (16, 128, 128));
        for row in 0..height {
            for col in 0..width {
                let i = (row * width + col) * 3;
                let (y, _, _) = rgb_to_yuv(matrix, rgb[i], rgb[i + 1], rgb[i + 2]);
                out.y.data[row * width + col] = y;
            }
        }
        let (cw, ch) = chroma_size(width, height);
        for cy in 0..ch {
            for cx in 0..cw {
                // Average the (up to) 2x2 block the chroma sample covers.
                let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
                for dy in 0..2 {
                    for dx in 0..2 {
                        let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                        if x < width && y < height {
                            let i = (y * width + x) * 3;
                            r += rgb[i] as u32;
                            g += rgb[i + 1] as u32;
                            b += rgb[i + 2] as u32;
                            n += 1;
                        }
                    }
                }
                let (_, u, v) = rgb_to_yuv(matrix, (r / n) as u8, (g / n) as u8, (b / n) as u8);
                out.u.data[cy * cw + cx] = u;
                out.v.data[cy * cw + cx] = v;
            }
        }
        out
    }
}

/// A decoded frame with the timing it arrived with; the sink gets the same PTS and duration.
#[derive(Clone, Debug)]
pub struct Frame {
    pub index: u64,
    pub pts: Option<ClockTime>,
    pub duration: Option<ClockTime>,
    pub matrix: Matrix,
    pub picture: Yuv420,
}

impl Frame {
    /// The frame's video time in ns: its PTS, or its place at 30 fps when it has none.
    pub fn time(&self) -> u64 {
        self.pts.unwrap_or(self.index * 33_333_333)
    }
}

pub fn coefficients(matrix: Matrix) -> (f32, f32) {
    match matrix {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
    }
}

/// Limited-range ("TV") RGB -> YUV, the range H.264 streams use.
pub fn rgb_to_yuv(matrix: Matrix, r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (kr, kb) = coefficients(matrix);
    let (r, g, b) = (r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    let u = (b - y) / (2.0 * (1.0 - kb));
    let v = (r - y) / (2.0 * (1.0 - kr));
    // Round half up after the clamp: the same as rounding for these non-negative
    // values, without a libm call per sample.
    let q = |x: f32| (x.clamp(0.0, 255.0) + 0.5) as u8;
    (
        q(16.0 + 219.0 * y),
        q(128.0 + 224.0 * u),
        q(128.0 + 224.0 * v),
    )
}

/// Limited-range YUV -> RGB in [0,1].
#[inline]
pub fn yuv_to_rgb01(matrix: Matrix, y: f32, u: f32, v: f32) -> [f32; 3] {
    let (kr, kb) = coefficients(matrix);
    let kg = 1.0 - kr - kb;
    let y = (y - 16.0) / 219.0;
    let u = (u - 128.0) / 224.0;
    let v = (v - 128.0) / 224.0;
    let r = y + 2.0 * (1.0 - kr) * v;
    let b = y + 2.0 * (1.0 - kb) * u;
    let g = (y - kr * r - kb * b) / kg;
    [r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0)]
}

/// Alpha at luma and chroma resolution, 0..=255.
#[derive(Clone, Debug)]
pub struct AlphaPlanes {
    pub luma: Plane,
    pub chroma: Plane,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_yuv_round_trip_is_close() {
        for &(r, g, b) in &[
            (0u8, 0u8, 0u8),
            (255, 255, 255),
            (200, 30, 90),
            (10, 240, 60),
        ] {
            for m in [Matrix::Bt601, Matrix::Bt709] {
                let (y, u, v) = rgb_to_yuv(m, r, g, b);
                let back = yuv_to_rgb01(m, y as f32, u as f32, v as f32);
                for (a, e) in back.iter().zip([r, g, b]) {
                    assert!(
                        (a * 255.0 - e as f32).abs() < 2.5,
                        "{m:?} {r},{g},{b} -> {back:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        let f = Yuv420::filled(641, 359, (16, 128, 128));
        assert_eq!((f.u.width, f.u.height), (321, 180));
    }
}
