//! WebRTC peers: GStreamer's webrtcbin answers an SDP offer from the browser page, a
//! WHIP publisher or a WHEP player. Non-trickle, as WHIP/WHEP define it: the answer goes
//! back once ICE gathering is complete, so it carries every candidate.
//!
//! ```text
//! receive:  webrtcbin ─ RTP ─► decodebin (VP8/H.264) ! videoconvert ! videoscale ! I420 WxH ! appsink(latest wins)
//! send:     appsrc(leaky) | intervideosrc ! vp8enc(realtime, no lag) ! rtpvp8pay ─► webrtcbin
//! ```
//!
//! The page's peer does both on one transceiver (the camera goes up, the processed video
//! comes back); a WHIP publisher only sends to us (`whip.rs`); a WHEP player only
//! receives, from the run's `intervideosink` channel, one encoder per player. SDP is read
//! and written by GStreamer (`offer.rs`).

mod chains;
mod offer;
mod whip;

pub use offer::{OfferError, OfferVideo, TWCC};
pub use whip::{PublishError, Publishing, WhipInput};

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

/// Who is on the other side, and so what our side does with video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The browser page: we receive its camera and send the processed video back.
    Page,
    /// A WHIP publisher: we receive.
    Publisher,
    /// A WHEP player: we send what the run writes to this `intervideosink` channel.
    Player { channel: String },
}

/// The processing size: incoming video is scaled to it, outgoing video has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSize {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Why a peer could not answer: the offer (the peer's mistake) or our side.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error(transparent)]
    Io(#[from] IoError),
}

/// One WebRTC connection in its own pipeline.
pub struct Peer {
    shared: Arc<Shared>,
    webrtc: gst::Element,
    /// Decoded incoming video (page, publisher).
    incoming: Option<gst_app::AppSink>,
    /// The processed video to send (page) and its layout.
    outgoing: Option<(gst_app::AppSrc, gst_video::VideoInfo)>,
}

impl Peer {
    /// Answers `offer` (SDP text): builds the peer's pipeline, sets the offer, creates
    /// the answer and waits up to 5 s for ICE gathering. Returns the peer and the
    /// answer's SDP text.
    pub fn answer(
        offer: &str,
        role: &Role,
        size: VideoSize,
    ) -> Result<(Peer, String), AnswerError> {
        init()?;
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|e| OfferError::NotSdp(e.to_string()))?;
        let video = OfferVideo::read(&sdp)?;
        let peer = Peer::build(role, size, &video)?;
        let answer = peer.negotiate(sdp)?;
        Ok((peer, answer))
    }

    fn build(role: &Role, size: VideoSize, video: &OfferVideo) -> Result<Peer, AnswerError> {
        let pipeline = gst::Pipeline::with_name("segsynth-webrtc");
        let webrtc = make("webrtcbin", "webrtc")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        // Jitter buffer: enough for a LAN, not a queue (live frames are dropped, not held).
        webrtc.set_property("latency", 50u32);
        pipeline.add(&webrtc).map_err(crate::io::perr)?;
        let ended = Arc::new(AtomicBool::new(false));
        watch_connection(&webrtc, &ended);
        let (mut incoming, mut outgoing) = (None, None);
        match role {
            Role::Page => {
                let feed = chains::app_feed(size)?;
                chains::send_chain(
                    &pipeline,
                    &webrtc,
                    feed.0.upcast_ref(),
                    size,
                    video.send_caps()?,
                )?;
                outgoing = Some(feed);
                incoming = Some(chains::receive_chain(&pipeline, &webrtc, size)?);
            }
            Role::Publisher => {
                if video.receivable.is_empty() {
                    return Err(OfferError::NoCodec.into());
                }
                let _ = webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[
                        &gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly,
                        &video.receivable,
                    ],
                );
                incoming = Some(chains::receive_chain(&pipeline, &webrtc, size)?);
            }
            Role::Player { channel } => {
                let feed = chains::inter_feed(channel, size)?;
                chains::send_chain(&pipeline, &webrtc, &feed, size, video.send_caps()?)?;
            }
        }
        // From here on the pipeline is stopped when the peer (or its last half) goes.
        let shared = Arc::new(Shared { pipeline, ended });
        shared
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| IoError::Pipeline("the WebRTC pipeline failed to start".into()))?;
        Ok(Peer {
            shared,
            webrtc,
            incoming,
            outgoing,
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
                tracing::warn!(
                    "ICE gathering did not complete in 5 s; answering with what it found"
                );
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

    /// Emits a webrtcbin action that takes a promise, and waits up to 5 s for its reply.
    fn call(
        &self,
        action: &str,
        description: Option<&gst_webrtc::WebRTCSessionDescription>,
    ) -> Result<Option<gst::Structure>, IoError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.map(|r| r.map(|s| s.to_owned())));
        });
        match description {
            Some(d) => self.webrtc.emit_by_name::<()>(action, &[d, &promise]),
            None => self
                .webrtc
                .emit_by_name::<()>(action, &[&None::<gst::Structure>, &promise]),
        }
        let reply = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(IoError::Pipeline(format!("webrtcbin {action}: {e:?}"))),
            Err(_) => {
                return Err(IoError::Pipeline(format!(
                    "webrtcbin {action}: no reply within 5 s"
                )));
            }
        };
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
        self.shared.ended()
    }

    /// Ends the connection (its pipeline stops when the peer and its halves are dropped).
    pub fn closer(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.shared.ended)
    }

    /// Splits the peer into its frame source and sink halves; the pipeline stops when
    /// both are dropped.
    pub fn into_parts(self) -> (Option<PeerInput>, Option<PeerOutput>) {
        let shared = self.shared;
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

/// Marks the peer ended when ICE/DTLS fail or the connection closes, or when every
/// RTP source the peer had has gone (timed out in webrtcbin's rtpbin, about 25 s without
/// RTCP, or said BYE): a WHEP player that vanished without a DELETE frees its place so.
/// A source that comes and goes while others stay (a browser's bandwidth probe) ends
/// nothing.
fn watch_connection(webrtc: &gst::Element, ended: &Arc<AtomicBool>) {
    let flag = Arc::clone(ended);
    webrtc.connect_notify(Some("connection-state"), move |w, _| {
        use gst_webrtc::WebRTCPeerConnectionState as S;
        let state = w.property::<S>("connection-state");
        tracing::debug!(?state, "WebRTC connection state");
        if matches!(state, S::Failed | S::Closed) {
            flag.store(true, Ordering::Relaxed);
        }
    });
    let rtpbin = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"));
    let Some(rtpbin) = rtpbin else {
        tracing::warn!("webrtcbin has no rtpbin child; only connection states end a peer");
        return;
    };
    let sources = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<u32>::new(),
    ));
    let seen = Arc::clone(&sources);
    rtpbin.connect("on-new-ssrc", false, move |args| {
        if let (Some(ssrc), Ok(mut s)) =
            (args.get(2).and_then(|v| v.get::<u32>().ok()), seen.lock())
        {
            s.insert(ssrc);
        }
        None
    });
    for signal in ["on-timeout", "on-bye-ssrc"] {
        let (flag, gone) = (Arc::clone(ended), Arc::clone(&sources));
        rtpbin.connect(signal, false, move |args| {
            let ssrc = args.get(2).and_then(|v| v.get::<u32>().ok());
            if let (Some(ssrc), Ok(mut s)) = (ssrc, gone.lock())
                && s.remove(&ssrc)
                && s.is_empty()
            {
                tracing::debug!(signal, "the WebRTC peer's last source went away");
                flag.store(true, Ordering::Relaxed);
            }
            None
        });
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

/// One look at a peer's incoming video.
pub enum Pull {
    Frame(Frame),
    /// Nothing within the timeout.
    Nothing,
    /// The connection ended, or it sent nothing for `PeerInput::SILENCE`.
    Ended,
}

impl PeerInput {
    /// Waits up to `timeout` for the next frame.
    pub fn pull(&mut self, timeout: Duration) -> Result<Pull, PipelineError> {
        if self.shared.ended() || self.last_frame.elapsed() > Self::SILENCE {
            return Ok(Pull::Ended);
        }
        let Some(sample) = self
            .appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
        else {
            return Ok(Pull::Nothing);
        };
        let Some(frame) = frame_from_sample(&sample, &mut self.info, self.index)? else {
            return Ok(Pull::Nothing);
        };
        self.index += 1;
        self.last_frame = Instant::now();
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let keep = self.keep.get_or_insert_with(|| KeepSize::new(w, h));
        Ok(Pull::Frame(keep.keep(frame)))
    }

    /// The connection ended.
    pub fn ended(&self) -> bool {
        self.shared.ended()
    }
}

impl FrameSource for PeerInput {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        loop {
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
            {
                return Ok(None);
            }
            match self.pull(Duration::from_millis(100))? {
                Pull::Frame(f) => return Ok(Some(f)),
                Pull::Nothing => {}
                Pull::Ended => return Ok(None),
            }
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
        let pts = frame.pts;
        let mut buffer = buffer_from_frame(frame, &self.info).map_err(PipelineError::from)?;
        let now = self
            .shared
            .pipeline
            .current_running_time()
            .map_or(0, |t| t.nseconds());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(
                self.retime.output_pts(pts, now),
            ));
        }
        if self.appsrc.push_buffer(buffer).is_err() {
            self.shared.ended.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}
