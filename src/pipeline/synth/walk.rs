//! The seeded noise walk that animates generated content.
//!
//! Keyframes of standard-normal noise sit `period` seconds apart; between them the
//! noise is a cubic B-spline of the four nearest keyframes, divided by the root of its
//! weights' squares so every value stays standard normal. The walk is smooth (its
//! velocity is continuous) and never stands still: unlike an eased two-keyframe mix,
//! whose velocity drops to zero at each keyframe, every stretch of time moves it about
//! as much, so layers taken at equal steps differ by about the same amount.

use crate::imgproc::noise::splitmix64;

/// Deterministic standard-normal noise: splitmix64 and Marsaglia's polar method, which
/// needs one logarithm a pair and no sine or cosine (Box-Muller's `cos`/`sin` were most of
/// the cost of drawing a keyframe's million values).
pub fn normal_noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    // Uniform in (-1, 1), from the top 53 bits.
    let mut next = || (splitmix64(&mut state) >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0;
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u, v) = (next(), next());
        let s = u * u + v * v;
        if s >= 1.0 || s == 0.0 {
            continue;
        }
        let f = (-2.0 * s.ln() / s).sqrt();
        out.push((u * f) as f32);
        out.push((v * f) as f32);
    }
    out.truncate(n);
    out
}

/// Noise of `n` values at time `t` seconds of the walk with `seed` and `period`.
pub fn noise_at(seed: u64, n: usize, period: f32, t: f32) -> Vec<f32> {
    NoiseWalk::default().at(seed, n, period, t)
}

/// The cubic B-spline weights of the keyframes `i-1, i, i+1, i+2` at fraction `u` past `i`,
/// scaled so their squares sum to one.
pub fn spline_weights(u: f32) -> [f32; 4] {
    let (u2, u3) = (u * u, u * u * u);
    let w = [
        (1.0 - u).powi(3) / 6.0,
        (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0,
        (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0,
        u3 / 6.0,
    ];
    let norm = w.iter().map(|x| x * x).sum::<f32>().sqrt();
    w.map(|x| x / norm)
}

/// `noise_at` that keeps the keyframes it last drew: a generator's noise is millions of
/// values, and successive layers mostly fall between the same keyframes.
#[derive(Default)]
pub struct NoiseWalk {
    seed: u64,
    len: usize,
    /// Keyframes by index, at most the four the last call used.
    keys: Vec<(i64, Vec<f32>)>,
}

impl NoiseWalk {
    pub fn at(&mut self, seed: u64, n: usize, period: f32, t: f32) -> Vec<f32> {
        if self.seed != seed || self.len != n {
            self.keys.clear();
            (self.seed, self.len) = (seed, n);
        }
        let pos = (t / period.max(1e-3)).max(0.0);
        let first = pos.floor() as i64 - 1;
        let weights = spline_weights(pos - pos.floor());
        let mut old = std::mem::take(&mut self.keys);
        for i in first..first + 4 {
            let values = match old.iter().position(|(k, _)| *k == i) {
                Some(p) => old.swap_remove(p).1,
                None => normal_noise(seed.wrapping_mul(1_000_003).wrapping_add(i as u64), n),
            };
            self.keys.push((i, values));
        }
        let mut out = vec![0.0f32; n];
        for ((_, key), w) in self.keys.iter().zip(weights) {
            for (o, k) in out.iter_mut().zip(key) {
                *o += w * k;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_seeded_and_standard_normal() {
        let a = normal_noise(3, 20000);
        assert_eq!(a, normal_noise(3, 20000));
        assert_ne!(a, normal_noise(4, 20000));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a.len() as f32;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        // The tails of a normal: 4.55 % beyond 2 standard deviations, 0.27 % beyond 3.
        let beyond = |k: f32| a.iter().filter(|v| v.abs() > k).count() as f32 / a.len() as f32;
        assert!((beyond(2.0) - 0.0455).abs() < 0.005, "{}", beyond(2.0));
        assert!((beyond(3.0) - 0.0027).abs() < 0.0015, "{}", beyond(3.0));
    }

    fn distance(a: &[f32], b: &[f32]) -> f32 {
        (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.len() as f32).sqrt()
    }

    #[test]
    fn walk_is_continuous_keeps_variance_and_never_stands_still() {
        let (n, period) = (4096, 2.0);
        let before = noise_at(1, n, period, period - 1e-4);
        let after = noise_at(1, n, period, period + 1e-4);
        assert!(distance(&before, &after) < 1e-3, "a jump at a keyframe");
        for t in [0.0, 0.5, 1.0, 1.7, 2.0, 3.3] {
            let z = noise_at(1, n, period, t);
            let var = z.iter().map(|v| v * v).sum::<f32>() / n as f32;
            assert!((var - 1.0).abs() < 0.1, "variance {var} at {t}");
        }
        // Equal steps of time move the walk by similar amounts, at keyframes too (an
        // eased mix of two keyframes stands still there).
        let step = period / 12.0;
        let moves: Vec<f32> = (0..36)
            .map(|i| {
                let t = i as f32 * step;
                distance(
                    &noise_at(1, n, period, t),
                    &noise_at(1, n, period, t + step),
                )
            })
            .collect();
        let (lo, hi) = moves
            .iter()
            .fold((f32::MAX, 0.0f32), |(l, h), &m| (l.min(m), h.max(m)));
        assert!(lo > 0.05 && hi < 1.5 * lo, "steps from {lo} to {hi}");
    }

    #[test]
    fn the_cached_walk_gives_the_same_noise_as_a_fresh_one() {
        let mut walk = NoiseWalk::default();
        let period = 2.0;
        // Within a keyframe pair, across one and several keyframes, backwards, and with
        // another seed or length: each time what a fresh draw gives.
        for (seed, n, t) in [
            (1, 500, 0.1),
            (1, 500, 1.9),
            (1, 500, 2.1),
            (1, 500, 4.5),
            (1, 500, 8.2),
            (1, 500, 0.3),
            (2, 500, 0.3),
            (2, 600, 0.3),
        ] {
            assert_eq!(walk.at(seed, n, period, t), noise_at(seed, n, period, t));
        }
    }
}
