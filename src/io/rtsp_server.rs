//! segsynth's own RTSP server: gst-rtsp-server on a GLib main loop, one shared media
//! (one encode) per mount, fed from the live output's intervideosink.
//!
//! Safe on a network: basic auth from `--rtsp-user`/`--rtsp-password` (never from the
//! URL), RTSPS with `--tls-cert`/`--tls-key`, at most `--rtsp-max-clients` sessions
//! (the next SETUP gets 503 while the others play), and sessions of clients that went
//! silent are reaped after the session timeout. Refusals are logged at info level.

use std::path::PathBuf;

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gio;
use gstreamer_rtsp_server::glib;
use gstreamer_rtsp_server::gst_rtsp;
use gstreamer_rtsp_server::prelude::*;

use crate::endpoint::Credentials;
use crate::io::IoError;
use crate::io::encode::EncoderSettings;

pub const DEFAULT_MAX_CLIENTS: u32 = 16;
/// Seconds without a keep-alive (RTCP, GET_PARAMETER, any request) before a session
/// is reaped; RTSP's own default.
pub const DEFAULT_SESSION_TIMEOUT: u32 = 60;

/// How the served stream is protected and bounded.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub credentials: Option<Credentials>,
    pub max_clients: u32,
    pub session_timeout: u32,
    /// PEM certificate and key for RTSPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Set to the number of sessions being served, every second.
    pub clients: prometheus_client::metrics::gauge::Gauge,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            credentials: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            tls: None,
            clients: Default::default(),
        }
    }
}

/// Loads the TLS certificate and key, or says which file is wrong and why.
pub fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<gio::TlsCertificate, IoError> {
    for (what, p) in [("certificate", cert), ("key", key)] {
        if !p.is_file() {
            return Err(IoError::Tls(format!(
                "the TLS {what} {} does not exist; expected a PEM file",
                p.display()
            )));
        }
    }
    let refuse = |e: &dyn std::fmt::Display| {
        IoError::Tls(format!(
            "cannot use {} with {} as a TLS certificate and key: {e}; expected PEM files that belong together",
            cert.display(),
            key.display()
        ))
    };
    let certificate = gio::TlsCertificate::from_files(cert, key).map_err(|e| refuse(&e))?;
    handshake_with_itself(&certificate).map_err(|e| refuse(&e))?;
    Ok(certificate)
}

/// A TLS handshake of `certificate` (and its key) with itself over a local socket pair.
/// GIO loads a key that does not belong to the certificate without a word; served, every
/// client's handshake would then fail on the server's signature.
fn handshake_with_itself(certificate: &gio::TlsCertificate) -> Result<(), String> {
    use std::os::unix::net::UnixStream;
    let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
    let stream = |s: UnixStream| -> Result<gio::SocketConnection, String> {
        let socket = gio::Socket::from_fd(s.into()).map_err(|e| e.to_string())?;
        socket.set_timeout(5);
        Ok(socket.connection_factory_create_connection())
    };
    // The client on its own thread (GIO objects stay on the thread that made them).
    let client = std::thread::spawn(move || -> Result<(), String> {
        let tls = gio::TlsClientConnection::new(&stream(b)?, None::<&gio::SocketConnectable>)
            .map_err(|e| e.to_string())?;
        // Only the pair is checked here: its own certificate is accepted whoever signed it.
        tls.connect_accept_certificate(|_, _, _| true);
        tls.handshake(gio::Cancellable::NONE)
            .map_err(|e| e.to_string())
    });
    let server =
        gio::TlsServerConnection::new(&stream(a)?, Some(certificate)).map_err(|e| e.to_string())?;
    let answered = server.handshake(gio::Cancellable::NONE);
    drop(server);
    let spoke = client
        .join()
        .unwrap_or_else(|_| Err("the TLS check's thread failed".into()));
    spoke.and(answered.map_err(|e| e.to_string()))
}

/// A server of this process: one per address and port, with a mount per stream.
struct Served {
    address: String,
    port: u16,
    tls: bool,
    server: rtsp::RTSPServer,
    paths: Vec<String>,
}

/// The servers live as long as the process's main loop.
static SERVERS: std::sync::Mutex<Vec<Served>> = std::sync::Mutex::new(Vec::new());

/// Serves `channel` at rtsp(s)://address:port/path: a new mount on the process's server
/// for that address and port, started on first use.
pub fn serve(
    address: &str,
    port: u16,
    path: &str,
    channel: &str,
    fps: u32,
    tls: bool,
    s: &ServeSettings,
) -> Result<(), IoError> {
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( intervideosrc channel={channel} ! video/x-raw,framerate={fps}/1 ! videoconvert ! {x264} ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        x264 = EncoderSettings::live(fps).x264_launch()
    ));
    // One pipeline (one encode) shared by every client.
    factory.set_shared(true);
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let at = format!("{address}:{port}");
    let served = match servers
        .iter_mut()
        .position(|x| x.address == address && x.port == port)
    {
        Some(i) => &mut servers[i],
        None => {
            let server = start_server(address, port, tls, s)?;
            servers.push(Served {
                address: address.into(),
                port,
                tls,
                server,
                paths: Vec::new(),
            });
            let last = servers.len() - 1;
            &mut servers[last]
        }
    };
    if served.tls != tls {
        return Err(IoError::Pipeline(format!(
            "{at} serves rtsp:// and rtsps:// at once; expected one scheme per address and port"
        )));
    }
    if served.paths.iter().any(|p| p == path) {
        return Err(IoError::Pipeline(format!(
            "{at}{path} is served twice; expected one mount per stream"
        )));
    }
    allow(&factory, tls, s);
    let mounts = served
        .server
        .mount_points()
        .ok_or_else(|| IoError::Pipeline("RTSP server has no mount points".into()))?;
    mounts.add_factory(path, factory);
    served.paths.push(path.into());
    Ok(())
}

/// Takes `path` off the process's server for `address:port` (its stream ended): clients
/// then get 404 instead of an idle channel.
pub fn unserve(address: &str, port: u16, path: &str) {
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(served) = servers
        .iter_mut()
        .find(|x| x.address == address && x.port == port)
    {
        if let Some(mounts) = served.server.mount_points() {
            mounts.remove_factory(path);
        }
        served.paths.retain(|p| p != path);
    }
}

/// A server on `address:port`, its access and limits set, attached to the main loop.
fn start_server(
    address: &str,
    port: u16,
    tls: bool,
    s: &ServeSettings,
) -> Result<rtsp::RTSPServer, IoError> {
    let server = rtsp::RTSPServer::new();
    server.set_address(address);
    server.set_service(&port.to_string());
    if let Some(a) = auth(tls, s)? {
        server.set_auth(Some(&a));
    }
    let pool = server
        .session_pool()
        .ok_or_else(|| IoError::Pipeline("RTSP server has no session pool".into()))?;
    pool.set_max_sessions(s.max_clients);
    reap_and_count(&pool, s.clients.clone());
    log_clients(&server, &pool, s);
    server.connect_client_connected(|_, client| rtp_info_without_seq(client));
    server.attach(None).map_err(|e| {
        IoError::Pipeline(format!(
            "cannot serve RTSP on {address}:{port} (is the port in use?): {e}"
        ))
    })?;
    Ok(server)
}

/// The server's basic credentials and/or TLS certificate, when asked for.
fn auth(tls: bool, s: &ServeSettings) -> Result<Option<rtsp::RTSPAuth>, IoError> {
    let mut auth = None;
    if let Some(c) = &s.credentials {
        let a = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
            .build();
        a.add_basic(
            rtsp::RTSPAuth::make_basic(&c.user, c.password.expose()).as_str(),
            &token,
        );
        auth = Some(a);
    }
    if tls {
        let (cert, key) = s.tls.as_ref().ok_or_else(|| {
            IoError::Tls("rtsps:// needs --tls-cert and --tls-key (PEM files)".into())
        })?;
        let certificate = load_tls(cert, key)?;
        let a = auth.get_or_insert_with(rtsp::RTSPAuth::new);
        a.set_tls_certificate(Some(&certificate));
        if s.credentials.is_none() {
            // TLS without credentials: everyone who completes the handshake may watch.
            let mut token = rtsp::RTSPToken::builder()
                .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
                .build();
            a.set_default_token(Some(&mut token));
        }
    }
    Ok(auth)
}

/// Who may watch a mount: the credentials' role, or anyone through TLS; media inside the
/// TLS connection (interleaved), since RTP over UDP would leave it unencrypted beside an
/// encrypted control channel.
fn allow(factory: &rtsp::RTSPMediaFactory, tls: bool, s: &ServeSettings) {
    if tls {
        factory.set_protocols(gst_rtsp::RTSPLowerTrans::TCP);
    }
    if s.credentials.is_some() || tls {
        let role = if s.credentials.is_some() {
            "user"
        } else {
            "anonymous"
        };
        factory.add_role_from_structure(
            &gst::Structure::builder(role)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
}

/// Sessions whose clients went silent are reaped (the watch fires when a session may
/// have expired); the `rtsp_clients` gauge is sampled every second.
fn reap_and_count(pool: &rtsp::RTSPSessionPool, gauge: prometheus_client::metrics::gauge::Gauge) {
    // Reap sessions whose clients went silent: the watch fires when a session may
    // have expired, and cleanup removes the expired ones.
    pool.create_watch(
        Some("segsynth-session-reaper"),
        glib::Priority::DEFAULT,
        |pool| {
            let reaped = pool.cleanup();
            if reaped > 0 {
                tracing::info!(reaped, "RTSP sessions reaped after the session timeout");
            }
            glib::ControlFlow::Continue
        },
    )
    .attach(None);
    // Every server of the process samples its own count into one table; the gauge is
    // their sum (all mounts of the process).
    static COUNTS: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());
    let slot = {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        counts.push(0);
        counts.len() - 1
    };
    let counted = pool.clone();
    glib::timeout_add_seconds(1, move || {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        counts[slot] = counted.n_sessions() as i64;
        gauge.set(counts.iter().sum());
        glib::ControlFlow::Continue
    });
}

/// Clients' sessions get the timeout; refusals (the client limit, no or wrong
/// credentials) are logged with the peer's address.
fn log_clients(server: &rtsp::RTSPServer, pool: &rtsp::RTSPSessionPool, s: &ServeSettings) {
    let (timeout, max) = (s.session_timeout, s.max_clients);
    let expected = s.credentials.as_ref().map(|c| {
        format!(
            "Basic {}",
            rtsp::RTSPAuth::make_basic(&c.user, c.password.expose())
        )
    });
    let pool_for_clients = pool.clone();
    server.connect_client_connected(move |_, client| {
        let peer = peer_ip(client);
        tracing::debug!(%peer, "RTSP client connected");
        client.connect_new_session(move |_, session| session.set_timeout(timeout));
        let pool = pool_for_clients.clone();
        let p = peer.clone();
        client.connect_pre_setup_request(move |_, _| {
            if pool.n_sessions() >= max {
                tracing::info!(peer = %p, limit = max, "RTSP client refused: the client limit is reached (503)");
            }
            gst_rtsp::RTSPStatusCode::Ok
        });
        let expected = expected.clone();
        let p = peer.clone();
        client.connect_pre_describe_request(move |_, ctx| {
            if let Some(expected) = &expected {
                let given = ctx.request().and_then(authorization);
                match given {
                    None => tracing::info!(peer = %p, "RTSP client refused: no credentials (401)"),
                    Some(g) if g.trim() != expected => {
                        tracing::info!(peer = %p, "RTSP client refused: wrong user or password (401)")
                    }
                    Some(_) => {}
                }
            }
            gst_rtsp::RTSPStatusCode::Ok
        });
        client.connect_closed(move |_| tracing::debug!(peer = %peer, "RTSP client closed"));
    });
}

/// PLAY replies carry RTP-Info without `seq=` (url and rtptime stay).
///
/// gst-rtsp-server (1.22) adds a client's transport to the shared stream before it takes
/// the RTP-Info snapshot and queues the PLAY reply. When the media is already playing for
/// another client, RTP for the new client can go out over TCP (interleaved) ahead of the
/// reply, and the snapshot's seq (the first packet of the appsink's last buffer list) can
/// be older than the first packet that client got. rtspsrc hands that seq to
/// rtpjitterbuffer as seqnum-base only after the newer packets are queued, so the
/// jitterbuffer waits forever for a packet that never comes: RTP is received, nothing is
/// output, no error. Without seq the jitterbuffer starts at the first packet it gets.
fn rtp_info_without_seq(client: &rtsp::RTSPClient) {
    client.connect("send-message", false, |values| {
        let msg = values.get(2)?.get::<glib::Pointer>().ok()?;
        if msg.is_null() {
            return None;
        }
        let msg = msg as *mut gst_rtsp::ffi::GstRTSPMessage;
        let field = gst_rtsp::ffi::GST_RTSP_HDR_RTP_INFO;
        // SAFETY: "send-message" passes the GstRTSPMessage the client sends right after
        // the handlers return; it is valid and only used on this thread meanwhile. Header
        // values are owned by the message and copied before the headers are removed.
        unsafe {
            let mut infos = Vec::new();
            loop {
                let mut value: *mut std::ffi::c_char = std::ptr::null_mut();
                let res = gst_rtsp::ffi::gst_rtsp_message_get_header(
                    msg,
                    field,
                    &mut value,
                    infos.len() as i32,
                );
                if res != gst_rtsp::ffi::GST_RTSP_OK || value.is_null() {
                    break;
                }
                infos.push(
                    std::ffi::CStr::from_ptr(value)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            let stripped: Vec<String> = infos.iter().map(|i| strip_rtp_info_seq(i)).collect();
            if stripped == infos {
                return None;
            }
            gst_rtsp::ffi::gst_rtsp_message_remove_header(msg, field, -1);
            for info in stripped {
                if let Ok(info) = std::ffi::CString::new(info) {
                    gst_rtsp::ffi::gst_rtsp_message_add_header(msg, field, info.as_ptr());
                }
            }
        }
        None
    });
}

/// `url=...;seq=1;rtptime=2,url=...` without its `seq=` parameters (split the way
/// rtspsrc splits it: streams on ',', parameters on ';').
fn strip_rtp_info_seq(rtp_info: &str) -> String {
    rtp_info
        .split(',')
        .map(|stream| {
            stream
                .split(';')
                .filter(|p| !p.trim_start().starts_with("seq="))
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The client's IP address (the bindings do not expose the connection).
fn peer_ip(client: &rtsp::RTSPClient) -> String {
    use glib::translate::ToGlibPtr;
    // SAFETY: `client` is a live GstRTSPClient; the connection it returns is owned by
    // the client (transfer none) and only read here; the IP string is copied at once.
    unsafe {
        let conn = rtsp::ffi::gst_rtsp_client_get_connection(client.to_glib_none().0);
        if conn.is_null() {
            return String::new();
        }
        let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(conn);
        if ip.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(ip).to_string_lossy().into_owned()
    }
}

/// The request's Authorization header, if any (the bindings do not expose headers).
fn authorization(msg: &gst_rtsp::rtsp_message::RTSPMessage) -> Option<String> {
    use glib::translate::ToGlibPtr;
    let mut value: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: `msg` is a valid GstRTSPMessage for the duration of the call; the header
    // value is owned by the message (transfer none) and copied before returning.
    unsafe {
        let res = gst_rtsp::ffi::gst_rtsp_message_get_header(
            ToGlibPtr::<*const gst_rtsp::ffi::GstRTSPMessage>::to_glib_none(msg).0,
            gst_rtsp::ffi::GST_RTSP_HDR_AUTHORIZATION,
            &mut value,
            0,
        );
        if res != gst_rtsp::ffi::GST_RTSP_OK || value.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(value)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::strip_rtp_info_seq;

    #[test]
    fn rtp_info_loses_only_its_seq() {
        assert_eq!(
            strip_rtp_info_seq("url=rtsp://h:1/live/stream=0;seq=16347;rtptime=673661284"),
            "url=rtsp://h:1/live/stream=0;rtptime=673661284"
        );
        assert_eq!(
            strip_rtp_info_seq("url=a;seq=1;rtptime=2,url=b;rtptime=3; seq=4"),
            "url=a;rtptime=2,url=b;rtptime=3"
        );
        assert_eq!(strip_rtp_info_seq("url=a;rtptime=2"), "url=a;rtptime=2");
    }
}
