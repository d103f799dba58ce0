//! segsynth: segment video frames, synthesize content with a GAN, composite it over
//! the classes the user chose. See ARCHITECTURE.md for the map.

pub mod content;
pub mod endpoint;
pub mod frame;
pub mod imgproc;
pub mod infer;
pub mod job;
pub mod model;
pub mod options;
pub mod pipeline;

/// A line for the person running segsynth (an input lost, an output reconnecting, an edit
/// applied). The library only logs; the binary prints these as `segsynth: ...` lines
/// whatever `--log` says.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => { tracing::info!(target: "segsynth::notice", $($arg)*) };
}

#[cfg(feature = "gst")]
pub mod io;
