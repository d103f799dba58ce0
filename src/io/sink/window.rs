//! The window output (`-o display:`): the video sink for the session segsynth runs in,
//! checked before the job starts, titled after the input, and closable like Ctrl-C.
//!
//! Wayland (`WAYLAND_DISPLAY`) gets waylandsink; X (`DISPLAY`) gets xvimagesink, then
//! ximagesink (X servers without XVideo, e.g. Xvfb), then glimagesink. Each candidate
//! must reach READY (that opens the display) to be chosen. `--display-sink` overrides.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use crate::io::IoError;

/// The sinks tried for a session, in order.
fn candidates() -> Vec<&'static str> {
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    let mut c = Vec::new();
    if set("WAYLAND_DISPLAY") {
        c.push("waylandsink");
    }
    if set("DISPLAY") {
        c.extend(["xvimagesink", "ximagesink"]);
    }
    if !c.is_empty() {
        c.push("glimagesink");
    }
    c
}

/// Picks the window sink and checks that it opens the display; returns it (in NULL
/// state) with its factory name. No usable sink is a clear error, before any output exists.
pub fn choose_sink(forced: Option<&str>, name: &str) -> Result<(gst::Element, String), IoError> {
    let list: Vec<String> = match forced {
        Some(f) => vec![f.to_string()],
        None => candidates().into_iter().map(str::to_string).collect(),
    };
    if list.is_empty() {
        return Err(IoError::NoDisplay);
    }
    let mut tried = Vec::new();
    let mut installed = false;
    for factory in &list {
        let Ok(sink) = gst::ElementFactory::make(factory).name(name).build() else {
            tried.push(format!("{factory}: not installed"));
            continue;
        };
        installed = true;
        let ready = sink.set_state(gst::State::Ready);
        let _ = sink.set_state(gst::State::Null);
        if ready.is_ok() {
            return Ok((sink, factory.clone()));
        }
        tried.push(format!("{factory}: cannot open the display"));
    }
    let why = match (forced, installed) {
        (Some(f), false) => format!(
            "--display-sink {f} is not installed (gst-inspect-1.0 lists the sinks there are)"
        ),
        (None, false) if std::env::var_os("DISPLAY").is_some() => {
            "DISPLAY is set but no X video sink is installed (apt install gstreamer1.0-x)".into()
        }
        (None, false) => {
            "WAYLAND_DISPLAY is set but no Wayland video sink is installed (apt install gstreamer1.0-plugins-bad)".into()
        }
        _ => format!(
            "no video sink could open the display ({})",
            tried.join("; ")
        ),
    };
    Err(IoError::NoWindow(why))
}

/// Configures a chosen sink: keeps the aspect ratio when resized, takes keys and the
/// close button, names the window, and sets `stop` on `q`, Esc (the close button
/// arrives as a bus error the output turns into the same stop).
pub fn set_up(sink: &gst::Element, title: &str, stop: &Arc<AtomicBool>) {
    sink.set_property("sync", false);
    for (prop, value) in [("force-aspect-ratio", true), ("handle-events", true)] {
        if sink.find_property(prop).is_some() {
            sink.set_property(prop, value);
        }
    }
    let Some(pad) = sink.static_pad("sink") else {
        return;
    };
    let stop = Arc::clone(stop);
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && let Ok(gst_video::NavigationEvent::KeyPress { key, .. }) =
                gst_video::NavigationEvent::parse(e)
            && (key == "q" || key == "Escape")
        {
            tracing::info!(%key, "window: key pressed, stopping");
            stop.store(true, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    // X sinks name their window after the application (and a media title tag when
    // there is one: "title : application"); the process shows one window, so the
    // application name is the window's title.
    if gst::glib::application_name().is_none_or(|n| n != title) {
        gst::glib::set_application_name(title);
    }
}

/// Whether a bus error from the window means the user closed it.
pub fn closed_by_user(error: &gst::glib::Error) -> bool {
    error.matches(gst::ResourceError::NotFound) && error.message().contains("closed")
}
