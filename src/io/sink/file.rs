//! The file job's sink: processed frames into the encoder's appsrc, and the checks
//! on an output path before anything runs.

use std::path::Path;

use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::frame::Frame;
use crate::io::IoError;
use crate::io::encode::{Container, parent_dir};
use crate::io::frames::buffer_from_frame;
use crate::pipeline::{FrameSink, PipelineError};

pub struct AppSrcSink {
    pub appsrc: gst_app::AppSrc,
    pub info: gst_video::VideoInfo,
}

impl FrameSink for AppSrcSink {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        let buffer = buffer_from_frame(frame, &self.info).map_err(PipelineError::from)?;
        self.appsrc.push_buffer(buffer).map(|_| ()).map_err(|e| {
            PipelineError::Io(format!("the encoder stopped accepting frames ({e:?})").into())
        })
    }
}

/// Checks the output path before anything runs.
pub fn check_output(output: &Path, overwrite: bool) -> Result<Container, IoError> {
    let container = Container::for_path(output)?;
    if output.exists() && !overwrite {
        return Err(IoError::OutputExists(output.to_owned()));
    }
    if output.is_dir() {
        return Err(IoError::OutputIsDir(output.to_owned()));
    }
    let dir = parent_dir(output);
    if !dir.is_dir() {
        return Err(IoError::NoOutputFolder(dir));
    }
    let probe = dir.join(format!(".segsynth-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|source| IoError::NotWritable {
        dir: dir.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(container)
}

/// The encoder's input caps: the first frame's size, rate, aspect and colourimetry.
pub fn output_caps(info: &gst_video::VideoInfo) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", info.width() as i32)
        .field("height", info.height() as i32)
        .field("framerate", info.fps())
        .field("pixel-aspect-ratio", info.par())
        .build();
    if let Some(c) = caps.get_mut()
        && let Some(s) = c.structure_mut(0)
    {
        s.set("colorimetry", info.colorimetry().to_string());
    }
    caps
}
