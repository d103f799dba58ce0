//! Live outputs: one pipeline per output, each fed by its own appsrc, so a failing
//! output is closed alone and reported at once while the others go on:
//!
//! ```text
//! [composite] ──► the same buffer to every output
//!   appsrc(leaky) ! x264enc ! mux ! filesink           (recording, temp file renamed at the end)
//!   appsrc(leaky) ! autovideosink                      (display:)
//!   appsrc(leaky) ! v4l2sink                           (virtual camera)
//!   appsrc(leaky) ! intervideosink ─► RTSP server (rtsp_server.rs), one encode for all clients
//!   appsrc(leaky) ! x264enc ! rtspclientsink           (rtsp-publish://)
//!   appsrc(leaky) ! intervideosink ─► WHEP players (io::webrtc), one VP8 encode each  (whep://)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::endpoint::{HttpEndpoint, OutputSpec, RtspUrl};
use crate::frame::Frame;
use crate::io::encode::{Container, EncoderSettings, h264_chain, muxer, temp_path};
use crate::io::frames::buffer_from_frame;
use crate::io::rtsp_server;
use crate::io::sink::window;
use crate::io::source::live::LiveSettings;
use crate::io::{IoError, init, make, perr};
use crate::pipeline::{FrameSink, PipelineError, Retime};

/// Checks outputs before anything starts (devices, display, files).
pub fn check_output(o: &OutputSpec, settings: &LiveSettings) -> Result<(), IoError> {
    match o {
        OutputSpec::File(p) => {
            crate::io::sink::file::check_output(p, settings.overwrite).map(|_| ())
        }
        OutputSpec::Display => {
            init()?;
            window::choose_sink(settings.display_sink.as_deref(), "check").map(|_| ())
        }
        OutputSpec::V4l2(dev) => {
            use std::os::unix::fs::FileTypeExt;
            match std::fs::metadata(dev) {
                Ok(m) if m.file_type().is_char_device() => Ok(()),
                _ => Err(IoError::NoVirtualCamera {
                    device: dev.clone(),
                    nr: dev
                        .display()
                        .to_string()
                        .trim_start_matches("/dev/video")
                        .to_string(),
                }),
            }
        }
        OutputSpec::RtspServe { .. } | OutputSpec::RtspPublish(_) | OutputSpec::Whep(_) => Ok(()),
    }
}

/// One output: its own pipeline fed by its own appsrc, so a failing output (a full
/// disk, a publish server that went away) is closed alone while the others go on.
struct Branch {
    /// What the user named (`-o ...`), for messages.
    label: String,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    /// Recording: (temporary file, target) renamed at the end.
    rename: Option<(PathBuf, PathBuf)>,
    failed: Option<String>,
    /// Frame PTS -> this output's running time.
    retime: Retime,
    /// The window output: closing it stops the job instead of failing the output.
    window: bool,
    /// The user closed it (not a failure).
    closed: bool,
    /// Publishing: rebuilt with backoff after a failure (the server restarted, the
    /// network dropped), as cameras and media servers expect.
    reconnect: Option<Reconnect>,
}

struct Reconnect {
    prefix: String,
    caps: gst::Caps,
    url: RtspUrl,
    fps: u32,
    backoff: Duration,
    retry_at: Option<std::time::Instant>,
    /// Failures so far, reported at the end even when publishing recovered.
    failures: Vec<String>,
}

/// What a branch's bus said.
enum BranchEvent {
    /// The user closed the window.
    Closed,
    Failed(String),
}

impl Branch {
    /// A failed publishing branch whose backoff has passed is built again.
    fn retry(&mut self) {
        let Some(r) = &mut self.reconnect else { return };
        if self.failed.is_none() || r.retry_at.is_some_and(|t| std::time::Instant::now() < t) {
            return;
        }
        let built = publish_chain(&r.prefix, &r.url, r.fps)
            .and_then(|chain| assemble(&r.prefix, &r.caps, chain, 2, &self.label));
        match built {
            Ok((pipeline, appsrc)) => {
                crate::notice!("output {}: reconnecting", self.label);
                self.pipeline = pipeline;
                self.appsrc = appsrc;
                self.retime = Retime::default();
                self.failed = None;
            }
            Err(e) => self.close_failed(e.to_string()),
        }
    }

    /// Takes the branch's first bus error, if one arrived.
    fn poll_error(&mut self) -> Option<BranchEvent> {
        if self.failed.is_some() {
            return None;
        }
        let bus = self.pipeline.bus()?;
        // Takes errors and warnings; other messages queued before them are dropped,
        // which is harmless here because no EOS can come while frames are pushed.
        while let Some(msg) =
            bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
        {
            if let gst::MessageView::Warning(w) = msg.view() {
                let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                // rtspclientsink only warns when the server goes away ("Could not read
                // from resource"): for a publishing output that is the failure.
                if self.reconnect.is_some() && w.error().is::<gst::ResourceError>() {
                    return Some(BranchEvent::Failed(format!("{} ({element})", w.error())));
                }
                tracing::debug!(output = %self.label, %element, "GStreamer warning: {}", w.error());
                continue;
            }
            if let gst::MessageView::Error(e) = msg.view() {
                if self.window && window::closed_by_user(&e.error()) {
                    return Some(BranchEvent::Closed);
                }
                return Some(BranchEvent::Failed(error_reason(e, msg.src())));
            }
        }
        None
    }

    /// Acts on what the bus said: a closed window stops the job (like Ctrl-C), a
    /// failure closes this output alone.
    fn handle(&mut self, event: BranchEvent, stop: &AtomicBool) {
        match event {
            BranchEvent::Closed => {
                tracing::info!(output = %self.label, "the window was closed; stopping");
                stop.store(true, Ordering::Relaxed);
                let _ = self.pipeline.set_state(gst::State::Null);
                self.closed = true;
            }
            BranchEvent::Failed(reason) => self.close_failed(reason),
        }
    }

    /// Waits for the branch to finalise after EOS; Err is the reason it could not.
    fn wait_eos(&self, timeout: Duration) -> Result<(), String> {
        let bus = self.pipeline.bus().ok_or("the output has no bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => {
                Err(error_reason(e, msg.as_ref().and_then(|m| m.src())))
            }
            _ => Err(format!("it did not finish within {} s", timeout.as_secs())),
        }
    }

    /// Closes a failed branch at once and says so; its partial file is removed.
    /// A publishing branch is tried again after its backoff.
    fn close_failed(&mut self, reason: String) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(r) = &mut self.reconnect {
            tracing::warn!(output = %self.label, %reason, "output failed; reconnecting in {:?}", r.backoff);
            crate::notice!(
                "output {} failed: {reason}; reconnecting in {} s",
                self.label,
                r.backoff.as_secs()
            );
            r.retry_at = Some(std::time::Instant::now() + r.backoff);
            r.backoff = (r.backoff * 2).min(Duration::from_secs(30));
            r.failures.push(reason.clone());
            self.failed = Some(reason);
            return;
        }
        tracing::error!(output = %self.label, %reason, "output failed; closing it, the other outputs continue");
        crate::notice!(
            "output {} failed: {reason}; closed it, the other outputs continue",
            self.label
        );
        if let Some((temp, _)) = &self.rename {
            let _ = std::fs::remove_file(temp);
        }
        self.failed = Some(reason);
    }
}

/// A branch's error said for a user: the OS reason for a write error, else the
/// element's error and name.
fn error_reason(e: &gst::message::Error, src: Option<&gst::Object>) -> String {
    crate::io::write_error_reason(&e.error(), e.debug().as_deref()).unwrap_or_else(|| {
        let element = src.map(|s| s.name().to_string()).unwrap_or_default();
        format!("{} ({element})", e.error())
    })
}

/// The output side: one branch pipeline per output, plus the RTSP server's main loop.
pub struct LiveOutput {
    branches: Vec<Branch>,
    info: gst_video::VideoInfo,
    pub served: Vec<String>,
    /// The RTSP mounts (address, port, path) it added: taken off again when it ends.
    mounts: Vec<(String, u16, String)>,
    /// WHEP outputs: the endpoint and the `intervideosink` channel its players read.
    pub players: Vec<(HttpEndpoint, String)>,
    /// The job's stop flag: the window's close button and `q`/Esc set it.
    stop: Arc<AtomicBool>,
    overwrite: bool,
}

/// Outputs dropped without `finish` (an error before or while starting the job) stop
/// at once and leave no half-written recording behind.
impl Drop for LiveOutput {
    fn drop(&mut self) {
        for b in &mut self.branches {
            let _ = b.pipeline.set_state(gst::State::Null);
            if let Some((temp, _)) = b.rename.take() {
                let _ = std::fs::remove_file(temp);
            }
        }
        for (address, port, path) in &self.mounts {
            rtsp_server::unserve(address, *port, path);
        }
    }
}

/// The elements after an output's appsrc, and what the branch needs to know of them.
struct Tail {
    elements: Vec<gst::Element>,
    /// A recording: its temporary file and the name it gets at the end.
    rename: Option<(PathBuf, PathBuf)>,
    reconnect: Option<Reconnect>,
    /// Latest frame wins, but a recording keeps up to 2 s while its encoder catches up.
    max_buffers: u64,
}

impl Tail {
    fn of(elements: Vec<gst::Element>) -> Tail {
        Tail {
            elements,
            rename: None,
            reconnect: None,
            max_buffers: 2,
        }
    }
}

/// The tail of a recording, window, virtual camera or publishing output.
fn tail_for(
    o: &OutputSpec,
    prefix: &str,
    settings: &LiveSettings,
    caps: &gst::Caps,
    stop: &Arc<AtomicBool>,
) -> Result<Tail, IoError> {
    Ok(match o {
        OutputSpec::File(path) => {
            let container = Container::for_path(path)?;
            let temp = temp_path(path);
            let mut elements = h264_chain(
                prefix,
                &EncoderSettings::live_recording(settings.fps),
                false,
            )?;
            let (mux, sink) = muxer(prefix, container, &temp)?;
            elements.extend([mux, sink]);
            Tail {
                rename: Some((temp, path.clone())),
                max_buffers: (settings.fps as u64 * 2).max(2),
                ..Tail::of(elements)
            }
        }
        OutputSpec::Display => {
            let convert = make("videoconvert", &format!("{prefix}-convert"))?;
            let name = format!("{prefix}-display");
            let (sink, factory) = window::choose_sink(settings.display_sink.as_deref(), &name)?;
            window::set_up(&sink, &settings.title, stop);
            crate::notice!("window ({factory}): {}", settings.title);
            Tail::of(vec![convert, sink])
        }
        OutputSpec::V4l2(dev) => Tail::of(v4l2_tail(prefix, dev)?),
        OutputSpec::RtspPublish(url) => Tail {
            reconnect: Some(Reconnect {
                prefix: prefix.to_string(),
                caps: caps.clone(),
                url: url.clone(),
                fps: settings.fps,
                backoff: Duration::from_secs(1),
                retry_at: None,
                failures: Vec::new(),
            }),
            ..Tail::of(publish_chain(prefix, url, settings.fps)?)
        },
        OutputSpec::RtspServe { .. } | OutputSpec::Whep(_) => {
            return Err(IoError::Pipeline(
                "a served stream has no tail of its own".into(),
            ));
        }
    })
}

/// videoconvert ! YUY2 ! v4l2sink(device): what v4l2loopback readers take.
fn v4l2_tail(prefix: &str, dev: &Path) -> Result<Vec<gst::Element>, IoError> {
    let convert = make("videoconvert", &format!("{prefix}-convert"))?;
    let yuy2 = make("capsfilter", &format!("{prefix}-yuy2"))?;
    let format = gst::Caps::builder("video/x-raw")
        .field("format", "YUY2")
        .build();
    yuy2.set_property("caps", format);
    let sink = make("v4l2sink", &format!("{prefix}-v4l2"))?;
    sink.set_property("device", dev.to_string_lossy().to_string());
    sink.set_property("sync", false);
    Ok(vec![convert, yuy2, sink])
}

/// intervideosink(channel): hands frames to the RTSP server's media.
fn inter_sink(prefix: &str, channel: &str) -> Result<gst::Element, IoError> {
    let sink = make("intervideosink", &format!("{prefix}-inter"))?;
    sink.set_property("channel", channel);
    sink.set_property("sync", false);
    Ok(sink)
}

/// The GLib main loop the RTSP server runs on, on its own thread.
/// The process's RTSP servers run on one GLib main loop, started on first use and
/// kept for the life of the process (the servers are too).
fn rtsp_main_loop() -> Result<(), IoError> {
    static STARTED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if !*started {
        let l = glib::MainLoop::new(None, false);
        std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || l.run())
            .map_err(perr)?;
        *started = true;
    }
    Ok(())
}

/// An `intervideosink` channel name no other output of the process uses.
fn channel_name(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("segsynth-{kind}-{}-{n}", std::process::id())
}

/// The close button must stop the job even while no frame comes (a stalled camera):
/// watch the window's bus directly, and still pass the message on.
fn stop_on_window_close(pipeline: &gst::Pipeline, stop: &Arc<AtomicBool>) {
    if let Some(bus) = pipeline.bus() {
        let stop = Arc::clone(stop);
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(e) = msg.view()
                && window::closed_by_user(&e.error())
            {
                stop.store(true, Ordering::Relaxed);
            }
            gst::BusSyncReply::Pass
        });
    }
}

/// Describes an output for messages (never with a password: see `OutputSpec`'s Display).
fn output_label(o: &OutputSpec) -> String {
    o.to_string()
}

/// appsrc ! rtph264 encoder ! rtspclientsink, credentials as properties.
fn publish_chain(prefix: &str, url: &RtspUrl, fps: u32) -> Result<Vec<gst::Element>, IoError> {
    let mut chain = h264_chain(prefix, &EncoderSettings::live(fps), false)?;
    let sink = make("rtspclientsink", &format!("{prefix}-publish"))?;
    // The location holds no credentials; they go in as properties. Media goes
    // interleaved over the RTSP connection, so a server that goes away is noticed
    // (UDP would keep sending into the void) and NATs are no obstacle.
    sink.set_property("location", &url.url);
    sink.set_property_from_str("protocols", "tcp");
    if let Some(c) = &url.credentials {
        sink.set_property("user-id", &c.user);
        sink.set_property("user-pw", c.password.expose());
    }
    chain.push(sink);
    Ok(chain)
}

/// A branch pipeline: its own leaky appsrc, then `tail`, set PLAYING.
fn assemble(
    prefix: &str,
    caps: &gst::Caps,
    tail: Vec<gst::Element>,
    max_buffers: u64,
    label: &str,
) -> Result<(gst::Pipeline, gst_app::AppSrc), IoError> {
    let pipeline = gst::Pipeline::with_name(&format!("segsynth-{prefix}"));
    let appsrc = gst_app::AppSrc::builder()
        .name(format!("{prefix}-appsrc"))
        .caps(caps)
        .format(gst::Format::Time)
        .is_live(true)
        .build();
    // Latest frame wins: a slow output never holds the others back (GStreamer >= 1.20).
    appsrc.set_property("max-buffers", max_buffers);
    appsrc.set_property_from_str("leaky-type", "downstream");
    let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
    chain.extend(tail);
    pipeline.add_many(&chain).map_err(perr)?;
    gst::Element::link_many(&chain)
        .map_err(|e| IoError::Pipeline(format!("cannot link output {label}: {e}")))?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        let why = crate::io::first_bus_error(&pipeline)
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = pipeline.set_state(gst::State::Null);
        IoError::Pipeline(format!("output {label} failed to start: {why}"))
    })?;
    Ok((pipeline, appsrc))
}

impl LiveOutput {
    pub fn start(
        outputs: &[OutputSpec],
        settings: &LiveSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveOutput, IoError> {
        init()?;
        let info = gst_video::VideoInfo::builder(
            gst_video::VideoFormat::I420,
            settings.width,
            settings.height,
        )
        .fps(gst::Fraction::new(settings.fps as i32, 1))
        .build()
        .map_err(perr)?;
        let caps = info.to_caps().map_err(perr)?;
        let mut served = Vec::new();
        let mut mounts = Vec::new();
        let mut players = Vec::new();
        let mut branches = Vec::new();
        for (i, o) in outputs.iter().enumerate() {
            let prefix = format!("out{i}");
            let label = output_label(o);
            let tail = match o {
                OutputSpec::RtspServe {
                    address,
                    port,
                    path,
                    tls,
                } => {
                    let channel = channel_name("rtsp");
                    rtsp_main_loop()?;
                    let serve = &settings.serve;
                    rtsp_server::serve(address, *port, path, &channel, settings.fps, *tls, serve)?;
                    mounts.push((address.clone(), *port, path.clone()));
                    served.push(o.to_string());
                    Tail::of(vec![inter_sink(&prefix, &channel)?])
                }
                OutputSpec::Whep(endpoint) => {
                    let channel = channel_name("whep");
                    players.push((endpoint.clone(), channel.clone()));
                    Tail::of(vec![inter_sink(&prefix, &channel)?])
                }
                _ => tail_for(o, &prefix, settings, &caps, &stop)?,
            };
            let (pipeline, appsrc) =
                assemble(&prefix, &caps, tail.elements, tail.max_buffers, &label)?;
            if matches!(o, OutputSpec::Display) {
                stop_on_window_close(&pipeline, &stop);
            }
            branches.push(Branch {
                retime: Retime::default(),
                label,
                pipeline,
                appsrc,
                rename: tail.rename,
                failed: None,
                window: matches!(o, OutputSpec::Display),
                closed: false,
                reconnect: tail.reconnect,
            });
        }
        Ok(LiveOutput {
            branches,
            info,
            served,
            mounts,
            players,
            stop,
            overwrite: settings.overwrite,
        })
    }

    /// Outputs that failed while running, with their reasons.
    pub fn failures(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for b in &self.branches {
            match &b.reconnect {
                Some(r) => all.extend(r.failures.iter().map(|f| (b.label.clone(), f.clone()))),
                None => all.extend(b.failed.clone().map(|f| (b.label.clone(), f))),
            }
        }
        all
    }

    /// Sends EOS, waits for recordings to finalise, stops the server. Fails when any
    /// output failed along the way or cannot be finalised.
    pub fn finish(mut self) -> Result<(), IoError> {
        for b in self
            .branches
            .iter_mut()
            .filter(|b| b.failed.is_none() && !b.closed)
        {
            let _ = b.appsrc.end_of_stream();
        }
        let mut problems = Vec::new();
        for b in self
            .branches
            .iter_mut()
            .filter(|b| b.failed.is_none() && !b.closed)
        {
            if let Some((temp, path)) = b.rename.clone() {
                match b.wait_eos(Duration::from_secs(20)) {
                    Ok(()) if !self.overwrite && path.exists() => {
                        let _ = b.pipeline.set_state(gst::State::Null);
                        let _ = std::fs::remove_file(&temp);
                        b.rename = None;
                        problems.push((
                            b.label.clone(),
                            "the file appeared while recording; not replacing it (pass --overwrite)"
                                .into(),
                        ));
                    }
                    Ok(()) => {
                        let _ = b.pipeline.set_state(gst::State::Null);
                        b.rename = None;
                        if let Err(e) = std::fs::rename(&temp, &path) {
                            let _ = std::fs::remove_file(&temp);
                            problems.push((
                                b.label.clone(),
                                format!("cannot move the recording into place: {e}"),
                            ));
                        }
                    }
                    Err(reason) => b.close_failed(reason),
                }
            }
            let _ = b.pipeline.set_state(gst::State::Null);
        }
        problems.extend(self.failures());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(IoError::OutputsFailed(problems))
        }
    }
}

impl FrameSink for LiveOutput {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        let pts = frame.pts;
        let buffer = buffer_from_frame(frame, &self.info).map_err(PipelineError::from)?;
        for b in &mut self.branches {
            b.retry();
            if let Some(event) = b.poll_error() {
                b.handle(event, &self.stop);
            }
            if b.failed.is_some() || b.closed {
                continue;
            }
            // The frame's PTS and duration, on this output's clock.
            let now = b
                .pipeline
                .current_running_time()
                .map_or(0, |t| t.nseconds());
            // A shallow copy (shared memory, own metadata), so the PTS can be set.
            let mut out = buffer.copy();
            if let Some(o) = out.get_mut() {
                o.set_pts(gst::ClockTime::from_nseconds(b.retime.output_pts(pts, now)));
            }
            if let Err(e) = b.appsrc.push_buffer(out) {
                let event = b.poll_error().unwrap_or_else(|| {
                    BranchEvent::Failed(format!("it stopped accepting frames ({e:?})"))
                });
                b.handle(event, &self.stop);
            }
        }
        if self
            .branches
            .iter()
            .all(|b| b.failed.is_some() && b.reconnect.is_none())
        {
            let all: Vec<String> = self
                .failures()
                .into_iter()
                .map(|(o, f)| format!("{o}: {f}"))
                .collect();
            return Err(PipelineError::Io(
                format!("every output failed ({})", all.join("; ")).into(),
            ));
        }
        Ok(())
    }
}
