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

pub mod composite;
pub mod segment;
pub mod stats;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};

use crate::frame::Frame;
use crate::imgproc::mask::AlphaPlanes;
use crate::infer::InferError;
use stats::{StageTimes, Summary};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("{0}")]
    Io(String),
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
}

/// The composite stage: blends content into the frame through the alphas.
pub trait Composite: Send {
    fn composite(&mut self, frame: &mut Frame, alphas: &[AlphaPlanes])
    -> Result<(), PipelineError>;
    /// How often a synthesized layer was used again (counted in the summary).
    fn layer_reuses(&self) -> u64 {
        0
    }
}

impl Segment for segment::Segmenter {
    fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, PipelineError> {
        Ok(segment::Segmenter::masks(self, frame)?)
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
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub dropped: AtomicU64,
    /// Recent added latencies (ms), appsink to appsrc, for live statistics.
    pub recent_latency: Mutex<std::collections::VecDeque<f32>>,
}

impl Progress {
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
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            backpressure: Backpressure::Block,
            capacity: 4,
        }
    }
}

/// How often a blocked send or receive looks at the abort flag.
const POLL: Duration = Duration::from_millis(50);

/// The first failure of a run and the flag that tells every stage to end.
#[derive(Default)]
struct Failure {
    abort: AtomicBool,
    first: Mutex<Option<PipelineError>>,
}

impl Failure {
    fn record(&self, stage: &'static str, error: PipelineError) {
        let error = match error {
            e @ (PipelineError::Stage { .. }
            | PipelineError::Panic { .. }
            | PipelineError::Spawn { .. }) => e,
            e => PipelineError::Stage {
                stage,
                source: Box::new(e),
            },
        };
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert(error);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Runs a stage body; an error or a panic is recorded under the stage's name.
    fn guard<T>(
        &self,
        stage: &'static str,
        body: impl FnOnce() -> Result<T, PipelineError>,
    ) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.record(stage, e);
                None
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                self.record(stage, PipelineError::Panic { stage, message });
                None
            }
        }
    }

    fn take(&self) -> Option<PipelineError> {
        self.first.lock().ok().and_then(|mut f| f.take())
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Sends, waiting while the channel is full; false when the consumer is gone or
/// `give_up` says so (the run is aborting, or the source was told to stop).
fn send<T>(tx: &Sender<T>, mut item: T, give_up: impl Fn() -> bool) -> bool {
    loop {
        match tx.send_timeout(item, POLL) {
            Ok(()) => return true,
            Err(SendTimeoutError::Disconnected(_)) => return false,
            Err(SendTimeoutError::Timeout(back)) => {
                if give_up() {
                    return false;
                }
                item = back;
            }
        }
    }
}

/// Receives the next item (the newest under `DropOldest`, counting the skipped ones);
/// None at end of stream or when the run is aborting.
fn recv<T>(
    rx: &Receiver<T>,
    policy: Backpressure,
    failure: &Failure,
    dropped: &AtomicU64,
) -> Option<T> {
    let mut item = loop {
        if failure.aborted() {
            return None;
        }
        match rx.recv_timeout(POLL) {
            Ok(item) => break item,
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    if policy == Backpressure::DropOldest {
        for newer in rx.try_iter() {
            dropped.fetch_add(1, Ordering::Relaxed);
            item = newer;
        }
    }
    Some(item)
}

struct Timed<T> {
    item: T,
    entered: Instant,
}

/// Runs the stages until the source ends, `stop` is set, or a stage fails.
///
/// A stop ends the source; the frames already inside the stages are still finished and
/// pushed (so a stopped file holds every frame processed so far). A failure ends every
/// stage without draining, and the first failure is returned with its stage's name.
pub fn run(
    source: &mut dyn FrameSource,
    segmenter: &mut dyn Segment,
    compositor: &mut dyn Composite,
    sink: &mut dyn FrameSink,
    config: &StageConfig,
    stop: &AtomicBool,
    progress: &Arc<Progress>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let cap = config.capacity.max(1);
    let policy = config.backpressure;
    let failure = Failure::default();
    let comp_stage = &mut *compositor;
    let mut times: Vec<StageTimes> = Vec::new();

    std::thread::scope(|s| {
        let (to_segment, segment_rx) = bounded::<Timed<Frame>>(cap);
        let (to_composite, composite_rx) = bounded::<Timed<(Frame, Vec<AlphaPlanes>)>>(cap);
        let failure = &failure;

        let segment = std::thread::Builder::new()
            .name("segment".into())
            .spawn_scoped(s, move || {
                // Owns `segment_rx` and `to_composite`; both drop when this returns.
                failure.guard("segment", || {
                    let mut work = StageTimes::new("segment");
                    let mut queue = StageTimes::new("queue");
                    while let Some(Timed {
                        item: frame,
                        entered,
                    }) = recv(&segment_rx, policy, failure, &progress.dropped)
                    {
                        let t = Instant::now();
                        queue.record(t - entered);
                        let masks = segmenter.masks(&frame)?;
                        work.record(t.elapsed());
                        if !send(
                            &to_composite,
                            Timed {
                                item: (frame, masks),
                                entered,
                            },
                            || failure.aborted(),
                        ) {
                            break;
                        }
                    }
                    Ok(vec![queue, work])
                })
            });
        let segment = match segment {
            Ok(h) => Some(h),
            Err(e) => {
                failure.record(
                    "segment",
                    PipelineError::Spawn {
                        stage: "segment",
                        message: e.to_string(),
                    },
                );
                None
            }
        };

        let composite = std::thread::Builder::new()
            .name("composite".into())
            .spawn_scoped(s, move || {
                let mut work = StageTimes::new("composite");
                let mut push = StageTimes::new("push");
                let mut added = StageTimes::new("added");
                while let Some(Timed {
                    item: (mut frame, masks),
                    entered,
                }) = recv(&composite_rx, policy, failure, &progress.dropped)
                {
                    let t = Instant::now();
                    failure.guard("composite", || comp_stage.composite(&mut frame, &masks))?;
                    work.record(t.elapsed());
                    let p = Instant::now();
                    failure.guard("output", || sink.push(frame))?;
                    push.record(p.elapsed());
                    added.record(entered.elapsed());
                    progress.record_latency(entered.elapsed().as_secs_f32() * 1000.0);
                    progress.frames_out.fetch_add(1, Ordering::Relaxed);
                }
                drop(composite_rx);
                Some(vec![work, push, added])
            });
        let composite = match composite {
            Ok(h) => Some(h),
            Err(e) => {
                failure.record(
                    "composite",
                    PipelineError::Spawn {
                        stage: "composite",
                        message: e.to_string(),
                    },
                );
                None
            }
        };

        // The source runs here, on the caller's thread (GStreamer sources need not be Send).
        let mut read = StageTimes::new("decode");
        failure.guard("input", || {
            while !stop.load(Ordering::Relaxed) && !failure.aborted() {
                let t = Instant::now();
                let Some(frame) = source.next_frame()? else {
                    break;
                };
                read.record(t.elapsed());
                // A frame counts as read once a stage took it; one in hand at a stop is let go.
                let stopping = || failure.aborted() || stop.load(Ordering::Relaxed);
                if !send(
                    &to_segment,
                    Timed {
                        item: frame,
                        entered: Instant::now(),
                    },
                    stopping,
                ) {
                    break;
                }
                progress.frames_in.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        drop(to_segment);
        times.push(read);
        // A panic inside `guard` was caught there, so joining cannot fail; a join error
        // would still be reported rather than unwrapped.
        if let Some(h) = segment {
            match h.join() {
                Ok(t) => times.extend(t.into_iter().flatten()),
                Err(p) => failure.record(
                    "segment",
                    PipelineError::Panic {
                        stage: "segment",
                        message: panic_message(p.as_ref()),
                    },
                ),
            }
        }
        if let Some(h) = composite {
            match h.join() {
                Ok(t) => times.extend(t.into_iter().flatten()),
                Err(p) => failure.record(
                    "composite",
                    PipelineError::Panic {
                        stage: "composite",
                        message: panic_message(p.as_ref()),
                    },
                ),
            }
        }
    });
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(Summary {
        frames_in: progress.frames_in.load(Ordering::Relaxed),
        frames_out: progress.frames_out.load(Ordering::Relaxed),
        dropped: progress.dropped.load(Ordering::Relaxed),
        layer_reuses: compositor.layer_reuses(),
        wall: started.elapsed().max(Duration::from_nanos(1)),
        stages: times,
        ..Summary::default()
    })
}

#[cfg(test)]
mod tests;
