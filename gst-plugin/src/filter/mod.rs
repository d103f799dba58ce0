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

/// The library's options as GLib enums, for the element's properties. Their nicks are the
/// names `segsynth::options` parses (the CLI's and presets' text), which a test holds.
macro_rules! glib_option {
    ($(#[$meta:meta])* $ty:ident ($gname:literal) => $lib:ty {
        $($variant:ident = $nick:literal: $name:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
        #[repr(u32)]
        #[enum_type(name = $gname)]
        pub enum $ty {
            $(#[enum_value(name = $name, nick = $nick)] $variant,)+
        }

        impl From<$ty> for $lib {
            fn from(v: $ty) -> $lib {
                match v { $($ty::$variant => <$lib>::$variant,)+ }
            }
        }

        impl From<$lib> for $ty {
            fn from(v: $lib) -> $ty {
                match v { $(<$lib>::$variant => $ty::$variant,)+ }
            }
        }
    };
}

glib_option! {
    /// `device`: where ONNX Runtime runs.
    Device ("GstSegsynthDevice") => segsynth::options::Device {
        Auto = "auto": "TensorRT, then CUDA, then CPU",
        Cpu = "cpu": "CPU",
        Cuda = "cuda": "CUDA",
        Tensorrt = "tensorrt": "TensorRT",
    }
}

glib_option! {
    /// `pixels`: where the per-pixel steps run.
    Pixels ("GstSegsynthPixels") => segsynth::options::Pixels {
        Auto = "auto": "ONNX graphs on a GPU provider, Rust kernels on the CPU",
        Native = "native": "Rust kernels",
        Graph = "graph": "ONNX graphs on the model's device",
    }
}

glib_option! {
    /// `refine`: how the mask reaches frame size.
    Refine ("GstSegsynthRefine") => segsynth::options::Refine {
        Guided = "guided": "Guided filter on the frame's luma",
        Off = "off": "Plain bilinear upsampling",
    }
}
