//! Model manifests: what a model file is, what it expects and what its outputs mean.
//! Pure data and validation; the ONNX session itself lives in `infer`.

mod manifest;

pub use manifest::*;
