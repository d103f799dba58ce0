//! The orchestration: stage threads joined by bounded channels on rav1e's contract
//! (see the module above and ARCHITECTURE.md's invariants).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};

use super::stats::{StageTimes, Summary};
use super::{
    Backpressure, Composite, Edits, FrameSink, FrameSource, PipelineError, Progress, Segment,
    StageConfig,
};
use crate::frame::{AlphaPlanes, Frame};

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
    progress: &Progress,
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
            progress.dropped.fetch_add(1, Ordering::Relaxed);
            progress.metrics.dropped("stage_queue");
            item = newer;
        }
        progress.note_drops();
    }
    Some(item)
}

struct Timed<T> {
    item: T,
    entered: Instant,
}

/// A frame with its masks, and the compositor to switch to from this frame on (a live
/// edit applied at this frame).
struct Segmented {
    frame: Frame,
    masks: Vec<AlphaPlanes>,
    switch: Option<Box<dyn Composite>>,
}

/// A stage thread's handle, or `None` with the spawn failure recorded.
fn spawned<T>(stage: &'static str, spawn: std::io::Result<T>, failure: &Failure) -> Option<T> {
    spawn
        .map_err(|e| {
            let message = e.to_string();
            failure.record(stage, PipelineError::Spawn { stage, message });
        })
        .ok()
}

/// The source, on the caller's thread (GStreamer sources need not be Send): frames into
/// the segment stage until the source ends, a stop, or a failure. Returns its times.
fn source_loop(
    source: &mut dyn FrameSource,
    to_segment: Sender<Timed<Frame>>,
    stop: &AtomicBool,
    failure: &Failure,
    progress: &Progress,
) -> StageTimes {
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
            let item = Timed {
                item: frame,
                entered: Instant::now(),
            };
            if !send(&to_segment, item, stopping) {
                break;
            }
            progress.frames_in.fetch_add(1, Ordering::Relaxed);
            progress.metrics.frame_in();
        }
        Ok(())
    });
    read
}

/// The segment stage: masks for each frame, sent on with the frame (and, at a live edit,
/// the new map's compositor). Returns its stage times.
fn segment_stage(
    segmenter: &mut dyn Segment,
    segment_rx: Receiver<Timed<Frame>>,
    to_composite: Sender<Timed<Segmented>>,
    edits: Option<&Edits>,
    policy: Backpressure,
    failure: &Failure,
    progress: &Progress,
) -> Result<Vec<StageTimes>, PipelineError> {
    let mut work = StageTimes::new("segment");
    let mut queue = StageTimes::new("queue");
    let seconds = progress.metrics.stage("segment");
    while let Some(Timed {
        item: frame,
        entered,
    }) = recv(&segment_rx, policy, failure, progress)
    {
        let t = Instant::now();
        queue.record(t - entered);
        let switch = apply_edit(segmenter, edits, &frame)?;
        let masks = segmenter.masks(&frame)?;
        work.record(t.elapsed());
        seconds.observe(t.elapsed().as_secs_f64());
        let item = Segmented {
            frame,
            masks,
            switch,
        };
        if !send(&to_composite, Timed { item, entered }, || failure.aborted()) {
            break;
        }
    }
    Ok(vec![queue, work])
}

/// A live edit waiting to be applied: new entries from this frame on; the frame carries
/// the matching compositor to the composite stage.
fn apply_edit(
    segmenter: &mut dyn Segment,
    edits: Option<&Edits>,
    frame: &Frame,
) -> Result<Option<Box<dyn Composite>>, PipelineError> {
    let Some(edit) = edits.and_then(Edits::take) else {
        return Ok(None);
    };
    segmenter.reconfigure(&edit.entries, &edit.mask)?;
    if let Some(e) = edits {
        e.applied.fetch_add(1, Ordering::Relaxed);
    }
    tracing::info!(edit = %edit.label, pts = ?frame.pts, "live edit applied");
    crate::notice!("applied {}", edit.label);
    Ok(Some(edit.compositor))
}

/// The composite stage: composites each frame and pushes it to the sink. A compositor
/// with a lookahead (file jobs with `image` generators) sees frames as they arrive and
/// composites one only once a frame that much later arrived, or the stream ended.
/// Returns its stage times (`None` after a failure) and the layer holds it counted.
fn composite_stage(
    comp_stage: &mut dyn Composite,
    composite_rx: Receiver<Timed<Segmented>>,
    sink: &mut dyn FrameSink,
    policy: Backpressure,
    failure: &Failure,
    progress: &Progress,
) -> (Option<Vec<StageTimes>>, u64) {
    let mut out = Output {
        work: StageTimes::new("composite"),
        push: StageTimes::new("push"),
        added: StageTimes::new("added"),
        composite_seconds: progress.metrics.stage("composite"),
        output_seconds: progress.metrics.stage("output"),
        reuses: comp_stage.layer_reuses(),
        total_reuses: 0,
    };
    // The compositor of the latest live edit, once one arrived.
    let mut edited: Option<Box<dyn Composite>> = None;
    let mut pending: std::collections::VecDeque<Timed<Segmented>> = Default::default();
    loop {
        let next = recv(&composite_rx, policy, failure, progress);
        if failure.aborted() {
            break; // a failure elsewhere: end without draining
        }
        let ended = next.is_none();
        if let Some(mut item) = next {
            if let Some(c) = item.item.switch.take() {
                // Frames before the edit are composited with the map they were segmented with.
                for earlier in pending.drain(..) {
                    let comp = edited.as_deref_mut().unwrap_or(&mut *comp_stage);
                    if out.finish(comp, earlier, sink, failure, progress).is_none() {
                        return (None, out.total_reuses);
                    }
                }
                out.reuses = c.layer_reuses();
                edited = Some(c);
            }
            let comp = edited.as_deref_mut().unwrap_or(&mut *comp_stage);
            comp.observe(&item.item.frame, &item.item.masks);
            pending.push_back(item);
        }
        let comp = edited.as_deref_mut().unwrap_or(&mut *comp_stage);
        while let Some(front) = pending.front() {
            let last = pending.back().map_or(0, |b| b.item.frame.time());
            let ready = ended
                || comp
                    .lookahead()
                    .is_none_or(|span| last >= front.item.frame.time().saturating_add(span));
            if !ready {
                break;
            }
            if let Some(item) = pending.pop_front()
                && out.finish(comp, item, sink, failure, progress).is_none()
            {
                return (None, out.total_reuses);
            }
        }
        if ended {
            break;
        }
    }
    drop(composite_rx);
    (Some(vec![out.work, out.push, out.added]), out.total_reuses)
}

/// The composite stage's figures, and the last step of every frame.
struct Output {
    work: StageTimes,
    push: StageTimes,
    added: StageTimes,
    composite_seconds: prometheus_client::metrics::histogram::Histogram,
    output_seconds: prometheus_client::metrics::histogram::Histogram,
    reuses: u64,
    total_reuses: u64,
}

impl Output {
    /// Composites one frame with `comp` and pushes it; `None` after a failure.
    fn finish(
        &mut self,
        comp: &mut dyn Composite,
        item: Timed<Segmented>,
        sink: &mut dyn FrameSink,
        failure: &Failure,
        progress: &Progress,
    ) -> Option<()> {
        let Timed {
            item: Segmented {
                mut frame, masks, ..
            },
            entered,
        } = item;
        let t = Instant::now();
        failure.guard("composite", || comp.composite(&mut frame, &masks))?;
        self.work.record(t.elapsed());
        self.composite_seconds.observe(t.elapsed().as_secs_f64());
        let now = comp.layer_reuses();
        progress
            .metrics
            .layer_reuses(now.saturating_sub(self.reuses));
        self.total_reuses += now.saturating_sub(self.reuses);
        self.reuses = now;
        let p = Instant::now();
        progress
            .pushing_since_ms
            .store(super::now_ms().max(1), Ordering::Relaxed);
        let pushed = failure.guard("output", || sink.push(frame));
        progress.pushing_since_ms.store(0, Ordering::Relaxed);
        pushed?;
        self.push.record(p.elapsed());
        self.output_seconds.observe(p.elapsed().as_secs_f64());
        self.added.record(entered.elapsed());
        progress.record_latency(entered.elapsed().as_secs_f32() * 1000.0);
        progress.frames_out.fetch_add(1, Ordering::Relaxed);
        progress.metrics.frame_out(entered.elapsed());
        Some(())
    }
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
    let reuse_total = std::sync::atomic::AtomicU64::new(0);
    let reuse_total = &reuse_total;

    // The caller's span (a stream's name) goes with the stage threads' logs.
    let span = tracing::Span::current();
    std::thread::scope(|s| {
        let (to_segment, segment_rx) = bounded::<Timed<Frame>>(cap);
        let (to_composite, composite_rx) = bounded::<Timed<Segmented>>(cap);
        let edits = config.edits.as_deref();
        let failure = &failure;
        let span = &span;

        let segment = std::thread::Builder::new()
            .name("segment".into())
            .spawn_scoped(s, move || {
                let _span = span.enter();
                // Owns `segment_rx` and `to_composite`; both drop when this returns.
                failure.guard("segment", || {
                    segment_stage(
                        segmenter,
                        segment_rx,
                        to_composite,
                        edits,
                        policy,
                        failure,
                        progress,
                    )
                })
            });
        let segment = spawned("segment", segment, failure);

        let composite = std::thread::Builder::new()
            .name("composite".into())
            .spawn_scoped(s, move || {
                let _span = span.enter();
                let (times, reuses) =
                    composite_stage(comp_stage, composite_rx, sink, policy, failure, progress);
                reuse_total.store(reuses, Ordering::Relaxed);
                times
            });
        let composite = spawned("composite", composite, failure);

        times.push(source_loop(source, to_segment, stop, failure, progress));
        // A panic inside `guard` was caught there, so joining cannot fail; a join error
        // would still be reported rather than unwrapped.
        for (stage, handle) in [("segment", segment), ("composite", composite)] {
            let Some(h) = handle else { continue };
            match h.join() {
                Ok(t) => times.extend(t.into_iter().flatten()),
                Err(p) => failure.record(
                    stage,
                    PipelineError::Panic {
                        stage,
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
        layer_reuses: reuse_total.load(Ordering::Relaxed),
        wall: started.elapsed().max(Duration::from_nanos(1)),
        stages: times,
        ..Summary::default()
    })
}
