//! The segsynth GStreamer plugin: one element, `segsynth`, that segments each I420
//! frame, synthesizes content and composites it over the chosen classes, in place.
//!
//! ```sh
//! GST_PLUGIN_PATH=target/release gst-launch-1.0 v4l2src ! videoconvert ! \
//!     segsynth content="background=gan:foliage" ! videoconvert ! autovideosink
//! ```

use gstreamer as gst;

mod filter;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    filter::register(plugin)
}

gst::plugin_define!(
    segsynth,
    "segsynth: segment frames, synthesize content, composite it over chosen classes",
    plugin_init,
    "0.1.0",
    "MIT/X11",
    "gst-plugin-segsynth",
    "segsynth",
    "https://github.com/segsynth/segsynth",
    "2026-11-28"
);
