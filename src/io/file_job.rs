//! The file job's pipeline life cycle, in one `gst::Pipeline`:
//!
//! ```text
//! filesrc ! parsebin ─ video ─ decodebin ! videoconvert ! appsink ─► [segment] ─► [composite] ─► appsrc
//!                    └ audio ─ queue (or decode ! aac) ──────────────────────────┐                   │
//!                                                          filesink ◄─ mux ◄─────┴── h264parse ◄ x264enc ◄ videoconvert
//! ```
//!
//! Output goes to a hidden temporary file beside the target and is renamed into place
//! only when the muxer has finished, so failures never leave a half-written file and
//! existing files are never touched unless `--overwrite` was given.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::encode::{Container, EncoderSettings, add_h264_chain, add_muxer, link_video_to_mux};
use super::frames::buffer_from_frame;
use super::input::{InputState, add_file_input};
use super::{GstError, init};
use crate::frame::Frame;
use crate::pipeline::stats::Summary;
use crate::pipeline::{FrameSink, PipelineError, Progress};

/// How the job ended, beyond plain success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// Ctrl-C / SIGTERM: the file holds every frame processed so far.
    Interrupted,
    /// The input broke off (truncated, corrupt): the file holds what decoded.
    InputIncomplete(String),
}

/// Things the job needs from the stages, supplied by the caller once the frame size is known.
pub trait StageRunner {
    fn run(
        &mut self,
        first: &Frame,
        source: &mut dyn crate::pipeline::FrameSource,
        sink: &mut dyn FrameSink,
        stop: &AtomicBool,
        progress: &Arc<Progress>,
    ) -> Result<Summary, anyhow::Error>;
}

pub struct FileJob<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub overwrite: bool,
    pub encoder: EncoderSettings,
    pub interrupt: Arc<AtomicBool>,
    pub progress: bool,
}

struct AppSrcSink {
    appsrc: gst_app::AppSrc,
    info: gst_video::VideoInfo,
}

impl FrameSink for AppSrcSink {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        let buffer = buffer_from_frame(&frame, &self.info).map_err(PipelineError::Io)?;
        self.appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| PipelineError::Io(format!("the encoder stopped accepting frames ({e:?})")))
    }
}

/// Checks the output path before anything runs.
pub fn check_output(output: &Path, overwrite: bool) -> Result<Container, String> {
    let container = Container::for_path(output)?;
    if output.exists() && !overwrite {
        return Err(format!(
            "output {} already exists; pass --overwrite to replace it",
            output.display()
        ));
    }
    if output.is_dir() {
        return Err(format!(
            "output {} is a directory; expected a file path",
            output.display()
        ));
    }
    let dir = parent_dir(output);
    if !dir.is_dir() {
        return Err(format!(
            "output folder {} does not exist; create it first",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".segsynth-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| format!("output folder {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(container)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Checks the input file before GStreamer sees it.
pub fn check_input(input: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("input {} does not exist", input.display()),
        _ => format!("cannot read input {}: {e}", input.display()),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "input {} is a directory; expected a video file",
            input.display()
        ));
    }
    if meta.len() == 0 {
        return Err(format!(
            "input {} is empty (0 bytes); expected a video file",
            input.display()
        ));
    }
    std::fs::File::open(input)
        .map_err(|e| format!("cannot open input {}: {e}", input.display()))?;
    Ok(())
}

#[derive(Default)]
struct BusReport {
    eos: bool,
    /// Why the output side failed: for a write error, the OS's reason alone
    /// ("No space left on device"); otherwise the element's error and its path.
    output_error: Option<String>,
    /// The output could not be written (as opposed to encoded or muxed).
    write_failed: bool,
    /// The stop watchdog had to shut a stuck pipeline down.
    stuck: bool,
    input_error: Option<String>,
    missing_plugins: Vec<String>,
    input_warnings: Vec<String>,
}

impl FileJob<'_> {
    pub fn run(&self, stages: &mut dyn StageRunner) -> Result<(Summary, Ending), anyhow::Error> {
        init()?;
        let container = check_output(self.output, self.overwrite).map_err(anyhow::Error::msg)?;
        check_input(self.input).map_err(anyhow::Error::msg)?;
        let name = self
            .output
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "output".into());
        let temp = parent_dir(self.output)
            .join(format!(".{name}.segsynth-{}.partial", std::process::id()));
        let result = self.run_to(&temp, container, stages);
        match result {
            Ok((summary, ending)) => {
                if summary.frames_out == 0 {
                    let _ = std::fs::remove_file(&temp);
                    anyhow::bail!(
                        "no frames were processed from {}; nothing written",
                        self.input.display()
                    );
                }
                if !self.overwrite && self.output.exists() {
                    let _ = std::fs::remove_file(&temp);
                    anyhow::bail!(
                        "output {} appeared while processing; not replacing it (pass --overwrite)",
                        self.output.display()
                    );
                }
                std::fs::rename(&temp, self.output).map_err(|e| {
                    let _ = std::fs::remove_file(&temp);
                    anyhow::anyhow!(
                        "cannot move the finished file into {}: {e}",
                        self.output.display()
                    )
                })?;
                Ok((summary, ending))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    fn run_to(
        &self,
        temp: &Path,
        container: Container,
        stages: &mut dyn StageRunner,
    ) -> Result<(Summary, Ending), anyhow::Error> {
        let pipeline = gst::Pipeline::with_name("segsynth-file");
        let mux = add_muxer(&pipeline, "out", container, temp)?;
        let appsrc = gst_app::AppSrc::builder()
            .name("out-appsrc")
            .format(gst::Format::Time)
            .block(true)
            .max_bytes(8 * 1024 * 1024)
            .build();
        pipeline
            .add(&appsrc)
            .map_err(|e| GstError::Pipeline(e.to_string()))?;
        let (first_enc, last_enc) = add_h264_chain(&pipeline, "out-video", &self.encoder, false)?;
        appsrc
            .link(&first_enc)
            .map_err(|e| GstError::Pipeline(e.to_string()))?;
        link_video_to_mux(&last_enc, &mux)?;
        let mut input = add_file_input(&pipeline, self.input, &mux)?;
        let state = Arc::clone(&input.state);

        let report = Arc::new(Mutex::new(BusReport::default()));
        let bus = pipeline
            .bus()
            .ok_or_else(|| GstError::Pipeline("pipeline has no bus".into()))?;
        let watching = Arc::new(AtomicBool::new(true));
        let watcher = spawn_bus_watch(
            bus,
            pipeline.clone(),
            input.appsink.clone(),
            Arc::clone(&state),
            Arc::clone(&report),
            Arc::clone(&watching),
        );

        // Ctrl-C reaches the input probes directly.
        let _ = state.interrupt.set(Arc::clone(&self.interrupt));
        let outcome = (|| -> Result<(Summary, Ending), anyhow::Error> {
            pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| self.input_failure(&report, &state, "the pipeline failed to start"))?;
            let first = input.prime().map_err(anyhow::Error::from)?.cloned();
            let Some(first) = first else {
                state.stop.store(true, Ordering::Relaxed);
                if self.interrupt.load(Ordering::Relaxed) {
                    anyhow::bail!("interrupted before the first frame; nothing written");
                }
                return Err(self.input_failure(&report, &state, "no video frame could be decoded"));
            };
            let info = input
                .info()
                .cloned()
                .ok_or_else(|| GstError::Pipeline("no caps on the first frame".into()))?;
            let odd = info.width() % 2 == 1 || info.height() % 2 == 1;
            if odd {
                tracing::warn!(
                    width = info.width(),
                    height = info.height(),
                    "odd frame size: H.264 4:2:0 cannot code it, encoding High 4:4:4 to keep the exact size"
                );
                set_caps(
                    &pipeline,
                    "out-video-format",
                    gst::Caps::builder("video/x-raw")
                        .field("format", "Y444")
                        .build(),
                );
                set_caps(
                    &pipeline,
                    "out-video-profile",
                    gst::Caps::builder("video/x-h264")
                        .field("profile", "high-4:4:4")
                        .build(),
                );
            }
            appsrc.set_caps(Some(&output_caps(&info)));
            let mut sink = AppSrcSink {
                appsrc: appsrc.clone(),
                info: info.clone(),
            };
            let progress = Arc::new(Progress::default());
            let expected = expected_frames(&pipeline, &info);
            let display = self
                .progress
                .then(|| spawn_progress(Arc::clone(&progress), expected));
            let stop = self.interrupt.as_ref();
            let guard = spawn_stop_watchdog(
                pipeline.clone(),
                Arc::clone(&self.interrupt),
                Arc::clone(&progress),
                Arc::clone(&report),
            );
            let run = stages.run(&first, &mut input, &mut sink, stop, &progress);
            guard.store(true, Ordering::Relaxed);
            if let Some((done, handle)) = display {
                done.store(true, Ordering::Relaxed);
                let _ = handle.join();
            }
            state.stop.store(true, Ordering::Relaxed);
            let mut summary = run.map_err(|e| self.output_failure(&report).unwrap_or(e))?;
            summary
                .notes
                .extend(input.keep.as_ref().and_then(|k| k.note()));
            // Finish: end the video stream, let the rest of the input reach EOS, wait for the muxer.
            let _ = appsrc.end_of_stream();
            input.drain(Duration::from_secs(30));
            // A stopped job only waits for what can still be finalised quickly.
            let limit = if self.interrupt.load(Ordering::Relaxed) {
                10
            } else {
                120
            };
            wait_for_eos(&report, Duration::from_secs(limit))
                .map_err(|e| self.output_failure(&report).unwrap_or(e))?;
            let r = report
                .lock()
                .map_err(|_| anyhow::anyhow!("bus report poisoned"))?;
            let ending = if self.interrupt.load(Ordering::Relaxed) {
                Ending::Interrupted
            } else if let Some(e) = &r.input_error {
                Ending::InputIncomplete(e.clone())
            } else if state.stalled.load(Ordering::Relaxed) {
                Ending::InputIncomplete(stalled_message())
            } else if summary.frames_in
                < expected
                    .unwrap_or(0)
                    .saturating_sub(expected.unwrap_or(0) / 20 + 2)
            {
                Ending::InputIncomplete(format!(
                    "the input announced about {} frames but only {} decoded{}",
                    expected.unwrap_or(0),
                    summary.frames_in,
                    r.input_warnings
                        .first()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default()
                ))
            } else {
                Ending::Complete
            };
            Ok((summary, ending))
        })();
        watching.store(false, Ordering::Relaxed);
        let _ = pipeline.set_state(gst::State::Null);
        let _ = watcher.join();
        outcome
    }

    /// The output side's failure, said the way a user reads it, if there was one.
    fn output_failure(&self, report: &Mutex<BusReport>) -> Option<anyhow::Error> {
        // The bus thread may still be delivering the element's own error.
        for _ in 0..10 {
            {
                let r = report.lock().ok()?;
                if r.stuck {
                    return Some(anyhow::anyhow!(
                        "interrupted, but the output pipeline was stuck and had to be shut down; {} was not written",
                        self.output.display()
                    ));
                }
                if let Some(e) = &r.output_error {
                    return Some(if r.write_failed {
                        anyhow::anyhow!("cannot write {}: {e}", self.output.display())
                    } else {
                        anyhow::anyhow!("encoding {} failed: {e}", self.output.display())
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn input_failure(
        &self,
        report: &Mutex<BusReport>,
        state: &InputState,
        fallback: &str,
    ) -> anyhow::Error {
        // Give the bus a moment to deliver the element's own error.
        std::thread::sleep(Duration::from_millis(100));
        let r = report.lock().ok();
        let streams = state.streams.lock().map(|s| s.clone()).unwrap_or_default();
        let input = self.input.display();
        if let Some(r) = &r {
            if let Some(e) = &r.output_error {
                return if r.write_failed {
                    anyhow::anyhow!("cannot write {}: {e}", self.output.display())
                } else {
                    anyhow::anyhow!("encoding {} failed: {e}", self.output.display())
                };
            }
            if !r.missing_plugins.is_empty() {
                return anyhow::anyhow!(
                    "cannot decode {input}: GStreamer is missing a plugin for {}; install it (e.g. gstreamer1.0-libav, gstreamer1.0-plugins-bad or -ugly)",
                    r.missing_plugins.join(", ")
                );
            }
        }
        if state.stalled.load(Ordering::Relaxed)
            && r.as_ref().is_none_or(|r| r.input_error.is_none())
        {
            return anyhow::anyhow!(
                "cannot read {input} as a video: {}; expected a video file GStreamer can decode",
                stalled_message()
            );
        }
        if !streams.is_empty() && !state.has_video.load(Ordering::Relaxed) {
            return anyhow::anyhow!(
                "{input} has no video stream (it holds: {}); expected a video file",
                streams.join(", ")
            );
        }
        let detail = r
            .as_ref()
            .and_then(|r| r.input_error.clone())
            .unwrap_or_else(|| fallback.to_string());
        let errors = state
            .errors
            .lock()
            .map(|e| e.join("; "))
            .unwrap_or_default();
        if !errors.is_empty() {
            return anyhow::anyhow!("cannot process {input}: {errors}");
        }
        anyhow::anyhow!(
            "cannot read {input} as a video: {detail}; expected a video file GStreamer can decode (MP4, MKV, WebM, AVI, ...)"
        )
    }
}

fn stalled_message() -> String {
    format!(
        "no frame was decoded for {} s (the file is probably damaged)",
        super::input::STALL_AFTER.as_secs()
    )
}

fn set_caps(pipeline: &gst::Pipeline, name: &str, caps: gst::Caps) {
    if let Some(e) = pipeline.by_name(name) {
        e.set_property("caps", caps);
    }
}

fn output_caps(info: &gst_video::VideoInfo) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", info.width() as i32)
        .field("height", info.height() as i32)
        .field("framerate", info.fps())
        .field("pixel-aspect-ratio", info.par())
        .build();
    if let Some(c) = caps.get_mut() {
        if let Some(s) = c.structure_mut(0) {
            s.set("colorimetry", info.colorimetry().to_string());
        }
    }
    caps
}

fn expected_frames(pipeline: &gst::Pipeline, info: &gst_video::VideoInfo) -> Option<u64> {
    let duration = pipeline.query_duration::<gst::ClockTime>()?;
    let fps = info.fps();
    if fps.numer() <= 0 || fps.denom() <= 0 {
        return None;
    }
    Some(
        (duration.nseconds() as u128 * fps.numer() as u128 / (fps.denom() as u128 * 1_000_000_000))
            as u64,
    )
}

fn wait_for_eos(report: &Mutex<BusReport>, timeout: Duration) -> Result<(), anyhow::Error> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let r = report
                .lock()
                .map_err(|_| anyhow::anyhow!("bus report poisoned"))?;
            if r.output_error.is_some() {
                anyhow::bail!("writing the output failed");
            }
            if r.eos {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("the muxer did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_output_element(src: Option<&gst::Object>) -> bool {
    src.map(|s| s.path_string().contains("out-"))
        .unwrap_or(false)
}

fn spawn_bus_watch(
    bus: gst::Bus,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    state: Arc<InputState>,
    report: Arc<Mutex<BusReport>>,
    watching: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while watching.load(Ordering::Relaxed) {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
                continue;
            };
            let Ok(mut r) = report.lock() else { return };
            use gst::MessageView as M;
            match msg.view() {
                M::Eos(_) => r.eos = true,
                M::Error(e) => {
                    let text = format!(
                        "{} ({})",
                        e.error(),
                        msg.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default()
                    );
                    tracing::debug!(debug = ?e.debug(), "bus error: {text}");
                    if is_output_element(msg.src()) {
                        if r.output_error.is_none() {
                            match super::write_error_reason(&e.error(), e.debug().as_deref()) {
                                Some(reason) => {
                                    r.output_error = Some(reason);
                                    r.write_failed = true;
                                }
                                None => r.output_error = Some(text),
                            }
                        }
                        state.stop.store(true, Ordering::Relaxed);
                        drop(r);
                        let _ = pipeline.set_state(gst::State::Null);
                        continue;
                    }
                    if r.input_error.is_none() {
                        r.input_error = Some(e.error().to_string());
                        state.failed.store(true, Ordering::SeqCst);
                        drop(r);
                        // The input's streaming thread has stopped: end every branch ourselves
                        // so the muxer still finalises what was processed.
                        if let Some(pad) = appsink.static_pad("sink") {
                            pad.send_event(gst::event::Eos::new());
                        }
                        if let Ok(entries) = state.audio_entries.lock() {
                            for pad in entries.iter() {
                                pad.send_event(gst::event::Eos::new());
                            }
                        }
                    }
                }
                M::Warning(w) => {
                    tracing::warn!(
                        "GStreamer: {} ({})",
                        w.error(),
                        msg.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default()
                    );
                    if !is_output_element(msg.src()) {
                        r.input_warnings.push(w.error().to_string());
                    }
                }
                M::Element(_) => {
                    if let Some(s) = msg.structure() {
                        if s.name() == "missing-plugin" {
                            let desc = gstreamer_pbutils::MissingPluginMessage::parse(&msg)
                                .map(|m| m.description().to_string())
                                .unwrap_or_else(|_| s.to_string());
                            r.missing_plugins.push(desc);
                            state.failed.store(true, Ordering::SeqCst);
                        }
                    }
                }
                _ => {}
            }
        }
    })
}

/// After a stop, a pipeline that makes no progress for 2 s is shut down, so a blocked
/// push returns and the job ends (SIGINT/SIGTERM always end a job). Set the returned
/// flag when the job is done.
fn spawn_stop_watchdog(
    pipeline: gst::Pipeline,
    interrupt: Arc<AtomicBool>,
    progress: Arc<Progress>,
    report: Arc<Mutex<BusReport>>,
) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    std::thread::spawn(move || {
        let mut last = (progress.frames_out.load(Ordering::Relaxed), Instant::now());
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let out = progress.frames_out.load(Ordering::Relaxed);
            if out != last.0 || !interrupt.load(Ordering::Relaxed) {
                last = (out, Instant::now());
                continue;
            }
            let eos = report.lock().map(|r| r.eos).unwrap_or(false);
            if !eos && last.1.elapsed() > Duration::from_secs(2) {
                tracing::warn!("stopping: the pipeline made no progress for 2 s; shutting it down");
                if let Ok(mut r) = report.lock() {
                    r.stuck = true;
                }
                let _ = pipeline.set_state(gst::State::Null);
                return;
            }
        }
    });
    done
}

fn spawn_progress(
    progress: Arc<Progress>,
    expected: Option<u64>,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    use std::io::IsTerminal;
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let tty = std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(expected.unwrap_or(0));
            let style = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let mut last_log = Instant::now();
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let n = progress.frames_out.load(Ordering::Relaxed);
            let fps = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
            if let Some(bar) = &bar {
                bar.set_position(n);
            } else if last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                let eta = expected
                    .filter(|&e| e > n && fps > 0.0)
                    .map(|e| format!(", ETA {:.0} s", (e - n) as f64 / fps))
                    .unwrap_or_default();
                let total = expected.map(|e| format!("/{e}")).unwrap_or_default();
                eprintln!("segsynth: {n}{total} frames, {fps:.1} fps{eta}");
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    });
    (done, handle)
}
