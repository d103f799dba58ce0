//! segsynth: segment video frames, synthesize content with a GAN, composite it over
//! the classes the user chose. See ARCHITECTURE.md for the map.

pub mod content;
pub mod endpoint;
pub mod frame;
pub mod imgproc;
pub mod infer;
pub mod job;
pub mod model;
pub mod pipeline;
pub mod quality;

#[cfg(feature = "gst")]
pub mod io;

/// Property-based fuzzing of every parser of user text (presets, manifests, content
/// specs, URIs): never a panic, always an error that names something.
#[cfg(test)]
mod fuzz;
