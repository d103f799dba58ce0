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

// Name, version, licence and release date come from Cargo (the date and commit from
// `build.rs`, gst-plugin-version-helper), as in gst-plugins-rs.
gst::plugin_define!(
    segsynth,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    env!("CARGO_PKG_LICENSE"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
