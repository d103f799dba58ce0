//! Stage orchestration: source -> [segment] -> [composite (+ synth layers)] -> sink,
//! on scoped threads joined by bounded channels. No GStreamer here: sources and
//! sinks are traits, so the same stages run under the benchmark without it.

pub mod composite;
pub mod segment;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, TrySendError, bounded};

use crate::frame::Frame;
use crate::imgproc::mask::AlphaPlanes;
use crate::infer::InferError;
use composite::Compositor;
use segment::Segmenter;
use stats::{StageTimes, Summary};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("{0}")]
    Io(String),
}

/// Where frames come from. `Ok(None)` is end of stream.
pub trait FrameSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError>;
}

/// Where processed frames go.
pub trait FrameSink: Send {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError>;
}

/// What a full channel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Files: wait, never drop.
    Block,
    /// Live: drop the oldest queued frame and count it, so latency never builds up.
    DropOldest,
}

/// Shared counters the progress display reads while the job runs.
#[derive(Default)]
pub struct Progress {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub dropped: AtomicU64,
    /// Recent added latencies (ms), appsink to appsrc, for live statistics.
    pub recent_latency: std::sync::Mutex<std::collections::VecDeque<f32>>,
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

fn send<T>(
    tx: &Sender<T>,
    rx: &Receiver<T>,
    item: T,
    policy: Backpressure,
    dropped: &AtomicU64,
) -> bool {
    match policy {
        Backpressure::Block => tx.send(item).is_ok(),
        Backpressure::DropOldest => {
            let mut item = item;
            loop {
                match tx.try_send(item) {
                    Ok(()) => return true,
                    Err(TrySendError::Disconnected(_)) => return false,
                    Err(TrySendError::Full(back)) => {
                        if rx.try_recv().is_ok() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        item = back;
                    }
                }
            }
        }
    }
}

struct Timed<T> {
    item: T,
    entered: Instant,
}

/// Runs the stages until the source ends, `stop` is set, or a stage fails (first error wins).
pub fn run(
    source: &mut dyn FrameSource,
    segmenter: &mut Segmenter,
    compositor: &mut Compositor,
    sink: &mut dyn FrameSink,
    config: &StageConfig,
    stop: &AtomicBool,
    progress: &Arc<Progress>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let cap = config.capacity.max(1);
    let (to_segment, segment_rx) = bounded::<Timed<Frame>>(cap);
    let (to_composite, composite_rx) = bounded::<Timed<(Frame, Vec<AlphaPlanes>)>>(cap);
    let policy = config.backpressure;
    let mut summary = Summary::default();
    let comp_stage = &mut *compositor;

    let result = std::thread::scope(|s| -> Result<(), PipelineError> {
        let seg_drop_rx = segment_rx.clone();
        let comp_drop_rx = composite_rx.clone();
        let progress_seg = Arc::clone(progress);
        let segment = s.spawn(move || -> Result<(StageTimes, StageTimes), PipelineError> {
            let mut times = StageTimes::new("segment");
            let mut queue = StageTimes::new("queue");
            for Timed {
                item: frame,
                entered,
            } in segment_rx.iter()
            {
                let t = Instant::now();
                queue.record(t - entered);
                let masks = segmenter.masks(&frame)?;
                times.record(t.elapsed());
                if !send(
                    &to_composite,
                    &comp_drop_rx,
                    Timed {
                        item: (frame, masks),
                        entered,
                    },
                    policy,
                    &progress_seg.dropped,
                ) {
                    break;
                }
            }
            Ok((times, queue))
        });
        let progress_comp = Arc::clone(progress);
        let composite = s.spawn(
            move || -> Result<(StageTimes, StageTimes, StageTimes), PipelineError> {
                let mut times = StageTimes::new("composite");
                let mut push = StageTimes::new("push");
                let mut added = StageTimes::new("added");
                for Timed {
                    item: (mut frame, masks),
                    entered,
                } in composite_rx.iter()
                {
                    let t = Instant::now();
                    comp_stage.composite(&mut frame, &masks)?;
                    times.record(t.elapsed());
                    let p = Instant::now();
                    sink.push(frame)?;
                    push.record(p.elapsed());
                    added.record(entered.elapsed());
                    progress_comp.record_latency(entered.elapsed().as_secs_f32() * 1000.0);
                    progress_comp.frames_out.fetch_add(1, Ordering::Relaxed);
                }
                Ok((times, push, added))
            },
        );

        let mut read = StageTimes::new("decode");
        let mut source_result = Ok(());
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            match source.next_frame() {
                Ok(Some(frame)) => {
                    read.record(t.elapsed());
                    progress.frames_in.fetch_add(1, Ordering::Relaxed);
                    if !send(
                        &to_segment,
                        &seg_drop_rx,
                        Timed {
                            item: frame,
                            entered: Instant::now(),
                        },
                        policy,
                        &progress.dropped,
                    ) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    source_result = Err(e);
                    break;
                }
            }
        }
        drop(to_segment);
        drop(seg_drop_rx);
        let seg = segment
            .join()
            .map_err(|_| PipelineError::Io("segment thread panicked".into()))?;
        let comp = composite
            .join()
            .map_err(|_| PipelineError::Io("composite thread panicked".into()))?;
        // A stage error is the cause; a source error after it is only a consequence.
        let (seg_times, queue) = seg?;
        let (comp_times, push, added) = comp?;
        source_result?;
        summary.stages = vec![read, queue, seg_times, comp_times, push, added];
        Ok(())
    });
    summary.frames_in = progress.frames_in.load(Ordering::Relaxed);
    summary.frames_out = progress.frames_out.load(Ordering::Relaxed);
    summary.dropped = progress.dropped.load(Ordering::Relaxed);
    summary.layer_reuses = compositor.layer_reuses;
    summary.wall = started.elapsed().max(Duration::from_nanos(1));
    result.map(|()| summary)
}
