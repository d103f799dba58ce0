//! GStreamer I/O: the only place that imports `gstreamer`. Decoding into frames,
//! encoding and muxing processed frames, and the file job's pipeline life cycle.

pub mod batch;
pub mod clip;
pub mod encode;
pub mod file_job;
pub mod frames;
pub mod rtsp_server;
pub mod sink;
pub mod source;
pub mod webrtc;

use std::path::PathBuf;
use std::sync::Once;

/// Everything that can go wrong in GStreamer I/O, said the way a user reads it.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error(
        "GStreamer failed to start: {0}; install the GStreamer 1.22 packages (`./segsynth.sh setup`)"
    )]
    Init(String),
    #[error(
        "GStreamer element {element:?} is missing; install the package that provides it ({package})"
    )]
    MissingElement {
        element: String,
        package: &'static str,
    },
    /// Building or linking a pipeline failed (a bug or a broken GStreamer install).
    #[error("{0}")]
    Pipeline(String),
    /// An element posted an error on the bus.
    #[error("{message} ({element})")]
    Bus {
        element: String,
        message: String,
        debug: Option<String>,
    },
    /// A decoded or processed frame does not fit the buffer it is copied to or from.
    #[error("{0}")]
    Frame(String),

    // Checks on paths, before anything runs.
    #[error("output {} already exists; pass --overwrite to replace it", .0.display())]
    OutputExists(PathBuf),
    #[error("output {} is a directory; expected a file path", .0.display())]
    OutputIsDir(PathBuf),
    #[error("output folder {} does not exist; create it first", .0.display())]
    NoOutputFolder(PathBuf),
    #[error("output folder {} is not writable: {source}", .dir.display())]
    NotWritable {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "output {} has extension {ext:?}; expected .mp4 (H.264 in MP4) or .mkv (H.264 in Matroska)",
        .path.display()
    )]
    Extension { path: PathBuf, ext: String },
    #[error("input {} does not exist", .0.display())]
    InputMissing(PathBuf),
    #[error("input {} is a directory; expected a video file", .0.display())]
    InputIsDir(PathBuf),
    #[error("input {} is empty (0 bytes); expected a video file", .0.display())]
    InputEmpty(PathBuf),
    #[error("cannot read input {}: {source}", .path.display())]
    InputUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("camera {} does not exist; list cameras with `ls /dev/video*`", .0.display())]
    NoCamera(PathBuf),
    #[error(
        "output display: needs a graphical session, but neither DISPLAY nor WAYLAND_DISPLAY is set"
    )]
    NoDisplay,
    #[error("no window: {0}")]
    NoWindow(String),
    #[error("{0}")]
    Tls(String),
    #[error(
        "virtual camera {} does not exist; load v4l2loopback first: `sudo modprobe v4l2loopback devices=1 video_nr={nr} card_label=segsynth exclusive_caps=1`",
        .device.display()
    )]
    NoVirtualCamera { device: PathBuf, nr: String },

    // The file job.
    #[error(
        "cannot read {} as a video: {reason}; expected a video file GStreamer can decode (MP4, MKV, WebM, AVI, ...)",
        .path.display()
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "cannot decode {}: GStreamer is missing a plugin for {plugins}; install it (e.g. gstreamer1.0-libav, gstreamer1.0-plugins-bad or -ugly)",
        .path.display()
    )]
    MissingPlugin { path: PathBuf, plugins: String },
    #[error("{} has no video stream (it holds: {streams}); expected a video file", .path.display())]
    NoVideo { path: PathBuf, streams: String },
    #[error("cannot process {}: {errors}", .path.display())]
    Input { path: PathBuf, errors: String },
    #[error("cannot write {}: {reason}", .path.display())]
    Write { path: PathBuf, reason: String },
    #[error("encoding {} failed: {reason}", .path.display())]
    Encode { path: PathBuf, reason: String },
    #[error("no frames were processed from {}; nothing written", .0.display())]
    NoFrames(PathBuf),
    #[error("output {} appeared while processing; not replacing it (pass --overwrite)", .0.display())]
    AppearedWhileProcessing(PathBuf),
    #[error("cannot move the finished file into {}: {source}", .path.display())]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted before the first frame; nothing written")]
    InterruptedEarly,
    #[error(
        "interrupted, but the output pipeline was stuck and had to be shut down; {} was not written",
        .0.display()
    )]
    Stuck(PathBuf),
    #[error("the muxer did not finish within {0} s")]
    MuxTimeout(u64),
    /// Outputs of a live job that failed along the way (each was reported when it failed).
    #[error("{}", .0.iter().map(|(o, r)| format!("output {o} failed: {r}")).collect::<Vec<_>>().join("; "))]
    OutputsFailed(Vec<(String, String)>),
    #[error(transparent)]
    Job(#[from] crate::job::JobError),
}

impl From<IoError> for crate::pipeline::PipelineError {
    fn from(e: IoError) -> Self {
        crate::pipeline::PipelineError::Io(Box::new(e))
    }
}

static INIT: Once = Once::new();

pub fn init() -> Result<(), IoError> {
    let mut result = Ok(());
    INIT.call_once(|| {
        result = gstreamer::init().map_err(|e| IoError::Init(e.to_string()));
    });
    result
}

/// A GStreamer failure building or linking a pipeline, said as it is.
pub(crate) fn perr<E: std::fmt::Display>(e: E) -> IoError {
    IoError::Pipeline(e.to_string())
}

/// Makes an element or says which package provides it.
pub fn make(factory: &str, name: &str) -> Result<gstreamer::Element, IoError> {
    gstreamer::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| IoError::MissingElement {
            element: factory.to_string(),
            package: package_for(factory),
        })
}

fn package_for(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" | "rtspclientsink" => "gstreamer1.0-plugins-bad",
        "avenc_aac" => "gstreamer1.0-libav",
        "mp4mux" | "matroskamux" | "qtmux" | "v4l2src" | "v4l2sink" | "rtspsrc" => {
            "gstreamer1.0-plugins-good"
        }
        _ => "gstreamer1.0-plugins-base",
    }
}

impl IoError {
    /// A bus error message as a typed error: element path, message, debug text.
    pub fn from_bus(msg: &gstreamer::Message) -> Option<IoError> {
        use gstreamer::prelude::*;
        match msg.view() {
            gstreamer::MessageView::Error(e) => Some(IoError::Bus {
                element: msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                message: e.error().to_string(),
                debug: e.debug().map(|d| d.to_string()),
            }),
            _ => None,
        }
    }
}

/// The first error waiting on a pipeline's bus (other messages are dropped).
pub fn first_bus_error(pipeline: &gstreamer::Pipeline) -> Option<IoError> {
    use gstreamer::prelude::*;
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let Some(e) = IoError::from_bus(&msg) {
            return Some(e);
        }
    }
    None
}

/// Waits for EOS (Ok) or an error (the element's bus error) on the bus, up to `timeout`.
pub fn wait_eos(
    pipeline: &gstreamer::Pipeline,
    what: &str,
    timeout: std::time::Duration,
) -> Result<(), IoError> {
    use gstreamer::prelude::*;
    let bus = pipeline
        .bus()
        .ok_or_else(|| IoError::Pipeline(format!("{what}: pipeline has no bus")))?;
    let types = [gstreamer::MessageType::Eos, gstreamer::MessageType::Error];
    match bus.timed_pop_filtered(
        gstreamer::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &types,
    ) {
        Some(msg) => IoError::from_bus(&msg).map_or(Ok(()), Err),
        None => Err(IoError::Pipeline(format!(
            "{what} did not finish within {} s",
            timeout.as_secs()
        ))),
    }
}

/// For a write error of the output file, the operating system's reason
/// ("No space left on device", "File too large"); None for other errors.
pub fn write_error_reason(error: &gstreamer::glib::Error, debug: Option<&str>) -> Option<String> {
    if error.matches(gstreamer::ResourceError::NoSpaceLeft) {
        return Some("No space left on device".into());
    }
    if !(error.matches(gstreamer::ResourceError::Write)
        || error.matches(gstreamer::ResourceError::OpenWrite)
        || error.matches(gstreamer::ResourceError::Close)
        || error.matches(gstreamer::ResourceError::Seek))
    {
        return None;
    }
    // filesink ends its debug text with g_strerror(errno), after "...file descriptor N: ".
    let os = debug
        .and_then(|d| d.lines().last())
        .map(|l| l.rsplit(": ").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.contains("gstfilesink.c") && !l.starts_with('/'));
    Some(os.map(str::to_string).unwrap_or_else(|| error.to_string()))
}
