//! The GStreamer chains around a peer's webrtcbin: what it sends (from an appsrc or an
//! `intervideosrc` channel, VP8 in the peer's numbering) and what it receives (decoded,
//! scaled to the processing size, latest frame wins).

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::VideoSize;
use crate::io::{IoError, make, perr};

/// The page's feed: processed frames pushed by the stages (leaky: latest wins).
pub fn app_feed(size: VideoSize) -> Result<(gst_app::AppSrc, gst_video::VideoInfo), IoError> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, size.width, size.height)
        .fps(gst::Fraction::new(size.fps as i32, 1))
        .build()
        .map_err(perr)?;
    let appsrc = gst_app::AppSrc::builder()
        .name("out")
        .caps(&info.to_caps().map_err(perr)?)
        .format(gst::Format::Time)
        .is_live(true)
        .build();
    appsrc.set_property("max-buffers", 2u64);
    appsrc.set_property_from_str("leaky-type", "downstream");
    Ok((appsrc, info))
}

/// I420 at the processing size, at `fps` when given.
fn i420(size: VideoSize, fps: Option<u32>) -> gst::Caps {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", size.width as i32)
        .field("height", size.height as i32);
    match fps {
        Some(f) => caps
            .field("framerate", gst::Fraction::new(f as i32, 1))
            .build(),
        None => caps.build(),
    }
}

/// A WHEP player's feed: the run's processed frames from an `intervideosink` channel,
/// at the processing size and rate.
pub fn inter_feed(channel: &str, size: VideoSize) -> Result<gst::Element, IoError> {
    let bin = gst::Bin::with_name("feed");
    let src = make("intervideosrc", "inter")?;
    src.set_property("channel", channel);
    let convert = make("videoconvert", "feed-convert")?;
    let caps = make("capsfilter", "feed-caps")?;
    caps.set_property("caps", i420(size, Some(size.fps)));
    let chain = [&src, &convert, &caps];
    bin.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let pad = caps
        .static_pad("src")
        .ok_or_else(|| IoError::Pipeline("capsfilter has no src pad".into()))?;
    let ghost = gst::GhostPad::with_target(&pad).map_err(perr)?;
    bin.add_pad(&ghost).map_err(perr)?;
    Ok(bin.upcast())
}

/// feed ! vp8enc ! rtpvp8pay ! webrtcbin.sink_%u
pub fn send_chain(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    feed: &gst::Element,
    size: VideoSize,
    rtp: gst::Caps,
) -> Result<(), IoError> {
    let pt = rtp
        .structure(0)
        .and_then(|s| s.get::<i32>("payload").ok())
        .unwrap_or(96) as u32;
    let encoder = make("vp8enc", "vp8")?;
    // Real time: no look-ahead frames, a keyframe every 2 s so a lost one heals.
    encoder.set_property("deadline", 1i64);
    encoder.set_property("cpu-used", 8i32);
    encoder.set_property("lag-in-frames", 0i32);
    encoder.set_property("target-bitrate", bitrate(size));
    encoder.set_property("keyframe-max-dist", (size.fps * 2) as i32);
    encoder.set_property_from_str("end-usage", "cbr");
    encoder.set_property_from_str("error-resilient", "default");
    encoder.set_property("threads", 2i32);
    let pay = make("rtpvp8pay", "pay")?;
    pay.set_property("pt", pt);
    pay.set_property("mtu", 1200u32);
    pay.set_property_from_str("picture-id-mode", "15-bit");
    let caps = make("capsfilter", "rtp-caps")?;
    caps.set_property("caps", rtp);
    let chain = [feed, &encoder, &pay, &caps];
    pipeline.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| IoError::Pipeline("webrtcbin gave no sink pad".into()))?;
    caps.static_pad("src")
        .ok_or_else(|| IoError::Pipeline("capsfilter has no src pad".into()))?
        .link(&sink)
        .map_err(perr)?;
    Ok(())
}

/// About 0.1 bit per pixel at the frame rate (2 Mbit/s at 720p30), at least 300 kbit/s.
fn bitrate(size: VideoSize) -> i32 {
    let bits = size.width as u64 * size.height as u64 * size.fps as u64 / 14;
    bits.clamp(300_000, 20_000_000) as i32
}

/// decodebin ! videoconvert ! videoscale ! I420 WxH ! appsink; webrtcbin's first video
/// pad is linked to it when it appears, other pads (audio) to a fakesink. A frame with a
/// lost packet is dropped and a keyframe asked for (the depayloader's PLI), rather than
/// decoded into smeared blocks that last until the sender's next keyframe.
pub fn receive_chain(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    size: VideoSize,
) -> Result<gst_app::AppSink, IoError> {
    let decode = make("decodebin", "decode")?;
    if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
        bin.connect_deep_element_added(|_, _, element| {
            for property in ["wait-for-keyframe", "request-keyframe"] {
                if element.find_property(property).is_some() {
                    element.set_property(property, true);
                }
            }
        });
    }
    let convert = make("videoconvert", "convert")?;
    let scale = make("videoscale", "scale")?;
    let caps = make("capsfilter", "size")?;
    caps.set_property("caps", i420(size, None));
    let appsink = gst_app::AppSink::builder()
        .name("in")
        .max_buffers(1)
        .drop(true)
        .sync(false)
        .build();
    appsink.set_property("async", false);
    let tail = [&convert, &scale, &caps, appsink.upcast_ref()];
    pipeline.add(&decode).map_err(perr)?;
    pipeline.add_many(tail).map_err(perr)?;
    gst::Element::link_many(tail).map_err(perr)?;
    let convert_sink = convert
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("videoconvert has no sink pad".into()))?;
    decode.connect_pad_added(move |_, pad| {
        if !convert_sink.is_linked()
            && let Err(e) = pad.link(&convert_sink)
        {
            tracing::warn!("cannot link the decoded WebRTC video: {e:?}");
        }
    });
    let decode_sink = decode
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("decodebin has no sink pad".into()))?;
    let bin = pipeline.downgrade();
    webrtc.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let video = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| {
                c.structure(0)
                    .and_then(|s| s.get::<&str>("media").ok().map(|m| m == "video"))
            })
            .unwrap_or(false);
        if video && !decode_sink.is_linked() {
            if let Err(e) = pad.link(&decode_sink) {
                tracing::warn!("cannot link the incoming WebRTC video: {e:?}");
            }
        } else if let Some(bin) = bin.upgrade() {
            discard(&bin, pad);
        }
    });
    Ok(appsink)
}

/// Sends a pad nobody uses (audio, a second video) into a fakesink.
fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let Ok(sink) = gst::ElementFactory::make("fakesink")
        .property("async", false)
        .property("sync", false)
        .build()
    else {
        return;
    };
    if pipeline.add(&sink).is_ok() {
        let _ = sink.sync_state_with_parent();
        if let Some(p) = sink.static_pad("sink") {
            let _ = pad.link(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_follows_the_size() {
        let hd = bitrate(VideoSize {
            width: 1280,
            height: 720,
            fps: 30,
        });
        assert!((1_800_000..2_100_000).contains(&hd), "{hd}");
        assert_eq!(
            bitrate(VideoSize {
                width: 16,
                height: 16,
                fps: 1
            }),
            300_000
        );
    }
}
