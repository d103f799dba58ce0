//! Per-stage latency samples and the closing summary.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    pub name: &'static str,
    pub ms: Vec<f32>,
}

impl StageTimes {
    pub fn new(name: &'static str) -> Self {
        StageTimes {
            name,
            ms: Vec::new(),
        }
    }
    pub fn record(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f32() * 1000.0);
    }
    pub fn percentile(&self, p: f32) -> f32 {
        percentile(&self.ms, p)
    }
}

pub fn percentile(samples: &[f32], p: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (v.len() - 1) as f32).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// A memory line of `/proc/self/status` in MiB (`VmRSS:` now, `VmHWM:` peak since the
/// last reset); 0 where there is no such file.
pub fn process_memory_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub layer_reuses: u64,
    pub nonfinite_values: u64,
    pub wall: Duration,
    pub stages: Vec<StageTimes>,
    /// The segmentation model that ran (manifest name and input size).
    pub model: String,
    /// Execution provider that ran segmentation.
    pub provider: String,
    /// (frames the segmentation model ran on, frames segmented): `--model-every`.
    pub model_runs: (u64, u64),
    /// Things the user should know about the stream (e.g. frames rescaled after a size change).
    pub notes: Vec<String>,
}

impl Summary {
    pub fn fps(&self) -> f64 {
        self.frames_out as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "frames in {} out {} dropped {} | wall {:.2} s | {:.1} fps",
            self.frames_in,
            self.frames_out,
            self.dropped,
            self.wall.as_secs_f64(),
            self.fps()
        )?;
        if !self.provider.is_empty() {
            writeln!(f, "segmentation: {} on {}", self.model, self.provider)?;
        }
        let (runs, frames) = self.model_runs;
        if frames > 0 {
            writeln!(
                f,
                "model rate: {runs} of {frames} frames ({:.0} %)",
                100.0 * runs as f64 / frames as f64
            )?;
        }
        for n in &self.notes {
            writeln!(f, "{n}")?;
        }
        if self.layer_reuses > 0 || self.nonfinite_values > 0 {
            writeln!(
                f,
                "generated content held on {} frames (a layer was late), {} non-finite values clamped",
                self.layer_reuses, self.nonfinite_values
            )?;
        }
        for s in &self.stages {
            writeln!(
                f,
                "  {:<12} p50 {:>7.2} ms  p99 {:>7.2} ms  (n={})",
                s.name,
                s.percentile(50.0),
                s.percentile(99.0),
                s.ms.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranked_samples() {
        let v: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}

/// How content moves in decoded video: mean absolute luma change (grey levels) between
/// consecutive frames and across one-second windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Motion {
    pub frames: usize,
    /// The median and the largest frame-to-frame change.
    pub median_step: f32,
    pub max_step: f32,
    /// The frame where the largest change lands.
    pub max_at: usize,
    /// The smallest change from a frame to the one a second later ("does it move?").
    pub min_second: f32,
    /// How far the frames' contrast (the standard deviation of each plane) swings, from
    /// its lowest to its highest, in percent of its mean: a crossfade between two
    /// textures lowers the contrast halfway, and content whose contrast pulses shows it.
    pub contrast_swing: f32,
}

/// The standard deviation of a plane's values.
fn plane_std(p: &[u8]) -> f64 {
    let n = p.len().max(1) as f64;
    let (sum, sq) = p.iter().fold((0u64, 0u64), |(s, q), &v| {
        (s + v as u64, q + (v as u64) * (v as u64))
    });
    let mean = sum as f64 / n;
    (sq as f64 / n - mean * mean).max(0.0).sqrt()
}

/// Mean absolute difference of two planes of one size, in grey levels.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f32 {
    let sum: u64 = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y) as u64).sum();
    sum as f32 / a.len().max(1) as f32
}

impl Motion {
    /// Figures over `frames` (luma planes of one size) at `fps` frames a second.
    pub fn of(frames: &[Vec<u8>], fps: usize) -> Motion {
        let steps: Vec<f32> = frames
            .windows(2)
            .map(|w| mean_abs_diff(&w[0], &w[1]))
            .collect();
        let (max_at, max_step) =
            steps.iter().enumerate().fold(
                (0, 0.0f32),
                |(i, m), (j, &s)| if s > m { (j + 1, s) } else { (i, m) },
            );
        let mut sorted = steps.clone();
        sorted.sort_by(f32::total_cmp);
        let fps = fps.max(1);
        let min_second = (0..frames.len().saturating_sub(fps))
            .map(|i| mean_abs_diff(&frames[i], &frames[i + fps]))
            .fold(f32::INFINITY, f32::min);
        let contrast: Vec<f64> = frames.iter().map(|f| plane_std(f)).collect();
        let mean = contrast.iter().sum::<f64>() / contrast.len().max(1) as f64;
        let (lo, hi) = contrast
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), &c| (l.min(c), h.max(c)));
        Motion {
            contrast_swing: if mean > 0.0 {
                (100.0 * (hi - lo) / mean) as f32
            } else {
                0.0
            },
            frames: frames.len(),
            median_step: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            max_step,
            max_at,
            min_second: if min_second.is_finite() {
                min_second
            } else {
                0.0
            },
        }
    }
}

impl fmt::Display for Motion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step median {:.2}, largest {:.2} (frame {}), least change over 1 s {:.2} grey levels, contrast swing {:.1} % ({} frames)",
            self.median_step,
            self.max_step,
            self.max_at,
            self.min_second,
            self.contrast_swing,
            self.frames
        )
    }
}

#[cfg(test)]
mod motion_tests {
    use super::Motion;

    #[test]
    fn motion_figures_find_the_pop_and_the_freeze() {
        // A ramp of one level a frame with one 10-level pop at frame 5, at 4 fps.
        let mut frames: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 6]).collect();
        for f in &mut frames[5..] {
            f.iter_mut().for_each(|v| *v += 10);
        }
        let m = Motion::of(&frames, 4);
        assert_eq!((m.median_step, m.max_step, m.max_at), (1.0, 11.0, 5));
        assert_eq!(m.min_second, 4.0);
        let frozen = vec![vec![7u8; 6]; 10];
        assert_eq!(Motion::of(&frozen, 4).min_second, 0.0);
        assert_eq!(
            m.contrast_swing, 0.0,
            "flat frames have no contrast to swing"
        );
    }

    #[test]
    fn contrast_swing_measures_a_dip_in_percent_of_the_mean() {
        // Two-value frames of standard deviation 10, 10, 8 (the dip) and 12.
        let frame = |d: u8| vec![100 - d, 100 + d, 100 - d, 100 + d];
        let frames = vec![frame(10), frame(10), frame(8), frame(12)];
        let m = Motion::of(&frames, 2);
        assert!(
            (m.contrast_swing - 40.0).abs() < 1e-3,
            "{}",
            m.contrast_swing
        );
    }
}
