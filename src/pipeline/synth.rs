//! The synthesis stage: a GAN generator on its own thread, at its own rate.
//!
//! The compositor posts the newest frame time it needs (`LayerSlot::request`; `image`
//! generators also get that frame and the entry's mask) and takes whatever layer is
//! newest (`LayerSlot::latest`), waiting at most the configured budget; a layer used
//! twice is counted as a reuse. A small primer layer made before the first frame, and
//! the newest layer scaled after a size change, keep frames from waiting for a layer. Animation is a smooth
//! walk through seeded noise keyframes, driven by the frame's PTS, so the same seed
//! and clip give the same content.

use std::f32::consts::FRAC_PI_2;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::frame::{Matrix, Plane, Yuv420};
use crate::imgproc::preprocess::{TensorGeometry, frame_to_tensor};
use crate::imgproc::resize::{cover_picture, resize_plane};
use crate::infer::{InferError, Model, Output};
use crate::model::{Contract, geometry_for};
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, PartialEq)]
pub struct SynthParams {
    /// Seconds between noise keyframes.
    pub period: f32,
    pub seed: u64,
    /// Synthesis resolution as a fraction of the frame (1.0 = full resolution).
    pub scale: f32,
    /// Longest the video path waits for a fresh layer before reusing the previous one
    /// (or, while no layer of the frame's size exists yet, the previous one scaled).
    pub budget: Duration,
}

pub const DEFAULT_PERIOD: f32 = 6.0;
pub const DEFAULT_SEED: u64 = 7;
pub const DEFAULT_SCALE: f32 = 0.5;
pub const DEFAULT_BUDGET_MS: u64 = 5;

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            period: DEFAULT_PERIOD,
            seed: DEFAULT_SEED,
            scale: DEFAULT_SCALE,
            budget: Duration::from_millis(DEFAULT_BUDGET_MS),
        }
    }
}

/// A finished content layer at frame size.
pub struct SynthLayer {
    pub generation: u64,
    pub pts: u64,
    pub picture: Yuv420,
}

#[derive(Clone)]
struct Request {
    pts: u64,
    width: usize,
    height: usize,
    matrix: Matrix,
    frame: Option<Arc<Yuv420>>,
    mask: Option<Arc<Plane>>,
}

/// The hand-over point between the synth thread and the compositor.
pub struct LayerSlot {
    latest: Mutex<Option<Arc<SynthLayer>>>,
    /// The latest layer scaled to another frame size, while none of that size exists.
    scaled: Mutex<Option<Arc<SynthLayer>>>,
    published: Condvar,
    request: Mutex<Option<Request>>,
    requested: Condvar,
    stop: AtomicBool,
    budget: Duration,
    needs_frame: bool,
    needs_mask: bool,
    pub nonfinite: AtomicU64,
    /// Why the synth thread ended early (an error or a panic), for the compositor.
    failure: Mutex<Option<String>>,
}

impl LayerSlot {
    fn new(params: &SynthParams, needs_frame: bool, needs_mask: bool) -> Self {
        LayerSlot {
            latest: Mutex::new(None),
            scaled: Mutex::new(None),
            published: Condvar::new(),
            request: Mutex::new(None),
            requested: Condvar::new(),
            stop: AtomicBool::new(false),
            budget: params.budget,
            needs_frame,
            needs_mask,
            nonfinite: AtomicU64::new(0),
            failure: Mutex::new(None),
        }
    }

    /// Whether the generator makes its layer from the frame (`image` contract).
    pub fn needs_frame(&self) -> bool {
        self.needs_frame
    }

    /// Whether it also takes the entry's mask.
    pub fn needs_mask(&self) -> bool {
        self.needs_mask
    }

    /// Asks for a layer for time `pts` (ns). Never blocks on the generator.
    pub fn request(&self, pts: u64, width: usize, height: usize, matrix: Matrix) {
        self.request_with_frame(pts, width, height, matrix, None, None)
    }

    /// Same, handing over the frame (and the entry's mask) an `image` generator makes
    /// its layer from. Only the newest request is kept: the synth thread takes the
    /// latest frame when it is free, never a queue of them.
    pub fn request_with_frame(
        &self,
        pts: u64,
        width: usize,
        height: usize,
        matrix: Matrix,
        frame: Option<Arc<Yuv420>>,
        mask: Option<Arc<Plane>>,
    ) {
        if let Ok(mut r) = self.request.lock() {
            *r = Some(Request {
                pts,
                width,
                height,
                matrix,
                frame,
                mask,
            });
            self.requested.notify_one();
        }
    }

    /// The newest layer of the given size, waiting up to the budget for one at least
    /// as new as the last request. While no layer of this size exists (the first frames
    /// after a size change), the newest layer of any size, scaled to cover it.
    pub fn latest(&self, width: usize, height: usize) -> Option<Arc<SynthLayer>> {
        let wanted = self
            .request
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.pts))
            .unwrap_or(0);
        let fits = |l: &Option<Arc<SynthLayer>>| {
            l.as_ref()
                .is_some_and(|l| l.picture.width() == width && l.picture.height() == height)
        };
        // Budgets are validated (at most a minute), so this addition cannot overflow;
        // `checked_add` keeps even a huge one from panicking.
        let start = Instant::now();
        let deadline = start.checked_add(self.budget).unwrap_or(start);
        let mut guard = self.latest.lock().ok()?;
        while !(fits(&guard) && guard.as_ref().is_some_and(|l| l.pts >= wanted)) {
            let now = Instant::now();
            if now >= deadline || self.stop.load(Ordering::Relaxed) {
                break;
            }
            guard = self.published.wait_timeout(guard, deadline - now).ok()?.0;
        }
        if fits(&guard) {
            return guard.clone();
        }
        let newest = guard.clone()?;
        drop(guard);
        let mut scaled = self.scaled.lock().ok()?;
        let current = scaled.as_ref().is_some_and(|s| {
            s.generation == newest.generation
                && s.picture.width() == width
                && s.picture.height() == height
        });
        if !current {
            *scaled = Some(Arc::new(SynthLayer {
                generation: newest.generation,
                pts: newest.pts,
                picture: cover_picture(&newest.picture, width, height),
            }));
        }
        scaled.clone()
    }

    fn publish(&self, layer: SynthLayer) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(Arc::new(layer));
            self.published.notify_all();
        }
    }

    fn next_request(&self, after: Option<u64>) -> Option<Request> {
        let mut r = self.request.lock().ok()?;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(req) = r.as_ref()
                && after != Some(req.pts)
            {
                return Some(req.clone());
            }
            r = self
                .requested
                .wait_timeout(r, Duration::from_millis(50))
                .ok()?
                .0;
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.requested.notify_all();
        self.published.notify_all();
    }

    /// Marks the synth thread as dead: nobody waits for a layer again.
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
        self.stop();
    }

    /// Why the synth thread ended early, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// Deterministic standard-normal noise (splitmix64 + Box-Muller).
pub fn normal_noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64).max(1e-12)
    };
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u1, u2) = (next(), next());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Noise at time `t` seconds: `cos θ·z_k + sin θ·z_{k+1}` between keyframes `k`, with θ
/// eased by smoothstep so the walk has no kink (no visible pop) at keyframes.
pub fn noise_at(seed: u64, n: usize, period: f32, t: f32) -> Vec<f32> {
    NoiseWalk::default().at(seed, n, period, t)
}

/// `noise_at` that keeps the two keyframes it last drew: a spatial generator's noise is
/// millions of values (2048 channels at 1/16 of the layer size), and successive layers
/// mostly fall between the same two keyframes.
#[derive(Default)]
pub struct NoiseWalk {
    keys: Option<Keys>,
}

/// Keyframes `at` and `at + 1` of the walk with `seed` over `len` values.
struct Keys {
    seed: u64,
    len: usize,
    at: u64,
    first: Vec<f32>,
    second: Vec<f32>,
}

impl NoiseWalk {
    pub fn at(&mut self, seed: u64, n: usize, period: f32, t: f32) -> Vec<f32> {
        let pos = (t / period.max(1e-3)).max(0.0);
        let k = pos.floor() as u64;
        let f = pos - k as f32;
        let theta = f * f * (3.0 - 2.0 * f) * FRAC_PI_2;
        let key = |i: u64| normal_noise(seed.wrapping_mul(1_000_003).wrapping_add(i), n);
        let keys = match self.keys.take() {
            Some(old) if old.seed == seed && old.len == n && old.at == k => old,
            // The walk moved on by one keyframe: the old second is the new first.
            Some(old) if old.seed == seed && old.len == n && old.at + 1 == k => Keys {
                at: k,
                first: old.second,
                second: key(k + 1),
                ..old
            },
            _ => Keys {
                seed,
                len: n,
                at: k,
                first: key(k),
                second: key(k + 1),
            },
        };
        let (c, s) = (theta.cos(), theta.sin());
        let out = keys
            .first
            .iter()
            .zip(&keys.second)
            .map(|(x, y)| c * x + s * y)
            .collect();
        self.keys = Some(keys);
        out
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

    /// Synthesis at `scale` of the frame size (the primer uses a smaller one).
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
        let m = &self.model.manifest;
        let g = m.generator.clone().ok_or_else(|| InferError::Run {
            model: m.name.clone(),
            message: "not a generator".into(),
        })?;
        let sw = ((width as f32 * scale).round() as usize).max(1);
        let sh = ((height as f32 * scale).round() as usize).max(1);
        // Noise cells generated beyond each edge, and the pixels they make, cropped away
        // (spatial generators only; the manifest rejects `border` on the others).
        let (cell, border) = (g.scale.unwrap_or(1).max(1), g.border.unwrap_or(0));
        let margin = border * cell;
        let output = match g.contract {
            Contract::Spatial => {
                let c = g.noise_channels.unwrap_or(1);
                let (nh, nw) = (
                    sh.div_ceil(cell) + 2 * border,
                    sw.div_ceil(cell) + 2 * border,
                );
                let noise = self
                    .walk
                    .at(self.params.seed, c * nh * nw, self.params.period, t);
                let shape = [1, c as i64, nh as i64, nw as i64];
                let name = m.input.name.clone();
                self.model.run(&[(&name, &shape, &noise)])?
            }
            Contract::Latent => {
                let z = g.latent_dim.unwrap_or(1);
                let noise = self.walk.at(self.params.seed, z, self.params.period, t);
                let name = m.input.name.clone();
                self.model.run(&[(&name, &[1, z as i64], &noise)])?
            }
            Contract::Image => {
                let frame = frame.ok_or_else(|| InferError::Run {
                    model: m.name.clone(),
                    message: "image generator needs the frame".into(),
                })?;
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
                // The entry's alpha at the model's input size, in [0,1]; all ones when
                // there is none (the primer, a direct caller).
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
                // Noise for the texture, in cells of `scale` pixels covering the input,
                // walking in time like a spatial generator's.
                let noise = m.noise_input.as_ref().map(|spec| {
                    let c = spec.shape.get(1).copied().unwrap_or(1).max(1) as usize;
                    let (nh, nw) = (ih.div_ceil(cell), iw.div_ceil(cell));
                    let values = self
                        .walk
                        .at(self.params.seed, c * nh * nw, self.params.period, t);
                    (
                        spec.name.clone(),
                        [1, c as i64, nh as i64, nw as i64],
                        values,
                    )
                });
                let name = m.input.name.clone();
                let mut inputs: Vec<(&str, &[i64], &[f32])> = vec![(&name, &shape, &tensor)];
                for (name, shape, values) in mask.iter().chain(&noise) {
                    inputs.push((name.as_str(), shape, values));
                }
                self.model.run(&inputs)?
            }
        };
        let Output::F32 { shape, data } = output else {
            return Err(InferError::Run {
                model: self.model.manifest.name.clone(),
                message: "generator output must be f32".into(),
            });
        };
        let (oh, ow) = (
            shape.get(2).copied().unwrap_or(0) as usize,
            shape.get(3).copied().unwrap_or(0) as usize,
        );
        if shape.len() != 4 || shape[1] != 3 || oh == 0 || ow == 0 {
            return Err(InferError::Run {
                model: self.model.manifest.name.clone(),
                message: format!("generator output shape {shape:?}, expected [1,3,H,W]"),
            });
        }
        let side = crate::pipeline::MAX_FRAME_SIDE;
        if ow > side || oh > side || data.len() != 3 * ow * oh {
            return Err(InferError::Run {
                model: self.model.manifest.name.clone(),
                message: format!(
                    "generator output shape {shape:?} with {} values; expected [1,3,H,W] with H and W at most {side}",
                    data.len()
                ),
            });
        }
        let [lo, hi] = self.model.manifest.output.range.unwrap_or([-1.0, 1.0]);
        let (rgb, bad) = to_rgb8(&data, ow, oh, lo, hi);
        self.nonfinite += bad;
        // Spatial output covers the target exactly by cropping; others are scaled to cover.
        // Either way the result is sw x sh.
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
    /// Makes the primer layer for `first` and starts the thread. A thread that cannot
    /// be spawned is an error, never a stage that silently makes the compositor wait
    /// for layers that will not come.
    ///
    /// The primer is the first frame's layer synthesized at a quarter of the synth
    /// scale (a sixteenth of the pixels), here, before any frame is composited: the
    /// first frames get content at once instead of waiting for the model's warm-up and
    /// a full-size layer; full layers replace it as the thread makes them.
    /// `seconds` observes the time of every layer (the run's metrics).
    pub fn start(
        mut generator: Generator,
        params: &SynthParams,
        first: &Yuv420,
        matrix: Matrix,
        seconds: Option<Histogram>,
    ) -> Result<SynthStage, SynthError> {
        let image = generator.contract() == Contract::Image;
        let slot = Arc::new(LayerSlot::new(
            params,
            image,
            image && generator.model.manifest.mask_input.is_some(),
        ));
        let size = (first.width(), first.height());
        let primer_scale = (params.scale / 4.0).max(1.0 / size.0.min(size.1).max(1) as f32);
        let picture = generator.layer_at(0, size, matrix, Some(first), None, primer_scale)?;
        slot.publish(SynthLayer {
            generation: 1,
            pts: 0,
            picture,
        });
        let thread_slot = Arc::clone(&slot);
        let handle = std::thread::Builder::new()
            .name("synth".into())
            .spawn(move || {
                let slot = thread_slot;
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(generator, &slot, seconds.as_ref())
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

fn run(
    mut generator: Generator,
    slot: &LayerSlot,
    seconds: Option<&Histogram>,
) -> Result<(u64, Vec<f32>), InferError> {
    let mut last = None;
    let mut generation = 1; // the primer
    let mut times = Vec::new();
    let scale = generator.params.scale;
    while let Some(req) = slot.next_request(last) {
        let started = Instant::now();
        let result = generator.layer_at(
            req.pts,
            (req.width, req.height),
            req.matrix,
            req.frame.as_deref(),
            req.mask.as_deref(),
            scale,
        );
        let picture = result?;
        times.push(started.elapsed().as_secs_f32() * 1000.0);
        if let Some(h) = seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
        generation += 1;
        slot.nonfinite.store(generator.nonfinite, Ordering::Relaxed);
        slot.publish(SynthLayer {
            generation,
            pts: req.pts,
            picture,
        });
        last = Some(req.pts);
    }
    Ok((generator.nonfinite, times))
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
    }

    #[test]
    fn walk_is_continuous_at_keyframes_and_keeps_variance() {
        let n = 4096;
        let period = 2.0;
        let before = noise_at(1, n, period, period - 1e-4);
        let after = noise_at(1, n, period, period + 1e-4);
        let jump = before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(jump < 1e-3, "keyframe jump {jump}");
        let mid = noise_at(1, n, period, period * 0.5);
        let var = mid.iter().map(|v| v * v).sum::<f32>() / n as f32;
        assert!(
            (var - 1.0).abs() < 0.1,
            "cos/sin mix keeps unit variance: {var}"
        );
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

    #[test]
    fn nonfinite_values_are_clamped_and_counted() {
        let data = [f32::NAN, 1.0, f32::INFINITY, -1.0, 0.0, 5.0];
        let (rgb, bad) = to_rgb8(&data, 2, 1, -1.0, 1.0);
        assert_eq!(bad, 2);
        assert_eq!(rgb, vec![128, 128, 128, 255, 0, 255]);
    }
}
