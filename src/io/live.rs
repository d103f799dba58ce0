//! Live GStreamer I/O: a camera/test/RTSP/file input into an appsink (latest frame wins),
//! and one pipeline per output, each fed by its own appsrc, so a failing output is
//! closed alone and reported at once while the others go on:
//!
//! ```text
//! input pipeline:   videotestsrc|v4l2src|rtspsrc|filesrc ! decode ! videoconvert ! videoscale ! I420 ! appsink(drop, 1)
//!                                      ──► [segment] ──► [composite] ──► (the same buffer to every output)
//! output pipelines: appsrc(leaky) ! x264enc ! mux ! filesink           (recording, temp file renamed at the end)
//!                   appsrc(leaky) ! autovideosink                      (display:)
//!                   appsrc(leaky) ! v4l2sink                           (virtual camera)
//!                   appsrc(leaky) ! intervideosink ─► RTSP server, shared media: one encode for all clients
//!                   appsrc(leaky) ! x264enc ! rtspclientsink           (rtsp-publish://)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use gstreamer_video as gst_video;

use super::encode::Container;
use super::frames::{buffer_from_frame, frame_from_buffer};
use super::{GstError, init, make};
use crate::frame::Frame;
use crate::live::{InputSpec, OutputSpec};
use crate::pipeline::{FrameSink, FrameSource, KeepSize, PipelineError};

#[derive(Clone, Debug)]
pub struct LiveSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub realtime: bool,
    pub rtsp_user: Option<String>,
    pub rtsp_password: Option<String>,
    pub rtsp_transport: String,
    pub overwrite: bool,
    /// Report an input that delivers nothing for this long.
    pub stall_after: Duration,
}

fn perr<E: std::fmt::Display>(e: E) -> GstError {
    GstError::Pipeline(e.to_string())
}

/// Checks outputs before anything starts (devices, display, files).
pub fn check_output(o: &OutputSpec, overwrite: bool) -> Result<(), String> {
    match o {
        OutputSpec::File(p) => super::file_job::check_output(p, overwrite).map(|_| ()),
        OutputSpec::Display => {
            if std::env::var_os("DISPLAY").is_none()
                && std::env::var_os("WAYLAND_DISPLAY").is_none()
            {
                return Err("output display: needs a graphical session, but neither DISPLAY nor WAYLAND_DISPLAY is set".into());
            }
            Ok(())
        }
        OutputSpec::V4l2(dev) => {
            use std::os::unix::fs::FileTypeExt;
            match std::fs::metadata(dev) {
                Ok(m) if m.file_type().is_char_device() => Ok(()),
                _ => Err(format!(
                    "virtual camera {} does not exist; load v4l2loopback first: `sudo modprobe v4l2loopback devices=1 video_nr={} card_label=segsynth exclusive_caps=1`",
                    dev.display(),
                    dev.display().to_string().trim_start_matches("/dev/video")
                )),
            }
        }
        OutputSpec::RtspServe { .. } | OutputSpec::RtspPublish(_) => Ok(()),
    }
}

pub fn check_input(i: &InputSpec) -> Result<(), String> {
    match i {
        InputSpec::V4l2(dev) if !dev.exists() => Err(format!(
            "camera {} does not exist; list cameras with `ls /dev/video*`",
            dev.display()
        )),
        InputSpec::File { path } => super::file_job::check_input(path),
        _ => Ok(()),
    }
}

/// The live input: its own pipeline, rebuilt with backoff when an RTSP stream drops.
pub struct LiveInput {
    spec: InputSpec,
    settings: LiveSettings,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    info: Option<gst_video::VideoInfo>,
    index: u64,
    last_frame: Instant,
    stalled_reported: bool,
    backoff: Duration,
    stop: Arc<AtomicBool>,
    /// Frames are always the processing size; anything else is scaled to it.
    pub keep: KeepSize,
}

fn input_description(spec: &InputSpec, s: &LiveSettings) -> String {
    let scale = format!(
        "videoconvert ! videoscale ! videorate drop-only=true ! video/x-raw,format=I420,width={},height={},framerate=[1/1,{}/1]",
        s.width, s.height, s.fps
    );
    let sink = "appsink name=sink max-buffers=1 drop=true sync=false";
    match spec {
        InputSpec::Test => format!(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width={},height={},framerate={}/1 ! {scale} ! {sink}",
            s.width, s.height, s.fps
        ),
        InputSpec::V4l2(dev) => format!(
            "v4l2src device={} ! decodebin ! {scale} ! {sink}",
            dev.display()
        ),
        InputSpec::Rtsp(url) => {
            let auth = match (&s.rtsp_user, &s.rtsp_password) {
                (Some(u), Some(p)) => format!(" user-id=\"{u}\" user-pw=\"{p}\""),
                _ => String::new(),
            };
            format!(
                "rtspsrc location=\"{url}\" protocols={} latency=100{auth} ! decodebin ! {scale} ! {sink}",
                s.rtsp_transport
            )
        }
        InputSpec::File { path } => {
            let sink = format!(
                "appsink name=sink max-buffers=1 drop=false sync={}",
                s.realtime
            );
            format!(
                "filesrc location=\"{}\" ! decodebin ! {scale} ! {sink}",
                path.display()
            )
        }
    }
}

impl LiveInput {
    pub fn start(
        spec: InputSpec,
        settings: LiveSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveInput, GstError> {
        init()?;
        let (pipeline, appsink) = Self::build(&spec, &settings)?;
        let keep = KeepSize::new(settings.width as usize, settings.height as usize);
        Ok(LiveInput {
            spec,
            settings,
            pipeline,
            appsink,
            info: None,
            index: 0,
            last_frame: Instant::now(),
            stalled_reported: false,
            backoff: Duration::from_secs(1),
            keep,
            stop,
        })
    }

    fn build(
        spec: &InputSpec,
        settings: &LiveSettings,
    ) -> Result<(gst::Pipeline, gst_app::AppSink), GstError> {
        let description = input_description(spec, settings);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| {
                GstError::Pipeline(format!("cannot build the input ({description}): {e}"))
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| GstError::Pipeline("input is not a pipeline".into()))?;
        let appsink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| GstError::Pipeline("input has no appsink".into()))?;
        appsink.set_property("async", false);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| GstError::Pipeline(format!("the input {spec:?} failed to start")))?;
        Ok((pipeline, appsink))
    }

    fn reconnect(&mut self, why: &str) {
        tracing::warn!(input = ?self.spec, "input lost ({why}); reconnecting in {:?}", self.backoff);
        eprintln!(
            "segsynth: input lost ({why}); reconnecting in {} s",
            self.backoff.as_secs()
        );
        let _ = self.pipeline.set_state(gst::State::Null);
        let deadline = Instant::now() + self.backoff;
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
        self.stalled_reported = true;
        match Self::build(&self.spec, &self.settings) {
            Ok((p, s)) => {
                self.pipeline = p;
                self.appsink = s;
            }
            Err(e) => tracing::warn!("reconnect failed: {e}"),
        }
        self.last_frame = Instant::now();
    }

    fn bus_error(&self) -> Option<String> {
        super::first_bus_error(&self.pipeline)
    }
}

impl FrameSource for LiveInput {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                let caps = sample
                    .caps()
                    .ok_or_else(|| PipelineError::Io("sample without caps".into()))?;
                // Caps can change mid-stream (colorimetry, interlacing, a reconnect).
                if self
                    .info
                    .as_ref()
                    .is_none_or(|i| i.to_caps().ok().as_ref() != Some(&caps.to_owned()))
                {
                    self.info = Some(gst_video::VideoInfo::from_caps(caps).map_err(|e| {
                        PipelineError::Io(format!("unusable input caps {caps}: {e}"))
                    })?);
                }
                let (Some(buffer), Some(info)) = (sample.buffer(), self.info.as_ref()) else {
                    continue;
                };
                let frame =
                    frame_from_buffer(buffer, info, self.index).map_err(PipelineError::Io)?;
                let frame = self.keep.keep(frame);
                self.index += 1;
                if self.stalled_reported {
                    eprintln!(
                        "segsynth: input delivering again after {:.1} s",
                        self.last_frame.elapsed().as_secs_f32()
                    );
                }
                self.last_frame = Instant::now();
                self.stalled_reported = false;
                self.backoff = Duration::from_secs(1);
                return Ok(Some(frame));
            }
            if self.appsink.is_eos() && matches!(self.spec, InputSpec::File { .. }) {
                return Ok(None);
            }
            let error = self.bus_error();
            let stalled = self.last_frame.elapsed() > self.settings.stall_after;
            if stalled && !self.stalled_reported {
                self.stalled_reported = true;
                eprintln!(
                    "segsynth: watchdog: the input has delivered no frame for {:.1} s",
                    self.last_frame.elapsed().as_secs_f32()
                );
            }
            match (&self.spec, error) {
                (InputSpec::Rtsp(_), Some(e)) => self.reconnect(&e),
                (InputSpec::Rtsp(_), None) if stalled || self.appsink.is_eos() => {
                    self.reconnect("stream stalled")
                }
                (_, Some(e)) => return Err(PipelineError::Io(format!("input failed: {e}"))),
                _ => {}
            }
        }
    }
}

impl Drop for LiveInput {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
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
}

impl Branch {
    /// Takes the branch's first bus error, if one arrived.
    fn poll_error(&mut self) -> Option<String> {
        if self.failed.is_some() {
            return None;
        }
        let bus = self.pipeline.bus()?;
        // Only errors are taken off the bus: an EOS must stay there for `wait_eos`.
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Some(error_reason(&e, msg.src()));
            }
        }
        None
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
                Err(error_reason(&e, msg.as_ref().and_then(|m| m.src())))
            }
            _ => Err(format!("it did not finish within {} s", timeout.as_secs())),
        }
    }

    /// Closes a failed branch at once and says so; its partial file is removed.
    fn close_failed(&mut self, reason: String) {
        tracing::error!(output = %self.label, %reason, "output failed; closing it, the other outputs continue");
        eprintln!(
            "segsynth: output {} failed: {reason}; closed it, the other outputs continue",
            self.label
        );
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some((temp, _)) = &self.rename {
            let _ = std::fs::remove_file(temp);
        }
        self.failed = Some(reason);
    }
}

/// A branch's error said for a user: the OS reason for a write error, else the
/// element's error and name.
fn error_reason(e: &gst::message::Error, src: Option<&gst::Object>) -> String {
    super::write_error_reason(&e.error(), e.debug().as_deref()).unwrap_or_else(|| {
        let element = src.map(|s| s.name().to_string()).unwrap_or_default();
        format!("{} ({element})", e.error())
    })
}

/// The output side: one branch pipeline per output, plus the RTSP server's main loop.
pub struct LiveOutput {
    branches: Vec<Branch>,
    info: gst_video::VideoInfo,
    main_loop: Option<glib::MainLoop>,
    pub served: Vec<String>,
}

use gstreamer::glib;

fn live_h264(prefix: &str, fps: u32) -> Result<Vec<gst::Element>, GstError> {
    let convert = make("videoconvert", &format!("{prefix}-convert"))?;
    let enc = make("x264enc", &format!("{prefix}-x264"))?;
    enc.set_property_from_str("tune", "zerolatency");
    enc.set_property_from_str("speed-preset", "ultrafast");
    enc.set_property("key-int-max", fps.max(1));
    let caps = make("capsfilter", &format!("{prefix}-profile"))?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .build(),
    );
    let parse = make("h264parse", &format!("{prefix}-parse"))?;
    Ok(vec![convert, enc, caps, parse])
}

/// Describes an output for messages (`-o` as given; never credentials, which
/// `OutputSpec` does not hold for served streams).
fn output_label(o: &OutputSpec) -> String {
    match o {
        OutputSpec::File(p) => p.display().to_string(),
        OutputSpec::Display => "display:".into(),
        OutputSpec::V4l2(dev) => format!("v4l2:{}", dev.display()),
        OutputSpec::RtspPublish(url) => format!("rtsp-publish {}", crate::live::redact_url(url)),
        OutputSpec::RtspServe {
            address,
            port,
            path,
        } => format!("rtsp://{address}:{port}{path}"),
    }
}

impl LiveOutput {
    pub fn start(outputs: &[OutputSpec], settings: &LiveSettings) -> Result<LiveOutput, GstError> {
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
        let mut main_loop = None;
        let mut served = Vec::new();
        let mut branches = Vec::new();
        for (i, o) in outputs.iter().enumerate() {
            let prefix = format!("out{i}");
            let pipeline = gst::Pipeline::with_name(&format!("segsynth-{prefix}"));
            let appsrc = gst_app::AppSrc::builder()
                .name(format!("{prefix}-appsrc"))
                .caps(&caps)
                .format(gst::Format::Time)
                .is_live(true)
                .do_timestamp(true)
                .build();
            // Latest frame wins: a slow output never holds the others back (GStreamer >= 1.20).
            appsrc.set_property("max-buffers", 2u64);
            appsrc.set_property_from_str("leaky-type", "downstream");
            let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
            let mut rename = None;
            match o {
                OutputSpec::File(path) => {
                    let container = Container::for_path(path).map_err(GstError::Pipeline)?;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    let temp = dir.join(format!(".{name}.segsynth-{}.partial", std::process::id()));
                    // A recording keeps up to 2 s of frames while the encoder catches up.
                    appsrc.set_property("max-buffers", (settings.fps as u64 * 2).max(2));
                    chain.extend(live_h264(&prefix, settings.fps)?);
                    let mux = match container {
                        Container::Mp4 => make("mp4mux", &format!("{prefix}-mux"))?,
                        Container::Mkv => make("matroskamux", &format!("{prefix}-mux"))?,
                    };
                    let sink = make("filesink", &format!("{prefix}-filesink"))?;
                    sink.set_property("location", temp.to_string_lossy().to_string());
                    sink.set_property("async", false);
                    chain.push(mux);
                    chain.push(sink);
                    rename = Some((temp, path.clone()));
                }
                OutputSpec::Display => {
                    chain.push(make("videoconvert", &format!("{prefix}-convert"))?);
                    let sink = make("autovideosink", &format!("{prefix}-display"))?;
                    sink.set_property("sync", false);
                    chain.push(sink);
                }
                OutputSpec::V4l2(dev) => {
                    chain.push(make("videoconvert", &format!("{prefix}-convert"))?);
                    let caps = make("capsfilter", &format!("{prefix}-yuy2"))?;
                    caps.set_property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("format", "YUY2")
                            .build(),
                    );
                    chain.push(caps);
                    let sink = make("v4l2sink", &format!("{prefix}-v4l2"))?;
                    sink.set_property("device", dev.to_string_lossy().to_string());
                    sink.set_property("sync", false);
                    chain.push(sink);
                }
                OutputSpec::RtspPublish(url) => {
                    chain.extend(live_h264(&prefix, settings.fps)?);
                    let sink = make("rtspclientsink", &format!("{prefix}-publish"))?;
                    sink.set_property("location", url);
                    chain.push(sink);
                }
                OutputSpec::RtspServe {
                    address,
                    port,
                    path,
                } => {
                    let channel = format!("segsynth-{}-{i}", std::process::id());
                    let sink = make("intervideosink", &format!("{prefix}-inter"))?;
                    sink.set_property("channel", &channel);
                    sink.set_property("sync", false);
                    chain.push(sink);
                    if main_loop.is_none() {
                        let l = glib::MainLoop::new(None, false);
                        let run = l.clone();
                        std::thread::Builder::new()
                            .name("rtsp-server".into())
                            .spawn(move || run.run())
                            .map_err(perr)?;
                        main_loop = Some(l);
                    }
                    serve(address, *port, path, &channel, settings)?;
                    served.push(format!("rtsp://{address}:{port}{path}"));
                }
            }
            pipeline.add_many(&chain).map_err(perr)?;
            gst::Element::link_many(&chain).map_err(|e| {
                GstError::Pipeline(format!("cannot link output {}: {e}", output_label(o)))
            })?;
            pipeline.set_state(gst::State::Playing).map_err(|_| {
                let why = super::first_bus_error(&pipeline).unwrap_or_default();
                let _ = pipeline.set_state(gst::State::Null);
                GstError::Pipeline(format!("output {} failed to start {why}", output_label(o)))
            })?;
            branches.push(Branch {
                label: output_label(o),
                pipeline,
                appsrc,
                rename,
                failed: None,
            });
        }
        Ok(LiveOutput {
            branches,
            info,
            main_loop,
            served,
        })
    }

    /// Outputs that failed while running, with their reasons.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.branches
            .iter()
            .filter_map(|b| b.failed.clone().map(|f| (b.label.clone(), f)))
            .collect()
    }

    /// Sends EOS, waits for recordings to finalise, stops the server. Fails when any
    /// output failed along the way or cannot be finalised.
    pub fn finish(mut self) -> Result<(), GstError> {
        for b in self.branches.iter_mut().filter(|b| b.failed.is_none()) {
            let _ = b.appsrc.end_of_stream();
        }
        let mut problems = Vec::new();
        for b in self.branches.iter_mut().filter(|b| b.failed.is_none()) {
            if let Some((temp, path)) = b.rename.clone() {
                match b.wait_eos(Duration::from_secs(20)) {
                    Ok(()) => {
                        let _ = b.pipeline.set_state(gst::State::Null);
                        if let Err(e) = std::fs::rename(&temp, &path) {
                            let _ = std::fs::remove_file(&temp);
                            problems.push(format!(
                                "cannot move the recording into {}: {e}",
                                path.display()
                            ));
                        }
                    }
                    Err(reason) => b.close_failed(reason),
                }
            }
            let _ = b.pipeline.set_state(gst::State::Null);
        }
        if let Some(l) = &self.main_loop {
            l.quit();
        }
        problems.extend(
            self.failures()
                .into_iter()
                .map(|(o, f)| format!("output {o} failed: {f}")),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GstError::Pipeline(problems.join("; ")))
        }
    }
}

impl FrameSink for LiveOutput {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        let mut buffer = buffer_from_frame(&frame, &self.info).map_err(PipelineError::Io)?;
        if let Some(b) = buffer.get_mut() {
            // do-timestamp stamps it with each output's running time at push.
            b.set_pts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::NONE);
        }
        for b in &mut self.branches {
            if let Some(reason) = b.poll_error() {
                b.close_failed(reason);
            }
            if b.failed.is_some() {
                continue;
            }
            if let Err(e) = b.appsrc.push_buffer(buffer.clone()) {
                let reason = b
                    .poll_error()
                    .unwrap_or_else(|| format!("it stopped accepting frames ({e:?})"));
                b.close_failed(reason);
            }
        }
        if self.branches.iter().all(|b| b.failed.is_some()) {
            let all: Vec<String> = self
                .failures()
                .into_iter()
                .map(|(o, f)| format!("{o}: {f}"))
                .collect();
            return Err(PipelineError::Io(format!(
                "every output failed ({})",
                all.join("; ")
            )));
        }
        Ok(())
    }
}

fn serve(
    address: &str,
    port: u16,
    path: &str,
    channel: &str,
    s: &LiveSettings,
) -> Result<(), GstError> {
    let server = rtsp::RTSPServer::new();
    server.set_address(address);
    server.set_service(&port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( intervideosrc channel={channel} ! video/x-raw,framerate={fps}/1 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        fps = s.fps
    ));
    // One pipeline (one encode) shared by every client.
    factory.set_shared(true);
    if let (Some(user), Some(pass)) = (&s.rtsp_user, &s.rtsp_password) {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        auth.add_basic(rtsp::RTSPAuth::make_basic(user, pass).as_str(), &token);
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("user")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    let mounts = server
        .mount_points()
        .ok_or_else(|| GstError::Pipeline("RTSP server has no mount points".into()))?;
    mounts.add_factory(path, factory);
    server.attach(None).map_err(|e| {
        GstError::Pipeline(format!(
            "cannot serve RTSP on {address}:{port} (is the port in use?): {e}"
        ))
    })?;
    // The server lives as long as the process' main loop.
    std::mem::forget(server);
    Ok(())
}
