//! Pure per-pixel work: model pre-processing, mask post-processing, content layers
//! and compositing. Nothing here touches GStreamer or ONNX Runtime, so all of it is
//! unit-tested and benchmarked on plain buffers.

pub mod blend;
pub mod blur;
pub mod mask;
pub mod noise;
pub mod preprocess;
pub mod refine;
pub mod resize;
mod simd;
