//! The input side of the file job: filesrc ! parsebin, video decoded into an appsink,
//! audio handed to the muxer untouched (see `encode::add_audio_track`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::frame::Frame;
use crate::io::encode::add_audio_track;
use crate::io::frames::frame_from_sample;
use crate::io::{IoError, make};
use crate::pipeline::{FrameSource, KeepSize, MAX_FRAME_SIDE, PipelineError};

/// State the streaming threads share with the job.
#[derive(Default)]
pub struct InputState {
    /// Set when the job ends the input: demuxed pads turn into EOS at the next buffer.
    pub stop: AtomicBool,
    /// The job's Ctrl-C/SIGTERM flag, read by the same probes.
    pub interrupt: std::sync::OnceLock<Arc<AtomicBool>>,
    pub has_video: AtomicBool,
    /// Caps of every stream parsebin exposed, for error messages.
    pub streams: Mutex<Vec<String>>,
    /// First sink pad of each audio branch, where EOS is injected after an input error.
    pub audio_entries: Mutex<Vec<gst::Pad>>,
    pub audio_passthrough: Mutex<Vec<bool>>,
    pub errors: Mutex<Vec<String>>,
    /// parsebin has exposed every stream.
    pub no_more_pads: AtomicBool,
    /// Demuxed pads seen, and how many of them reached EOS.
    pub pads: AtomicUsize,
    pub eos_pads: AtomicUsize,
    /// The input side failed (bus error, missing plugin): no more frames will come.
    pub failed: AtomicBool,
    /// No frame came for `STALL_AFTER` while one was wanted: the input or its decoder
    /// stalled without saying why (seen with some damaged files).
    pub stalled: AtomicBool,
}

/// How long a wanted frame may take before the input counts as stalled. Decoding one
/// frame never takes this long; waiting on a stuck demuxer would take forever.
pub const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

impl InputState {
    /// Whether the input should end: the job stopped it or the user interrupted.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .interrupt
                .get()
                .is_some_and(|i| i.load(Ordering::Relaxed))
    }
}

/// Checks the input file before GStreamer sees it.
pub fn check_input(input: &Path) -> Result<(), IoError> {
    let unreadable = |source| IoError::InputUnreadable {
        path: input.to_owned(),
        source,
    };
    let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => IoError::InputMissing(input.to_owned()),
        _ => unreadable(e),
    })?;
    if meta.is_dir() {
        return Err(IoError::InputIsDir(input.to_owned()));
    }
    if meta.len() == 0 {
        return Err(IoError::InputEmpty(input.to_owned()));
    }
    std::fs::File::open(input).map_err(unreadable)?;
    Ok(())
}

pub struct FileInput {
    pub appsink: gst_app::AppSink,
    pub state: Arc<InputState>,
    info: Option<gst_video::VideoInfo>,
    index: u64,
    pending: Option<Frame>,
    /// Set by the first frame: later frames of another size are scaled to it.
    pub keep: Option<KeepSize>,
    /// The decoded caps of the first frame (the output is set up from them).
    first_info: Option<gst_video::VideoInfo>,
}

/// Adds `filesrc ! parsebin` and the dynamic branches to `pipeline`; audio goes to `mux`.
pub fn add_file_input(
    pipeline: &gst::Pipeline,
    path: &Path,
    mux: &gst::Element,
) -> Result<FileInput, IoError> {
    let src = make("filesrc", "in-filesrc")?;
    src.set_property("location", path.to_string_lossy().to_string());
    let parse = make("parsebin", "in-parse")?;
    let decode = make("decodebin", "in-videodecode")?;
    let convert = make("videoconvert", "in-convert")?;
    let appsink = gst_app::AppSink::builder()
        .name("in-appsink")
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .max_buffers(4)
        .drop(false)
        .sync(false)
        .build();
    // Dynamically added branches (audio re-encoders) must not hold the pipeline in preroll.
    appsink.set_property("async", false);
    let err = |e: gst::glib::BoolError| IoError::Pipeline(e.to_string());
    pipeline
        .add_many([&src, &parse, &decode, &convert, appsink.upcast_ref()])
        .map_err(err)?;
    src.link(&parse).map_err(err)?;
    convert.link(&appsink).map_err(err)?;
    let convert_sink = convert
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("videoconvert has no sink".into()))?;
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video && !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });

    let state = Arc::new(InputState::default());
    let st = Arc::clone(&state);
    let pipeline_weak = pipeline.downgrade();
    let mux = mux.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else { return };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        if let Ok(mut s) = st.streams.lock() {
            s.push(name.clone());
        }
        st.pads.fetch_add(1, Ordering::SeqCst);
        let is_video = name.starts_with("video/") || name.starts_with("image/");
        let result = if is_video && !st.has_video.swap(true, Ordering::SeqCst) {
            decode.static_pad("sink").map(|sink| pad.link(&sink).map(|_| ()).map_err(|e| IoError::Pipeline(format!("cannot link video decoder: {e:?}"))))
                .unwrap_or_else(|| Err(IoError::Pipeline("decodebin has no sink".into())))
        } else if name.starts_with("audio/") {
            let index = st.audio_entries.lock().map(|v| v.len()).unwrap_or(0);
            add_audio_track(&pipeline, &mux, pad, &caps, index).map(|(entry, passthrough)| {
                if let Ok(mut v) = st.audio_entries.lock() {
                    v.push(entry);
                }
                if let Ok(mut v) = st.audio_passthrough.lock() {
                    v.push(passthrough);
                }
            })
        } else {
            tracing::warn!(stream = %name, "ignoring a stream that is neither video nor audio (or a second video track)");
            sink_to_fakesink(&pipeline, pad)
        };
        if let Err(e) = result
            && let Ok(mut v) = st.errors.lock() {
                v.push(e.to_string());
            }
        install_stop_probe(pad, Arc::clone(&st));
    });
    Ok(FileInput {
        appsink,
        state,
        info: None,
        index: 0,
        pending: None,
        keep: None,
        first_info: None,
    })
}

fn sink_to_fakesink(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), IoError> {
    let sink = make("fakesink", &format!("in-ignore-{}", pad.name()))?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    pipeline
        .add(&sink)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    sink.sync_state_with_parent()
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("fakesink has no sink".into()))?;
    pad.link(&sinkpad)
        .map(|_| ())
        .map_err(|e| IoError::Pipeline(format!("{e:?}")))
}

/// After `stop`, the first buffer on this pad becomes an EOS downstream and the rest
/// are dropped, so every branch finishes cleanly and the muxer can write its index.
fn install_stop_probe(pad: &gst::Pad, state: Arc<InputState>) {
    let st = Arc::clone(&state);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && e.type_() == gst::EventType::Eos
        {
            st.eos_pads.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    let sent = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        if !state.stopping() {
            return gst::PadProbeReturn::Ok;
        }
        if !sent.swap(true, Ordering::SeqCst)
            && let Some(peer) = pad.peer()
        {
            peer.send_event(gst::event::Eos::new());
        }
        gst::PadProbeReturn::Drop
    });
}

impl FileInput {
    /// Frame info of the decoded stream's first frame (what the output is set up for).
    pub fn info(&self) -> Option<&gst_video::VideoInfo> {
        self.first_info.as_ref()
    }

    /// Pulls the first frame ahead of time so the job can size its stages.
    pub fn prime(&mut self) -> Result<Option<&Frame>, PipelineError> {
        if self.pending.is_none() {
            self.pending = self.pull()?;
        }
        Ok(self.pending.as_ref())
    }

    fn pull(&mut self) -> Result<Option<Frame>, PipelineError> {
        let mut stopping_since: Option<std::time::Instant> = None;
        let waiting_since = std::time::Instant::now();
        loop {
            if let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                let Some(frame) = frame_from_sample(&sample, &mut self.info, self.index)? else {
                    continue;
                };
                let frame = match &mut self.keep {
                    Some(keep) => keep.keep(frame),
                    None => {
                        let (w, h) = (frame.picture.width(), frame.picture.height());
                        if w > MAX_FRAME_SIDE || h > MAX_FRAME_SIDE {
                            return Err(PipelineError::Io(format!(
                                "the video is {w}x{h}; segsynth takes frames up to {MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}"
                            ).into()));
                        }
                        self.keep = Some(KeepSize::new(w, h));
                        self.first_info = self.info.clone();
                        frame
                    }
                };
                self.index += 1;
                return Ok(Some(frame));
            }
            // After a stop the probes end the input at its next buffer; a stalled input
            // never gets one, so give up waiting after a second.
            if self.state.stopping() {
                let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > std::time::Duration::from_secs(1) {
                    return Ok(None);
                }
            }
            let s = &self.state;
            let all_ended = s.pads.load(Ordering::SeqCst) > 0
                && s.eos_pads.load(Ordering::SeqCst) >= s.pads.load(Ordering::SeqCst);
            let no_video = (s.no_more_pads.load(Ordering::SeqCst) || all_ended)
                && !s.has_video.load(Ordering::SeqCst);
            if self.appsink.is_eos() || s.failed.load(Ordering::SeqCst) || no_video {
                return Ok(None);
            }
            if waiting_since.elapsed() > STALL_AFTER {
                tracing::warn!(
                    "no frame decoded for {} s: the input stalled",
                    STALL_AFTER.as_secs()
                );
                s.stalled.store(true, Ordering::SeqCst);
                s.failed.store(true, Ordering::SeqCst);
                return Ok(None);
            }
        }
    }

    /// Discards what is still queued until EOS (after a stop), so streaming threads finish.
    pub fn drain(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.appsink.is_eos() && std::time::Instant::now() < deadline {
            let _ = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_mseconds(50));
        }
    }
}

impl FrameSource for FileInput {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        if let Some(f) = self.pending.take() {
            return Ok(Some(f));
        }
        self.pull()
    }
}
