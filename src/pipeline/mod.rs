//! Stage orchestration: source -> [segment] -> [composite (+ synth layers)] -> sink,
//! on scoped threads joined by bounded channels. No GStreamer here: sources and
//! sinks are traits, so the same stages run under the benchmark without it.
//!
//! The channel contract (rav1e's): each stage owns exactly one receiver and one sender.
//! Dropping a sender is end of stream; dropping a receiver tells the producer to stop.
//! Nobody keeps a spare end, so a stage that dies disconnects its neighbours. No call
//! blocks without a timeout: every send and receive wakes every 50 ms to look at the
//! abort flag, so a failure anywhere ends every stage within a bounded time. The first
//! failure (an error or a panic) is kept with the name of its stage; the rest are
//! consequences and are discarded.

pub mod cadence;
pub mod composite;
pub mod metrics;
mod run;
pub mod segment;
pub mod stats;
pub mod synth;

pub use run::{panic_message, run};

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::frame::AlphaPlanes;
use crate::frame::Frame;
use crate::infer::InferError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Infer(#[from] InferError),
    /// A source or sink failed (GStreamer I/O errors arrive here boxed, so this layer
    /// stays free of GStreamer).
    #[error("{0}")]
    Io(Box<dyn std::error::Error + Send + Sync>),
    /// A stage failed; every other stage was stopped.
    #[error("{stage} stage: {source}")]
    Stage {
        stage: &'static str,
        #[source]
        source: Box<PipelineError>,
    },
    /// A bug: a stage thread panicked. Never reported as success.
    #[error("internal error in the {stage} stage (it panicked: {message}); please report it")]
    Panic {
        stage: &'static str,
        message: String,
    },
    #[error("cannot start the {stage} thread: {message}")]
    Spawn {
        stage: &'static str,
        message: String,
    },
}

impl PipelineError {
    /// The name of the stage that failed, where known.
    pub fn stage(&self) -> Option<&'static str> {
        match self {
            PipelineError::Stage { stage, .. }
            | PipelineError::Panic { stage, .. }
            | PipelineError::Spawn { stage, .. } => Some(stage),
            _ => None,
        }
    }
}

/// Where frames come from. `Ok(None)` is end of stream.
pub trait FrameSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError>;
}

/// Where processed frames go.
pub trait FrameSink: Send {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError>;
}

/// The segment stage: a frame in, one alpha plane set per content entry out.
pub trait Segment: Send {
    fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, PipelineError>;
    /// Takes a new class -> content map and mask settings from the next frame on
    /// (a live edit). Stages that cannot change say so.
    fn reconfigure(
        &mut self,
        _entries: &[crate::content::Entry],
        _mask: &crate::imgproc::mask::MaskParams,
    ) -> Result<(), PipelineError> {
        Err(PipelineError::Io(
            "this segment stage cannot change its classes while running".into(),
        ))
    }
}

/// The composite stage: blends content into the frame through the alphas.
pub trait Composite: Send {
    fn composite(&mut self, frame: &mut Frame, alphas: &[AlphaPlanes])
    -> Result<(), PipelineError>;
    /// How often generated content held still because a layer was late (counted in the summary).
    fn layer_reuses(&self) -> u64 {
        0
    }
    /// Video time (ns) the stage must have seen past a frame before compositing it.
    fn lookahead(&self) -> Option<u64> {
        None
    }
    /// A frame entering the stage, before any earlier frame is composited.
    fn observe(&mut self, _frame: &Frame, _alphas: &[AlphaPlanes]) {}
}

impl Segment for segment::Segmenter {
    fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, PipelineError> {
        Ok(segment::Segmenter::masks(self, frame)?)
    }
    fn reconfigure(
        &mut self,
        entries: &[crate::content::Entry],
        mask: &crate::imgproc::mask::MaskParams,
    ) -> Result<(), PipelineError> {
        Ok(segment::Segmenter::reconfigure(self, entries, mask)?)
    }
}

impl Composite for composite::Compositor {
    fn composite(
        &mut self,
        frame: &mut Frame,
        alphas: &[AlphaPlanes],
    ) -> Result<(), PipelineError> {
        Ok(composite::Compositor::composite(self, frame, alphas)?)
    }
    fn layer_reuses(&self) -> u64 {
        self.layer_reuses
    }
    fn lookahead(&self) -> Option<u64> {
        composite::Compositor::lookahead(self)
    }
    fn observe(&mut self, frame: &Frame, alphas: &[AlphaPlanes]) {
        composite::Compositor::observe(self, frame, alphas)
    }
}

/// What a consumer does when frames queue up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Files: take every frame in order; the producer waits. Never drops.
    Block,
    /// Live: take the newest queued frame and count the ones skipped, so latency never
    /// builds up. The producer never drops anything itself.
    DropOldest,
}

/// Shared counters the progress display reads while the job runs.
#[derive(Default)]
pub struct Progress {
    /// Frames the input announces (0 while unknown).
    pub expected: AtomicU64,
    /// While the sink is inside `push`: when it started (ms since the Unix epoch), else 0.
    /// A stop watchdog reads it to tell a blocked sink from slow stages.
    pub pushing_since_ms: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub dropped: AtomicU64,
    /// Recent added latencies (ms), appsink to appsrc, for live statistics.
    pub recent_latency: Mutex<std::collections::VecDeque<f32>>,
    /// The same events for Prometheus (`segsynth run --metrics`).
    pub metrics: metrics::Metrics,
    /// When drops were last said, and how many there were then (`note_drops`).
    drops_said: Mutex<(Option<std::time::Instant>, u64)>,
}

/// The shortest time between two notices of dropped frames.
const DROP_NOTICE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Progress {
    /// Counters of a process's first stream, `name` in its metrics.
    pub fn named(name: &str) -> Progress {
        Progress {
            metrics: metrics::Metrics::new(name),
            ..Progress::default()
        }
    }

    /// Counters of another stream of the same process: its own counts, its metrics in
    /// the same registry under its `stream` label.
    pub fn stream(&self, name: &str) -> Progress {
        Progress {
            metrics: self.metrics.stream(name),
            ..Progress::default()
        }
    }

    /// Says that frames were dropped, with the reason, at most every 5 s (the first drop
    /// at once): a stream that cannot be held shows in the log, not only in metrics.
    pub fn note_drops(&self) {
        let dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        let Ok(mut said) = self.drops_said.lock() else {
            return;
        };
        let (at, before) = *said;
        if dropped <= before || at.is_some_and(|t| t.elapsed() < DROP_NOTICE_EVERY) {
            return;
        }
        let since = at.map_or(String::new(), |t| {
            format!(" in the last {:.0} s", t.elapsed().as_secs_f64())
        });
        crate::notice!(
            "{} frames dropped{since} (stage_queue: the stages are slower than the input; {dropped} in all)",
            dropped - before
        );
        *said = (Some(std::time::Instant::now()), dropped);
    }

    fn record_latency(&self, ms: f32) {
        if let Ok(mut v) = self.recent_latency.lock() {
            if v.len() >= 600 {
                v.pop_front();
            }
            v.push_back(ms);
        }
    }

    /// (p50, p99) of the recent added latency in ms.
    pub fn latency(&self) -> (f32, f32) {
        let v: Vec<f32> = self
            .recent_latency
            .lock()
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        (stats::percentile(&v, 50.0), stats::percentile(&v, 99.0))
    }
}

/// The largest frame the stages take, per side. Larger streams are refused with a
/// clear error (a decoder can announce any size; memory is not unlimited).
pub const MAX_FRAME_SIDE: usize = 8192;

/// Keeps every frame at the first frame's size, as ffmpeg does: a stream that changes
/// size mid-way is scaled (aspect kept, padded) back to it, and counted.
#[derive(Debug)]
pub struct KeepSize {
    pub width: usize,
    pub height: usize,
    pub rescaled: u64,
    /// The other sizes seen, in order of first appearance.
    pub seen: Vec<(usize, usize)>,
}

impl KeepSize {
    pub fn new(width: usize, height: usize) -> Self {
        KeepSize {
            width,
            height,
            rescaled: 0,
            seen: Vec::new(),
        }
    }

    pub fn keep(&mut self, mut frame: Frame) -> Frame {
        let size = (frame.picture.width(), frame.picture.height());
        if size == (self.width, self.height) {
            return frame;
        }
        if !self.seen.contains(&size) {
            tracing::warn!(
                from = %format!("{}x{}", size.0, size.1),
                to = %format!("{}x{}", self.width, self.height),
                "the stream changed size; scaling its frames to the first size (aspect kept, padded)"
            );
            self.seen.push(size);
        }
        self.rescaled += 1;
        frame.picture =
            crate::imgproc::resize::fit_picture(&frame.picture, self.width, self.height);
        frame
    }

    /// What to add to the summary.
    pub fn note(&self) -> Option<String> {
        (self.rescaled > 0).then(|| {
            let from: Vec<String> = self.seen.iter().map(|(w, h)| format!("{w}x{h}")).collect();
            format!(
                "{} frames rescaled from {} to {}x{} (aspect kept, padded)",
                self.rescaled,
                from.join(", "),
                self.width,
                self.height
            )
        })
    }
}

/// Maps a live source's timestamps onto an output's clock, keeping the spacing the
/// source gave its frames (their PTS and duration travel unchanged relative to each
/// other). Re-anchors when the source restarts its clock (a reconnect) or jumps.
#[derive(Debug, Default)]
pub struct Retime {
    offset: Option<i128>,
    last_in: Option<u64>,
    last_out: Option<u64>,
}

impl Retime {
    /// A jump larger than this re-anchors the mapping.
    const MAX_GAP_NS: u64 = 2_000_000_000;

    /// Output PTS for a frame stamped `pts` (ns) arriving when the output's clock reads `now`.
    pub fn output_pts(&mut self, pts: Option<u64>, now: u64) -> u64 {
        let Some(pts) = pts else {
            return self.emit(now);
        };
        let jumped = self
            .last_in
            .is_none_or(|last| pts < last || pts - last > Self::MAX_GAP_NS);
        if self.offset.is_none() || jumped {
            self.offset = Some(now as i128 - pts as i128);
        }
        self.last_in = Some(pts);
        let mapped = (pts as i128 + self.offset.unwrap_or(0)).max(0) as u64;
        self.emit(mapped)
    }

    /// Never goes backwards: a muxer rejects that.
    fn emit(&mut self, t: u64) -> u64 {
        let t = match self.last_out {
            Some(last) if t <= last => last + 1,
            _ => t,
        };
        self.last_out = Some(t);
        t
    }
}

/// A source that yields one frame already pulled, then the rest of `inner`.
pub struct Prepended<'a> {
    pub first: Option<Frame>,
    pub inner: &'a mut dyn FrameSource,
}

impl FrameSource for Prepended<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        match self.first.take() {
            Some(f) => Ok(Some(f)),
            None => self.inner.next_frame(),
        }
    }
}

pub struct StageConfig {
    pub backpressure: Backpressure,
    pub capacity: usize,
    /// Live edits to pick up between frames (`segsynth run` watching its preset).
    pub edits: Option<Arc<Edits>>,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            backpressure: Backpressure::Block,
            capacity: 4,
            edits: None,
        }
    }
}

/// A new class -> content map, made off the video path (images loaded, generators
/// opened) and switched to between two frames: the segment stage takes the
/// entries and mask settings, and the frame it segments first carries the compositor
/// to the composite stage, so masks and content change on the same frame.
pub struct Edit {
    pub entries: Vec<crate::content::Entry>,
    pub mask: crate::imgproc::mask::MaskParams,
    pub compositor: Box<dyn Composite>,
    /// Said (on stderr and in the log) when the edit reaches the stages.
    pub label: String,
}

/// The hand-over point for edits: only the newest unapplied one is kept.
#[derive(Default)]
pub struct Edits {
    pending: Mutex<Option<Edit>>,
    /// Edits applied so far.
    pub applied: AtomicU64,
}

impl Edits {
    pub fn publish(&self, edit: Edit) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(edit);
        }
    }

    fn take(&self) -> Option<Edit> {
        self.pending.lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests;
