//! Shared helpers: running the binary, making clips, probing outputs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, Once, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_segsynth")
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn segsynth(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run segsynth")
}

/// `segsynth process INPUT -o OUTPUT EXTRA...`
pub fn process(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "process",
        input.to_str().expect("utf-8 path"),
        "-o",
        output.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    segsynth(&args)
}

/// `segsynth make-clip OUT --photo PHOTO --width W --height H --frames N EXTRA...`
pub fn make_clip(
    out: &Path,
    photo: &Path,
    (w, h, frames): (u32, u32, u32),
    extra: &[&str],
) -> Output {
    let size = [w.to_string(), h.to_string(), frames.to_string()];
    let mut args = vec![
        "make-clip",
        out.to_str().expect("utf-8 path"),
        "--photo",
        photo.to_str().expect("utf-8 path"),
        "--width",
        &size[0],
        "--height",
        &size[1],
        "--frames",
        &size[2],
    ];
    args.extend_from_slice(extra);
    segsynth(&args)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts a clean user-facing failure: non-zero, a message, no panic or backtrace.
pub fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic in:\n{err}"
    );
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "expected {n:?} in:\n{err}"
        );
    }
}

pub fn gst_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("gstreamer init"));
}

/// Runs a gst-launch style description to EOS.
pub fn launch(description: &str) {
    gst_init();
    let pipeline = gst::parse::launch(description).unwrap_or_else(|e| panic!("{description}: {e}"));
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!("{description}: {}", e.error()),
        _ => panic!("{description}: timed out"),
    }
}

/// The person clip (astronaut photo with motion and a sine tone), made once per run.
pub fn person_clip(width: u32, height: u32, frames: u32) -> PathBuf {
    static CLIPS: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = CLIPS
        .get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clips");
    std::fs::create_dir_all(&dir).expect("clip dir");
    let path = dir.join(format!("person-{width}x{height}-{frames}.mp4"));
    // make-clip writes a hidden file and renames it when whole, so a clip under this
    // name is never half-written.
    if !path.exists() {
        let o = make_clip(
            &path,
            &data("astronaut.jpg"),
            (width, height, frames),
            &["--overwrite"],
        );
        assert!(o.status.success(), "make-clip: {}", stderr(&o));
    }
    path
}

#[derive(Debug, Default)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    pub pts: Vec<u64>,
    pub durations: Vec<u64>,
    /// Caps names of the audio streams as demuxed (compressed).
    pub audio: Vec<String>,
    /// Small RGB thumbnails (64x36 or per aspect) of selected frames, by index.
    pub thumbs: Vec<(usize, Vec<u8>)>,
    pub thumb_size: (usize, usize),
}

/// Decodes a file: frame PTS/durations, size, audio codecs, and RGB thumbnails of the
/// frames in `thumbs` at `tw x th`.
pub fn probe(path: &Path, thumbs: &[usize], tw: usize, th: usize) -> Probe {
    gst_init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let parse = gst::ElementFactory::make("parsebin").build().unwrap();
    pipeline.add_many([&src, &parse]).unwrap();
    src.link(&parse).unwrap();
    let audio = std::sync::Arc::new(Mutex::new(Vec::new()));
    let full = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .sync(false)
        .build();
    let small = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", tw as i32)
                .field("height", th as i32)
                .build(),
        )
        .sync(false)
        .build();
    let pl = pipeline.downgrade();
    let a = audio.clone();
    let (full2, small2) = (full.clone(), small.clone());
    parse.connect_pad_added(move |_, pad| {
        let pipeline = pl.upgrade().unwrap();
        let caps = pad.current_caps().unwrap();
        let name = caps.structure(0).unwrap().name().to_string();
        if name.starts_with("audio/") {
            a.lock().unwrap().push(caps.to_string());
            let sink = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .unwrap();
            pipeline.add(&sink).unwrap();
            // Straight to PLAYING: a sink left in PAUSED would block the demuxer in preroll.
            sink.set_state(gst::State::Playing).unwrap();
            pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        } else if name.starts_with("video/") {
            let dec = gst::ElementFactory::make("decodebin").build().unwrap();
            let tee = gst::ElementFactory::make("tee").build().unwrap();
            let q1 = gst::ElementFactory::make("queue").build().unwrap();
            let c1 = gst::ElementFactory::make("videoconvert").build().unwrap();
            let q2 = gst::ElementFactory::make("queue").build().unwrap();
            let c2 = gst::ElementFactory::make("videoconvert").build().unwrap();
            let scale = gst::ElementFactory::make("videoscale").build().unwrap();
            let els = [&dec, &tee, &q1, &c1, &q2, &c2, &scale];
            pipeline.add_many(els).unwrap();
            gst::Element::link_many([&tee, &q1, &c1, full2.upcast_ref()]).unwrap();
            gst::Element::link_many([&tee, &q2, &c2, &scale, small2.upcast_ref()]).unwrap();
            let tee_sink = tee.static_pad("sink").unwrap();
            dec.connect_pad_added(move |_, p| {
                let _ = p.link(&tee_sink);
            });
            for e in els {
                e.sync_state_with_parent().unwrap();
            }
            pad.link(&dec.static_pad("sink").unwrap()).unwrap();
        }
    });
    for sink in [&full, &small] {
        sink.set_property("async", false);
        pipeline.add(sink).unwrap();
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut p = Probe {
        thumb_size: (tw, th),
        ..Probe::default()
    };
    let mut index = 0;
    loop {
        let Some(s) = full.try_pull_sample(gst::ClockTime::from_seconds(20)) else {
            break;
        };
        let b = s.buffer().unwrap();
        let info = gstreamer_video::VideoInfo::from_caps(s.caps().unwrap()).unwrap();
        p.width = info.width();
        p.height = info.height();
        p.pts
            .push(b.pts().map(|t| t.nseconds()).unwrap_or(u64::MAX));
        p.durations
            .push(b.duration().map(|t| t.nseconds()).unwrap_or(0));
        let t = small
            .try_pull_sample(gst::ClockTime::from_seconds(20))
            .expect("thumbnail");
        if thumbs.contains(&index) {
            let tb = t.buffer().unwrap();
            let info = gstreamer_video::VideoInfo::from_caps(t.caps().unwrap()).unwrap();
            let map = tb.map_readable().unwrap();
            let stride = info.stride()[0] as usize;
            let mut rgb = Vec::with_capacity(tw * th * 3);
            for row in 0..th {
                rgb.extend_from_slice(&map[row * stride..row * stride + tw * 3]);
            }
            p.thumbs.push((index, rgb));
        }
        index += 1;
    }
    let _ = pipeline.set_state(gst::State::Null);
    p.audio = audio.lock().unwrap().clone();
    p
}

impl Probe {
    pub fn thumb(&self, index: usize) -> &[u8] {
        &self
            .thumbs
            .iter()
            .find(|(i, _)| *i == index)
            .expect("thumbnail captured")
            .1
    }
}

/// Mean RGB over a rectangle given in fractions of the thumbnail.
pub fn region_mean(
    rgb: &[u8],
    size: (usize, usize),
    (x0, y0, x1, y1): (f32, f32, f32, f32),
) -> [f32; 3] {
    let (w, h) = size;
    let (xa, xb) = ((x0 * w as f32) as usize, (x1 * w as f32) as usize);
    let (ya, yb) = ((y0 * h as f32) as usize, (y1 * h as f32) as usize);
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in ya..yb {
        for x in xa..xb {
            for c in 0..3 {
                sum[c] += rgb[(y * w + x) * 3 + c] as f64;
            }
            n += 1.0;
        }
    }
    [
        (sum[0] / n) as f32,
        (sum[1] / n) as f32,
        (sum[2] / n) as f32,
    ]
}

pub use segsynth::pipeline::stats::mean_abs_diff;

/// The project's Python (`.venv`, made by `./segsynth.sh setup`), which the tests' scripts
/// and the benchmark's peer run on; a test fails, naming the set-up, when it is missing.
pub fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./segsynth.sh setup",
        python.display()
    );
    python
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("segsynth-test")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// Sets `RLIMIT_FSIZE` for the child: writes past `bytes` fail with EFBIG, a real
/// write fault that needs no root and no mount.
pub fn limit_file_size(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A self-signed certificate for 127.0.0.1 (openssl), as (cert, key).
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let o = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make the test certificate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (cert, key)
}

/// Waits for a child with a deadline; kills it and fails the test on a hang.
pub fn finish_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> Output {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!(
                "{what}: still running after {limit:?} (a hang)\n{}",
                stderr(&o)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
