//! Integration tests: the real `segsynth` binary, real GStreamer, real ONNX Runtime and
//! the real default model, on clips the tests make themselves. One test binary, so
//! linking stays quick.

mod support;
mod window;

mod errors;
mod faults;
mod file_job;
mod generators;
mod graphs;
mod layout;
mod live;
mod multiclass;
mod parsers;
mod plugin;
mod quality;
mod rtsp;
mod streams;
mod webrtc;
