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
