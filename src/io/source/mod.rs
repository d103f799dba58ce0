//! Where frames come from: files (`file`) and live sources (`live`).

pub mod file;
pub mod live;
