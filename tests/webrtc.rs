//! WebRTC with real peers: a real browser (Debian's chromium, driven by playwright, its
//! fake camera fed from a clip the test makes) on `segsynth web`, and GStreamer webrtcbin
//! clients publishing over WHIP and playing over WHEP (Debian 12 ships no whipsink or
//! whepsrc, so the clients speak WHIP/WHEP over plain HTTP with webrtcbin).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

use crate::live::{interrupt, port, proc_status, rss_kb, spawn_reading, start, wait_for};
use crate::support::*;

/// One HTTP/1.1 request; (status, headers, body).
fn http(method: &str, url: &str, body: &str, token: Option<&str>) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/sdp\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// What a test peer does.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// WHIP: sends a moving test pattern (VP8).
    Publish,
    /// WHIP as OBS does it: H.264 (constrained baseline, packetization mode 1).
    PublishH264,
    /// WHEP: receives and counts decoded frames.
    Play,
    /// The page's way: sends and receives on one transceiver.
    Both,
}

/// A webrtcbin peer that offers, POSTs the offer and applies the answer.
struct Peer {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    location: Option<String>,
    base: String,
    token: Option<String>,
}

impl Peer {
    /// Connects to `url` (`http://HOST:PORT/PATH`); Err is the refusal (status, body).
    fn connect(url: &str, mode: Mode, token: Option<&str>) -> Result<Peer, (u16, String)> {
        gst_init();
        let send = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 cpu-used=8 lag-in-frames=0 keyframe-max-dist=30 ! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w.";
        let h264 = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,packetization-mode=(string)1 ! w.";
        let description = match mode {
            Mode::Play => "webrtcbin name=w bundle-policy=max-bundle".to_string(),
            Mode::PublishH264 => format!("webrtcbin name=w bundle-policy=max-bundle {h264}"),
            _ => format!("webrtcbin name=w bundle-policy=max-bundle {send}"),
        };
        let pipeline = gst::Pipeline::new();
        pipeline
            .add(&gst::parse::bin_from_description(&description, false).unwrap())
            .unwrap();
        let webrtc = pipeline.by_name("w").unwrap();
        let frames = Arc::new(AtomicU64::new(0));
        if mode == Mode::Play {
            let caps = gst::Caps::from_str_ok(
                "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
            );
            webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        }
        if matches!(mode, Mode::Play | Mode::Both) {
            count_frames(&webrtc, &frames);
        }
        if mode == Mode::Both {
            // The page's transceiver: the camera goes up, the processed video comes back.
            let t = webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>(
                    "get-transceiver",
                    &[&0i32],
                )
                .expect("the send pad's transceiver");
            t.set_property(
                "direction",
                gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
            );
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let offer = offer(&webrtc);
        let (status, head, body) = http("POST", url, &offer, token);
        if status != 201 {
            let _ = pipeline.set_state(gst::State::Null);
            return Err((status, body));
        }
        let sdp = gst_sdp::SDPMessage::parse_buffer(body.as_bytes()).expect("answer SDP");
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
        let promise = gst::Promise::new();
        webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
        promise.wait();
        let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
        Ok(Peer {
            pipeline,
            frames,
            location: header(&head, "Location").map(str::to_string),
            base,
            token: token.map(str::to_string),
        })
    }

    /// Frames decoded so far.
    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Waits until `n` frames were decoded or `timeout` passed; returns the count.
    fn wait_frames(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.frames() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.frames()
    }

    /// DELETE on the session's location; the status.
    fn delete(&mut self) -> u16 {
        let location = self.location.take().expect("a Location header");
        let _ = self.pipeline.set_state(gst::State::Null);
        http(
            "DELETE",
            &format!("{}{location}", self.base),
            "",
            self.token.as_deref(),
        )
        .0
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

trait CapsExt {
    fn from_str_ok(s: &str) -> gst::Caps;
}

impl CapsExt for gst::Caps {
    fn from_str_ok(s: &str) -> gst::Caps {
        s.parse().expect("caps")
    }
}

/// Incoming video is decoded and counted (the first video pad; a panic here would
/// abort the test binary from a GStreamer thread, so failures are said, not unwrapped).
fn count_frames(webrtc: &gst::Element, frames: &Arc<AtomicU64>) {
    let frames = Arc::clone(frames);
    let linked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    webrtc.connect_pad_added(move |w, pad| {
        if pad.direction() != gst::PadDirection::Src || linked.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(parent) = w.parent().and_then(|p| p.downcast::<gst::Bin>().ok()) else {
            return;
        };
        let Ok(decode) = gst::parse::bin_from_description(
            "rtpvp8depay ! vp8dec ! fakesink name=count signal-handoffs=true sync=false",
            true,
        ) else {
            eprintln!("test peer: cannot build its decoder");
            return;
        };
        let n = Arc::clone(&frames);
        if let Some(count) = decode.by_name("count") {
            count.connect("handoff", false, move |_| {
                n.fetch_add(1, Ordering::Relaxed);
                None
            });
        }
        let added = parent.add(&decode).is_ok() && decode.sync_state_with_parent().is_ok();
        match decode.static_pad("sink").map(|s| pad.link(&s)) {
            Some(Ok(_)) if added => {}
            other => eprintln!(
                "test peer: cannot link {} to its decoder: {other:?}",
                pad.name()
            ),
        }
    });
}

/// Creates the offer, sets it and waits for ICE gathering: the offer's full text.
fn offer(webrtc: &gst::Element) -> String {
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    promise.wait();
    let offer = promise
        .get_reply()
        .unwrap()
        .get::<gst_webrtc::WebRTCSessionDescription>("offer")
        .unwrap();
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-local-description", &[&offer, &promise]);
    promise.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
        != gst_webrtc::WebRTCICEGatheringState::Complete
    {
        assert!(Instant::now() < deadline, "ICE gathering did not complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    webrtc
        .property::<gst_webrtc::WebRTCSessionDescription>("local-description")
        .sdp()
        .as_text()
        .unwrap()
}

/// A metric's value in a Prometheus text page (the first series whose line starts so).
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls `url` until `series` reads `want`, for up to `timeout`.
fn wait_metric(url: &str, series: &str, want: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let got = metric(&http("GET", url, "", None).2, series).unwrap_or(f64::NAN);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts `segsynth web` on a free port; (server, its base URL, stderr lines).
fn web(
    extra: &[&str],
) -> (
    crate::live::Running,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let p = port();
    let listen = format!("127.0.0.1:{p}");
    let mut cmd = Command::new(bin());
    cmd.args(["web", "--listen", &listen]).args(extra);
    let (child, rx) = spawn_reading(cmd);
    wait_for(&rx, "segsynth: open http://", Duration::from_secs(60));
    (child, format!("http://{listen}"), rx)
}

#[test]
fn whip_in_goes_out_over_whep_and_rtsp_at_once_with_a_token() {
    let (p, rtsp_port) = (port(), port());
    let base = format!("http://127.0.0.1:{p}");
    let token = "tok-3f9a1c77e2";
    let dir = tmpdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let (whip, whep, rtsp) = (
        format!("whip://127.0.0.1:{p}/cam"),
        format!("whep://127.0.0.1:{p}/out"),
        format!("rtsp://127.0.0.1:{rtsp_port}/live"),
    );
    let metrics_port = port().to_string();
    let (mut run, rx) = start(&[
        "-i",
        &whip,
        "-o",
        &whep,
        "-o",
        &rtsp,
        "--token-file",
        token_file.to_str().unwrap(),
        "--width",
        "320",
        "--height",
        "240",
        "--stats-every",
        "0",
        "--metrics",
        &metrics_port,
        "--content",
        "background=color:#00b140",
    ]);
    let mut seen = wait_for(&rx, "WHIP /cam, WHEP /out", Duration::from_secs(60));
    // No token, a wrong one: 401 before anything is built.
    for wrong in [None, Some("tok-wrong")] {
        let refused = Peer::connect(&format!("{base}/cam"), Mode::Publish, wrong).err();
        assert_eq!(refused.map(|r| r.0), Some(401), "{wrong:?}");
    }
    let mut publisher = Peer::connect(&format!("{base}/cam"), Mode::Publish, Some(token))
        .unwrap_or_else(|e| panic!("publish refused: {e:?}"));
    // One publisher at a time.
    let second = Peer::connect(&format!("{base}/cam"), Mode::Publish, Some(token)).err();
    assert_eq!(second.map(|r| r.0), Some(409));
    let mut player = Peer::connect(&format!("{base}/out"), Mode::Play, Some(token))
        .unwrap_or_else(|e| panic!("play refused: {e:?}"));
    let played = player.wait_frames(60, Duration::from_secs(30));
    assert!(
        played >= 60,
        "the WHEP player decoded {played} frames in 30 s"
    );
    let (rtsp_frames, size) = crate::live::client(&rtsp, 30, Duration::from_secs(30));
    assert_eq!(
        (rtsp_frames, size),
        (30, (320, 240)),
        "RTSP at the same time"
    );
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let page = http("GET", &metrics_url, "", None).2;
    assert_eq!(
        metric(
            &page,
            "segsynth_webrtc_peers{stream=\"main\",role=\"publisher\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "segsynth_webrtc_peers{stream=\"main\",role=\"player\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(player.delete(), 200);
    let players = wait_metric(
        &metrics_url,
        "segsynth_webrtc_peers{stream=\"main\",role=\"player\"}",
        0.0,
        Duration::from_secs(5),
    );
    assert_eq!(players, 0.0, "the player's DELETE frees it");
    assert_eq!(publisher.delete(), 200);
    seen.extend(wait_for(&rx, "the publisher left", Duration::from_secs(15)));
    // The next publisher is taken, and its video reaches a new player (counted at the
    // input: a player alone would also count the black frames of an idle channel).
    let frames_in = |page: &str| {
        metric(
            page,
            "segsynth_frames_total{stream=\"main\",direction=\"in\"}",
        )
        .unwrap_or(0.0)
    };
    let before = frames_in(&http("GET", &metrics_url, "", None).2);
    let _again = Peer::connect(&format!("{base}/cam"), Mode::Publish, Some(token))
        .unwrap_or_else(|e| panic!("second publisher refused: {e:?}"));
    let player = Peer::connect(&format!("{base}/out"), Mode::Play, Some(token)).unwrap();
    assert!(player.wait_frames(30, Duration::from_secs(30)) >= 30);
    let after = frames_in(&http("GET", &metrics_url, "", None).2);
    assert!(
        after >= before + 30.0,
        "the second publisher's frames: {before} -> {after}"
    );
    // An H.264 publisher (what OBS sends) is decoded too.
    let mut again = _again;
    assert_eq!(again.delete(), 200);
    seen.extend(wait_for(&rx, "the publisher left", Duration::from_secs(15)));
    let before = frames_in(&http("GET", &metrics_url, "", None).2);
    let _h264 = Peer::connect(&format!("{base}/cam"), Mode::PublishH264, Some(token))
        .unwrap_or_else(|e| panic!("H.264 publisher refused: {e:?}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = before;
    while after < before + 30.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = frames_in(&http("GET", &metrics_url, "", None).2);
    }
    assert!(
        after >= before + 30.0,
        "the H.264 publisher's frames: {before} -> {after}"
    );
    interrupt(&run);
    let status = run.wait().unwrap();
    seen.extend(rx.try_iter());
    let all = seen.join("\n");
    assert!(status.success(), "{all}");
    assert!(
        !all.contains(token),
        "the token leaked into the log:\n{all}"
    );
}

#[test]
fn web_sessions_are_limited_and_freed_without_leaking() {
    let (mut server, base, rx) = web(&[
        "--max-sessions",
        "1",
        "--width",
        "320",
        "--height",
        "240",
        "--content",
        "background=color:#00b140",
    ]);
    let url = format!("{base}/api/session");
    let metrics = format!("{base}/metrics");
    let first = Peer::connect(&url, Mode::Both, None).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        first.wait_frames(30, Duration::from_secs(30)) >= 30,
        "processed video comes back"
    );
    // The page's content edits: kinds and shipped generators, never server files.
    let content = format!(
        "{}{}/content",
        first.base,
        first.location.as_deref().unwrap()
    );
    assert_eq!(
        http("POST", &content, "background=color:#ff0000", None).0,
        204
    );
    let (status, _, body) = http("POST", &content, "background=image:/etc/hostname", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("command line"), "{body}");
    assert_eq!(
        http("POST", &content, "background=gan:/tmp/x.onnx", None).0,
        400
    );
    let refused = Peer::connect(&url, Mode::Both, None).err();
    assert_eq!(refused.as_ref().map(|r| r.0), Some(503), "{refused:?}");
    assert!(refused.unwrap().1.contains("--max-sessions"));
    drop(first); // a closed tab: its video stops, the connection fails
    assert_eq!(
        wait_metric(
            &metrics,
            "segsynth_web_sessions",
            0.0,
            Duration::from_secs(30)
        ),
        0.0
    );
    // Connect and disconnect; the RSS after the warm-up cycles stays flat.
    let cycles: usize = std::env::var("SEGSYNTH_WEB_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    let (mut rss, mut threads) = (Vec::new(), Vec::new());
    for i in 0..cycles {
        let mut peer =
            Peer::connect(&url, Mode::Both, None).unwrap_or_else(|e| panic!("cycle {i}: {e:?}"));
        assert!(
            peer.wait_frames(5, Duration::from_secs(20)) >= 5,
            "cycle {i}: no video back"
        );
        assert_eq!(peer.delete(), 200);
        assert_eq!(
            wait_metric(
                &metrics,
                "segsynth_web_sessions",
                0.0,
                Duration::from_secs(10)
            ),
            0.0,
            "cycle {i}"
        );
        rss.push(rss_kb(server.id()));
        threads.push(proc_status(server.id(), "Threads:"));
    }
    let page = http("GET", &metrics, "", None).2;
    assert_eq!(
        metric(&page, "segsynth_web_sessions_ended_total"),
        Some(cycles as f64 + 1.0),
        "{page}"
    );
    // A session that is not freed leaves its threads (GStreamer's, ICE's, the stages'):
    // the count after each cycle comes back to where it was. RSS only gets a loose bound
    // here (it warms up over the first ~50 cycles as glibc's arenas fill: see
    // scripts/web_cycles.sh for the long run that holds it flat).
    eprintln!("web cycles: {cycles}, threads after each {threads:?}, RSS kB {rss:?}");
    let settled = threads[cycles / 3..].iter().max().copied().unwrap_or(0);
    assert!(
        settled <= threads[0] + 2,
        "threads grew from {} to {settled} over {cycles} connect/disconnect cycles: {threads:?}",
        threads[0]
    );
    let last = rss[cycles - 1];
    assert!(
        last < rss[0] + 96 * 1024,
        "RSS grew from {} kB to {last} kB over {cycles} cycles",
        rss[0]
    );
    interrupt(&server);
    assert!(server.wait().unwrap().success());
    drop(rx);
}

#[test]
fn web_refuses_a_wrong_token_and_a_bad_offer_and_never_logs_the_token() {
    let token = "web-tok-8d2e61";
    let dir = tmpdir();
    let file = dir.path().join("t");
    std::fs::write(&file, token).unwrap();
    let (mut server, base, rx) = web(&["--token-file", file.to_str().unwrap(), "--log", "debug"]);
    let url = format!("{base}/api/session");
    let (status, head, _) = http("POST", &url, "v=0", None);
    assert_eq!(status, 401);
    assert_eq!(header(&head, "WWW-Authenticate"), Some("Bearer"));
    assert_eq!(http("POST", &url, "v=0", Some("web-tok-wrong")).0, 401);
    let (status, _, body) = http("POST", &url, "hello", Some(token));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("offer"), "{body}");
    let (status, _, body) = http("GET", &format!("{base}/api/config"), "", None);
    assert_eq!(status, 200);
    assert!(
        body.contains("\"auth\":true") && body.contains("gan:foliage"),
        "{body}"
    );
    // With a token set, the metrics need it too.
    assert_eq!(http("GET", &format!("{base}/metrics"), "", None).0, 401);
    let page = http("GET", &format!("{base}/metrics"), "", Some(token)).2;
    assert_eq!(
        metric(
            &page,
            "segsynth_web_refused_requests_total{reason=\"auth\"}"
        ),
        Some(3.0),
        "{page}"
    );
    interrupt(&server);
    assert!(server.wait().unwrap().success());
    let log: Vec<String> = rx.try_iter().collect();
    assert!(!log.join("\n").contains(token), "token in the log");
    // Beyond loopback without a token, or with an empty one: a usage error.
    let o = segsynth(&["web", "--listen", "0.0.0.0:1"]);
    assert_clean_error(&o, &["--token", "loopback", "--allow-anonymous"]);
    assert_eq!(o.status.code(), Some(2));
    let o = segsynth(&["web", "--listen", "0.0.0.0:1", "--token", " "]);
    assert_clean_error(&o, &["token", "empty"]);
    assert_eq!(o.status.code(), Some(2));
    // A key tiny_http's TLS cannot read (SEC1 EC) is named before anything is served.
    let (cert, _) = self_signed(dir.path());
    let ec = dir.path().join("ec.pem");
    let made = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&ec)
        .status()
        .expect("openssl makes an EC key");
    assert!(made.success());
    let o = segsynth(&[
        "web",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        ec.to_str().unwrap(),
    ]);
    assert_clean_error(&o, &["--tls-key", "PKCS#8", "openssl pkcs8"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The clip the browser's fake camera plays: the person photo, still, written as Y4M with
/// tightly packed planes (a decoder's padded buffers would shear Chromium's reader).
fn camera_clip(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mp4 = dir.join("person.mp4");
    let o = segsynth(&[
        "make-clip",
        mp4.to_str().unwrap(),
        "--photo",
        data("astronaut.jpg").to_str().unwrap(),
        "--width",
        "640",
        "--height",
        "480",
        "--frames",
        "300",
        "--still",
        "--no-audio",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y4m = dir.join("camera.y4m");
    launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=Y444 ! videoconvert ! video/x-raw,format=I420 ! y4menc ! filesink location={}",
        mp4.display(),
        y4m.display()
    ));
    (y4m, mp4)
}

/// Runs the page driver against `url`; (success, its JSON line, its stderr).
fn browse(
    url: &str,
    clip: &std::path::Path,
    frames: u32,
    extra: &[&str],
) -> (bool, String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = venv_python();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run ./segsynth.sh test (it installs Debian's chromium)"
    );
    let o = Command::new(&python)
        .arg(root.join("tests/browser/web_page.py"))
        .args(["--url", url, "--clip", clip.to_str().unwrap()])
        .args([
            "--frames",
            &frames.to_string(),
            "--timeout",
            "15",
            "--close-wait",
            "1",
        ])
        .args(extra)
        .output()
        .expect("run the browser driver");
    let report = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("browser: {report}");
    (o.status.success(), report, stderr(&o))
}

#[test]
fn the_page_plays_over_https_with_a_token_in_its_url() {
    let dir = tmpdir();
    let (clip, _) = camera_clip(dir.path());
    let (cert, key) = self_signed(dir.path());
    let token = "page-tok-51c0";
    let p = port();
    let listen = format!("127.0.0.1:{p}");
    let mut cmd = Command::new(bin());
    cmd.args([
        "web", "--listen", &listen, "--token", token, "--width", "320", "--height", "240",
    ])
    .args([
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let (mut server, rx) = spawn_reading(cmd);
    wait_for(
        &rx,
        &format!("segsynth: open https://{listen}/"),
        Duration::from_secs(60),
    );
    let url = format!("https://{listen}/?autostart#token={token}");
    let (ok, report, err) = browse(&url, &clip, 30, &["--ignore-https-errors"]);
    assert!(ok, "{report}\n{err}");
    // Without the token the page gets 401 and says so.
    let url = format!("https://{listen}/?autostart");
    let (ok, report, _) = browse(&url, &clip, 1, &["--ignore-https-errors", "--timeout", "4"]);
    assert!(!ok && report.contains("401"), "{report}");
    interrupt(&server);
    assert!(server.wait().unwrap().success());
    let log: Vec<String> = rx.try_iter().collect();
    assert!(!log.join("\n").contains(token), "token in the log");
}

/// Where the person is in the still camera clip (fractions of the frame): face, suit.
const PERSON: [(f32, f32, f32, f32); 2] = [(0.32, 0.1, 0.44, 0.22), (0.03, 0.62, 0.16, 0.78)];

#[test]
fn the_page_in_a_real_browser_shows_the_camera_with_the_background_replaced() {
    let dir = tmpdir();
    let (clip, mp4) = camera_clip(dir.path());
    let (mut server, base, rx) = web(&["--content", "background=color:#00b140"]);
    let (shot, blurred) = (dir.path().join("out.png"), dir.path().join("blurred.png"));
    let (ok, report, err) = browse(
        &format!("{base}/?autostart"),
        &clip,
        100,
        &[
            "--screenshot",
            shot.to_str().unwrap(),
            "--switch",
            "background=blur",
            "--screenshot2",
            blurred.to_str().unwrap(),
        ],
    );
    assert!(ok, "the page played too few frames: {report}\n{err}");
    assert!(report.contains("\"reached\": true"), "{report}");
    // The screenshot against the clip: background green, the person as in the clip.
    let (tw, th) = (64, 48);
    let clip_rgb = probe(&mp4, &[10], tw, th).thumb(10).to_vec();
    let thumb = |path: &std::path::Path| {
        let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        image::imageops::resize(
            &img.to_rgb8(),
            tw as u32,
            th as u32,
            image::imageops::FilterType::Triangle,
        )
        .into_raw()
    };
    let shot_rgb = thumb(&shot);
    let distance = |a: [f32; 3], b: [f32; 3]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    let green = [0.0, 177.0, 64.0];
    for corner in [(0.02, 0.02, 0.12, 0.12), (0.88, 0.02, 0.98, 0.12)] {
        let got = region_mean(&shot_rgb, (tw, th), corner);
        let was = region_mean(&clip_rgb, (tw, th), corner);
        assert!(
            distance(got, green) < 30.0,
            "background at {corner:?} is {got:?}, expected green"
        );
        assert!(
            distance(was, green) > 60.0,
            "the clip was already green at {corner:?}: {was:?}"
        );
    }
    for person in PERSON {
        let got = region_mean(&shot_rgb, (tw, th), person);
        let was = region_mean(&clip_rgb, (tw, th), person);
        assert!(
            distance(got, was) < 25.0,
            "person at {person:?}: {got:?} vs the clip's {was:?}"
        );
    }
    // The picker's change went through the live edit: the background is blurred now.
    let blurred_rgb = thumb(&blurred);
    let corner = (0.88, 0.02, 0.98, 0.12);
    let got = region_mean(&blurred_rgb, (tw, th), corner);
    assert!(
        distance(got, green) > 60.0,
        "still green after picking blur: {got:?}"
    );
    assert!(
        distance(got, region_mean(&clip_rgb, (tw, th), corner)) < 40.0,
        "blurred wall {got:?}"
    );
    // The closed tab ended the session: its DELETE on pagehide, well before the 10 s
    // silence that would end it too.
    let metrics = format!("{base}/metrics");
    assert_eq!(
        wait_metric(
            &metrics,
            "segsynth_web_sessions",
            0.0,
            Duration::from_secs(3)
        ),
        0.0
    );
    assert_eq!(
        wait_metric(
            &metrics,
            "segsynth_web_sessions_ended_total",
            1.0,
            Duration::from_secs(5)
        ),
        1.0
    );
    interrupt(&server);
    assert!(server.wait().unwrap().success());
    drop(rx);
}
