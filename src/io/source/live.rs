//! The live input: a camera, test source, RTSP stream or file in its own pipeline,
//! rebuilt with backoff when an RTSP stream drops (so outputs and the RTSP server keep
//! running), into an appsink where the latest frame wins:
//!
//! ```text
//! videotestsrc|v4l2src|rtspsrc|filesrc ! decode ! videoconvert ! videoscale ! videorate ! I420 ! appsink(drop, 1)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::endpoint::{Credentials, InputSpec};
use crate::frame::Frame;
use crate::io::frames::frame_from_sample;
use crate::io::rtsp_server::ServeSettings;
use crate::io::{IoError, init};
use crate::pipeline::{FrameSource, KeepSize, PipelineError};

#[derive(Clone, Debug)]
pub struct LiveSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub realtime: bool,
    /// The input camera's credentials (URL userinfo or `--input-user/--input-password`).
    pub input_credentials: Option<Credentials>,
    /// `tcp` or `udp` for RTSP inputs.
    pub rtsp_transport: String,
    /// The served stream's protection and limits.
    pub serve: ServeSettings,
    pub overwrite: bool,
    /// Report an input that delivers nothing for this long.
    pub stall_after: Duration,
    /// `--display-sink`: the window's video sink, instead of the session's choice.
    pub display_sink: Option<String>,
    /// The window's title.
    pub title: String,
    /// Counts the input's reconnects.
    pub reconnects: prometheus_client::metrics::counter::Counter,
}

pub fn check_input(i: &InputSpec) -> Result<(), IoError> {
    match i {
        InputSpec::V4l2(dev) if !dev.exists() => Err(IoError::NoCamera(dev.clone())),
        InputSpec::File { path } => crate::io::source::file::check_input(path),
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

/// The input's pipeline description. It holds no user-given text (paths, URLs,
/// credentials): those are set as properties on the `src` element afterwards, so a
/// quote cannot break the description and no secret is ever part of it.
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
        InputSpec::V4l2(_) => format!("v4l2src name=src ! decodebin ! {scale} ! {sink}"),
        InputSpec::Rtsp(_) => format!(
            "rtspsrc name=src protocols={} latency=100 ! decodebin ! {scale} ! {sink}",
            if s.rtsp_transport == "udp" {
                "udp"
            } else {
                "tcp"
            }
        ),
        // Served by `io::webrtc::WhipInput`, never built here (`LiveInput::start` refuses it).
        InputSpec::Whip(_) => String::new(),
        InputSpec::File { .. } => format!(
            "filesrc name=src ! decodebin ! {scale} ! appsink name=sink max-buffers=1 drop=false sync={}",
            s.realtime
        ),
    }
}

/// Sets the user-given properties on the input's `src` element.
fn configure_source(src: &gst::Element, spec: &InputSpec, s: &LiveSettings) {
    match spec {
        InputSpec::Test | InputSpec::Whip(_) => {}
        InputSpec::V4l2(dev) => src.set_property("device", dev.to_string_lossy().to_string()),
        InputSpec::File { path } => {
            src.set_property("location", path.to_string_lossy().to_string())
        }
        InputSpec::Rtsp(url) => {
            src.set_property("location", &url.url);
            if let Some(c) = s.input_credentials.as_ref().or(url.credentials.as_ref()) {
                src.set_property("user-id", &c.user);
                src.set_property("user-pw", c.password.expose());
            }
        }
    }
}

impl LiveInput {
    pub fn start(
        spec: InputSpec,
        settings: LiveSettings,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveInput, IoError> {
        init()?;
        if let InputSpec::Whip(_) = spec {
            return Err(IoError::Pipeline(format!(
                "{spec} is a served endpoint: use io::webrtc::WhipInput"
            )));
        }
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
    ) -> Result<(gst::Pipeline, gst_app::AppSink), IoError> {
        let description = input_description(spec, settings);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| IoError::Pipeline(format!("cannot build the input {spec}: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| IoError::Pipeline("input is not a pipeline".into()))?;
        let appsink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| IoError::Pipeline("input has no appsink".into()))?;
        appsink.set_property("async", false);
        if let Some(src) = pipeline.by_name("src") {
            configure_source(&src, spec, settings);
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| IoError::Pipeline(format!("the input {spec} failed to start")))?;
        Ok((pipeline, appsink))
    }

    fn reconnect(&mut self, why: &str) {
        self.settings.reconnects.inc();
        tracing::warn!(input = %self.spec, "input lost ({why}); reconnecting in {:?}", self.backoff);
        crate::notice!(
            "input lost ({why}); reconnecting in {} s",
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
        crate::io::first_bus_error(&self.pipeline).map(|e| e.to_string())
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
                let Some(frame) = frame_from_sample(&sample, &mut self.info, self.index)? else {
                    continue;
                };
                let frame = self.keep.keep(frame);
                self.index += 1;
                if self.stalled_reported {
                    crate::notice!(
                        "input delivering again after {:.1} s",
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
                crate::notice!(
                    "watchdog: the input has delivered no frame for {:.1} s",
                    self.last_frame.elapsed().as_secs_f32()
                );
            }
            match (&self.spec, error) {
                (InputSpec::Rtsp(_), Some(e)) => self.reconnect(&e),
                (InputSpec::Rtsp(_), None) if stalled || self.appsink.is_eos() => {
                    self.reconnect("stream stalled")
                }
                (_, Some(e)) => return Err(PipelineError::Io(format!("input failed: {e}").into())),
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
