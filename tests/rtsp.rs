//! RTSP on a network: credentials that never leave the process, auth that refuses
//! wrong passwords on the same running server, client limits, session reaping, RTSPS,
//! publishing to a real RECORD server, and clients that connect together (issue 15).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::live::{Running, interrupt, port, rss_kb, start, wait_for};
use crate::support::*;

/// An rtspsrc client in this process: frames it decoded and the error it got, if any.
struct Client {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl Client {
    fn new(url: &str, user: Option<(&str, &str)>) -> Client {
        Self::with_caps(url, user, "video/x-raw")
    }

    /// A client whose sink takes `caps` (converted and scaled to them).
    fn with_caps(url: &str, user: Option<(&str, &str)>, caps: &str) -> Client {
        gst_init();
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc name=src protocols=tcp latency=0 ! decodebin ! videoconvert ! videoscale ! {caps} ! appsink name=s sync=false",
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline.by_name("src").unwrap();
        src.set_property("location", url);
        if let Some((u, p)) = user {
            src.set_property("user-id", u);
            src.set_property("user-pw", p);
        }
        let sink = pipeline
            .by_name("s")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        sink.set_property("async", false);
        pipeline.set_state(gst::State::Playing).unwrap();
        Client { pipeline, sink }
    }

    /// Frames received within `timeout`, up to `want`, and the first bus error.
    fn frames(&self, want: usize, timeout: Duration) -> (usize, Option<String>) {
        let deadline = Instant::now() + timeout;
        let mut n = 0;
        while n < want && Instant::now() < deadline {
            if self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
                .is_some()
            {
                n += 1;
            } else if let Some(e) = self.error() {
                return (n, Some(e));
            }
        }
        (n, self.error())
    }

    /// The next `n` frames' first plane (luma, for GRAY8 caps), within `timeout`.
    fn planes(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut planes = Vec::new();
        while planes.len() < n && Instant::now() < deadline {
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
                && let Some(buffer) = sample.buffer()
            {
                planes.push(buffer.map_readable().unwrap().to_vec());
            }
        }
        planes
    }

    fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                return Some(format!("{} {:?}", e.error(), e.debug()));
            }
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn lines(rx: &std::sync::mpsc::Receiver<String>) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(300));
    rx.try_iter().collect()
}

const SMALL: [&str; 6] = ["--width", "320", "--height", "180", "--stats-every", "0"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-i", "test:"];
    v.extend_from_slice(&SMALL);
    v.extend_from_slice(extra);
    v
}

#[test]
fn half_credentials_and_open_network_serving_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-o", "rtsp://127.0.0.1:8554/x", "--rtsp-user", "u"],
            "--rtsp-user was given without --rtsp-password",
        ),
        (
            &["-o", "rtsp://127.0.0.1:8554/x", "--rtsp-password", "p"],
            "was given without --rtsp-user",
        ),
        (
            &["-o", "x.mkv", "--input-user", "u"],
            "--input-user was given without --input-password",
        ),
        (&["-o", "rtsp://0.0.0.0:8554/x"], "--rtsp-allow-anonymous"),
        (&["-o", "rtsps://127.0.0.1:8554/x"], "--tls-cert"),
        (
            &["-o", "rtsp://u:p@127.0.0.1:8554/x"],
            "--rtsp-user/--rtsp-password",
        ),
    ];
    for (extra, needle) in cases {
        let mut a = vec!["run", "-i", "test:"];
        a.extend_from_slice(extra);
        let o = segsynth(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert_clean_error(&o, &[needle]);
    }
}

#[test]
fn secrets_never_leave_the_process() {
    let (cam_pw, view_pw, pub_pw) = ("CamPw-7f3a9", "ViewPw-2c81e", "PubPw-9d04b");
    let dir = tmpdir();
    let pw_file = dir.path().join("viewer.pw");
    std::fs::write(&pw_file, format!("{view_pw}\n")).unwrap();
    // A camera that asks for credentials.
    let cam_port = port();
    let cam_url = format!("rtsp://127.0.0.1:{cam_port}/cam");
    let (camera, crx) = start(&args(&[
        "-o",
        &cam_url,
        "--rtsp-user",
        "cam",
        "--rtsp-password",
        cam_pw,
    ]));
    wait_for(&crx, "serving", Duration::from_secs(30));
    // The relay: camera credentials in the URL, served password from a file, and a
    // publish target (nothing listens there) with credentials in its URL.
    let out_port = port();
    let input = format!("rtsp://cam:{cam_pw}@127.0.0.1:{cam_port}/cam");
    let publish = format!("rtsp-publish://pub:{pub_pw}@127.0.0.1:{}/x", port());
    let out = format!("rtsp://127.0.0.1:{out_port}/out");
    let mut relay_args = SMALL[..4].to_vec();
    relay_args.extend([
        "-i",
        &input,
        "-o",
        &out,
        "-o",
        &publish,
        "--rtsp-user",
        "viewer",
        "--rtsp-password-file",
        pw_file.to_str().unwrap(),
        "--stats-every",
        "1",
        "--log",
        "debug",
    ]);
    let (mut relay, rx) = start(&relay_args);
    let mut seen = wait_for(&rx, "serving", Duration::from_secs(30));
    // Nobody else can read the passwords from the process list.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", relay.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        !cmdline.contains(view_pw),
        "served password on the command line"
    );
    // The camera goes away: the relay reconnects (and says so) several times.
    drop(camera);
    std::thread::sleep(Duration::from_secs(6));
    interrupt(&relay);
    let _ = relay.wait();
    seen.extend(lines(&rx));
    let all = seen.join("\n");
    assert!(all.contains("reconnecting"), "the input reconnected: {all}");
    assert!(
        all.contains("cam:***@127.0.0.1"),
        "URLs are shown redacted: {all}"
    );
    for pw in [cam_pw, view_pw, pub_pw] {
        assert!(!all.contains(pw), "password {pw} printed:\n{all}");
    }
    // A wrong camera password: the error path names the input, not the password.
    let bad = format!("rtsp://cam:{cam_pw}-wrong@127.0.0.1:1/cam");
    let o = segsynth(
        &[
            &["run", "-o", "x.mkv", "--duration", "3"][..],
            &args(&[])[2..],
            &["-i", &bad],
        ]
        .concat(),
    );
    assert!(!stderr(&o).contains(cam_pw), "{}", stderr(&o));
    let _ = std::fs::remove_file("x.mkv");
}

#[test]
fn a_wrong_password_is_refused_and_the_right_one_plays_on_the_same_server() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/private");
    let (child, rx) = start(&args(&[
        "-o",
        &url,
        "--rtsp-user",
        "viewer",
        "--rtsp-password",
        "s3cret",
        "--log",
        "info",
    ]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    let (n, err) = Client::new(&url, Some(("viewer", "wrong"))).frames(1, Duration::from_secs(10));
    assert_eq!(n, 0, "no frames with a wrong password");
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("Unauthorized") || e.contains("401")),
        "{err:?}"
    );
    let (n, err) = Client::new(&url, None).frames(1, Duration::from_secs(10));
    assert_eq!(n, 0, "no frames without credentials: {err:?}");
    let (n, err) =
        Client::new(&url, Some(("viewer", "s3cret"))).frames(10, Duration::from_secs(20));
    assert!(n >= 10, "the right password plays: {n} frames, {err:?}");
    interrupt(&child);
    let log = lines(&rx).join("\n");
    assert!(log.contains("refused: wrong user or password"), "{log}");
    assert!(log.contains("refused: no credentials"), "{log}");
}

#[test]
fn the_client_limit_refuses_the_next_client_while_the_others_play() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (child, rx) = start(&args(&[
        "-o",
        &url,
        "--rtsp-max-clients",
        "2",
        "--log",
        "info",
    ]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    let a = Client::new(&url, None);
    let b = Client::new(&url, None);
    assert!(a.frames(5, Duration::from_secs(20)).0 >= 5);
    assert!(b.frames(5, Duration::from_secs(20)).0 >= 5);
    let (n, err) = Client::new(&url, None).frames(1, Duration::from_secs(10));
    assert_eq!(n, 0, "the third client is refused ({err:?})");
    assert!(err.is_some(), "the refusal is an RTSP error for the client");
    // The first two keep playing.
    assert!(a.frames(10, Duration::from_secs(10)).0 >= 10);
    assert!(b.frames(10, Duration::from_secs(10)).0 >= 10);
    interrupt(&child);
    let log = lines(&rx).join("\n");
    assert!(
        log.contains("client limit is reached"),
        "refusal logged at info: {log}"
    );
}

/// RTSP over a plain TCP stream: the request, then the status line and headers.
fn request(s: &mut TcpStream, text: &str) -> String {
    s.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// DESCRIBE `url` (which must answer 200), then SETUP its video stream with `transport`:
/// the SETUP reply.
fn describe_and_setup(s: &mut TcpStream, url: &str, transport: &str) -> String {
    let d = request(s, &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
    assert!(d.starts_with("RTSP/1.0 200"), "{d}");
    let control = d
        .lines()
        .find(|l| l.starts_with("a=control:") && l.contains("stream"))
        .map(|l| l.trim_start_matches("a=control:").trim().to_string())
        .unwrap();
    request(
        s,
        &format!("SETUP {url}/{control} RTSP/1.0\r\nCSeq: 2\r\nTransport: {transport}\r\n\r\n"),
    )
}

/// The RTSP reply on `s` after `text`, skipping interleaved RTP/RTCP frames (`$`, channel,
/// 16-bit length) that may come before it on a media already playing.
fn reply_skipping_interleaved(s: &mut TcpStream, text: &str) -> String {
    s.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut first = [0u8; 1];
    loop {
        reader.read_exact(&mut first).unwrap();
        if first[0] != b'$' {
            break;
        }
        let mut head = [0u8; 3];
        reader.read_exact(&mut head).unwrap();
        let mut frame = vec![0; u16::from_be_bytes([head[1], head[2]]) as usize];
        reader.read_exact(&mut frame).unwrap();
    }
    let mut reply = String::from(first[0] as char);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        reply.push_str(&line);
    }
    reply
}

/// A server on a free port with one viewer playing: (port, url, server, viewer).
fn serving_with_a_viewer() -> (u16, String, Running, Client) {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (child, rx) = start(&args(&["-o", &url]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    let watcher = Client::new(&url, None);
    assert!(watcher.frames(5, Duration::from_secs(20)).0 >= 5);
    (p, url, child, watcher)
}

/// A client that joins a stream another client already plays gets a PLAY reply whose
/// RTP-Info has no `seq`: over TCP its first RTP can arrive before the reply, and the
/// seq gst-rtsp-server reports can be older than that packet, which left rtspsrc's
/// jitterbuffer waiting forever (1 client in several hundred got RTP and no frame).
#[test]
fn play_replies_carry_rtp_info_without_seq() {
    let (p, url, child, watcher) = serving_with_a_viewer();
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let setup = describe_and_setup(&mut s, &url, "RTP/AVP/TCP;unicast;interleaved=0-1");
    assert!(setup.starts_with("RTSP/1.0 200"), "{setup}");
    let session = setup
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|v| v.split(';').next().unwrap().trim().to_string())
        .unwrap();
    let play = reply_skipping_interleaved(
        &mut s,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    );
    assert!(play.starts_with("RTSP/1.0 200"), "{play}");
    let info = play
        .lines()
        .find_map(|l| l.strip_prefix("RTP-Info: "))
        .unwrap_or_else(|| panic!("no RTP-Info: {play}"));
    assert!(info.contains("url=") && info.contains("rtptime="), "{info}");
    assert!(!info.contains("seq="), "RTP-Info still has seq: {info}");
    drop(watcher);
    interrupt(&child);
}

#[test]
fn a_client_that_goes_away_frees_its_place_and_sessions_carry_the_timeout() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (child, rx) = start(&args(&[
        "-o",
        &url,
        "--rtsp-max-clients",
        "1",
        "--rtsp-session-timeout",
        "7",
    ]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    // A client that sets up a session and then dies (no TEARDOWN).
    let mut gone = TcpStream::connect(("127.0.0.1", p)).unwrap();
    let s = describe_and_setup(&mut gone, &url, "RTP/AVP;unicast;client_port=47000-47001");
    assert!(s.starts_with("RTSP/1.0 200"), "{s}");
    assert!(
        s.contains("timeout=7"),
        "the session timeout is announced: {s}"
    );
    // The limit is reached: another client is refused while the session lives...
    let (n, _) = Client::new(&url, None).frames(1, Duration::from_secs(1));
    assert_eq!(n, 0, "refused while the session holds the only place");
    // ...and gets in once the first client is gone (the server notices within moments).
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (0, None);
    while Instant::now() < deadline && last.0 < 5 {
        last = Client::new(&url, None).frames(5, Duration::from_secs(5));
    }
    assert!(
        last.0 >= 5,
        "the dead client's session was reaped: {last:?}"
    );
    interrupt(&child);
}

#[test]
fn rtsps_serves_over_tls_and_a_bad_certificate_is_a_clear_error() {
    let dir = tmpdir();
    let (cert, key) = self_signed(dir.path());
    let p = port();
    let url = format!("rtsps://127.0.0.1:{p}/live");
    let (child, rx) = start(&args(&[
        "-o",
        &url,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]));
    wait_for(&rx, "serving rtsps://", Duration::from_secs(30));
    // A TLS client that accepts the self-signed certificate explicitly reads clean,
    // contiguous RTP; a plain RTSP client gets nothing.
    let probe = Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsps_probe.py"))
        .arg(p.to_string())
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&probe.stdout).to_string()
        + &String::from_utf8_lossy(&probe.stderr);
    assert!(probe.status.success(), "RTSPS stream: {text}");
    let (n, _) =
        Client::new(&format!("rtsp://127.0.0.1:{p}/live"), None).frames(1, Duration::from_secs(3));
    assert_eq!(n, 0, "no plain RTSP on the RTSPS port");
    interrupt(&child);
    // A real private key that does not belong to the certificate: refused before serving.
    let other = dir.path().join("other.pem");
    let o = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&other)
        .output()
        .expect("openssl makes the second key");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read_to_string(&other)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let o = segsynth(
        &[
            &["run"][..],
            &args(&[
                "-o",
                &url,
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                other.to_str().unwrap(),
            ]),
        ]
        .concat(),
    );
    assert_clean_error(&o, &["TLS", "other.pem"]);
    assert!(!stderr(&o).contains("serving"), "{}", stderr(&o));
}

/// Starts a server at the port and connects `n` clients at once the moment it accepts.
fn connect_together(p: u16, n: usize) -> Vec<(usize, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", p)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let clients: Vec<Client> = (0..n).map(|_| Client::new(&url, None)).collect();
    clients
        .iter()
        .map(|c| c.frames(20, Duration::from_secs(15)))
        .collect()
}

#[test]
fn clients_that_connect_together_as_the_server_starts_all_play() {
    // 30 rounds of 4 clients: a 1-in-8 failure per round would show with
    // probability 1 - (7/8)^30 > 98 %.
    let started = Instant::now();
    for round in 0..30 {
        let p = port();
        let url = format!("rtsp://127.0.0.1:{p}/live");
        let (child, _rx) = start(&args(&["-o", &url, "--content", "color:#202020"]));
        let results = connect_together(p, 4);
        for (i, (n, err)) in results.iter().enumerate() {
            assert!(*n >= 20, "round {round}, client {i}: {n} frames ({err:?})");
        }
        interrupt(&child);
        drop(child);
    }
    eprintln!("30 rounds of 4 clients in {:?}", started.elapsed());
}

#[test]
fn clients_join_while_others_play_and_while_others_tear_down() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (child, rx) = start(&args(&["-o", &url]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    let playing: Vec<Client> = (0..3).map(|_| Client::new(&url, None)).collect();
    for c in &playing {
        assert!(c.frames(5, Duration::from_secs(20)).0 >= 5);
    }
    for round in 0..8 {
        // Two leave as two others join.
        let leaving: Vec<Client> = (0..2).map(|_| Client::new(&url, None)).collect();
        for c in &leaving {
            assert!(
                c.frames(3, Duration::from_secs(20)).0 >= 3,
                "round {round}: a joiner plays"
            );
        }
        let joining: Vec<Client> = (0..2).map(|_| Client::new(&url, None)).collect();
        drop(leaving);
        for c in &joining {
            let (n, err) = c.frames(5, Duration::from_secs(20));
            assert!(
                n >= 5,
                "round {round}: joined during teardown: {n} ({err:?})"
            );
        }
        for c in &playing {
            assert!(
                c.frames(3, Duration::from_secs(10)).0 >= 3,
                "round {round}: the players go on"
            );
        }
    }
    interrupt(&child);
}

#[test]
fn a_client_flood_leaves_the_server_serving_with_flat_memory() {
    let (p, url, child, watcher) = serving_with_a_viewer();
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kb(child.id());
    let started = Instant::now();
    for i in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = request(
            &mut s,
            &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: {i}\r\n\r\n"),
        );
        assert!(r.starts_with("RTSP/1.0 200"), "flood client {i}: {r}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "100 connects took {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kb(child.id());
    assert!(
        watcher.frames(10, Duration::from_secs(10)).0 >= 10,
        "still serving"
    );
    assert!(
        after < before + before / 10,
        "RSS {before} kB -> {after} kB"
    );
    interrupt(&child);
}

/// A real RECORD server (gst-rtsp-server in RECORD mode) that counts the frames it gets.
struct RecordServer {
    main_loop: glib::MainLoop,
    frames: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

use gstreamer::glib;
use gstreamer_rtsp_server as rtsp_server;
use gstreamer_rtsp_server::prelude::*;

impl RecordServer {
    fn start(p: u16, user: Option<(&str, &str)>) -> RecordServer {
        gst_init();
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&p.to_string());
        let factory = rtsp_server::RTSPMediaFactory::new();
        factory.set_transport_mode(rtsp_server::RTSPTransportMode::RECORD);
        factory.set_launch("( rtph264depay name=depay0 ! h264parse ! fakesink name=sink signal-handoffs=true async=false )");
        let f = std::sync::Arc::clone(&frames);
        factory.connect_media_configure(move |_, media| {
            let bin = media.element().downcast::<gst::Bin>().unwrap();
            let sink = bin
                .by_name_recurse_up("sink")
                .or_else(|| bin.by_name("sink"))
                .unwrap();
            let f = std::sync::Arc::clone(&f);
            sink.connect("handoff", false, move |_| {
                f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            });
        });
        if let Some((u, pw)) = user {
            let auth = rtsp_server::RTSPAuth::new();
            let token = rtsp_server::RTSPToken::builder()
                .field(rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "publisher")
                .build();
            auth.add_basic(rtsp_server::RTSPAuth::make_basic(u, pw).as_str(), &token);
            server.set_auth(Some(&auth));
            factory.add_role_from_structure(
                &gst::Structure::builder("publisher")
                    .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        server.mount_points().unwrap().add_factory("/in", factory);
        // A restarted server takes the port its predecessor just closed: binding can
        // fail for a moment while the kernel lets the old socket go.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let id = loop {
            match server.attach(Some(&context)) {
                Ok(id) => break id,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("RECORD server on port {p} not attached yet ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("RECORD server attaches on port {p}: {e}"),
            }
        };
        let l = main_loop.clone();
        let thread = std::thread::spawn(move || {
            let _guard = context.acquire();
            l.run();
            // Stop like a server process that exits: close every client connection and
            // stop listening, so a restarted server can take the same port.
            server.client_filter(Some(&mut |_, _| rtsp_server::RTSPFilterResult::Remove));
            if let Some(source) = context.find_source_by_id(&id) {
                source.destroy();
            }
            drop(server);
        });
        RecordServer {
            main_loop,
            frames,
            thread: Some(thread),
        }
    }

    fn frames(&self) -> usize {
        self.frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn wait_frames(&self, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while self.frames() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.frames()
    }
}

impl Drop for RecordServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn publishing_reaches_a_record_server_with_and_without_credentials_and_reconnects() {
    // Without credentials.
    let p = port();
    let server = RecordServer::start(p, None);
    let (child, rx) = start(&args(&["-o", &format!("rtsp-publish://127.0.0.1:{p}/in")]));
    assert!(
        server.wait_frames(20, Duration::from_secs(30)) >= 20,
        "{:?}",
        lines(&rx)
    );
    interrupt(&child);
    drop(child);
    drop(server);
    // With credentials from the URL; the server restarts and segsynth publishes again.
    let p = port();
    let server = RecordServer::start(p, Some(("pub", "PubPw-51e")));
    let target = format!("rtsp-publish://pub:PubPw-51e@127.0.0.1:{p}/in");
    let (child, rx) = start(&args(&["-o", &target, "--duration", "60"]));
    assert!(
        server.wait_frames(20, Duration::from_secs(30)) >= 20,
        "{:?}",
        lines(&rx)
    );
    drop(server);
    let restarted = RecordServer::start(p, Some(("pub", "PubPw-51e")));
    assert!(
        restarted.wait_frames(20, Duration::from_secs(40)) >= 20,
        "publishing resumed after the server restarted: {:?}",
        lines(&rx)
    );
    let log = lines(&rx).join("\n");
    assert!(!log.contains("PubPw-51e"), "{log}");
    interrupt(&child);
    let _: &Running = &child;
}

/// Generated content served over RTSP moves smoothly through the live encoder's
/// keyframe interval: no frame differs from the one before by more than 2 grey levels
/// (whole keyframes made the drifting texture snap back once a second, 4-11 levels).
#[test]
fn served_generated_content_has_no_keyframe_pulse() {
    use segsynth::pipeline::stats::Motion;
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (child, rx) = start(&[
        "-i",
        "test:",
        "--width",
        "640",
        "--height",
        "360",
        "--stats-every",
        "0",
        "-o",
        &url,
        "--content",
        "background=gan:foliage",
    ]);
    wait_for(&rx, "serving", Duration::from_secs(30));
    let client = Client::with_caps(&url, None, "video/x-raw,format=GRAY8,width=320,height=180");
    // After the content's 2-s fade-in: five keyframe intervals of steady state.
    let fade = client.planes(75, Duration::from_secs(60));
    let planes = client.planes(150, Duration::from_secs(60));
    interrupt(&child);
    assert_eq!(
        fade.len() + planes.len(),
        225,
        "frames received ({:?})",
        client.error()
    );
    let m = Motion::of(&planes, 30);
    eprintln!("served foliage: {m}");
    assert!(m.max_step <= 2.0, "the stream pulses: {m}");
    assert!(m.min_second >= 0.3, "the served content stands still: {m}");
}

/// `segsynth_rtsp_clients` follows real clients: 0 before any, 2 while two play, back
/// to 0 once both left (the gauge is sampled every second).
#[test]
fn the_rtsp_clients_gauge_follows_clients_coming_and_going() {
    let (p, m) = (port(), port());
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let metrics = format!("127.0.0.1:{m}");
    let (child, rx) = start(&args(&["-o", &url, "--metrics", &metrics]));
    wait_for(&rx, "serving", Duration::from_secs(30));
    let gauge = || -> Option<i64> {
        let mut s = TcpStream::connect(&metrics).ok()?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {metrics}\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let line = text
            .lines()
            .find(|l| l.starts_with("segsynth_rtsp_clients "))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let settle = |want: i64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while gauge() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "the gauge reads {:?}, expected {want}",
                gauge()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    settle(0);
    let clients = [Client::new(&url, None), Client::new(&url, None)];
    for c in &clients {
        assert!(
            c.frames(5, Duration::from_secs(30)).0 >= 5,
            "a client got no frames"
        );
    }
    settle(2);
    drop(clients);
    settle(0);
    interrupt(&child);
}
