//! `run` with fake stages: no GStreamer, no model. Each test is bounded in time by
//! `within`, so a hang fails the test instead of stalling the suite.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::*;
use crate::frame::AlphaPlanes;
use crate::frame::{Matrix, Yuv420};
use crate::pipeline::stats::Summary;

fn frame(index: u64) -> Frame {
    Frame {
        index,
        pts: Some(index * 33_333_333),
        duration: Some(33_333_333),
        matrix: Matrix::Bt601,
        picture: Yuv420::filled(4, 4, (16, 128, 128)),
    }
}

/// Runs `f` on a thread and fails if it takes longer than `limit` (a hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("run did not end within {limit:?}: a hang"))
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Error(u64),
    Panic(u64),
}

struct Source {
    next: u64,
    end: u64,
    fault: Fault,
    /// Microseconds between frames (a live camera).
    pace_us: u64,
}

impl FrameSource for Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        if self.next >= self.end {
            return Ok(None);
        }
        match self.fault {
            Fault::Error(n) if n == self.next => {
                return Err(PipelineError::Io("camera unplugged".into()));
            }
            Fault::Panic(n) if n == self.next => panic!("source bug"),
            _ => {}
        }
        if self.pace_us > 0 {
            std::thread::sleep(Duration::from_micros(self.pace_us));
        }
        self.next += 1;
        Ok(Some(frame(self.next - 1)))
    }
}

struct Seg {
    fault: Fault,
    delay: Duration,
}

impl Segment for Seg {
    fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, PipelineError> {
        match self.fault {
            Fault::Error(n) if n == frame.index => {
                return Err(PipelineError::Io("model failed".into()));
            }
            Fault::Panic(n) if n == frame.index => panic!("segment bug"),
            _ => {}
        }
        std::thread::sleep(self.delay);
        Ok(Vec::new())
    }
}

struct Comp {
    fault: Fault,
}

impl Composite for Comp {
    fn composite(&mut self, frame: &mut Frame, _: &[AlphaPlanes]) -> Result<(), PipelineError> {
        match self.fault {
            Fault::Error(n) if n == frame.index => Err(PipelineError::Io("blend failed".into())),
            Fault::Panic(n) if n == frame.index => panic!("composite bug"),
            _ => Ok(()),
        }
    }
}

struct Sink {
    fault: Fault,
    delay: Duration,
    /// Blocks forever-ish (until `release`) from this frame on: a stuck encoder.
    block_at: Option<u64>,
    release: Arc<AtomicBool>,
    got: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl FrameSink for Sink {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        match self.fault {
            Fault::Error(n) if n == frame.index => {
                return Err(PipelineError::Io("No space left on device".into()));
            }
            Fault::Panic(n) if n == frame.index => panic!("sink bug"),
            _ => {}
        }
        if self.block_at.is_some_and(|b| frame.index >= b) {
            while !self.release.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Err(PipelineError::Io("encoder flushed".into()));
        }
        std::thread::sleep(self.delay);
        self.got.lock().unwrap().push(frame.index);
        Ok(())
    }
}

struct Case {
    frames: u64,
    source: Fault,
    segment: Fault,
    composite: Fault,
    sink: Fault,
    policy: Backpressure,
    pace_us: u64,
    seg_delay: Duration,
    sink_delay: Duration,
    block_at: Option<u64>,
    stop_after: Option<Duration>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            frames: 50,
            source: Fault::None,
            segment: Fault::None,
            composite: Fault::None,
            sink: Fault::None,
            policy: Backpressure::Block,
            pace_us: 0,
            seg_delay: Duration::ZERO,
            sink_delay: Duration::ZERO,
            block_at: None,
            stop_after: None,
        }
    }
}

struct Outcome {
    result: Result<Summary, PipelineError>,
    got: Vec<u64>,
    elapsed: Duration,
}

fn go(case: Case) -> Outcome {
    within(Duration::from_secs(10), move || {
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let release = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(after) = case.stop_after {
            let (s, r) = (Arc::clone(&stop), Arc::clone(&release));
            std::thread::spawn(move || {
                std::thread::sleep(after);
                s.store(true, Ordering::SeqCst);
                // What the file job does to a stuck encoder after a stop: flush it.
                std::thread::sleep(Duration::from_millis(300));
                r.store(true, Ordering::SeqCst);
            });
        }
        let mut source = Source {
            next: 0,
            end: case.frames,
            fault: case.source,
            pace_us: case.pace_us,
        };
        let mut seg = Seg {
            fault: case.segment,
            delay: case.seg_delay,
        };
        let mut comp = Comp {
            fault: case.composite,
        };
        let mut sink = Sink {
            fault: case.sink,
            delay: case.sink_delay,
            block_at: case.block_at,
            release,
            got: Arc::clone(&got),
        };
        let config = StageConfig {
            backpressure: case.policy,
            capacity: 2,
            edits: None,
        };
        let t = Instant::now();
        let result = run(
            &mut source,
            &mut seg,
            &mut comp,
            &mut sink,
            &config,
            &stop,
            &Arc::new(Progress::default()),
        );
        let got = got.lock().unwrap().clone();
        Outcome {
            result,
            got,
            elapsed: t.elapsed(),
        }
    })
}

fn failed_stage(o: &Outcome) -> (&'static str, String) {
    match &o.result {
        Err(e) => (e.stage().expect("a stage name"), e.to_string()),
        Ok(_) => panic!("expected a failure, got success"),
    }
}

#[test]
fn end_of_stream_delivers_every_frame_in_order() {
    let o = go(Case {
        frames: 200,
        ..Case::default()
    });
    let s = o.result.expect("success");
    assert_eq!((s.frames_in, s.frames_out, s.dropped), (200, 200, 0));
    assert_eq!(o.got, (0..200).collect::<Vec<_>>());
}

#[test]
fn an_error_in_any_stage_ends_the_run_naming_the_stage() {
    for at in [0, 1, 37] {
        let cases = [
            (
                "input",
                "camera unplugged",
                Case {
                    source: Fault::Error(at),
                    ..Case::default()
                },
            ),
            (
                "segment",
                "model failed",
                Case {
                    segment: Fault::Error(at),
                    ..Case::default()
                },
            ),
            (
                "composite",
                "blend failed",
                Case {
                    composite: Fault::Error(at),
                    ..Case::default()
                },
            ),
            (
                "output",
                "No space left",
                Case {
                    sink: Fault::Error(at),
                    ..Case::default()
                },
            ),
        ];
        for (stage, text, case) in cases {
            let o = go(case);
            let (s, msg) = failed_stage(&o);
            assert_eq!(s, stage, "{msg}");
            assert!(msg.contains(text), "{msg}");
            assert!(
                o.got.len() as u64 <= at,
                "frames after the fault reached the sink"
            );
        }
    }
}

#[test]
fn a_panic_in_any_stage_is_an_error_naming_the_stage_never_success() {
    // The default hook would print each expected panic; keep the test output readable.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let cases = [
        (
            "input",
            Case {
                source: Fault::Panic(5),
                ..Case::default()
            },
        ),
        (
            "segment",
            Case {
                segment: Fault::Panic(5),
                ..Case::default()
            },
        ),
        (
            "composite",
            Case {
                composite: Fault::Panic(5),
                ..Case::default()
            },
        ),
        (
            "output",
            Case {
                sink: Fault::Panic(5),
                ..Case::default()
            },
        ),
    ];
    let results: Vec<_> = cases
        .into_iter()
        .map(|(stage, case)| (stage, go(case)))
        .collect();
    std::panic::set_hook(hook);
    for (stage, o) in results {
        let (s, msg) = failed_stage(&o);
        assert_eq!(s, stage, "{msg}");
        assert!(msg.contains("panicked") && msg.contains("bug"), "{msg}");
    }
}

#[test]
fn a_slow_consumer_holds_the_producer_back_without_dropping_in_block_mode() {
    let o = go(Case {
        frames: 30,
        sink_delay: Duration::from_millis(3),
        ..Case::default()
    });
    let s = o.result.expect("success");
    assert_eq!((s.frames_out, s.dropped), (30, 0));
    assert_eq!(o.got, (0..30).collect::<Vec<_>>());
}

#[test]
fn live_backpressure_skips_old_frames_and_counts_them() {
    // A camera at 1 kHz into a 5 ms segmenter: most frames must be skipped, none queued up.
    let o = go(Case {
        frames: 400,
        policy: Backpressure::DropOldest,
        pace_us: 1000,
        seg_delay: Duration::from_millis(5),
        ..Case::default()
    });
    let s = o.result.expect("success");
    assert!(s.dropped > 100, "expected drops, got {}", s.dropped);
    assert_eq!(s.frames_in, 400);
    assert_eq!(
        s.frames_out + s.dropped,
        s.frames_in,
        "every frame is either shown or counted"
    );
    assert!(o.got.windows(2).all(|w| w[0] < w[1]), "frames out of order");
    assert_eq!(
        o.got.last(),
        Some(&399),
        "the newest frame is the last shown"
    );
}

#[test]
fn a_stop_while_the_sink_is_blocked_ends_the_run_promptly() {
    let o = go(Case {
        frames: u64::MAX,
        block_at: Some(10),
        stop_after: Some(Duration::from_millis(200)),
        ..Case::default()
    });
    assert!(o.elapsed < Duration::from_secs(2), "took {:?}", o.elapsed);
    let (stage, _) = failed_stage(&o);
    assert_eq!(stage, "output");
    assert_eq!(o.got, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_stop_ends_the_source_and_finishes_the_frames_in_flight() {
    let o = go(Case {
        frames: u64::MAX,
        pace_us: 500,
        stop_after: Some(Duration::from_millis(100)),
        ..Case::default()
    });
    let s = o.result.expect("a stop is not an error");
    assert!(s.frames_out > 0);
    assert_eq!(
        s.frames_in, s.frames_out,
        "a stopped file job loses no frame it read"
    );
}

#[test]
fn a_failing_sink_while_the_source_is_blocked_on_a_full_channel_does_not_hang() {
    // The hang of the old design: a producer blocked in `send` on a full channel whose
    // consumer died, with a spare receiver keeping the channel open.
    let o = go(Case {
        frames: u64::MAX,
        sink: Fault::Error(3),
        seg_delay: Duration::from_millis(1),
        ..Case::default()
    });
    assert_eq!(failed_stage(&o).0, "output");
    assert!(o.elapsed < Duration::from_secs(2), "took {:?}", o.elapsed);
}

#[test]
fn progress_counters_match_the_summary() {
    let progress = Arc::new(Progress::default());
    let p = Arc::clone(&progress);
    let summary = within(Duration::from_secs(10), move || {
        let mut source = Source {
            next: 0,
            end: 20,
            fault: Fault::None,
            pace_us: 0,
        };
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = Sink {
            fault: Fault::None,
            delay: Duration::ZERO,
            block_at: None,
            release: Arc::new(AtomicBool::new(false)),
            got,
        };
        run(
            &mut source,
            &mut Seg {
                fault: Fault::None,
                delay: Duration::ZERO,
            },
            &mut Comp { fault: Fault::None },
            &mut sink,
            &StageConfig::default(),
            &AtomicBool::new(false),
            &p,
        )
    })
    .expect("success");
    assert_eq!(
        progress.frames_out.load(Ordering::Relaxed),
        summary.frames_out
    );
    assert_eq!(progress.frames_in.load(Ordering::Relaxed), 20);
}

#[test]
fn retime_keeps_spacing_and_reanchors_on_a_restart() {
    let mut r = Retime::default();
    // Source at 10 s, output clock at 3 s: spacing kept.
    assert_eq!(
        r.output_pts(Some(10_000_000_000), 3_000_000_000),
        3_000_000_000
    );
    assert_eq!(
        r.output_pts(Some(10_033_000_000), 3_050_000_000),
        3_033_000_000
    );
    // The source restarts at 0 (a reconnect): anchored again, never backwards.
    let t = r.output_pts(Some(0), 9_000_000_000);
    assert_eq!(t, 9_000_000_000);
    assert_eq!(r.output_pts(Some(40_000_000), 9_060_000_000), 9_040_000_000);
    // No PTS: the output's clock, still increasing.
    assert!(r.output_pts(None, 1) > 9_040_000_000);
}

/// A segmenter whose masks carry its configuration (the number of entries), and a
/// compositor that paints its own value: a live edit must change both on one frame.
struct Counting {
    entries: usize,
}

impl Segment for Counting {
    fn masks(&mut self, _: &Frame) -> Result<Vec<AlphaPlanes>, PipelineError> {
        let plane = crate::frame::Plane::new(1, 1, 0);
        Ok(vec![
            AlphaPlanes {
                luma: plane.clone(),
                chroma: plane,
            };
            self.entries
        ])
    }
    fn reconfigure(
        &mut self,
        entries: &[crate::content::Entry],
        _: &crate::imgproc::mask::MaskParams,
    ) -> Result<(), PipelineError> {
        self.entries = entries.len();
        Ok(())
    }
}

/// Writes `value` into the frame's first luma byte; refuses masks of another count.
struct Painter {
    value: u8,
    entries: usize,
}

impl Composite for Painter {
    fn composite(
        &mut self,
        frame: &mut Frame,
        alphas: &[AlphaPlanes],
    ) -> Result<(), PipelineError> {
        if alphas.len() != self.entries {
            return Err(PipelineError::Io(
                format!("{} masks for a {}-entry map", alphas.len(), self.entries).into(),
            ));
        }
        frame.picture.y.data[0] = self.value;
        Ok(())
    }
}

struct Recorder(Arc<std::sync::Mutex<Vec<u8>>>);

impl FrameSink for Recorder {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        self.0.lock().unwrap().push(frame.picture.y.data[0]);
        // Time for the test to publish edits between frames.
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    }
}

#[test]
fn live_edits_switch_masks_and_content_on_the_same_frame() {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let edits = Arc::new(Edits::default());
    let (g, e) = (Arc::clone(&got), Arc::clone(&edits));
    let result = within(Duration::from_secs(20), move || {
        let mut source = Source {
            next: 0,
            end: 300,
            fault: Fault::None,
            pace_us: 1000,
        };
        let config = StageConfig {
            backpressure: Backpressure::Block,
            capacity: 2,
            edits: Some(Arc::clone(&e)),
        };
        let publisher = {
            let (e, g) = (Arc::clone(&e), Arc::clone(&g));
            std::thread::spawn(move || {
                for (value, entries) in [(2u8, 2usize), (3, 3)] {
                    while g.lock().unwrap().len() < 100 * (value as usize - 1) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let entry = crate::content::Entry {
                        classes: vec!["background".into()],
                        content: crate::content::ContentKind::Mask,
                    };
                    e.publish(Edit {
                        entries: vec![entry; entries],
                        mask: Default::default(),
                        compositor: Box::new(Painter { value, entries }),
                        label: format!("map {value}"),
                    });
                }
            })
        };
        let r = run(
            &mut source,
            &mut Counting { entries: 1 },
            &mut Painter {
                value: 1,
                entries: 1,
            },
            &mut Recorder(g),
            &config,
            &AtomicBool::new(false),
            &Arc::new(Progress::default()),
        );
        publisher.join().unwrap();
        r
    });
    let summary = result.expect("a run with live edits succeeds");
    assert_eq!(summary.frames_out, 300);
    let values = got.lock().unwrap().clone();
    // Every frame painted by the map its masks came from (a mismatch is an error
    // above), in order 1, 2, 3, each switch once.
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    for v in [1u8, 2, 3] {
        assert!(values.contains(&v), "map {v} never ran: {values:?}");
    }
    assert_eq!(edits.applied.load(Ordering::Relaxed), 2);
}
