//! The synthesis stage: a GAN generator on its own thread, making keyframe layers on
//! video time (`timeline`) from a seeded noise walk (`walk`).
//!
//! The compositor's `LayerTrack` asks for the keyframes around each frame's time and mixes
//! the two it falls between; the thread makes the asked-for keyframes in order. The
//! content of a frame depends on the seed and its timestamp (and, for `image`
//! generators, the frames the keyframes were made from), never on the wall clock.

pub mod timeline;
pub mod walk;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::frame::{Matrix, Plane, Yuv420};
use crate::imgproc::preprocess::{TensorGeometry, frame_to_tensor};
use crate::imgproc::resize::resize_plane;
use crate::infer::{InferError, Model, Output};
use crate::model::{Contract, geometry_for};
use prometheus_client::metrics::histogram::Histogram;
pub use timeline::{LayerSlot, LayerTrack, Timing, interval_ns};
pub use walk::{NoiseWalk, noise_at, normal_noise};

#[derive(Clone, Debug, PartialEq)]
pub struct SynthParams {
    /// Seconds between noise keyframes (a third of it between keyframe layers, a twelfth
    /// for `image` generators).
    pub period: f32,
    pub seed: u64,
    /// Synthesis resolution as a fraction of the frame (1.0 = full resolution).
    pub scale: f32,
    /// Live jobs: longest a frame waits for a late layer before the motion holds.
    pub budget: Duration,
    /// Wait for every layer a frame needs (file jobs: the same output on any machine).
    pub exact: bool,
}

pub const DEFAULT_PERIOD: f32 = 6.0;
pub const DEFAULT_SEED: u64 = 7;
pub const DEFAULT_SCALE: f32 = 0.5;
pub const DEFAULT_BUDGET_MS: u64 = 5;

impl SynthParams {
    pub fn timing(&self) -> Timing {
        Timing {
            exact: self.exact,
            budget: self.budget,
        }
    }
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            period: DEFAULT_PERIOD,
            seed: DEFAULT_SEED,
            scale: DEFAULT_SCALE,
            budget: Duration::from_millis(DEFAULT_BUDGET_MS),
            exact: true,
        }
    }
}

/// Runs a generator model for a frame size and time; returns the layer picture.
pub struct Generator {
    model: Model,
    params: SynthParams,
    walk: NoiseWalk,
    pub nonfinite: u64,
}

impl Generator {
    pub fn new(model: Model, params: SynthParams) -> Generator {
        Generator {
            model,
            params,
            walk: NoiseWalk::default(),
            nonfinite: 0,
        }
    }

    pub fn contract(&self) -> Contract {
        self.model
            .manifest
            .generator
            .as_ref()
            .map(|g| g.contract)
            .unwrap_or(Contract::Spatial)
    }

    /// Synthesizes the content layer for time `pts` at `width x height` (`image`
    /// generators make it from `frame`; those with a mask input get all ones).
    pub fn layer(
        &mut self,
        pts: u64,
        width: usize,
        height: usize,
        matrix: Matrix,
        frame: Option<&Yuv420>,
    ) -> Result<Yuv420, InferError> {
        let scale = self.params.scale;
        self.layer_at(pts, (width, height), matrix, frame, None, scale)
    }

    /// An `image` generator's layer from `frame` and, for those with a mask input, the
    /// entry's alpha at frame size (255 = replaced).
    pub fn conditioned_layer(
        &mut self,
        pts: u64,
        frame: &Yuv420,
        matrix: Matrix,
        mask: Option<&Plane>,
    ) -> Result<Yuv420, InferError> {
        let scale = self.params.scale;
        let size = (frame.width(), frame.height());
        self.layer_at(pts, size, matrix, Some(frame), mask, scale)
    }

    /// Synthesis at `scale` of the frame size: the model run for time `pts`, its output
    /// checked, converted, fitted to the synthesis size and scaled to the frame.
    fn layer_at(
        &mut self,
        pts: u64,
        (width, height): (usize, usize),
        matrix: Matrix,
        frame: Option<&Yuv420>,
        mask: Option<&Plane>,
        scale: f32,
    ) -> Result<Yuv420, InferError> {
        let t = pts as f32 / 1e9;
        let g = self
            .model
            .manifest
            .generator
            .clone()
            .ok_or_else(|| self.error("not a generator"))?;
        let sw = ((width as f32 * scale).round() as usize).max(1);
        let sh = ((height as f32 * scale).round() as usize).max(1);
        // Noise cells generated beyond each edge, and the pixels they make, cropped away
        // (spatial generators only; the manifest rejects `border` on the others).
        let (cell, border) = (g.scale.unwrap_or(1).max(1), g.border.unwrap_or(0));
        let output = match g.contract {
            Contract::Spatial => {
                let c = g.noise_channels.unwrap_or(1);
                let (nh, nw) = (
                    sh.div_ceil(cell) + 2 * border,
                    sw.div_ceil(cell) + 2 * border,
                );
                self.run_noise(&[1, c as i64, nh as i64, nw as i64], t)?
            }
            Contract::Latent => {
                let z = g.latent_dim.unwrap_or(1);
                self.run_noise(&[1, z as i64], t)?
            }
            Contract::Image => {
                let frame = frame.ok_or_else(|| self.error("image generator needs the frame"))?;
                self.run_image(frame, matrix, mask, (sw, sh), cell, t)?
            }
        };
        let (rgb, ow, oh) = self.output_rgb(output)?;
        // Spatial output covers the target exactly by cropping; others are scaled to cover.
        // Either way the result is sw x sh.
        let margin = border * cell;
        let small =
            if g.contract == Contract::Spatial && ow >= sw + 2 * margin && oh >= sh + 2 * margin {
                crop(&rgb, ow, margin, margin, sw, sh)
            } else {
                crate::content::cover(&rgb, ow, oh, sw, sh)
            };
        let low = Yuv420::from_rgb(&small, sw, sh, matrix);
        let (uw, uh) = crate::frame::chroma_size(width, height);
        Ok(Yuv420 {
            y: resize_plane(&low.y, width, height),
            u: resize_plane(&low.u, uw, uh),
            v: resize_plane(&low.v, uw, uh),
        })
    }

    fn error(&self, message: impl Into<String>) -> InferError {
        InferError::Run {
            model: self.model.manifest.name.clone(),
            message: message.into(),
        }
    }

    /// Runs a noise-only generator (spatial or latent) on walked noise of `shape`.
    fn run_noise(&mut self, shape: &[i64], t: f32) -> Result<Output, InferError> {
        let count = shape.iter().product::<i64>().max(0) as usize;
        let noise = self.walk.at(self.params.seed, count, self.params.period, t);
        let name = self.model.manifest.input.name.clone();
        self.model.run(&[(&name, shape, &noise)])
    }

    /// Runs an `image` generator on `frame` at its input size (or the synthesis size
    /// `sw x sh`), with the entry's mask and walked noise where the manifest asks.
    fn run_image(
        &mut self,
        frame: &Yuv420,
        matrix: Matrix,
        mask: Option<&Plane>,
        (sw, sh): (usize, usize),
        cell: usize,
        t: f32,
    ) -> Result<Output, InferError> {
        let m = &self.model.manifest;
        let (ih, iw) = m.input_hw();
        let (iw, ih) = if iw > 0 && ih > 0 {
            (iw as usize, ih as usize)
        } else {
            (sw, sh)
        };
        let geometry: TensorGeometry = geometry_for(&m.input, iw, ih);
        let mut tensor = Vec::new();
        frame_to_tensor(frame, matrix, &geometry, &mut tensor);
        let shape = [1, 3, ih as i64, iw as i64];
        // The entry's alpha at the model's input size, in [0,1]; all ones when there is
        // none (a direct caller).
        let mask = m.mask_input.as_ref().map(|spec| {
            let values: Vec<f32> = match mask {
                Some(p) => resize_plane(p, iw, ih)
                    .data
                    .iter()
                    .map(|&a| a as f32 / 255.0)
                    .collect(),
                None => vec![1.0f32; iw * ih],
            };
            (spec.name.clone(), [1, 1, ih as i64, iw as i64], values)
        });
        // Noise for the texture, in cells of `scale` pixels covering the input, walking in
        // time like a spatial generator's.
        let noise_spec = m.noise_input.clone();
        let noise = noise_spec.map(|spec| {
            let c = spec.shape.get(1).copied().unwrap_or(1).max(1) as usize;
            let (nh, nw) = (ih.div_ceil(cell), iw.div_ceil(cell));
            let values = self
                .walk
                .at(self.params.seed, c * nh * nw, self.params.period, t);
            (spec.name, [1, c as i64, nh as i64, nw as i64], values)
        });
        let name = self.model.manifest.input.name.clone();
        let mut inputs: Vec<(&str, &[i64], &[f32])> = vec![(&name, &shape, &tensor)];
        for (name, shape, values) in mask.iter().chain(&noise) {
            inputs.push((name.as_str(), shape, values));
        }
        self.model.run(&inputs)
    }

    /// The generator's output checked against [1,3,H,W] (H, W at most the frame limit)
    /// and converted to packed RGB8; non-finite values are counted.
    fn output_rgb(&mut self, output: Output) -> Result<(Vec<u8>, usize, usize), InferError> {
        let Output::F32 { shape, data } = output else {
            return Err(self.error("generator output must be f32"));
        };
        let (oh, ow) = (
            shape.get(2).copied().unwrap_or(0) as usize,
            shape.get(3).copied().unwrap_or(0) as usize,
        );
        if shape.len() != 4 || shape[1] != 3 || oh == 0 || ow == 0 {
            return Err(self.error(format!(
                "generator output shape {shape:?}, expected [1,3,H,W]"
            )));
        }
        let side = crate::pipeline::MAX_FRAME_SIDE;
        if ow > side || oh > side || data.len() != 3 * ow * oh {
            return Err(self.error(format!(
                "generator output shape {shape:?} with {} values; expected [1,3,H,W] with H and W at most {side}",
                data.len()
            )));
        }
        let [lo, hi] = self.model.manifest.output.range.unwrap_or([-1.0, 1.0]);
        let (rgb, bad) = to_rgb8(&data, ow, oh, lo, hi);
        self.nonfinite += bad;
        Ok((rgb, ow, oh))
    }
}

/// Planar float [3,h,w] in [lo,hi] -> packed RGB8; non-finite values become mid-grey and are counted.
pub fn to_rgb8(data: &[f32], w: usize, h: usize, lo: f32, hi: f32) -> (Vec<u8>, u64) {
    let n = w * h;
    let mut out = vec![0u8; n * 3];
    let mut bad = 0;
    let span = (hi - lo).max(1e-6);
    for c in 0..3 {
        for p in 0..n {
            let mut v = data[c * n + p];
            if !v.is_finite() {
                bad += 1;
                v = (lo + hi) / 2.0;
            }
            out[p * 3 + c] = (((v - lo) / span).clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        }
    }
    (out, bad)
}

fn crop(rgb: &[u8], stride_w: usize, x0: usize, y0: usize, w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in y0..y0 + h {
        out.extend_from_slice(&rgb[(y * stride_w + x0) * 3..(y * stride_w + x0 + w) * 3]);
    }
    out
}

/// What a synth thread returns when it ends: (non-finite values clamped, per-layer ms).
type SynthOutcome = Result<(u64, Vec<f32>), SynthError>;

/// A running synth thread and the slot it fills.
pub struct SynthStage {
    pub slot: Arc<LayerSlot>,
    handle: Option<std::thread::JoinHandle<SynthOutcome>>,
}

impl SynthStage {
    /// Starts the thread. A thread that cannot be spawned is an error, never a stage
    /// that silently makes the compositor wait for layers that will not come.
    /// `seconds` observes the time of every layer (the run's metrics).
    pub fn start(
        generator: Generator,
        params: &SynthParams,
        seconds: Option<Histogram>,
    ) -> Result<SynthStage, SynthError> {
        let image = generator.contract() == Contract::Image;
        let interval = interval_ns(params.period, image);
        let slot = Arc::new(LayerSlot::new(
            image,
            image && generator.model.manifest.mask_input.is_some(),
            interval,
        ));
        let thread_slot = Arc::clone(&slot);
        let handle = std::thread::Builder::new()
            .name("synth".into())
            .spawn(move || {
                let slot = thread_slot;
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(generator, &slot, interval, seconds.as_ref())
                }));
                match outcome {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => {
                        slot.fail(e.to_string());
                        Err(SynthError::Infer(e))
                    }
                    Err(payload) => {
                        let message = crate::pipeline::panic_message(payload.as_ref());
                        slot.fail(format!("the synth thread panicked: {message}"));
                        Err(SynthError::Panic(message))
                    }
                }
            })
            .map_err(|e| SynthError::Spawn(e.to_string()))?;
        Ok(SynthStage {
            slot,
            handle: Some(handle),
        })
    }

    /// Stops the thread; returns (non-finite values clamped, per-layer ms).
    pub fn finish(mut self) -> SynthOutcome {
        self.slot.stop();
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(payload)) => Err(SynthError::Panic(crate::pipeline::panic_message(
                payload.as_ref(),
            ))),
            None => Ok((0, Vec::new())),
        }
    }
}

impl Drop for SynthStage {
    fn drop(&mut self) {
        self.slot.stop();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("internal error: the synth thread panicked ({0}); please report it")]
    Panic(String),
    #[error("cannot start the synth thread: {0}")]
    Spawn(String),
}

/// Makes the keyframes the slot asks for, in order, until it is stopped.
fn run(
    mut generator: Generator,
    slot: &LayerSlot,
    interval: u64,
    seconds: Option<&Histogram>,
) -> Result<(u64, Vec<f32>), InferError> {
    let mut times = Vec::new();
    let scale = generator.params.scale;
    while let Some(job) = slot.take_job() {
        let started = Instant::now();
        let (width, height, matrix) = job.shape;
        let picture = generator.layer_at(
            job.k.saturating_mul(interval),
            (width, height),
            matrix,
            job.frame.as_deref(),
            job.mask.as_deref(),
            scale,
        )?;
        times.push(started.elapsed().as_secs_f32() * 1000.0);
        if let Some(h) = seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
        slot.nonfinite.store(generator.nonfinite, Ordering::Relaxed);
        slot.deliver(&job, picture);
    }
    Ok((generator.nonfinite, times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonfinite_values_are_clamped_and_counted() {
        let data = [f32::NAN, 1.0, f32::INFINITY, -1.0, 0.0, 5.0];
        let (rgb, bad) = to_rgb8(&data, 2, 1, -1.0, 1.0);
        assert_eq!(bad, 2);
        assert_eq!(rgb, vec![128, 128, 128, 255, 0, 255]);
    }
}
