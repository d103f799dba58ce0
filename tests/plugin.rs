//! The `segsynth` GStreamer element (gst-plugin/, target/release/libgstsegsynth.so)
//! inside gst-launch-1.0 pipelines, and a property change while PLAYING in-process.

use std::path::PathBuf;
use std::process::{Command, Output};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::support::*;

fn plugin_dir() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release");
    assert!(
        dir.join("libgstsegsynth.so").exists(),
        "{} is missing: build it with `cargo build --release -p gst-plugin-segsynth` (./segsynth.sh test does)",
        dir.join("libgstsegsynth.so").display()
    );
    dir
}

/// Runs a GStreamer tool with the plugin on its path, under coreutils' `timeout`: a tool
/// that hangs fails the test with the command line instead of stalling the suite.
fn gst_tool(tool: &str, args: &[&str]) -> Output {
    let o = Command::new("timeout")
        .arg("120")
        .arg(tool)
        .args(args)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e} (apt install gstreamer1.0-tools)"));
    assert_ne!(
        o.status.code(),
        Some(124),
        "{tool} {} did not finish within 120 s: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn launch_words(description: &str) -> Output {
    let words: Vec<&str> = description.split_whitespace().collect();
    gst_tool("gst-launch-1.0", &words)
}

#[test]
fn gst_inspect_lists_the_element_and_its_properties() {
    let o = gst_tool("gst-inspect-1.0", &["segsynth"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "GstSegsynth",
        "format: I420",
        "model",
        "classes",
        "content",
        "device",
        "pixels",
        "threads",
        "edge",
        "feather",
        "temporal",
        "synth-scale",
        "seed",
        "PAUSED or PLAYING state",
    ] {
        assert!(
            text.contains(needle),
            "gst-inspect lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn a_file_through_the_element_keeps_every_frame_the_person_and_goes_green() {
    let input = person_clip(320, 180, 30);
    let dir = tmpdir();
    let out = dir.path().join("green.mp4");
    let o = launch_words(&format!(
        "-q filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 \
         ! segsynth content=color:#00ff00 ! x264enc ! mp4mux ! filesink location={}",
        input.display(),
        out.display()
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = probe(&input, &[5, 25], 64, 36);
    let b = probe(&out, &[5, 25], 64, 36);
    assert_eq!(b.pts.len(), a.pts.len(), "same frame count");
    assert_eq!(b.pts, a.pts, "timestamps kept");
    let bg = region_mean(b.thumb(25), b.thumb_size, (0.85, 0.05, 0.98, 0.45));
    assert!(
        bg[1] > 180.0 && bg[0] < 90.0 && bg[2] < 90.0,
        "background green: {bg:?}"
    );
    let face = (0.30, 0.60, 0.45, 0.85);
    let (fa, fb) = (
        region_mean(a.thumb(25), a.thumb_size, face),
        region_mean(b.thumb(25), b.thumb_size, face),
    );
    assert!(
        fa.iter().zip(&fb).map(|(x, y)| (x - y).abs()).sum::<f32>() / 3.0 < 12.0,
        "person kept: {fa:?} {fb:?}"
    );
}

#[test]
fn caps_changes_mid_stream_and_bad_properties() {
    let dir = tmpdir();
    let small = crate::faults::raw_h264(dir.path(), "small.h264", 320, 180, "ball", "");
    let big = crate::faults::raw_h264(dir.path(), "big.h264", 640, 360, "ball", "");
    let joined = crate::faults::join(dir.path(), "joined.h264", &[&small, &big]);
    let out = dir.path().join("changed.mkv");
    let o = launch_words(&format!(
        "-q filesrc location={} ! h264parse ! avdec_h264 ! videoconvert ! segsynth content=color:#00ff00 \
         ! videoscale ! video/x-raw,width=320,height=180 ! x264enc ! matroskamux ! filesink location={}",
        joined.display(),
        out.display()
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Both sizes went through, and compositing went on after the change: the ball
    // pattern has no person, so the picture is the content, before and after.
    let p = probe(&out, &[10, 30, 39], 32, 18);
    assert_eq!(p.pts.len(), 40, "both sizes went through");
    for i in [10, 30, 39] {
        let m = region_mean(p.thumb(i), p.thumb_size, (0.0, 0.0, 1.0, 1.0));
        assert!(
            m[1] > 180.0 && m[0] < 90.0 && m[2] < 90.0,
            "frame {i} composited green: {m:?}"
        );
    }
    // A bad value is an element error on the bus naming the property, exit non-zero.
    for (property, needle) in [
        ("content=nonsense:1", "invalid content \"nonsense:1\""),
        ("classes=sky", "sky"),
        ("model=nope", "model=\"nope\""),
        ("edge=0.9,0.1", "edge \"0.9,0.1\" is not valid"),
        ("model-every=0", "model-every \"0\" is not valid"),
        ("content=gan:nope", "nope"),
        ("content=image:/nonexistent.png", "/nonexistent.png"),
    ] {
        let o = launch_words(&format!(
            "videotestsrc num-buffers=3 ! segsynth {property} ! fakesink"
        ));
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{property} accepted");
        assert!(
            text.contains("from element /GstPipeline:pipeline0/GstSegsynth:segsynth0")
                && text.contains(needle),
            "{property}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
}

/// Content changes while PLAYING take effect on the next frame.
#[test]
fn content_changes_while_playing() {
    gst_init();
    let registry = gst::Registry::get();
    assert!(registry.scan_path(plugin_dir()) || gst::ElementFactory::find("segsynth").is_some());
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=60 pattern=ball ! video/x-raw,width=160,height=90,framerate=30/1 \
         ! segsynth name=s content=color:#ff0000 ! appsink name=out sync=false",
    )
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = pipeline
        .by_name("out")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    let element = pipeline.by_name("s").expect("segsynth");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut corners = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().expect("buffer");
        let map = buffer.map_readable().expect("readable");
        // Y and V of the top-left pixel: red is Y~63 V~240, green Y~173 V~42 (BT.601).
        let v_plane = 160 * 90 + 80 * 45;
        corners.push((map[0], map[v_plane]));
        if corners.len() == 20 {
            element.set_property("content", "color:#00ff00");
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
    assert_eq!(corners.len(), 60);
    let red = |c: &(u8, u8)| c.1 > 200;
    let green = |c: &(u8, u8)| c.1 < 80 && c.0 > 140;
    assert!(corners[..20].iter().all(red), "{corners:?}");
    // The change lands within the frames already queued (appsink holds a few).
    assert!(corners[25..].iter().all(green), "{corners:?}");
}

/// One option, three doors: the command line and a preset reject a bad device with the
/// same sentence (one `FromStr` in `segsynth::options`), and the element's GLib enum
/// properties take exactly the names that parser takes (their nicks), refusing others.
#[test]
fn a_bad_device_reads_the_same_from_the_cli_a_preset_and_the_element() {
    use segsynth::options::{Device, Pixels, Refine};
    let expected = "device \"gpu\" is not valid; expected one of auto, cpu, cuda, tensorrt";
    let dir = tmpdir();
    let cli = segsynth(&["process", "in.mp4", "-o", "out.mp4", "--device", "gpu"]);
    assert_eq!(cli.status.code(), Some(2));
    assert!(stderr(&cli).contains(expected), "CLI: {}", stderr(&cli));
    let preset = dir.path().join("p.toml");
    std::fs::write(
        &preset,
        "input = \"test:\"\noutputs = [\"x.mp4\"]\ndevice = \"gpu\"\n",
    )
    .unwrap();
    let run = segsynth(&["run", preset.to_str().unwrap()]);
    assert_ne!(run.status.code(), Some(0));
    assert!(stderr(&run).contains(expected), "preset: {}", stderr(&run));
    assert!(stderr(&run).contains("line 3"), "preset: {}", stderr(&run));
    let inspect = gst_tool("gst-inspect-1.0", &["segsynth"]);
    let text = String::from_utf8_lossy(&inspect.stdout).to_string();
    for (property, names) in [
        ("device", Device::NAMES),
        ("pixels", Pixels::NAMES),
        ("refine", Refine::NAMES),
    ] {
        let nicks = enum_nicks(&text, property);
        assert_eq!(
            nicks, names,
            "{property}'s GLib nicks against the library's names"
        );
    }
    let element = launch_words(
        "videotestsrc num-buffers=2 ! video/x-raw,format=I420 ! segsynth device=gpu ! fakesink",
    );
    assert_ne!(element.status.code(), Some(0));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&element.stdout),
        stderr(&element)
    );
    assert!(
        said.contains("could not set property \"device\"") && said.contains("gpu"),
        "element: {said}"
    );
}

/// The nicks of an enum property as `gst-inspect-1.0` lists them (`(0): auto - ...`).
fn enum_nicks(inspect: &str, property: &str) -> Vec<String> {
    let mut lines = inspect
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{property} ")));
    let _ = lines.next();
    lines
        .skip_while(|l| !l.contains("Enum \""))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('('))
        .filter_map(|l| {
            l.split("):")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .collect()
}
