//! When the segmentation model runs (`--model-every`): the decision, made on each
//! frame's model input. Frames it skips reuse the scores of the last run; the mask
//! refine lays them on the frame's own edges.

use crate::imgproc::preprocess::{Layout, TensorGeometry};
use crate::options::ModelEvery;

/// Side of the square cells, in model-input pixels, whose mean colours are compared.
const CELL: usize = 8;
/// `auto` runs the model when the mean colour of some cell has moved by more than this
/// (grey levels, 0-255, averaged over R, G and B) since the model last ran. Sensor noise
/// averages out within a cell; an edge moving through one does not (a strong edge moving
/// one model-input pixel moves its cell's mean by about 19). Chosen with
/// `tests/quality.rs`: at 12 the masks of a slow pan agreed with the model on every frame
/// to IoU 0.9997 mean, 0.990 worst, with the model on 56 of 90 frames; at 16 the worst
/// frame fell to 0.953.
pub const AUTO_CHANGE: f32 = 12.0;

pub struct Cadence {
    every: ModelEvery,
    /// Whether a model run's scores are held (none before the first frame or after a reset).
    held: bool,
    /// Cell means of the input of the last run (`auto` only), and of the current one.
    reference: Vec<f32>,
    cells: Vec<f32>,
    /// Frames since the model last ran.
    since: u32,
    pub frames: u64,
    pub runs: u64,
}

impl Cadence {
    pub fn new(every: ModelEvery) -> Cadence {
        Cadence {
            every,
            held: false,
            reference: Vec::new(),
            cells: Vec::new(),
            since: 0,
            frames: 0,
            runs: 0,
        }
    }

    /// Whether the model runs on the frame whose model input is `input`.
    pub fn due(&mut self, input: &[f32], geometry: &TensorGeometry) -> bool {
        self.frames += 1;
        let auto = self.every == ModelEvery::Auto;
        if auto {
            cell_means(input, geometry, &mut self.cells);
        }
        let run = !self.held
            || match self.every {
                ModelEvery::Frames(n) => self.since + 1 >= n,
                ModelEvery::Auto => {
                    self.since + 1 >= ModelEvery::AUTO_MAX
                        || largest_change(&self.cells, &self.reference) > AUTO_CHANGE
                }
            };
        if run {
            if auto {
                std::mem::swap(&mut self.reference, &mut self.cells);
            }
            self.held = true;
            self.since = 0;
            self.runs += 1;
        } else {
            self.since += 1;
        }
        run
    }

    /// Drops the held scores (new classes or settings): the next frame runs the model.
    pub fn reset(&mut self, every: ModelEvery) {
        self.every = every;
        self.held = false;
    }
}

/// Mean of each CELL x CELL cell of the input, in 0-255 grey levels averaged over the
/// three channels (the tensor's normalisation undone up to its offset, which cancels).
fn cell_means(input: &[f32], g: &TensorGeometry, out: &mut Vec<f32>) {
    let (w, h) = (g.width, g.height);
    let (gw, gh) = (w.div_ceil(CELL), h.div_ceil(CELL));
    out.clear();
    out.resize(gw * gh, 0.0);
    let gain = g
        .scale
        .map(|s| 255.0 / 3.0 / if s == 0.0 { 1.0 } else { s });
    for y in 0..h {
        let row = &mut out[(y / CELL) * gw..(y / CELL + 1) * gw];
        for x in 0..w {
            let v = |c: usize| match g.layout {
                Layout::Nhwc => input[(y * w + x) * 3 + c],
                Layout::Nchw => input[(c * h + y) * w + x],
            };
            row[x / CELL] += v(0) * gain[0] + v(1) * gain[1] + v(2) * gain[2];
        }
    }
    for (i, m) in out.iter_mut().enumerate() {
        let (cx, cy) = (i % gw, i / gw);
        let cw = (w - cx * CELL).min(CELL);
        let ch = (h - cy * CELL).min(CELL);
        *m /= (cw * ch) as f32;
    }
}

/// The largest absolute difference between corresponding cells (infinite when the
/// grids differ: a new size).
fn largest_change(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(layout: Layout) -> TensorGeometry {
        TensorGeometry::unit(32, 20, layout)
    }

    /// A grey input with one 4x4 patch `bump` grey levels brighter (NHWC).
    fn input(bump: f32) -> Vec<f32> {
        let mut v = vec![100.0 / 255.0; 32 * 20 * 3];
        for y in 8..12 {
            for x in 8..12 {
                for c in 0..3 {
                    v[(y * 32 + x) * 3 + c] += bump / 255.0;
                }
            }
        }
        v
    }

    #[test]
    fn auto_runs_on_change_and_at_least_every_third_frame() {
        let g = geometry(Layout::Nhwc);
        let mut c = Cadence::new(ModelEvery::Auto);
        let still = input(0.0);
        // First frame runs; a still picture then runs every third frame.
        let runs: Vec<bool> = (0..7).map(|_| c.due(&still, &g)).collect();
        assert_eq!(runs, [true, false, false, true, false, false, true]);
        // A patch a quarter of a cell big, 80 levels brighter: the cell mean moves 20.
        assert!(!c.due(&still, &g));
        assert!(c.due(&input(80.0), &g));
        // Compared with the last run's input, not the previous frame's.
        assert!(!c.due(&input(80.0), &g));
        assert!(!c.due(&input(84.0), &g), "one level: below the threshold");
        assert_eq!((c.frames, c.runs), (11, 4));
    }

    #[test]
    fn fixed_rates_and_resets() {
        let g = geometry(Layout::Nchw);
        let v = input(0.0);
        let mut every = Cadence::new(ModelEvery::Frames(1));
        assert!((0..5).all(|_| every.due(&v, &g)));
        let mut second = Cadence::new(ModelEvery::Frames(2));
        let runs: Vec<bool> = (0..5).map(|_| second.due(&v, &g)).collect();
        assert_eq!(runs, [true, false, true, false, true]);
        second.reset(ModelEvery::Frames(2));
        assert!(
            second.due(&v, &g),
            "a reset runs the model on the next frame"
        );
    }

    #[test]
    fn cell_means_are_grey_levels_in_either_layout() {
        let mut nhwc = Vec::new();
        cell_means(&input(40.0), &geometry(Layout::Nhwc), &mut nhwc);
        assert_eq!(nhwc.len(), 4 * 3);
        assert!((nhwc[0] - 100.0).abs() < 1e-3, "{}", nhwc[0]);
        assert!((nhwc[5] - 110.0).abs() < 1e-3, "{}", nhwc[5]);
        // The same picture planar.
        let hwc = input(40.0);
        let mut planar = vec![0.0; hwc.len()];
        for (i, px) in hwc.chunks(3).enumerate() {
            for c in 0..3 {
                planar[c * 32 * 20 + i] = px[c];
            }
        }
        let mut nchw = Vec::new();
        cell_means(&planar, &geometry(Layout::Nchw), &mut nchw);
        assert_eq!(nhwc, nchw);
    }
}
