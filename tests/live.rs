//! Live jobs with real clients on loopback: RTSP serving, many clients, reconnects,
//! recording while serving, clean shutdown, presets and live errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::support::*;

/// A TCP port for a test server: distinct within this run, and free on loopback when
/// handed out (a port some other process holds is skipped).
pub(crate) fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let p =
            20000 + (std::process::id() % 20000) as u16 + NEXT.fetch_add(1, Ordering::Relaxed) * 7;
        if std::net::TcpListener::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
}

/// A running `segsynth run`, killed if the test fails before stopping it.
pub(crate) struct Running(pub(crate) Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `segsynth run`; its stderr lines arrive on the channel.
pub(crate) fn start(args: &[&str]) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(bin());
    cmd.arg("run").args(args);
    spawn_reading(cmd)
}

/// Spawns `cmd` (killed if the test fails first); its stderr lines arrive on the channel.
pub(crate) fn spawn_reading(mut cmd: Command) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn segsynth");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Running(child), rx)
}

pub(crate) fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return seen;
            }
        }
    }
    panic!(
        "{needle:?} not seen within {timeout:?}; got:\n{}",
        seen.join("\n")
    );
}

/// An RTSP client: frames received within `timeout`, up to `want`.
pub(crate) fn client(url: &str, want: usize, timeout: Duration) -> (usize, (i32, i32)) {
    gst_init();
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc location={url} protocols=tcp latency=0 ! decodebin ! videoconvert ! appsink name=s sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("s")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    sink.set_property("async", false);
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + timeout;
    let mut n = 0;
    let mut size = (0, 0);
    while n < want && Instant::now() < deadline {
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
            let st = s.caps().unwrap().structure(0).unwrap().to_owned();
            size = (
                st.get::<i32>("width").unwrap(),
                st.get::<i32>("height").unwrap(),
            );
            n += 1;
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    (n, size)
}

/// A number from /proc/PID/status (`field` with its colon, e.g. `VmRSS:`); 0 if absent.
pub(crate) fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn rss_kb(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// Two scrapes of `http://ADDRESS/metrics`, `seconds` apart, each parsed by the Prometheus
/// client library's OpenMetrics parser (`tests/scrape_metrics.py`), as its JSON.
pub(crate) fn scrape_twice(address: &str, seconds: &str) -> String {
    let python = venv_python();
    let out = Command::new(&python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scrape_metrics.py"))
        .arg(format!("http://{address}/metrics"))
        .arg(seconds)
        .output()
        .expect("run the scraper");
    assert!(
        out.status.success(),
        "scrape failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The sample `key` (name, then `|label=value` sorted by label) of scrape `scrape`
/// (`first` or `second`) in `scrape_twice`'s answer.
pub(crate) fn scraped(text: &str, scrape: &str, key: &str) -> f64 {
    let part = &text[text.find(&format!("\"{scrape}\"")).expect("scrape")..];
    let needle = format!("\"{key}\": ");
    let at = part
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} missing in {part}"));
    let rest = &part[at + needle.len()..];
    rest[..rest.find([',', '}']).expect("number end")]
        .trim()
        .parse()
        .expect("a number")
}

pub(crate) fn interrupt(child: &Running) {
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn rtsp_server_serves_eight_clients_and_survives_fifty_reconnects() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let (mut child, rx) = start(&[
        "-i",
        "test:",
        "-o",
        &url,
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "0",
    ]);
    wait_for(&rx, "serving", Duration::from_secs(30));
    let (n, size) = client(&url, 10, Duration::from_secs(20));
    assert!(n >= 10, "one client got {n} frames");
    assert_eq!(size, (320, 180));

    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || client(&url, 15, Duration::from_secs(40)).0)
        })
        .collect();
    let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        counts.iter().all(|&c| c >= 15),
        "all 8 concurrent clients got frames: {counts:?}"
    );

    let before = rss_kb(child.id());
    for _ in 0..50 {
        assert!(
            client(&url, 1, Duration::from_secs(10)).0 >= 1,
            "a reconnecting client got no frame"
        );
    }
    let after = rss_kb(child.id());
    eprintln!(
        "server RSS before 50 reconnects: {} MiB, after: {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 64 * 1024,
        "RSS stays flat: {before} kB -> {after} kB"
    );
    assert!(
        client(&url, 5, Duration::from_secs(10)).0 >= 5,
        "still serving"
    );
    interrupt(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit after SIGINT: {status:?}");
}

#[test]
fn records_while_serving_and_sigint_finalises_everything() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/cam");
    let dir = tmpdir();
    let rec = dir.path().join("rec.mkv");
    let (mut child, rx) = start(&[
        "-i",
        "test:",
        "-o",
        &url,
        "-o",
        rec.to_str().unwrap(),
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "1",
    ]);
    wait_for(&rx, "serving", Duration::from_secs(30));
    assert!(client(&url, 5, Duration::from_secs(20)).0 >= 5);
    let lines = wait_for(&rx, "added latency", Duration::from_secs(20));
    assert!(
        lines.iter().any(|l| l.contains("dropped")),
        "live stats report drops: {lines:?}"
    );
    interrupt(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let probe = probe(&rec, &[], 8, 8);
    assert!(
        probe.pts.len() >= 15,
        "recording plays with {} frames",
        probe.pts.len()
    );
    assert_eq!(files_in(dir.path()), vec!["rec.mkv"]);
}

#[test]
fn rtsp_input_reconnects_after_the_camera_drops() {
    let p = port();
    let cam = format!("rtsp://127.0.0.1:{p}/cam");
    let camera = || {
        start(&[
            "-i",
            "test:",
            "-o",
            &cam,
            "--width",
            "320",
            "--height",
            "180",
            "--stats-every",
            "0",
            "--content",
            "color:#000000",
            "--classes",
            "person",
        ])
    };
    let (mut a, arx) = camera();
    wait_for(&arx, "serving", Duration::from_secs(30));
    let dir = tmpdir();
    let out = dir.path().join("relay.mkv");
    let (mut relay, rx) = start(&[
        "-i",
        &cam,
        "-o",
        out.to_str().unwrap(),
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "1",
    ]);
    wait_for(&rx, "live", Duration::from_secs(30));
    interrupt(&a);
    a.wait().unwrap();
    wait_for(&rx, "reconnecting", Duration::from_secs(30));
    let (mut b, brx) = camera();
    wait_for(&brx, "serving", Duration::from_secs(30));
    wait_for(&rx, "delivering again", Duration::from_secs(60));
    interrupt(&relay);
    assert!(relay.wait().unwrap().success());
    interrupt(&b);
    b.wait().unwrap();
    let pts = probe(&out, &[], 8, 8).pts;
    assert!(pts.len() > 10);
    // The camera's clock restarted with the reconnect; the recording's time never runs
    // backwards (frame PTS are mapped onto the output's clock, spacing kept).
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "recording PTS not increasing: {pts:?}"
    );
}

#[test]
fn presets_run_and_bad_presets_name_line_and_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The shipped RTSP preset runs (on another port, briefly).
    let p = port();
    let o = segsynth(&[
        "run",
        root.join("pipelines/rtsp-out.toml").to_str().unwrap(),
        "-o",
        &format!("rtsp://127.0.0.1:{p}/live"),
        "--width",
        "320",
        "--height",
        "180",
        "--duration",
        "2",
        "--stats-every",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("frames in"), "{}", stderr(&o));
    for preset in ["webcam-overlay.toml", "rtsp-out.toml", "file.toml"] {
        let text = std::fs::read_to_string(root.join("pipelines").join(preset)).unwrap();
        assert!(
            text.starts_with('#') && text.contains("─►"),
            "{preset} opens with a drawn graph"
        );
    }
    let dir = tmpdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "input = \"test:\"\nfps = \"thirty\"\n").unwrap();
    assert_clean_error(
        &segsynth(&["run", bad.to_str().unwrap(), "-o", "display:"]),
        &["bad.toml", "line 2", "`fps`", "expected u32"],
    );
}

#[test]
fn live_errors_are_clear() {
    assert_clean_error(
        &segsynth(&["run", "-i", "test:", "-o", "v4l2:/dev/video77"]),
        &["/dev/video77", "v4l2loopback", "modprobe"],
    );
    assert_clean_error(
        &segsynth(&["run", "-i", "v4l2:/dev/video78", "-o", "out.mkv"]),
        &["/dev/video78", "does not exist"],
    );
    let o = Command::new(bin())
        .args(["run", "-i", "test:", "-o", "display:"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_clean_error(&o, &["display:", "DISPLAY"]);
    assert_clean_error(
        &segsynth(&["run", "-i", "test:", "-o", "ftp://x/y"]),
        &["ftp://x/y", "expected"],
    );
    assert_clean_error(&segsynth(&["run", "-i", "test:"]), &["no output"]);
}

#[test]
fn rtsp_basic_auth_keeps_strangers_out() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/private");
    let (child, rx) = start(&[
        "-i",
        "test:",
        "-o",
        &url,
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "0",
        "--rtsp-user",
        "viewer",
        "--rtsp-password",
        "s3cret",
    ]);
    wait_for(&rx, "serving", Duration::from_secs(30));
    assert_eq!(
        client(&url, 1, Duration::from_secs(4)).0,
        0,
        "no frames without credentials"
    );
    let authed = format!("rtsp://viewer:s3cret@127.0.0.1:{p}/private");
    assert!(
        client(&authed, 5, Duration::from_secs(20)).0 >= 5,
        "frames with credentials"
    );
    interrupt(&child);
}

#[test]
fn a_failing_recording_is_reported_at_once_and_the_stream_goes_on() {
    let p = port();
    let url = format!("rtsp://127.0.0.1:{p}/live");
    let dir = tmpdir();
    let rec = dir.path().join("rec.mp4");
    let mut cmd = Command::new(bin());
    cmd.args([
        "run",
        "-i",
        "test:",
        "-o",
        rec.to_str().unwrap(),
        "-o",
        &url,
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "0",
        "--duration",
        "30",
    ]);
    // A real size limit: the recording fails with EFBIG after 60 kB.
    limit_file_size(&mut cmd, 60_000);
    let (mut child, rx) = spawn_reading(cmd);
    let lines = wait_for(&rx, "failed", Duration::from_secs(40));
    let failed = lines.last().unwrap();
    assert!(
        failed.contains("rec.mp4") && failed.contains("File too large"),
        "{failed}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job goes on after one output failed"
    );
    // The served stream still plays after the recording failed.
    assert!(
        client(&url, 10, Duration::from_secs(20)).0 >= 10,
        "RTSP clients still get frames"
    );
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the exit code says an output failed"
    );
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("rec.mp4") && l.contains("error")),
        "closing error names the output: {rest:?}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "no partial recording: {:?}",
        files_in(dir.path())
    );
}

/// `--metrics`: scraped twice during a live run by a real HTTP client, parsed by the
/// Prometheus client library's OpenMetrics parser; the frame counter grows and every
/// documented family is there.
#[test]
fn metrics_are_served_in_the_prometheus_format_and_grow() {
    let (rtsp, metrics) = (port(), port());
    let url = format!("rtsp://127.0.0.1:{rtsp}/live");
    let address = format!("127.0.0.1:{metrics}");
    let (mut child, rx) = start(&[
        "-i",
        "test:",
        "-o",
        &url,
        "--width",
        "320",
        "--height",
        "180",
        "--stats-every",
        "0",
        "--metrics",
        &address,
    ]);
    wait_for(&rx, "serving", Duration::from_secs(30));
    // A viewer while the scrapes run, so the RTSP gauge has something to count.
    let viewer = {
        let url = url.clone();
        std::thread::spawn(move || client(&url, 60, Duration::from_secs(30)).0)
    };
    let text = scrape_twice(&address, "1.5");
    let value = |scrape: &str, key: &str| scraped(&text, scrape, key);
    let out_key = "segsynth_frames_total|direction=out|stream=main";
    let (a, b) = (value("first", out_key), value("second", out_key));
    assert!(
        b > a && a > 0.0,
        "frames out grew between scrapes: {a} -> {b}"
    );
    assert!(value("second", "segsynth_frames_total|direction=in|stream=main") >= b);
    assert!(value("second", "segsynth_added_latency_seconds_count|stream=main") >= b);
    for family in [
        "segsynth_frames",
        "segsynth_dropped_frames",
        "segsynth_added_latency_seconds",
        "segsynth_stage_seconds",
        "segsynth_synth_layer_reuses",
        "segsynth_rtsp_clients",
        "segsynth_input_reconnects",
        "segsynth_provider_info",
    ] {
        assert!(
            text.contains(&format!("\"{family}\"")),
            "{family} missing: {text}"
        );
    }
    assert!(
        text.contains("segsynth_provider_info|model=selfie (256x256 input)|pixels=native kernels|provider=CPUExecutionProvider"),
        "{text}"
    );
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert!(viewer.join().unwrap() > 0, "the viewer got frames");
    // Beyond loopback needs the explicit flag.
    let o = segsynth(&[
        "run",
        "-i",
        "test:",
        "-o",
        "out.mkv",
        "--metrics",
        "0.0.0.0:9464",
    ]);
    assert_clean_error(&o, &["--metrics-allow-remote"]);
    assert_eq!(o.status.code(), Some(2));
    interrupt(&child);
    assert!(child.wait().unwrap().success());
}

/// Writes `text` to `path` the way editors save: a new file renamed over the old one.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A live run records while the test edits its preset: a colour change, an edit that
/// does not parse, a key that needs a restart, then a generator. The recording holds
/// each content in order, in one file whose timestamps never jump.
#[test]
fn preset_edits_apply_live_without_a_gap() {
    let dir = tmpdir();
    let rec = dir.path().join("edits.mkv");
    let preset = dir.path().join("live.toml");
    let head = format!(
        "input = \"test:\"\noutputs = [{:?}]\nwidth = 320\nheight = 180\nfps = 30\n",
        rec.to_str().unwrap()
    );
    save(&preset, &format!("{head}content = [\"color:#ff0000\"]\n"));
    let (mut child, rx) = start(&[preset.to_str().unwrap(), "--stats-every", "0"]);
    wait_for(&rx, "watching", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    save(&preset, &format!("{head}content = [\"color:#00ff00\"]\n"));
    wait_for(&rx, "segsynth: applied", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    // Does not parse: reported with its line and key, green stays.
    save(&preset, &format!("{head}content = [\"color:#0000ff\"\n"));
    let lines = wait_for(&rx, "edit not applied", Duration::from_secs(10));
    let said = lines.last().cloned().unwrap_or_default();
    assert!(said.contains("line"), "the bad edit names its line: {said}");
    // A key that cannot change live.
    save(
        &preset,
        &format!("{head}threads = 2\ncontent = [\"color:#00ff00\"]\n"),
    );
    wait_for(&rx, "needs a restart", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1200));
    // A generator, loaded off the video path: frames keep flowing meanwhile.
    let generator = data("gen_latent.toml");
    save(
        &preset,
        &format!(
            "{head}threads = 2\ncontent = [\"gan:{}\"]\n",
            generator.display()
        ),
    );
    wait_for(&rx, "segsynth: applied", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(&child);
    assert!(child.wait().unwrap().success(), "clean exit");

    let indices: Vec<usize> = (0..400).collect();
    let p = probe(&rec, &indices, 16, 9);
    let n = p.pts.len();
    assert!(n >= 120, "recording holds {n} frames");
    // No gap: consecutive timestamps one frame apart (30 fps), never more than two.
    for w in p.pts.windows(2) {
        let step = w[1].saturating_sub(w[0]);
        assert!(
            step > 0 && step <= 2 * 33_400_000,
            "PTS jump {step} ns in {:?}",
            &p.pts[..n.min(10)]
        );
    }
    // Each frame's content, from a corner away from the test pattern's ball.
    let class = |t: &[u8]| -> char {
        let (r, g, b) = (t[0] as i32, t[1] as i32, t[2] as i32);
        if r > 180 && g < 80 && b < 80 {
            'r'
        } else if g > 180 && r < 80 && b < 80 {
            'g'
        } else {
            'x'
        }
    };
    let seq: String = (0..n)
        .filter_map(|i| p.thumbs.iter().find(|(k, _)| *k == i))
        .map(|(_, t)| class(t))
        .collect();
    // Runs of one content, in order: red, then green, then the generator's.
    let mut runs: Vec<(char, usize)> = Vec::new();
    for c in seq.chars() {
        match runs.last_mut() {
            Some((k, len)) if *k == c => *len += 1,
            _ => runs.push((c, 1)),
        }
    }
    let order: String = runs.iter().map(|(c, _)| *c).collect();
    assert_eq!(order, "rgx", "content order by frame: {seq}");
    assert!(
        runs.iter().all(|(_, len)| *len >= 10),
        "each content holds frames: {runs:?}"
    );
}
