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
        for n in &self.notes {
            writeln!(f, "{n}")?;
        }
        if self.layer_reuses > 0 || self.nonfinite_values > 0 {
            writeln!(
                f,
                "synth layer reused {} times, {} non-finite values clamped",
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
