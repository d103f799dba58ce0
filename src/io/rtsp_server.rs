//! segsynth's own RTSP server: gst-rtsp-server on a GLib main loop, one shared media
//! (one encode) per mount, fed from the live output's intervideosink.

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

use crate::io::IoError;
use crate::io::encode::EncoderSettings;
use crate::io::source::live::LiveSettings;

pub fn serve(
    address: &str,
    port: u16,
    path: &str,
    channel: &str,
    s: &LiveSettings,
) -> Result<(), IoError> {
    let server = rtsp::RTSPServer::new();
    server.set_address(address);
    server.set_service(&port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( intervideosrc channel={channel} ! video/x-raw,framerate={fps}/1 ! videoconvert ! {x264} ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        fps = s.fps,
        x264 = EncoderSettings::live(s.fps).x264_launch()
    ));
    // One pipeline (one encode) shared by every client.
    factory.set_shared(true);
    if let (Some(user), Some(pass)) = (&s.rtsp_user, &s.rtsp_password) {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        auth.add_basic(rtsp::RTSPAuth::make_basic(user, pass).as_str(), &token);
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("user")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    let mounts = server
        .mount_points()
        .ok_or_else(|| IoError::Pipeline("RTSP server has no mount points".into()))?;
    mounts.add_factory(path, factory);
    server.attach(None).map_err(|e| {
        IoError::Pipeline(format!(
            "cannot serve RTSP on {address}:{port} (is the port in use?): {e}"
        ))
    })?;
    // The server lives as long as the process' main loop.
    std::mem::forget(server);
    Ok(())
}
