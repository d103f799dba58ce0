//! The encode/mux tail shared by the file job and the benchmark's GStreamer-only
//! reference transcode, so both use exactly the same encoder settings.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{IoError, make};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Mkv,
}

impl Container {
    pub fn for_path(path: &Path) -> Result<Container, IoError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("mp4" | "m4v" | "mov") => Ok(Container::Mp4),
            Some("mkv") => Ok(Container::Mkv),
            other => Err(IoError::Extension {
                path: path.to_owned(),
                ext: other.unwrap_or("").to_string(),
            }),
        }
    }
}

pub const DEFAULT_PRESET: &str = "veryfast";
/// ffmpeg's libx264 default CRF.
pub const DEFAULT_CRF: u32 = 23;
/// x264enc's quantizer range (x264 itself goes to 51).
pub const MAX_QUANTIZER: u32 = 50;

/// How x264 spends bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateControl {
    /// Constant rate factor (x264 `pass=qual`, ffmpeg's `-crf`): constant perceived
    /// quality, fewer bits where motion hides detail.
    Crf(u32),
    /// Constant quantizer (x264 `pass=quant`, ffmpeg's `-qp`): the same QP everywhere.
    Qp(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSettings {
    /// x264 speed preset name.
    pub preset: String,
    pub rate: RateControl,
    /// x264 tune (`zerolatency` for live outputs).
    pub tune: Option<&'static str>,
    /// Longest distance between keyframes, in frames (live outputs: one second).
    pub keyframe_interval: Option<u32>,
    /// No VBV (`vbv-buf-capacity=0`): files. x264enc caps `pass=qual`/`quant` with a VBV at
    /// its `bitrate` (2048 kbit/s by default); ffmpeg's `-crf` and `-qp` have no cap, and that
    /// VBV made threaded x264 give different pictures from the same frames run to run (its
    /// row-level rate control follows thread timing; gst-launch, a 720p noise clip encoded
    /// twice: different streams every time, identical with `vbv-buf-capacity=0`). Live
    /// streams keep x264enc's cap, which bounds their bandwidth.
    pub uncapped: bool,
    /// Periodic intra refresh instead of keyframes (x264 `intra-refresh`): a column of
    /// intra blocks sweeps the picture once per keyframe interval. Streams only: with
    /// whole keyframes, generated texture that drifts in P-frames snapped back at every
    /// keyframe, a pulse of 4-11 grey levels once a second (measured on decoded RTSP).
    pub intra_refresh: bool,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            preset: DEFAULT_PRESET.into(),
            rate: RateControl::Crf(DEFAULT_CRF),
            tune: None,
            keyframe_interval: None,
            uncapped: true,
            intra_refresh: false,
        }
    }
}

impl EncoderSettings {
    /// What live streams (RTSP served or published) use: fastest preset, no lookahead,
    /// a full intra refresh every second.
    pub fn live(fps: u32) -> Self {
        EncoderSettings {
            intra_refresh: true,
            ..Self::live_recording(fps)
        }
    }

    /// What live recordings use: as streams, but with a keyframe a second (players seek
    /// to keyframes).
    pub fn live_recording(fps: u32) -> Self {
        EncoderSettings {
            preset: "ultrafast".into(),
            rate: RateControl::Crf(DEFAULT_CRF),
            tune: Some("zerolatency"),
            keyframe_interval: Some(fps.max(1)),
            uncapped: false,
            intra_refresh: false,
        }
    }

    /// A quantizer or rate factor of 0: lossless, which x264 codes only as High 4:4:4
    /// Predictive (x264's `--qp 0`, as ffmpeg's `-qp 0` and `-crf 0`).
    pub fn lossless(&self) -> bool {
        matches!(self.rate, RateControl::Crf(0) | RateControl::Qp(0))
    }

    /// The x264enc properties, in the one place they are written. Used for elements
    /// and for the RTSP server's launch description alike.
    pub fn x264_properties(&self) -> Vec<(&'static str, String)> {
        let (pass, q) = match self.rate {
            RateControl::Crf(q) => ("qual", q),
            RateControl::Qp(q) => ("quant", q),
        };
        let mut props = vec![
            ("speed-preset", self.preset.clone()),
            ("pass", pass.to_string()),
            ("quantizer", q.min(MAX_QUANTIZER).to_string()),
        ];
        if self.uncapped {
            props.push(("vbv-buf-capacity", "0".into()));
        }
        if let Some(t) = self.tune {
            props.push(("tune", t.to_string()));
        }
        if let Some(k) = self.keyframe_interval {
            props.push(("key-int-max", k.to_string()));
        }
        if self.intra_refresh {
            props.push(("intra-refresh", "true".into()));
        }
        props
    }

    /// `x264enc prop=value ...` for a launch description.
    pub fn x264_launch(&self) -> String {
        let props: Vec<String> = self
            .x264_properties()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("x264enc {}", props.join(" "))
    }
}

/// An x264enc configured from `settings`.
pub fn x264(name: &str, settings: &EncoderSettings) -> Result<gst::Element, IoError> {
    let enc = make("x264enc", name)?;
    for (key, value) in settings.x264_properties() {
        enc.set_property_from_str(key, &value);
    }
    Ok(enc)
}

/// The folder a file path lives in (`.` for a bare name).
pub fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The hidden file beside `path` that output is written to until it is complete.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "output".into());
    parent_dir(path).join(format!(".{name}.segsynth-{}.partial", std::process::id()))
}

/// videoconvert ! format caps ! x264enc ! profile caps ! h264parse, not yet in a
/// pipeline: the one H.264 chain of the file job, live recordings and publishing.
///
/// H.264 4:2:0 cannot code odd widths or heights (crop units are 2 pixels), so odd
/// sizes are encoded as High 4:4:4 to keep the exact resolution. Lossless settings leave
/// the profile to x264 (High 4:4:4 Predictive: High cannot be lossless).
pub fn h264_chain(
    prefix: &str,
    settings: &EncoderSettings,
    odd_size: bool,
) -> Result<Vec<gst::Element>, IoError> {
    let convert = make("videoconvert", &format!("{prefix}-convert"))?;
    let format = make("capsfilter", &format!("{prefix}-format"))?;
    let raw = if odd_size { "Y444" } else { "I420" };
    format.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", raw)
            .build(),
    );
    let enc = x264(&format!("{prefix}-x264"), settings)?;
    let profile = make("capsfilter", &format!("{prefix}-profile"))?;
    let caps = match (odd_size, settings.lossless()) {
        (true, _) => gst::Caps::builder("video/x-h264").field("profile", "high-4:4:4"),
        (false, true) => gst::Caps::builder("video/x-h264"),
        (false, false) => gst::Caps::builder("video/x-h264").field("profile", "high"),
    };
    profile.set_property("caps", caps.build());
    let parse = make("h264parse", &format!("{prefix}-parse"))?;
    Ok(vec![convert, format, enc, profile, parse])
}

/// `h264_chain` added to `pipeline` and linked. Returns (first, last).
pub fn add_h264_chain(
    pipeline: &gst::Pipeline,
    prefix: &str,
    settings: &EncoderSettings,
    odd_size: bool,
) -> Result<(gst::Element, gst::Element), IoError> {
    let chain = h264_chain(prefix, settings, odd_size)?;
    pipeline
        .add_many(&chain)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    gst::Element::link_many(&chain)
        .map_err(|e| IoError::Pipeline(format!("cannot link the H.264 encoder: {e}")))?;
    match (chain.first(), chain.last()) {
        (Some(first), Some(last)) => Ok((first.clone(), last.clone())),
        _ => Err(IoError::Pipeline("empty H.264 chain".into())),
    }
}

/// mux ! filesink location=path, not yet in a pipeline. Returns (mux, filesink).
pub fn muxer(
    prefix: &str,
    container: Container,
    path: &Path,
) -> Result<(gst::Element, gst::Element), IoError> {
    let mux = match container {
        Container::Mp4 => make("mp4mux", &format!("{prefix}-mux"))?,
        Container::Mkv => make("matroskamux", &format!("{prefix}-mux"))?,
    };
    let sink = make("filesink", &format!("{prefix}-filesink"))?;
    sink.set_property("location", path.to_string_lossy().to_string());
    // The muxer only gets data once frames were processed: do not hold up preroll for it.
    sink.set_property("async", false);
    Ok((mux, sink))
}

/// `muxer` added to `pipeline` and linked. Returns the mux.
pub fn add_muxer(
    pipeline: &gst::Pipeline,
    prefix: &str,
    container: Container,
    path: &Path,
) -> Result<gst::Element, IoError> {
    let (mux, sink) = muxer(prefix, container, path)?;
    pipeline
        .add_many([&mux, &sink])
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    mux.link(&sink)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    Ok(mux)
}

pub fn link_video_to_mux(last: &gst::Element, mux: &gst::Element) -> Result<(), IoError> {
    let src = last
        .static_pad("src")
        .ok_or_else(|| IoError::Pipeline("encoder has no src pad".into()))?;
    let sink = mux
        .request_pad_simple("video_%u")
        .ok_or_else(|| IoError::Pipeline("the muxer refused a video track".into()))?;
    src.link(&sink)
        .map_err(|e| IoError::Pipeline(format!("cannot link video into the muxer: {e:?}")))?;
    Ok(())
}

/// The muxer interleaves by time, so audio waits in `queue` while the encoder holds
/// video (x264's lookahead and frame threads hold more than a second at 10 fps, more
/// than a default queue's second of audio: the demuxer would block and the job hang).
fn give_audio_room(queue: &gst::Element) {
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 20_000_000_000u64);
}

/// Adds one audio track from a demuxed (compressed or raw) pad: passed through when the
/// container takes its caps, otherwise decoded and re-encoded to AAC. Returns the
/// branch's first sink pad (where EOS is injected on an early stop) and whether it
/// was passed through.
pub fn add_audio_track(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    src: &gst::Pad,
    caps: &gst::Caps,
    index: usize,
) -> Result<(gst::Pad, bool), IoError> {
    let p = |e: glib_err::E| IoError::Pipeline(e.to_string());
    let queue = make("queue", &format!("out-audio{index}-queue"))?;
    give_audio_room(&queue);
    let template_ok = mux
        .pad_template("audio_%u")
        .is_some_and(|t| t.caps().can_intersect(caps));
    let is_raw = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("audio/x-raw"));
    let mux_pad = mux
        .request_pad_simple("audio_%u")
        .ok_or_else(|| IoError::Pipeline("the muxer refused an audio track".into()))?;
    if template_ok && !is_raw {
        pipeline.add(&queue).map_err(p)?;
        queue.sync_state_with_parent().map_err(p)?;
        link(src, &queue, "sink")?;
        queue
            .static_pad("src")
            .ok_or_else(|| IoError::Pipeline("queue has no src".into()))?
            .link(&mux_pad)
            .map_err(|e| IoError::Pipeline(format!("{e:?}")))?;
        let entry = queue
            .static_pad("sink")
            .ok_or_else(|| IoError::Pipeline("queue has no sink".into()))?;
        return Ok((entry, true));
    }
    // A plain decoder, not decodebin: decodebin's asynchronous set-up would wait for data
    // the demuxer cannot push while video is held in preroll.
    let decode = find_decoder(caps).ok_or_else(|| {
        IoError::Pipeline(format!(
            "no decoder for the audio stream {caps}; install gstreamer1.0-libav or gstreamer1.0-plugins-good/bad"
        ))
    })?;
    let convert = make("audioconvert", &format!("out-audio{index}-convert"))?;
    let resample = make("audioresample", &format!("out-audio{index}-resample"))?;
    let enc = make("avenc_aac", &format!("out-audio{index}-aac"))?;
    let parse = make("aacparse", &format!("out-audio{index}-aacparse")).ok();
    let mut chain = vec![decode.clone(), convert, resample, enc];
    if let Some(parse) = parse {
        chain.push(parse);
    }
    chain.push(queue.clone());
    pipeline.add_many(&chain).map_err(p)?;
    gst::Element::link_many(&chain)
        .map_err(|e| IoError::Pipeline(format!("cannot link audio re-encoder: {e}")))?;
    queue
        .static_pad("src")
        .ok_or_else(|| IoError::Pipeline("queue has no src".into()))?
        .link(&mux_pad)
        .map_err(|e| IoError::Pipeline(format!("{e:?}")))?;
    for e in &chain {
        e.sync_state_with_parent().map_err(p)?;
    }
    link(src, &decode, "sink")?;
    let entry = decode
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("audio decoder has no sink".into()))?;
    Ok((entry, false))
}

/// The highest-ranked decoder element that accepts `caps`.
fn find_decoder(caps: &gst::Caps) -> Option<gst::Element> {
    let factories = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER,
        gst::Rank::MARGINAL,
    );
    let mut candidates: Vec<_> = factories
        .into_iter()
        .filter(|f| f.can_sink_all_caps(caps))
        .collect();
    candidates.sort_by_key(|f| std::cmp::Reverse(f.rank()));
    candidates.into_iter().find_map(|f| f.create().build().ok())
}

fn link(src: &gst::Pad, element: &gst::Element, pad: &str) -> Result<(), IoError> {
    let sink = element
        .static_pad(pad)
        .ok_or_else(|| IoError::Pipeline(format!("{} has no {pad} pad", element.name())))?;
    src.link(&sink).map(|_| ()).map_err(|e| {
        IoError::Pipeline(format!(
            "cannot link {} into {}: {e:?}",
            src.name(),
            element.name()
        ))
    })
}

mod glib_err {
    pub type E = gstreamer::glib::BoolError;
}

/// The benchmark's ceiling: a GStreamer-only transcode of an MP4 (H.264 + AAC) clip
/// through the same encoder chain and settings as the file job, audio passed through.
pub fn reference_transcode(
    input: &Path,
    output: &Path,
    settings: &EncoderSettings,
) -> Result<(), IoError> {
    super::init()?;
    let description = format!(
        "filesrc location=\"{}\" ! qtdemux name=d d.video_0 ! queue ! decodebin ! identity name=ref-in d.audio_0 ! queue name=ref-audio",
        input.display()
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| IoError::Pipeline(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| IoError::Pipeline("reference transcode is not a pipeline".into()))?;
    let container = Container::for_path(output)?;
    let mux = add_muxer(&pipeline, "ref", container, output)?;
    let (first, last) = add_h264_chain(&pipeline, "ref-video", settings, false)?;
    let by_name = |n: &str| {
        pipeline
            .by_name(n)
            .ok_or_else(|| IoError::Pipeline(format!("reference transcode has no {n}")))
    };
    by_name("ref-in")?
        .link(&first)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    link_video_to_mux(&last, &mux)?;
    let audio = by_name("ref-audio")?;
    give_audio_room(&audio);
    let audio = audio
        .static_pad("src")
        .ok_or_else(|| IoError::Pipeline("audio queue has no src pad".into()))?;
    let track = mux
        .request_pad_simple("audio_%u")
        .ok_or_else(|| IoError::Pipeline("the muxer refused an audio track".into()))?;
    audio
        .link(&track)
        .map_err(|e| IoError::Pipeline(format!("cannot link audio into the muxer: {e:?}")))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| IoError::Pipeline(e.to_string()))?;
    let result = super::wait_eos(
        &pipeline,
        "reference transcode",
        std::time::Duration::from_secs(600),
    );
    let _ = pipeline.set_state(gst::State::Null);
    result
}
