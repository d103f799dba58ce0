//! GStreamer I/O: the only place that imports `gstreamer`. Decoding into frames,
//! encoding and muxing processed frames, and the file job's pipeline life cycle.

pub mod clip;
pub mod encode;
pub mod file_job;
pub mod frames;
pub mod input;
pub mod live;

use std::sync::Once;

#[derive(Debug, thiserror::Error)]
pub enum GstError {
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
    #[error("{0}")]
    Pipeline(String),
}

static INIT: Once = Once::new();

pub fn init() -> Result<(), GstError> {
    let mut result = Ok(());
    INIT.call_once(|| {
        result = gstreamer::init().map_err(|e| GstError::Init(e.to_string()));
    });
    result
}

/// Makes an element or says which package provides it.
pub fn make(factory: &str, name: &str) -> Result<gstreamer::Element, GstError> {
    gstreamer::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| GstError::MissingElement {
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

/// The first error message waiting on a pipeline's bus, with the element's path.
pub fn first_bus_error(pipeline: &gstreamer::Pipeline) -> Option<String> {
    use gstreamer::prelude::*;
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let gstreamer::MessageView::Error(e) = msg.view() {
            let path = msg
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            return Some(format!("{} ({path})", e.error()));
        }
    }
    None
}

/// Waits for EOS (Ok) or an error (Err naming `what`) on the bus, up to `timeout`.
pub fn wait_eos(
    pipeline: &gstreamer::Pipeline,
    what: &str,
    timeout: std::time::Duration,
) -> Result<(), GstError> {
    use gstreamer::prelude::*;
    let bus = pipeline
        .bus()
        .ok_or_else(|| GstError::Pipeline(format!("{what}: pipeline has no bus")))?;
    let types = [gstreamer::MessageType::Eos, gstreamer::MessageType::Error];
    match bus.timed_pop_filtered(
        gstreamer::ClockTime::from_nseconds(timeout.as_nanos() as u64),
        &types,
    ) {
        Some(msg) => match msg.view() {
            gstreamer::MessageView::Error(e) => {
                Err(GstError::Pipeline(format!("{what} failed: {}", e.error())))
            }
            _ => Ok(()),
        },
        None => Err(GstError::Pipeline(format!(
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
