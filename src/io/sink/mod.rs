//! Where processed frames go: the file job's encoder (`file`) and live outputs (`live`).

pub mod file;
pub mod live;
pub mod window;
