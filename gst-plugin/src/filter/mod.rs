//! The `segsynth` element (gst-plugins-rs layout: the public type here, the
//! implementation in `imp.rs`).

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SegsynthFilter(ObjectSubclass<imp::SegsynthFilter>)
        @extends gstreamer_video::VideoFilter, gstreamer_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "segsynth",
        gst::Rank::NONE,
        SegsynthFilter::static_type(),
    )
}
