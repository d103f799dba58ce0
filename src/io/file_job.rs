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

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::encode::{
    Container, EncoderSettings, add_h264_chain, add_muxer, link_video_to_mux, temp_path,
};
use super::sink::file::{AppSrcSink, check_output, output_caps};
use super::source::file::{InputState, STALL_AFTER, add_file_input, check_input};
use super::{IoError, init, perr};
use crate::job::Stages;
use crate::pipeline::Progress;
use crate::pipeline::stats::Summary;

/// How the job ended, beyond plain success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// Ctrl-C / SIGTERM: the file holds every frame processed so far.
    Interrupted,
    /// The input broke off (truncated, corrupt): the file holds what decoded.
    InputIncomplete(String),
}

pub struct FileJob<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub overwrite: bool,
    pub encoder: EncoderSettings,
    pub interrupt: Arc<AtomicBool>,
    /// Counters the caller may display while the job runs (`expected` is set once known).
    pub progress: Arc<Progress>,
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
    pub fn run(&self, stages: &mut Stages) -> Result<(Summary, Ending), IoError> {
        init()?;
        let container = check_output(self.output, self.overwrite)?;
        check_input(self.input)?;
        let temp = temp_path(self.output);
        let result = self.run_to(&temp, container, stages);
        match result {
            Ok((summary, ending)) => {
                if summary.frames_out == 0 {
                    let _ = std::fs::remove_file(&temp);
                    return Err(IoError::NoFrames(self.input.to_owned()));
                }
                if !self.overwrite && self.output.exists() {
                    let _ = std::fs::remove_file(&temp);
                    return Err(IoError::AppearedWhileProcessing(self.output.to_owned()));
                }
                std::fs::rename(&temp, self.output).map_err(|source| {
                    let _ = std::fs::remove_file(&temp);
                    IoError::Rename {
                        path: self.output.to_owned(),
                        source,
                    }
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
        stages: &mut Stages,
    ) -> Result<(Summary, Ending), IoError> {
        let pipeline = gst::Pipeline::with_name("segsynth-file");
        let (appsrc, mux) = self.add_output(&pipeline, temp, container)?;
        let mut input = add_file_input(&pipeline, self.input, &mux)?;
        let state = Arc::clone(&input.state);

        let report = Arc::new(Mutex::new(BusReport::default()));
        let bus = pipeline
            .bus()
            .ok_or_else(|| IoError::Pipeline("pipeline has no bus".into()))?;
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
        let outcome = self.drive(&pipeline, &appsrc, &mut input, &report, stages);
        watching.store(false, Ordering::Relaxed);
        let _ = pipeline.set_state(gst::State::Null);
        let _ = watcher.join();
        outcome
    }

    /// Plays the built pipeline through the stages: the first frame sizes the output,
    /// then every frame, then EOS through the muxer; the ending says how the input ended.
    fn drive(
        &self,
        pipeline: &gst::Pipeline,
        appsrc: &gst_app::AppSrc,
        input: &mut super::source::file::FileInput,
        report: &Arc<Mutex<BusReport>>,
        stages: &mut Stages,
    ) -> Result<(Summary, Ending), IoError> {
        let state = Arc::clone(&input.state);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| self.input_failure(report, &state, "the pipeline failed to start"))?;
        let first = input.prime().map_err(|e| IoError::Unreadable {
            path: self.input.to_owned(),
            reason: e.to_string(),
        })?;
        let Some(first) = first.cloned() else {
            state.stop.store(true, Ordering::Relaxed);
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(IoError::InterruptedEarly);
            }
            return Err(self.input_failure(report, &state, "no video frame could be decoded"));
        };
        let info = input
            .info()
            .cloned()
            .ok_or_else(|| IoError::Pipeline("no caps on the first frame".into()))?;
        encode_odd_sizes(pipeline, &info);
        appsrc.set_caps(Some(&output_caps(&info)));
        let mut sink = AppSrcSink {
            appsrc: appsrc.clone(),
            info: info.clone(),
        };
        let progress = &self.progress;
        let expected = expected_frames(pipeline, &info);
        progress
            .expected
            .store(expected.unwrap_or(0), Ordering::Relaxed);
        let stop = self.interrupt.as_ref();
        let guard = spawn_stop_watchdog(
            pipeline.clone(),
            Arc::clone(&self.interrupt),
            Arc::clone(progress),
            Arc::clone(report),
        );
        let run = stages.run(&first, input, &mut sink, stop, progress);
        guard.store(true, Ordering::Relaxed);
        state.stop.store(true, Ordering::Relaxed);
        let mut summary =
            run.map_err(|e| self.output_failure(report).unwrap_or(IoError::Job(e)))?;
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
        wait_for_eos(report, Duration::from_secs(limit))
            .map_err(|e| self.output_failure(report).unwrap_or(e))?;
        let ending = self.ending(report, &state, summary.frames_in, expected)?;
        Ok((summary, ending))
    }

    /// appsrc ! encoder chain ! muxer ! filesink(temp), in `pipeline`.
    fn add_output(
        &self,
        pipeline: &gst::Pipeline,
        temp: &Path,
        container: Container,
    ) -> Result<(gst_app::AppSrc, gst::Element), IoError> {
        let mux = add_muxer(pipeline, "out", container, temp)?;
        let appsrc = gst_app::AppSrc::builder()
            .name("out-appsrc")
            .format(gst::Format::Time)
            .block(true)
            .max_bytes(8 * 1024 * 1024)
            .build();
        pipeline.add(&appsrc).map_err(perr)?;
        let (first_enc, last_enc) = add_h264_chain(pipeline, "out-video", &self.encoder, false)?;
        appsrc.link(&first_enc).map_err(perr)?;
        link_video_to_mux(&last_enc, &mux)?;
        Ok((appsrc, mux))
    }

    /// How the job ended: interrupted, the input incomplete (an error, a stall, or far
    /// fewer frames than announced), or complete.
    fn ending(
        &self,
        report: &Mutex<BusReport>,
        state: &InputState,
        frames_in: u64,
        expected: Option<u64>,
    ) -> Result<Ending, IoError> {
        let r = report
            .lock()
            .map_err(|_| IoError::Pipeline("the bus watcher panicked".into()))?;
        let expected = expected.unwrap_or(0);
        Ok(if self.interrupt.load(Ordering::Relaxed) {
            Ending::Interrupted
        } else if let Some(e) = &r.input_error {
            Ending::InputIncomplete(e.clone())
        } else if state.stalled.load(Ordering::Relaxed) {
            Ending::InputIncomplete(stalled_message())
        } else if frames_in < expected.saturating_sub(expected / 20 + 2) {
            Ending::InputIncomplete(format!(
                "the input announced about {expected} frames but only {frames_in} decoded{}",
                r.input_warnings
                    .first()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ))
        } else {
            Ending::Complete
        })
    }

    /// The output side's failure, said the way a user reads it, if there was one.
    fn output_failure(&self, report: &Mutex<BusReport>) -> Option<IoError> {
        // The bus thread may still be delivering the element's own error.
        for _ in 0..10 {
            {
                let r = report.lock().ok()?;
                if r.stuck {
                    return Some(IoError::Stuck(self.output.to_owned()));
                }
                if let Some(e) = self.output_error(&r) {
                    return Some(e);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn output_error(&self, r: &BusReport) -> Option<IoError> {
        let (path, reason) = (self.output.to_owned(), r.output_error.clone()?);
        Some(if r.write_failed {
            IoError::Write { path, reason }
        } else {
            IoError::Encode { path, reason }
        })
    }

    fn input_failure(
        &self,
        report: &Mutex<BusReport>,
        state: &InputState,
        fallback: &str,
    ) -> IoError {
        // Give the bus a moment to deliver the element's own error.
        std::thread::sleep(Duration::from_millis(100));
        let r = report.lock().ok();
        let streams = state.streams.lock().map(|s| s.clone()).unwrap_or_default();
        let path = self.input.to_owned();
        if let Some(r) = &r {
            if let Some(e) = self.output_error(r) {
                return e;
            }
            if !r.missing_plugins.is_empty() {
                return IoError::MissingPlugin {
                    path,
                    plugins: r.missing_plugins.join(", "),
                };
            }
        }
        if state.stalled.load(Ordering::Relaxed)
            && r.as_ref().is_none_or(|r| r.input_error.is_none())
        {
            return IoError::Unreadable {
                path,
                reason: stalled_message(),
            };
        }
        if !streams.is_empty() && !state.has_video.load(Ordering::Relaxed) {
            return IoError::NoVideo {
                path,
                streams: streams.join(", "),
            };
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
            return IoError::Input { path, errors };
        }
        IoError::Unreadable {
            path,
            reason: detail,
        }
    }
}

fn stalled_message() -> String {
    format!(
        "no frame was decoded for {} s (the file is probably damaged)",
        STALL_AFTER.as_secs()
    )
}

fn set_caps(pipeline: &gst::Pipeline, name: &str, caps: gst::Caps) {
    if let Some(e) = pipeline.by_name(name) {
        e.set_property("caps", caps);
    }
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

fn wait_for_eos(report: &Mutex<BusReport>, timeout: Duration) -> Result<(), IoError> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let r = report
                .lock()
                .map_err(|_| IoError::Pipeline("the bus watcher panicked".into()))?;
            if r.output_error.is_some() {
                return Err(IoError::Pipeline("writing the output failed".into()));
            }
            if r.eos {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(IoError::MuxTimeout(timeout.as_secs()));
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
                M::Error(e) => on_error(&msg, e, r, &pipeline, &appsink, &state),
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
                    if let Some(s) = msg.structure()
                        && s.name() == "missing-plugin"
                    {
                        let desc = gstreamer_pbutils::MissingPluginMessage::parse(&msg)
                            .map(|m| m.description().to_string())
                            .unwrap_or_else(|_| s.to_string());
                        r.missing_plugins.push(desc);
                        state.failed.store(true, Ordering::SeqCst);
                    }
                }
                _ => {}
            }
        }
    })
}

/// A bus error: an output's stops the job at once (its reason kept, the OS reason for a
/// write); an input's is kept, and every branch is ended by hand so the muxer still
/// finalises what was processed (the input's streaming thread has stopped).
fn on_error(
    msg: &gst::Message,
    e: &gst::message::Error,
    mut r: std::sync::MutexGuard<'_, BusReport>,
    pipeline: &gst::Pipeline,
    appsink: &gst_app::AppSink,
    state: &InputState,
) {
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
            match crate::io::write_error_reason(&e.error(), e.debug().as_deref()) {
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
        return;
    }
    if r.input_error.is_none() {
        r.input_error = Some(e.error().to_string());
        state.failed.store(true, Ordering::SeqCst);
        drop(r);
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

/// After a stop, a sink blocked in `push` for 2 s (the encoder or muxer is stuck) gets
/// its pipeline shut down, so the push returns and the job ends (SIGINT/SIGTERM always
/// end a job). Slow stages are not a stuck sink: their frames are still finished. Set
/// the returned flag when the job is done.
fn spawn_stop_watchdog(
    pipeline: gst::Pipeline,
    interrupt: Arc<AtomicBool>,
    progress: Arc<Progress>,
    report: Arc<Mutex<BusReport>>,
) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    std::thread::spawn(move || {
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if !interrupt.load(Ordering::Relaxed) {
                continue;
            }
            let since = progress.pushing_since_ms.load(Ordering::Relaxed);
            let blocked = since > 0 && crate::pipeline::now_ms().saturating_sub(since) > 2000;
            let eos = report.lock().map(|r| r.eos).unwrap_or(false);
            if blocked && !eos {
                tracing::warn!("stopping: the encoder accepted no frame for 2 s; shutting it down");
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

/// Odd sizes cannot be coded as H.264 4:2:0 (crop units are 2 pixels): the encoder takes
/// Y444 and High 4:4:4 instead, so the exact size is kept.
fn encode_odd_sizes(pipeline: &gst::Pipeline, info: &gst_video::VideoInfo) {
    if info.width().is_multiple_of(2) && info.height().is_multiple_of(2) {
        return;
    }
    tracing::warn!(
        width = info.width(),
        height = info.height(),
        "odd frame size: H.264 4:2:0 cannot code it, encoding High 4:4:4 to keep the exact size"
    );
    let format = gst::Caps::builder("video/x-raw")
        .field("format", "Y444")
        .build();
    set_caps(pipeline, "out-video-format", format);
    let profile = gst::Caps::builder("video/x-h264")
        .field("profile", "high-4:4:4")
        .build();
    set_caps(pipeline, "out-video-profile", profile);
}
