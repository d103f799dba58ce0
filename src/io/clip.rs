//! Test and demo clips made by GStreamer from a still photo with motion (a slow pan
//! and zoom) plus a sine tone, so tests, the demo and the benchmark need no download.
//!
//! ```text
//! appsrc (I420 frames panned over the photo) ! x264enc ! h264parse ─┐
//! audiotestsrc ! audioconvert ! avenc_aac ! aacparse ───────────────┴─ mux ! filesink
//! ```

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::encode::{
    Container, EncoderSettings, add_h264_chain, add_muxer, link_video_to_mux, temp_path,
};
use super::frames::buffer_from_frame;
use super::{IoError, init, make, perr};
use crate::frame::{Frame, Matrix, Yuv420};

pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: u32,
    pub audio: bool,
    /// Variable frame rate: frame durations alternate between 1/fps and 3/fps (caps say 0/1).
    pub vfr: bool,
    /// The photo as it is in every frame (no pan or zoom): where generated content is the
    /// only thing that moves.
    pub still: bool,
    /// Sensor-like noise: each RGB value gets seeded, roughly normal noise of this
    /// standard deviation in grey levels, new every frame (0: none). Camera footage
    /// carries some; a clean photo pan is far cheaper to encode than a camera's picture.
    pub grain: f32,
}

/// Writes a clip of `photo` (RGB8) panned and zoomed over time. It is written to a hidden
/// file beside `out` and renamed when complete, so a failed or killed run leaves no
/// half-written clip for a later run (the benchmark reuses its clips) to pick up.
pub fn make_clip(out: &Path, photo: (&[u8], usize, usize), spec: &ClipSpec) -> Result<(), IoError> {
    init()?;
    let container = Container::for_path(out)?;
    let temp = temp_path(out);
    let written = write_clip(&temp, container, photo, spec).and_then(|()| {
        std::fs::rename(&temp, out).map_err(|source| IoError::Rename {
            path: out.to_owned(),
            source,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn write_clip(
    out: &Path,
    container: Container,
    photo: (&[u8], usize, usize),
    spec: &ClipSpec,
) -> Result<(), IoError> {
    let pipeline = gst::Pipeline::new();
    let mux = add_muxer(&pipeline, "clip", container, out)?;
    let (w, h) = (spec.width as usize, spec.height as usize);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, spec.width, spec.height)
        .fps(if spec.vfr {
            gst::Fraction::new(0, 1)
        } else {
            gst::Fraction::new(spec.fps as i32, 1)
        })
        .build()
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    let caps = info
        .to_caps()
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes(4 * w as u64 * h as u64)
        .build();
    pipeline.add(&appsrc).map_err(perr)?;
    let odd = w % 2 == 1 || h % 2 == 1;
    let (first, last) = add_h264_chain(&pipeline, "clip-video", &EncoderSettings::default(), odd)?;
    appsrc.link(&first).map_err(perr)?;
    link_video_to_mux(&last, &mux)?;
    if spec.audio {
        add_tone(&pipeline, &mux, spec)?;
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    // A stream error (e.g. a size the encoder refuses) stops the pipeline, so a push
    // blocked on the full appsrc queue returns instead of waiting forever.
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = watch_errors(&pipeline, std::sync::Arc::clone(&pushing));
    push_frames(&appsrc, &info, photo, spec)?;
    pushing.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Ok(Some(error)) = watcher.join() {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(IoError::Pipeline(format!(
            "making a {w}x{h} clip failed: {error} (the H.264 encoder may not take this size)"
        )));
    }
    let _ = appsrc.end_of_stream();
    let result = super::wait_eos(
        &pipeline,
        "making the clip",
        std::time::Duration::from_secs(300),
    );
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The clip's frames, panned over the photo (or held still), pushed until the appsrc
/// refuses one (the pipeline stopped on an error the caller reports).
fn push_frames(
    appsrc: &gst_app::AppSrc,
    info: &gst_video::VideoInfo,
    (rgb, pw, ph): (&[u8], usize, usize),
    spec: &ClipSpec,
) -> Result<(), IoError> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let frame_ns = 1_000_000_000u64 / spec.fps as u64;
    let src_img = image::RgbImage::from_raw(pw as u32, ph as u32, rgb.to_vec())
        .ok_or_else(|| IoError::Pipeline("bad photo buffer".into()))?;
    let mut pts = 0u64;
    for i in 0..spec.frames {
        let duration = if spec.vfr && i % 2 == 1 {
            3 * frame_ns
        } else {
            frame_ns
        };
        let t = if spec.still {
            0.25 // the pan's still point: the middle of the photo at full zoom
        } else {
            i as f32 / spec.frames.max(1) as f32
        };
        let mut pixels = pan_frame(&src_img, w, h, t);
        add_grain(&mut pixels, spec.grain, i as u64);
        let frame = Frame {
            index: i as u64,
            pts: Some(pts),
            duration: Some(duration),
            matrix: Matrix::Bt709,
            picture: Yuv420::from_rgb(&pixels, w, h, Matrix::Bt709),
        };
        pts += duration;
        let buffer = buffer_from_frame(frame, info)?;
        if appsrc.push_buffer(buffer).is_err() {
            break;
        }
    }
    Ok(())
}

/// A sine tone as long as the clip, AAC, into the muxer.
fn add_tone(pipeline: &gst::Pipeline, mux: &gst::Element, spec: &ClipSpec) -> Result<(), IoError> {
    let src = make("audiotestsrc", "clip-audio")?;
    src.set_property_from_str("wave", "sine");
    let samples_per_buffer = 1024i32;
    let total_samples = spec.frames as u64 * 44_100 / spec.fps as u64;
    src.set_property("samplesperbuffer", samples_per_buffer);
    src.set_property(
        "num-buffers",
        (total_samples / samples_per_buffer as u64) as i32,
    );
    let convert = make("audioconvert", "clip-aconvert")?;
    let enc = make("avenc_aac", "clip-aac")?;
    let parse = make("aacparse", "clip-aacparse")?;
    let chain = [&src, &convert, &enc, &parse];
    pipeline.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let pad = mux
        .request_pad_simple("audio_%u")
        .ok_or_else(|| IoError::Pipeline("mux refused audio".into()))?;
    parse
        .static_pad("src")
        .ok_or_else(|| IoError::Pipeline("aacparse has no src".into()))?
        .link(&pad)
        .map_err(|e| IoError::Pipeline(format!("{e:?}")))?;
    Ok(())
}

/// A thread that watches the bus for an error while `pushing`, and stops the pipeline on one.
fn watch_errors(
    pipeline: &gst::Pipeline,
    pushing: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Option<String>> {
    let pipeline = pipeline.clone();
    std::thread::spawn(move || -> Option<String> {
        let bus = pipeline.bus()?;
        while pushing.load(std::sync::atomic::Ordering::Relaxed) {
            let msg = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(50),
                &[gst::MessageType::Error],
            );
            if let Some(msg) = msg
                && let gst::MessageView::Error(e) = msg.view()
            {
                let path = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let _ = pipeline.set_state(gst::State::Null);
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                let why = debug.lines().last().unwrap_or_default().trim().to_string();
                return Some(format!("{} at {path}: {why}", e.error()));
            }
        }
        None
    })
}

/// Adds roughly normal noise of standard deviation `sigma` grey levels to every value,
/// from a stream seeded by `seed` (the same frame always gets the same grain).
fn add_grain(pixels: &mut [u8], sigma: f32, seed: u64) {
    if sigma <= 0.0 {
        return;
    }
    // A sum of four uniforms in [0, 1) has mean 2 and variance 1/3.
    let scale = sigma * 3f32.sqrt() / 65536.0;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for v in pixels.iter_mut() {
        let r = crate::imgproc::noise::splitmix64(&mut state);
        let sum: u64 = (0..4).map(|k| (r >> (16 * k)) & 0xFFFF).sum();
        let noise = (sum as f32 - 2.0 * 65536.0) * scale;
        *v = (*v as f32 + noise).round().clamp(0.0, 255.0) as u8;
    }
}

/// A crop window with the frame's aspect, drifting and zooming slowly over the photo.
fn pan_frame(img: &image::RgbImage, w: usize, h: usize, t: f32) -> Vec<u8> {
    let (iw, ih) = (img.width() as f32, img.height() as f32);
    let aspect = w as f32 / h as f32;
    let zoom = 0.92 + 0.08 * (t * std::f32::consts::TAU).cos();
    let (mut cw, mut ch) = if iw / ih > aspect {
        (ih * aspect, ih)
    } else {
        (iw, iw / aspect)
    };
    cw *= zoom;
    ch *= zoom;
    let phase = (t * std::f32::consts::TAU).sin() * 0.5 + 0.5;
    let x0 = (iw - cw) * phase;
    let y0 = (ih - ch) * (0.25 + 0.2 * phase);
    let crop =
        image::imageops::crop_imm(img, x0 as u32, y0 as u32, cw as u32, ch as u32).to_image();
    image::imageops::resize(
        &crop,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw()
}

/// Every frame of a video file as luma at `w x h` (GStreamer decodes and scales): what a
/// viewer sees, for measuring motion on segsynth's output.
pub fn decode_luma(path: &Path, w: usize, h: usize) -> Result<Vec<Vec<u8>>, IoError> {
    init()?;
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc", "luma-src")?;
    src.set_property("location", path.to_string_lossy().to_string());
    let decode = make("decodebin", "luma-decode")?;
    let convert = make("videoconvert", "luma-convert")?;
    let scale = make("videoscale", "luma-scale")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", w as i32)
        .field("height", h as i32)
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    let elements = [&src, &decode, &convert, &scale, sink.upcast_ref()];
    pipeline.add_many(elements).map_err(perr)?;
    src.link(&decode).map_err(perr)?;
    gst::Element::link_many([&convert, &scale, sink.upcast_ref()]).map_err(perr)?;
    let convert_sink = convert
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("videoconvert has no sink pad".into()))?;
    decode.connect_pad_added(move |_, pad| {
        let _ = pad.link(&convert_sink);
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| IoError::Pipeline(format!("decoding {}: {e}", path.display())))?;
    let mut frames = Vec::new();
    let mut last = std::time::Instant::now();
    let result = loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            frames.push(luma_of(&sample)?);
            last = std::time::Instant::now();
            continue;
        }
        if sink.is_eos() {
            break Ok(frames);
        }
        if let Some(e) = super::first_bus_error(&pipeline) {
            break Err(e);
        }
        // As for file inputs: a decoder that goes silent without an error ends it.
        if last.elapsed() > super::source::file::STALL_AFTER {
            break Err(IoError::Pipeline(format!(
                "decoding {} delivered no frame for {:?}",
                path.display(),
                super::source::file::STALL_AFTER
            )));
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// A GRAY8 sample's plane, row by row (the buffer's own stride).
fn luma_of(sample: &gst::Sample) -> Result<Vec<u8>, IoError> {
    let bad = |what: String| IoError::Frame(format!("decoded luma: {what}"));
    let caps = sample.caps().ok_or_else(|| bad("no caps".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| bad(e.to_string()))?;
    let buffer = sample.buffer().ok_or_else(|| bad("no buffer".into()))?;
    let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| bad(e.to_string()))?;
    let (w, stride) = (info.width() as usize, vf.plane_stride()[0] as usize);
    let data = vf.plane_data(0).map_err(|e| bad(e.to_string()))?;
    Ok(data
        .chunks(stride)
        .take(info.height() as usize)
        .flat_map(|r| &r[..w.min(r.len())])
        .copied()
        .collect())
}

/// A photo-like RGB still with no person in it: a sky over a field, with soft hills and a
/// sun. Made here so tests and the benchmark need no download.
pub fn landscape(w: usize, h: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let hill = 0.55 + 0.08 * (u * 7.0).sin() + 0.04 * (u * 17.0 + 1.0).sin();
            let sun = (-((u - 0.75).powi(2) + (v - 0.2).powi(2)) * 60.0).exp();
            let px = if v < hill {
                [
                    110.0 + 80.0 * v + 140.0 * sun,
                    150.0 + 60.0 * v + 100.0 * sun,
                    230.0 - 40.0 * v,
                ]
            } else {
                let shade = 0.8 + 0.2 * (u * 40.0 + v * 25.0).sin();
                [70.0 * shade, 120.0 * shade + 40.0 * v, 50.0 * shade]
            };
            rgb.extend(px.map(|c| c.clamp(0.0, 255.0) as u8));
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::add_grain;

    #[test]
    fn grain_has_the_asked_spread_and_is_seeded() {
        let mut a = vec![128u8; 300_000];
        add_grain(&mut a, 3.0, 7);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 128.0).abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.1, "std {}", var.sqrt());
        let mut b = vec![128u8; 300_000];
        add_grain(&mut b, 3.0, 7);
        assert_eq!(a, b, "same seed, same grain");
        add_grain(&mut b, 0.0, 8);
        assert_eq!(a, b, "no grain asked, nothing changed");
        let mut c = vec![128u8; 300_000];
        add_grain(&mut c, 3.0, 8);
        assert_ne!(a, c, "each frame its own grain");
    }
}
