//! What segsynth reads from an SDP offer (parsed by GStreamer's `gst_sdp`): the payload
//! types the peer gave VP8 and H.264 and the id of the TWCC header extension, so our
//! side speaks the peer's numbering.

use gstreamer as gst;
use gstreamer_sdp as gst_sdp;

/// Why an SDP offer was refused, said for the peer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the body is not an SDP offer: {0}")]
    NotSdp(String),
    #[error("the offer has no video section; expected one m=video line")]
    NoVideo,
    #[error("the offer's video does not list VP8; expected VP8 among its codecs")]
    NoVp8,
    #[error("the offer's video lists neither VP8 nor H.264; expected one of them")]
    NoCodec,
}

/// The transport-wide congestion control header extension (TWCC). Browsers pace their
/// video by its feedback: with `transport-cc` negotiated but no extension id, Chrome sends
/// a few frames and then waits for feedback that never comes.
pub const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// What our side takes from the offer's first video section.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferVideo {
    /// VP8's payload type, what segsynth sends.
    pub vp8: Option<u32>,
    /// The TWCC extension's id.
    pub twcc: Option<u32>,
    /// The codecs segsynth decodes (VP8, H.264 packetization mode 1), in the offer's
    /// numbering: what a receive-only transceiver prefers.
    pub receivable: gst::Caps,
}

impl OfferVideo {
    pub fn read(offer: &gst_sdp::SDPMessageRef) -> Result<OfferVideo, OfferError> {
        let media = offer
            .medias()
            .find(|m| m.media() == Some("video"))
            .ok_or(OfferError::NoVideo)?;
        let twcc = media
            .attributes()
            .filter(|a| a.key() == "extmap")
            .filter_map(|a| a.value())
            .find_map(|v| {
                let (id, uri) = v.split_once(' ')?;
                let id = id.split('/').next()?.parse().ok()?;
                (uri.trim() == TWCC).then_some(id)
            });
        let mut vp8 = None;
        let mut receivable = gst::Caps::new_empty();
        for pt in media.formats().filter_map(|f| f.parse::<i32>().ok()) {
            let Some(caps) = media.caps_from_media(pt) else {
                continue;
            };
            let Some(s) = caps.structure(0) else { continue };
            let name = s
                .get::<&str>("encoding-name")
                .unwrap_or_default()
                .to_ascii_uppercase();
            let h264 = name == "H264" && s.get::<&str>("packetization-mode").ok() == Some("1");
            if name == "VP8" && vp8.is_none() {
                vp8 = Some(pt as u32);
            }
            if name == "VP8" || h264 {
                let mut s = s.to_owned();
                s.set_name("application/x-rtp");
                s.set("media", "video");
                if let Some(id) = twcc {
                    s.set(format!("extmap-{id}"), TWCC);
                }
                if let Some(c) = receivable.get_mut() {
                    c.append_structure(s);
                }
            }
        }
        Ok(OfferVideo {
            vp8,
            twcc,
            receivable,
        })
    }

    /// VP8 RTP caps in the offer's numbering (with TWCC when offered): what we send.
    pub fn send_caps(&self) -> Result<gst::Caps, OfferError> {
        let pt = self.vp8.ok_or(OfferError::NoVp8)?;
        let mut caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "VP8")
            .field("payload", pt as i32)
            .field("clock-rate", 90000i32);
        if let Some(id) = self.twcc {
            caps = caps.field(format!("extmap-{id}"), TWCC);
        }
        Ok(caps.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_sdp as gst_sdp;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102 98\r\nc=IN IP4 0.0.0.0\r\n\
        a=extmap:2 urn:ietf:params:rtp-hdrext:toffset\r\n\
        a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:98 VP8/90000\r\n";

    fn parse(text: &str) -> Result<OfferVideo, OfferError> {
        crate::io::init().unwrap();
        OfferVideo::read(&gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).unwrap())
    }

    #[test]
    fn the_offers_numbering_is_used() {
        let n = parse(OFFER).unwrap();
        assert_eq!((n.vp8, n.twcc), (Some(98), Some(5)));
        let caps = n.send_caps().unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<i32>("payload").unwrap(), 98);
        assert_eq!(s.get::<&str>("extmap-5").unwrap(), TWCC);
        // H.264 packetization mode 1 and VP8 can be received; mode 0 cannot.
        let names: Vec<_> = n
            .receivable
            .iter()
            .map(|s| {
                (
                    s.get::<i32>("payload").unwrap(),
                    s.get::<&str>("extmap-5").is_ok(),
                )
            })
            .collect();
        assert_eq!(names, vec![(102, true), (98, true)]);
        let no_twcc = OFFER.replace("a=extmap:5 ", "a=extmap:5 urn:x ");
        assert_eq!(parse(&no_twcc).unwrap().twcc, None);
        let h264_only = OFFER.replace("a=rtpmap:98 VP8/90000\r\n", "");
        assert!(matches!(
            parse(&h264_only).unwrap().send_caps(),
            Err(OfferError::NoVp8)
        ));
        let audio = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
        assert!(matches!(parse(audio), Err(OfferError::NoVideo)));
    }
}
