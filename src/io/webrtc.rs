//! WebRTC peers: GStreamer's webrtcbin answers an SDP offer from a browser page, a WHIP
//! publisher or a WHEP player. Non-trickle, as WHIP/WHEP define it: the answer goes back
//! once ICE gathering is complete, so it carries every candidate.
//!
//! ```text
//! receive:  webrtcbin ─ RTP ─► rtpvp8depay ! vp8dec ! videoconvert ! videoscale ! I420 WxH ! appsink(latest wins)
//! send:     appsrc(leaky) ! vp8enc(realtime, no lag) ! rtpvp8pay(pt of the offer) ─► webrtcbin
//! ```
//!
//! The page's peer does both on one transceiver (the camera goes up, the processed video
//! comes back); a WHIP publisher only sends, a WHEP player only receives. SDP is parsed and
//! written by GStreamer (`gst_sdp`); the only thing read from the offer is the payload type
//! the peer gave VP8, so our payloader speaks the peer's numbering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_video as gst_video;
use gstreamer_webrtc as gst_webrtc;

use crate::frame::Frame;
use crate::io::frames::{buffer_from_frame, frame_from_sample};
use crate::io::{IoError, init, make};
use crate::pipeline::{FrameSink, FrameSource, KeepSize, PipelineError, Retime};

/// What our side of the connection does with video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The browser page: receives the camera and sends the processed video back.
    SendRecv,
    /// A WHIP publisher: segsynth receives.
    Receive,
    /// A WHEP player: segsynth sends.
    Send,
}

impl Direction {
    fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::Receive)
    }
    fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::Send)
    }
}

/// The processing size: incoming video is scaled to it, outgoing video has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSize {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Why an SDP offer was refused, said for the peer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the body is not an SDP offer: {0}")]
    NotSdp(String),
    #[error("the offer has no video section; expected one m=video line")]
    NoVideo,
    #[error("the offer's video does not list VP8; expected VP8 among its codecs")]
    NoVp8,
}

/// The transport-wide congestion control header extension (TWCC). Browsers pace their
/// video by its feedback: with `transport-cc` negotiated but no extension id, Chrome sends
/// a few frames and then waits for feedback that never comes.
pub const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// What our side takes from the offer's first video section: VP8's payload type and the
/// TWCC extension's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbering {
    pub vp8: u32,
    pub twcc: Option<u32>,
}

/// Reads the offer's numbering for VP8 and TWCC.
pub fn numbering(offer: &gst_sdp::SDPMessageRef) -> Result<Numbering, OfferError> {
    let media = offer
        .medias()
        .find(|m| m.media() == Some("video"))
        .ok_or(OfferError::NoVideo)?;
    let vp8 = media
        .formats()
        .filter_map(|f| f.parse::<i32>().ok())
        .find(|&pt| {
            media.caps_from_media(pt).is_some_and(|c| {
                c.structure(0)
                    .and_then(|s| s.get::<&str>("encoding-name").ok())
                    .is_some_and(|n| n.eq_ignore_ascii_case("VP8"))
            })
        })
        .ok_or(OfferError::NoVp8)? as u32;
    let twcc = media
        .attributes()
        .filter(|a| a.key() == "extmap")
        .filter_map(|a| a.value())
        .find_map(|v| {
            let (id, uri) = v.split_once(' ')?;
            let id = id.split('/').next()?.parse().ok()?;
            (uri.trim() == TWCC).then_some(id)
        });
    Ok(Numbering { vp8, twcc })
}

/// One WebRTC connection in its own pipeline.
pub struct Peer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    /// Decoded incoming video (receiving peers).
    incoming: Option<gst_app::AppSink>,
    /// The processed video to send (sending peers) and its layout.
    outgoing: Option<(gst_app::AppSrc, gst_video::VideoInfo)>,
    /// Set once the connection failed or closed, or the pipeline posted an error.
    ended: Arc<AtomicBool>,
}

impl Peer {
    /// Answers `offer` (SDP text): builds the peer's pipeline, sets the offer, creates
    /// the answer and waits up to 5 s for ICE gathering. Returns the peer and the
    /// answer's SDP text.
    pub fn answer(
        offer: &str,
        direction: Direction,
        size: VideoSize,
    ) -> Result<(Peer, String), AnswerError> {
        init()?;
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|e| OfferError::NotSdp(e.to_string()))?;
        let numbering = numbering(&sdp)?;
        let peer = Peer::build(direction, size, numbering)?;
        let answer = peer.negotiate(sdp)?;
        Ok((peer, answer))
    }

    fn build(direction: Direction, size: VideoSize, numbering: Numbering) -> Result<Peer, IoError> {
        let pipeline = gst::Pipeline::with_name("segsynth-webrtc");
        let webrtc = make("webrtcbin", "webrtc")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        // Jitter buffer: enough for a LAN, not a queue (live frames are dropped, not held).
        webrtc.set_property("latency", 50u32);
        pipeline.add(&webrtc).map_err(perr)?;
        let ended = Arc::new(AtomicBool::new(false));
        watch_connection(&webrtc, &ended);
        let outgoing = match direction.sends() {
            true => Some(send_chain(&pipeline, &webrtc, size, numbering)?),
            false => None,
        };
        let incoming = match direction.receives() {
            true => Some(receive_chain(&pipeline, &webrtc, size)?),
            false => None,
        };
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| IoError::Pipeline("the WebRTC pipeline failed to start".into()))?;
        Ok(Peer {
            pipeline,
            webrtc,
            incoming,
            outgoing,
            ended,
        })
    }

    /// Offer in, answer out (with every ICE candidate).
    fn negotiate(&self, offer: gst_sdp::SDPMessage) -> Result<String, IoError> {
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        self.call("set-remote-description", Some(&offer))?;
        let reply = self.call("create-answer", None)?;
        let answer = reply
            .ok_or_else(|| IoError::Pipeline("webrtcbin gave no answer".into()))?
            .get::<gst_webrtc::WebRTCSessionDescription>("answer")
            .map_err(|e| IoError::Pipeline(format!("webrtcbin could not answer: {e}")))?;
        self.call("set-local-description", Some(&answer))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .webrtc
            .property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            != gst_webrtc::WebRTCICEGatheringState::Complete
        {
            if Instant::now() > deadline {
                tracing::warn!("ICE gathering did not complete in 5 s; answering with what it found");
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let local = self
            .webrtc
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| IoError::Pipeline("webrtcbin lost its local description".into()))?;
        local
            .sdp()
            .as_text()
            .map_err(|e| IoError::Pipeline(format!("cannot write the answer: {e}")))
    }

    /// Emits a webrtcbin action that takes a promise, and waits for its reply.
    fn call(
        &self,
        action: &str,
        description: Option<&gst_webrtc::WebRTCSessionDescription>,
    ) -> Result<Option<gst::Structure>, IoError> {
        let promise = gst::Promise::new();
        match description {
            Some(d) => self.webrtc.emit_by_name::<()>(action, &[d, &promise]),
            None => self
                .webrtc
                .emit_by_name::<()>(action, &[&None::<gst::Structure>, &promise]),
        }
        match promise.wait() {
            gst::PromiseResult::Replied => {}
            other => {
                return Err(IoError::Pipeline(format!(
                    "webrtcbin {action}: {other:?}"
                )));
            }
        }
        let reply = promise.get_reply().map(|s| s.to_owned());
        if let Some(e) = reply
            .as_ref()
            .and_then(|s| s.get::<glib::Error>("error").ok())
        {
            return Err(IoError::Pipeline(format!("webrtcbin {action}: {e}")));
        }
        Ok(reply)
    }

    /// The connection failed or closed, or the pipeline failed.
    pub fn ended(&self) -> bool {
        if let Some(e) = crate::io::first_bus_error(&self.pipeline) {
            tracing::info!(error = %e, "WebRTC peer failed");
            self.ended.store(true, Ordering::Relaxed);
        }
        self.ended.load(Ordering::Relaxed)
    }

    /// Splits the peer into its frame source and sink halves; the pipeline stops when
    /// both are dropped.
    pub fn into_parts(self) -> (Option<PeerInput>, Option<PeerOutput>) {
        let shared = Arc::new(Shared {
            pipeline: self.pipeline,
            ended: self.ended,
        });
        let input = self.incoming.map(|appsink| PeerInput {
            appsink,
            shared: Arc::clone(&shared),
            info: None,
            index: 0,
            keep: None,
            last_frame: Instant::now(),
            stop: None,
        });
        let output = self.outgoing.map(|(appsrc, info)| PeerOutput {
            appsrc,
            info,
            retime: Retime::default(),
            shared,
        });
        (input, output)
    }
}

/// Why a peer could not answer: the offer (the peer's mistake) or our side.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error(transparent)]
    Io(#[from] IoError),
}

fn perr<E: std::fmt::Display>(e: E) -> IoError {
    IoError::Pipeline(e.to_string())
}

/// Marks the peer ended when ICE/DTLS fail or the connection closes.
fn watch_connection(webrtc: &gst::Element, ended: &Arc<AtomicBool>) {
    let ended = Arc::clone(ended);
    webrtc.connect_notify(Some("connection-state"), move |w, _| {
        use gst_webrtc::WebRTCPeerConnectionState as S;
        let state = w.property::<S>("connection-state");
        tracing::debug!(?state, "WebRTC connection state");
        if matches!(state, S::Failed | S::Closed | S::Disconnected) {
            ended.store(true, Ordering::Relaxed);
        }
    });
}

/// appsrc ! vp8enc ! rtpvp8pay ! webrtcbin.sink_%u
fn send_chain(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    size: VideoSize,
    numbering: Numbering,
) -> Result<(gst_app::AppSrc, gst_video::VideoInfo), IoError> {
    let pt = numbering.vp8;
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
    caps.set_property("caps", rtp_caps(numbering));
    let chain = [appsrc.upcast_ref(), &encoder, &pay, &caps];
    pipeline.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let sink = webrtc
        .request_pad_simple("sink_%u")
        .ok_or_else(|| IoError::Pipeline("webrtcbin gave no sink pad".into()))?;
    caps.static_pad("src")
        .ok_or_else(|| IoError::Pipeline("capsfilter has no src pad".into()))?
        .link(&sink)
        .map_err(perr)?;
    Ok((appsrc, info))
}

/// VP8 RTP caps in the offer's numbering; the TWCC extension when the offer has it.
fn rtp_caps(numbering: Numbering) -> gst::Caps {
    let mut caps = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", "VP8")
        .field("payload", numbering.vp8 as i32)
        .field("clock-rate", 90000i32);
    if let Some(id) = numbering.twcc {
        caps = caps.field(format!("extmap-{id}"), TWCC);
    }
    caps.build()
}

/// About 0.1 bit per pixel at the frame rate (2 Mbit/s at 720p30), at least 300 kbit/s.
fn bitrate(size: VideoSize) -> i32 {
    let bits = size.width as u64 * size.height as u64 * size.fps as u64 / 14;
    bits.clamp(300_000, 20_000_000) as i32
}

/// rtpvp8depay ! vp8dec ! videoconvert ! videoscale ! I420 WxH ! appsink; webrtcbin's
/// first video pad is linked to it when it appears, other pads (audio) to a fakesink.
/// A frame with a lost packet is dropped and a keyframe asked for (PLI), rather than
/// decoded into smeared blocks that last until the sender's next keyframe.
fn receive_chain(
    pipeline: &gst::Pipeline,
    webrtc: &gst::Element,
    size: VideoSize,
) -> Result<gst_app::AppSink, IoError> {
    let depay = make("rtpvp8depay", "depay")?;
    depay.set_property("wait-for-keyframe", true);
    depay.set_property("request-keyframe", true);
    let decode = make("vp8dec", "decode")?;
    let convert = make("videoconvert", "convert")?;
    let scale = make("videoscale", "scale")?;
    let caps = make("capsfilter", "size")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", size.width as i32)
            .field("height", size.height as i32)
            .build(),
    );
    let appsink = gst_app::AppSink::builder()
        .name("in")
        .max_buffers(1)
        .drop(true)
        .sync(false)
        .build();
    appsink.set_property("async", false);
    let chain = [&depay, &decode, &convert, &scale, &caps, appsink.upcast_ref()];
    pipeline.add_many(chain).map_err(perr)?;
    gst::Element::link_many(chain).map_err(perr)?;
    let depay_sink = depay
        .static_pad("sink")
        .ok_or_else(|| IoError::Pipeline("rtpvp8depay has no sink pad".into()))?;
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
        if video && !depay_sink.is_linked() {
            if let Err(e) = pad.link(&depay_sink) {
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

/// The pipeline both halves of a peer share; stopped when the last half goes.
struct Shared {
    pipeline: gst::Pipeline,
    ended: Arc<AtomicBool>,
}

impl Shared {
    fn ended(&self) -> bool {
        if let Some(e) = crate::io::first_bus_error(&self.pipeline) {
            tracing::info!(error = %e, "WebRTC peer failed");
            self.ended.store(true, Ordering::Relaxed);
        }
        self.ended.load(Ordering::Relaxed)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The frames a peer sends us. End of stream when the connection ends, the job stops,
/// or no frame came for `PeerInput::SILENCE` (a closed tab stops sending).
pub struct PeerInput {
    appsink: gst_app::AppSink,
    shared: Arc<Shared>,
    info: Option<gst_video::VideoInfo>,
    index: u64,
    keep: Option<KeepSize>,
    last_frame: Instant,
    stop: Option<Arc<AtomicBool>>,
}

impl PeerInput {
    /// A peer that delivers nothing for this long has gone (first frames included).
    pub const SILENCE: Duration = Duration::from_secs(10);

    /// Ends the stream when `stop` is set too.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> PeerInput {
        self.stop = Some(stop);
        self
    }
}

impl FrameSource for PeerInput {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        loop {
            if self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                || self.shared.ended()
                || self.last_frame.elapsed() > Self::SILENCE
            {
                return Ok(None);
            }
            let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            else {
                continue;
            };
            let Some(frame) = frame_from_sample(&sample, &mut self.info, self.index)? else {
                continue;
            };
            self.index += 1;
            self.last_frame = Instant::now();
            let (w, h) = (frame.picture.width(), frame.picture.height());
            let keep = self.keep.get_or_insert_with(|| KeepSize::new(w, h));
            return Ok(Some(keep.keep(frame)));
        }
    }
}

/// The processed frames we send the peer. A peer that went away ends the run quietly:
/// its input ends too.
pub struct PeerOutput {
    appsrc: gst_app::AppSrc,
    info: gst_video::VideoInfo,
    retime: Retime,
    shared: Arc<Shared>,
}

impl FrameSink for PeerOutput {
    fn push(&mut self, frame: Frame) -> Result<(), PipelineError> {
        if self.shared.ended.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut buffer = buffer_from_frame(&frame, &self.info).map_err(PipelineError::from)?;
        let now = self
            .shared
            .pipeline
            .current_running_time()
            .map_or(0, |t| t.nseconds());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(self.retime.map(frame.pts, now)));
        }
        if self.appsrc.push_buffer(buffer).is_err() {
            self.shared.ended.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102 98\r\nc=IN IP4 0.0.0.0\r\n\
        a=extmap:2 urn:ietf:params:rtp-hdrext:toffset\r\n\
        a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=rtpmap:102 H264/90000\r\na=rtpmap:98 VP8/90000\r\n";

    fn parse(text: &str) -> Result<Numbering, OfferError> {
        numbering(&gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).unwrap())
    }

    #[test]
    fn the_offers_numbering_is_used() {
        let n = parse(OFFER).unwrap();
        assert_eq!(n, Numbering { vp8: 98, twcc: Some(5) });
        let caps = rtp_caps(n);
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<i32>("payload").unwrap(), 98);
        assert_eq!(s.get::<&str>("extmap-5").unwrap(), TWCC);
        let no_twcc = OFFER.replace("a=extmap:5 ", "a=extmap:5 urn:x ");
        assert_eq!(parse(&no_twcc).unwrap().twcc, None);
        let h264_only = OFFER.replace("a=rtpmap:98 VP8/90000\r\n", "");
        assert!(matches!(parse(&h264_only), Err(OfferError::NoVp8)));
        let audio = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
        assert!(matches!(parse(audio), Err(OfferError::NoVideo)));
    }

    #[test]
    fn bitrate_follows_the_size() {
        let hd = bitrate(VideoSize { width: 1280, height: 720, fps: 30 });
        assert!((1_800_000..2_100_000).contains(&hd), "{hd}");
        assert_eq!(bitrate(VideoSize { width: 16, height: 16, fps: 1 }), 300_000);
    }
}
