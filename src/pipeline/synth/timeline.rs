//! Generated content on video time.
//!
//! The synth thread makes *keyframe layers* at fixed steps of video time (`interval`:
//! a third of the noise period, a twelfth for `image` generators); a frame at time `t`
//! between keyframes `k` and `k+1` shows the two mixed in proportion to where `t` falls,
//! their contrast kept (`CrossfadeStats`).
//! A frame's content is therefore a function of the seed, its timestamp and, for `image`
//! generators, the frames the keyframes were made from; never of how fast the machine was.
//!
//! - **File jobs** (`exact`) wait for the layers a frame needs, however long they take.
//! - **Live jobs** never wait past the budget. A content clock advances with the frames'
//!   time but only as far as the layers made so far reach: when a layer is late the motion
//!   slows or holds, it never jumps. Until the first layer exists the input shows through,
//!   then the content fades in.
//! - `image` generators, in file jobs, make layer `j` from the first frame at or after
//!   keyframe `j`: the composite stage holds frames back by one keyframe interval
//!   (`lookahead`) and shows each frame to the track (`observe`) as it arrives. Live, they
//!   make it from the newest frame when it is asked for, `LOOKAHEAD` keyframes ahead of
//!   the content shown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::frame::{Frame, Matrix, Plane, Yuv420};
use crate::imgproc::blend::{CrossfadeStats, mix_pictures};
use crate::infer::InferError;

/// Keyframe layers per noise period for generators driven by noise alone: one every 2 s
/// at the default 6 s period. The crossfade restores the mix's contrast
/// (`CrossfadeStats`), so the dip between layers no longer sets the rate: on a still
/// photo (`segsynth bench --motion-only`, foliage) the contrast swing is 0.9 % here, as
/// with a layer a second and a plain crossfade, against 2.3 % at this rate with a plain
/// one; the largest step between decoded frames 0.35 grey levels. Half the layers of one
/// a second: the GAN file job's CPU 0.95x.
pub const LAYERS_PER_PERIOD: u32 = 3;
/// Keyframe layers per noise period for `image` generators, whose layers follow the
/// picture: at one a second the content lagged a panning scene visibly (the test
/// `the_frame_conditioned_generator_follows_the_scene`).
pub const FRAME_LAYERS_PER_PERIOD: u32 = 12;
/// Keyframes asked for ahead of the one a frame starts in.
pub const LOOKAHEAD: u64 = 2;
/// How long live content takes to fade in once its first layer exists (slow enough that
/// no frame differs from the one before by more than a couple of levels).
pub const FADE_IN_NS: u64 = 2_000_000_000;

/// Nanoseconds between keyframe layers for a noise `period` in seconds, for a generator
/// that makes them from the frame (`follows_frame`) or from noise alone.
pub fn interval_ns(period: f32, follows_frame: bool) -> u64 {
    let layers = if follows_frame {
        FRAME_LAYERS_PER_PERIOD
    } else {
        LAYERS_PER_PERIOD
    };
    ((period as f64 * 1e9) / layers as f64).round().max(1.0) as u64
}

/// Frame size and colour matrix: layers of one shape are never mixed with another's.
type Shape = (usize, usize, Matrix);

/// A content time to show and the keyframe layers it is mixed from.
type Chosen = (u64, Vec<Arc<Yuv420>>);

/// Keyframe layer `k` to make.
#[derive(Clone)]
pub(super) struct Job {
    pub k: u64,
    pub shape: Shape,
    pub frame: Option<Arc<Yuv420>>,
    pub mask: Option<Arc<Plane>>,
    epoch: u64,
}

#[derive(Default)]
struct Store {
    /// Raised when the shape changes: results for the old one are dropped.
    epoch: u64,
    shape: Option<Shape>,
    ready: BTreeMap<u64, Arc<Yuv420>>,
    queued: BTreeMap<u64, Job>,
    busy: Option<u64>,
}

impl Store {
    fn knows(&self, k: u64) -> bool {
        self.ready.contains_key(&k) || self.queued.contains_key(&k) || self.busy == Some(k)
    }
}

/// The hand-over point between the synth thread and the compositor.
pub struct LayerSlot {
    store: Mutex<Store>,
    /// Signalled on every new job and every finished layer.
    changed: Condvar,
    stop: AtomicBool,
    needs_frame: bool,
    needs_mask: bool,
    /// Nanoseconds of video time between keyframe layers.
    interval: u64,
    pub nonfinite: AtomicU64,
    /// Why the synth thread ended early (an error or a panic), for the compositor.
    failure: Mutex<Option<String>>,
}

impl LayerSlot {
    pub(super) fn new(needs_frame: bool, needs_mask: bool, interval: u64) -> Self {
        LayerSlot {
            store: Mutex::default(),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            needs_frame,
            needs_mask,
            interval: interval.max(1),
            nonfinite: AtomicU64::new(0),
            failure: Mutex::new(None),
        }
    }

    /// Asks for keyframe `k` at `shape` unless it is made, queued or being made.
    /// `inputs` gives the frame and mask an `image` generator makes it from; it is only
    /// called when the job is new, so the frame is copied once per keyframe.
    fn post(&self, k: u64, shape: Shape, inputs: impl FnOnce() -> Inputs) {
        let Ok(mut s) = self.store.lock() else { return };
        if s.shape != Some(shape) {
            let epoch = s.epoch + 1;
            *s = Store {
                epoch,
                shape: Some(shape),
                ..Store::default()
            };
        }
        if s.knows(k) {
            return;
        }
        let (frame, mask) = inputs();
        let epoch = s.epoch;
        s.queued.insert(
            k,
            Job {
                k,
                shape,
                frame,
                mask,
                epoch,
            },
        );
        self.changed.notify_all();
    }

    /// Drops layers and jobs before keyframe `k`: no frame will ask for them again.
    fn forget_before(&self, k: u64) {
        if let Ok(mut s) = self.store.lock() {
            s.ready = s.ready.split_off(&k);
            s.queued = s.queued.split_off(&k);
        }
    }

    /// The newest keyframe made at or before `k`.
    fn newest_ready(&self, k: u64) -> Option<u64> {
        let s = self.store.lock().ok()?;
        s.ready.range(..=k).next_back().map(|(k, _)| *k)
    }

    /// Keyframes `ks`, waiting for them until `deadline` (forever with `None`, in steps
    /// that look at the stop flag). `None` when they are not all there by then.
    fn wait_for(&self, ks: &[u64], deadline: Option<Instant>) -> Option<Vec<Arc<Yuv420>>> {
        let mut s = self.store.lock().ok()?;
        loop {
            let found: Vec<_> = ks.iter().filter_map(|k| s.ready.get(k).cloned()).collect();
            if found.len() == ks.len() {
                return Some(found);
            }
            let now = Instant::now();
            let step = Duration::from_millis(50);
            let wait = match deadline {
                Some(d) if now >= d => return None,
                Some(d) => (d - now).min(step),
                None => step,
            };
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            s = self.changed.wait_timeout(s, wait).ok()?.0;
        }
    }

    /// The lowest queued keyframe, waiting for one; `None` once stopped.
    pub(super) fn take_job(&self) -> Option<Job> {
        let mut s = self.store.lock().ok()?;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some((k, job)) = s.queued.pop_first() {
                s.busy = Some(k);
                return Some(job);
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(50))
                .ok()?
                .0;
        }
    }

    /// Hands over a finished keyframe (dropped when the shape changed meanwhile).
    pub(super) fn deliver(&self, job: &Job, picture: Yuv420) {
        if let Ok(mut s) = self.store.lock() {
            if s.busy == Some(job.k) {
                s.busy = None;
            }
            if s.epoch == job.epoch {
                s.ready.insert(job.k, Arc::new(picture));
            }
            self.changed.notify_all();
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    /// Marks the synth thread as dead: nobody waits for a layer again.
    pub(super) fn fail(&self, why: String) {
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

/// The frame and mask an `image` generator makes a keyframe from.
type Inputs = (Option<Arc<Yuv420>>, Option<Arc<Plane>>);

/// How a track times its content.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Wait for every layer a frame needs (file jobs); otherwise wait at most `budget`.
    pub exact: bool,
    pub budget: Duration,
}

/// The compositor's side of one generated entry: which content each frame shows.
pub struct LayerTrack {
    slot: Arc<LayerSlot>,
    timing: Timing,
    shape: Option<Shape>,
    /// Live: the content time last shown and the frame time it was shown at.
    clock: Option<(u64, u64)>,
    /// Live: the frame time content first showed (the fade-in starts there).
    shown_from: Option<u64>,
    /// The mixed picture, reused from frame to frame.
    mixed: Option<Arc<Yuv420>>,
    /// The crossfade statistics of the keyframe pair last mixed, by its first keyframe.
    crossfade: Option<(u64, [CrossfadeStats; 3])>,
    /// File jobs with an `image` generator: the newest keyframe asked for from an observed frame.
    observed_upto: Option<u64>,
    /// Frames whose content held still or slowed because a layer was late.
    pub held: u64,
    /// Live: the longest one frame waited for its layers (at most the budget, plus the
    /// time the thread took to wake), and the frames that waited over 2 ms past the budget
    /// (woken late by a busy machine).
    pub longest_wait: Duration,
    pub overslept: u64,
}

impl LayerTrack {
    pub fn new(slot: Arc<LayerSlot>, timing: Timing) -> LayerTrack {
        LayerTrack {
            slot,
            timing,
            shape: None,
            clock: None,
            shown_from: None,
            mixed: None,
            crossfade: None,
            observed_upto: None,
            held: 0,
            longest_wait: Duration::ZERO,
            overslept: 0,
        }
    }

    /// Whether keyframes come from frames observed ahead (file jobs, `image` generators).
    fn observes(&self) -> bool {
        self.timing.exact && self.slot.needs_frame
    }

    /// How far ahead of a frame the composite stage must have observed frames.
    pub fn lookahead(&self) -> Option<u64> {
        self.observes().then_some(self.slot.interval)
    }

    /// A frame entering the composite stage: the keyframes up to its time that no earlier
    /// frame reached are made from it.
    pub fn observe(&mut self, frame: &Frame, mask: &Plane) {
        if !self.observes() {
            return;
        }
        let shape = (frame.picture.width(), frame.picture.height(), frame.matrix);
        let k = frame.time() / self.slot.interval;
        let next = self.observed_upto.map_or(k, |u| (u + 1).min(k));
        // A jump in time needs the keyframe after the frames before it and the ones around
        // this frame, not every keyframe in between (a jump of hours would ask for millions).
        self.post_range(next..=next, shape, frame, mask);
        let from = (next + 1).max(k.saturating_sub(LOOKAHEAD));
        self.post_range(from..=k, shape, frame, mask);
        self.observed_upto = Some(self.observed_upto.map_or(k, |u| u.max(k)));
    }

    /// The content picture for `frame` (`None`: live, no layer exists yet, the input
    /// shows). `mask` is the entry's alpha, for generators that take it.
    pub fn content(
        &mut self,
        frame: &Frame,
        mask: &Plane,
    ) -> Result<Option<Arc<Yuv420>>, InferError> {
        let t = frame.time();
        let shape = (frame.picture.width(), frame.picture.height(), frame.matrix);
        if self.shape != Some(shape) {
            (self.shape, self.clock, self.shown_from) = (Some(shape), None, None);
            self.crossfade = None;
        }
        let target = match self.clock {
            Some((shown, at)) if !self.timing.exact => shown + t.saturating_sub(at),
            _ => t,
        };
        let first = target / self.slot.interval;
        // Observed tracks asked for their keyframes ahead; at the end of the stream the
        // last keyframe no frame reached comes from the frame that needs it.
        let ahead = if self.observes() { 1 } else { LOOKAHEAD };
        self.post_range(first..=first + ahead, shape, frame, mask);
        if let Some((shown, _)) = self.clock {
            self.slot.forget_before(shown / self.slot.interval);
        }
        let Some((shown, layers)) = self.choose(target)? else {
            return Ok(None);
        };
        self.clock = Some((shown, t));
        let from = *self.shown_from.get_or_insert(t);
        let fade = if self.timing.exact {
            256
        } else {
            ((t - from).min(FADE_IN_NS) * 256 / FADE_IN_NS) as u32
        };
        Ok(Some(self.picture(shown, &layers, fade, &frame.picture)))
    }

    /// Asks for keyframes `keys` (made from `frame` and `mask` where they need them).
    fn post_range(
        &self,
        keys: std::ops::RangeInclusive<u64>,
        shape: Shape,
        frame: &Frame,
        mask: &Plane,
    ) {
        let slot = &self.slot;
        for k in keys {
            slot.post(k, shape, || {
                let picture = slot.needs_frame.then(|| Arc::new(frame.picture.clone()));
                let alpha = slot.needs_mask.then(|| Arc::new(mask.clone()));
                (picture, alpha)
            });
        }
    }

    /// The content time to show for `target` and the keyframes it is mixed from: `target`
    /// itself when its layers are there (waited for as the timing says), else, live, the
    /// furthest time the layers made so far cover without going back.
    fn choose(&mut self, target: u64) -> Result<Option<Chosen>, InferError> {
        let started = Instant::now();
        let deadline = (!self.timing.exact).then(|| started + self.timing.budget);
        let ready = self.slot.wait_for(&self.keyframes(target), deadline);
        if deadline.is_some() {
            let waited = started.elapsed();
            self.longest_wait = self.longest_wait.max(waited);
            self.overslept += u64::from(waited > self.timing.budget + Duration::from_millis(2));
        }
        if let Some(layers) = ready {
            return Ok(Some((target, layers)));
        }
        if let Some(why) = self.slot.failure() {
            return Err(InferError::Run {
                model: "the GAN generator".into(),
                message: format!("the synthesis stage stopped: {why}"),
            });
        }
        if self.timing.exact {
            return Ok(None); // stopped while waiting
        }
        self.held += 1;
        let interval = self.slot.interval;
        // The next keyframe after what was shown, or, before anything was shown, the
        // newest one made at or before the target.
        let start = self.clock.map(|(shown, _)| shown);
        let covered = self
            .slot
            .newest_ready(target / interval)
            .map(|k| k * interval);
        let shown = match (start, covered) {
            (Some(s), Some(c)) => Some(c.max(s)),
            (Some(s), None) => Some(s),
            (None, c) => c,
        };
        // What was shown, or a made keyframe: its layers are there (none is forgotten
        // before the keyframe last shown).
        Ok(shown.and_then(|c| {
            let layers = self
                .slot
                .wait_for(&self.keyframes(c), Some(Instant::now()))?;
            Some((c, layers))
        }))
    }

    /// The keyframes content time `c` is mixed from.
    fn keyframes(&self, c: u64) -> Vec<u64> {
        let k = c / self.slot.interval;
        if c.is_multiple_of(self.slot.interval) {
            vec![k]
        } else {
            vec![k, k + 1]
        }
    }

    /// Content time `c` mixed from its keyframes `layers`, faded over `frame` by `fade` of 256.
    fn picture(
        &mut self,
        c: u64,
        layers: &[Arc<Yuv420>],
        fade: u32,
        frame: &Yuv420,
    ) -> Arc<Yuv420> {
        let interval = self.slot.interval;
        let w = ((c % interval) as u128 * 256 / interval as u128) as u32;
        if w == 0 && fade >= 256 {
            return Arc::clone(&layers[0]);
        }
        let mut out = self
            .mixed
            .take()
            .filter(|m| m.width() == frame.width() && m.height() == frame.height())
            .unwrap_or_else(|| Arc::new(frame.clone()));
        let target = Arc::make_mut(&mut out);
        let next = layers.get(1).unwrap_or(&layers[0]);
        let stats = if w == 0 {
            [CrossfadeStats::PLAIN; 3]
        } else {
            self.crossfade_stats(c / interval, (&layers[0], next))
        };
        mix_pictures(target, (&layers[0], next), w, &stats, frame, fade);
        self.mixed = Some(Arc::clone(&out));
        out
    }

    /// The crossfade statistics of keyframes `k` and `k + 1`, measured once per pair.
    fn crossfade_stats(&mut self, k: u64, (a, b): (&Yuv420, &Yuv420)) -> [CrossfadeStats; 3] {
        match self.crossfade {
            Some((key, stats)) if key == k => stats,
            _ => {
                let stats = CrossfadeStats::of_pictures(a, b);
                self.crossfade = Some((k, stats));
                stats
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_third_of_the_period_and_a_twelfth_for_image_generators() {
        assert_eq!(interval_ns(6.0, false), 2_000_000_000);
        assert_eq!(interval_ns(6.0, true), 500_000_000);
        assert_eq!(interval_ns(0.0, false), 1);
    }
}
