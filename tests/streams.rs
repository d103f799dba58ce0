//! Several streams in one `segsynth run` (a preset of `[[streams]]`): one RTSP server
//! with a mount per stream, real clients on each, a recording, a stream whose camera is
//! not there, and the metrics of each stream under its `stream` label, read by the
//! Prometheus client library's own parser.

use std::time::Duration;

use crate::live::{client, interrupt, port, scrape_twice, scraped, start, wait_for};
use crate::support::*;

fn preset(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("streams.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn several_streams_serve_their_own_mounts_and_count_under_their_own_label() {
    let dir = tmpdir();
    let (p, m, nobody) = (port(), port(), port());
    let recording = dir.path().join("yard.mp4");
    let config = preset(
        dir.path(),
        &format!(
            r#"
width = 320
height = 180
fps = 30
metrics = "127.0.0.1:{m}"

[[streams]]
name = "door"
input = "test:"
outputs = ["rtsp://127.0.0.1:{p}/door"]

[[streams]]
name = "yard"
input = "test:"
outputs = ["rtsp://127.0.0.1:{p}/yard", "{rec}"]

[[streams]]
name = "gate"
input = "rtsp://127.0.0.1:{nobody}/camera"
outputs = ["rtsp://127.0.0.1:{p}/gate"]

[[streams]]
name = "short"
input = "{short}"
outputs = ["rtsp://127.0.0.1:{p}/short"]
"#,
            rec = recording.display(),
            short = person_clip(320, 180, 10).display()
        ),
    );
    let (child, rx) = start(&[&config, "--stats-every", "1"]);
    let seen = wait_for(&rx, "stream yard: live", Duration::from_secs(60));
    for mount in ["door", "yard", "gate", "short"] {
        let url = format!("rtsp://127.0.0.1:{p}/{mount}");
        assert!(
            seen.iter()
                .any(|l| l.contains(&format!("stream {mount}: serving {url}"))),
            "{mount} served: {seen:?}"
        );
    }
    // The library's notices from a stream's threads carry its name.
    assert!(
        seen.iter()
            .any(|l| l.contains("segsynth: stream gate: input lost")),
        "{seen:?}"
    );
    // A stream whose file ended is done: its mount is gone, the others go on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut lines = seen.clone();
    while !lines.iter().any(|l| l == "stream short:") {
        assert!(
            std::time::Instant::now() < deadline,
            "the short stream's summary: {lines:?}"
        );
        lines.extend(rx.recv_timeout(Duration::from_secs(1)));
    }
    let (n, _) = client(
        &format!("rtsp://127.0.0.1:{p}/short"),
        1,
        Duration::from_secs(3),
    );
    assert_eq!(n, 0, "the ended stream's mount serves nothing");
    // The camera that is not there holds nobody up: both other mounts play.
    for mount in ["door", "yard"] {
        let (n, size) = client(
            &format!("rtsp://127.0.0.1:{p}/{mount}"),
            15,
            Duration::from_secs(30),
        );
        assert!(n >= 15, "{mount}: {n} frames");
        assert_eq!(size, (320, 180), "{mount}");
    }
    let text = scrape_twice(&format!("127.0.0.1:{m}"), "0.5");
    let value = |key: &str| scraped(&text, "second", key);
    for stream in ["door", "yard"] {
        let out = value(&format!(
            "segsynth_frames_total|direction=out|stream={stream}"
        ));
        assert!(out > 15.0, "{stream} frames out: {out}");
        let stage = value(&format!(
            "segsynth_stage_seconds_count|stage=segment|stream={stream}"
        ));
        assert!(stage > 0.0, "{stream} segment stage timed: {stage}");
    }
    assert_eq!(
        value("segsynth_frames_total|direction=in|stream=gate"),
        0.0,
        "the missing camera gave nothing"
    );
    assert_eq!(
        value("segsynth_dropped_frames_total|reason=stage_queue|stream=gate"),
        0.0
    );
    assert!(!text.contains("stream=main"), "no phantom stream: {text}");
    interrupt(&child);
    let mut child = child;
    let status = child.wait().unwrap();
    let log: Vec<String> = rx.try_iter().collect();
    let log = log.join("\n");
    // The stream without a camera ends with an error naming it; the others end cleanly.
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("stream gate: the input delivered no frame"),
        "{log}"
    );
    assert!(log.contains("1 of 4 streams failed"), "{log}");
    let p = probe(&recording, &[], 8, 8);
    assert!(
        p.pts.len() > 15,
        "the recording plays: {} frames",
        p.pts.len()
    );
}

#[test]
fn stream_presets_are_checked_before_anything_runs() {
    let dir = tmpdir();
    let stream = |name: &str, mount: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\ninput = \"test:\"\noutputs = [\"rtsp://127.0.0.1:8554/{mount}\"]\n"
        )
    };
    for (text, extra, code, needle) in [
        (
            format!("{}{}", stream("a", "x"), stream("b", "x")),
            vec![],
            2,
            "is served twice",
        ),
        (
            format!(
                "{}{}",
                stream("a", "x"),
                stream("b", "y").replace("127.0.0.1", "localhost")
            ),
            vec![],
            2,
            "one socket written two ways",
        ),
        (
            format!(
                "{}{}",
                stream("a", "x"),
                stream("b", "y").replace("127.0.0.1", "0.0.0.0")
            ),
            vec![],
            2,
            "one socket written two ways",
        ),
        (
            format!("{}{}", stream("a", "x"), stream("a", "y")),
            vec![],
            1,
            "named twice",
        ),
        (stream("a b", "x"), vec![], 1, "letters, digits"),
        (stream("main", "x"), vec![], 1, "reserved"),
        (
            format!("input = \"test:\"\n{}", stream("a", "x")),
            vec![],
            1,
            "one or the other",
        ),
        (
            stream("a", "x"),
            vec!["-o", "out.mp4"],
            2,
            "-i/-o with a preset",
        ),
    ] {
        let config = preset(dir.path(), &text);
        let mut args = vec!["run", config.as_str()];
        args.extend(extra);
        let o = segsynth(&args);
        assert_eq!(o.status.code(), Some(code), "{needle}: {}", stderr(&o));
        assert_clean_error(&o, &[needle]);
    }
}

/// More streams than the machine holds: each says in its log that it drops frames and why,
/// and counts them under its own label.
#[test]
fn streams_beyond_the_machine_say_they_drop_frames() {
    let dir = tmpdir();
    let (p, m) = (port(), port());
    let streams: String = (0..4)
        .map(|i| {
            format!(
                "[[streams]]\nname = \"s{i}\"\ninput = \"test:\"\noutputs = [\"rtsp://127.0.0.1:{p}/s{i}\"]\n"
            )
        })
        .collect();
    let config = preset(
        dir.path(),
        &format!("width = 1920\nheight = 1080\nfps = 60\nmetrics = \"127.0.0.1:{m}\"\n{streams}"),
    );
    let (child, rx) = start(&[&config, "--stats-every", "0"]);
    let seen = wait_for(&rx, "frames dropped", Duration::from_secs(60));
    let line = seen.last().unwrap();
    assert!(
        line.starts_with("segsynth: stream s") && line.contains("stage_queue"),
        "{line}"
    );
    let text = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", m)).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    };
    let name = line["segsynth: stream ".len()..]
        .split_once(": ")
        .expect("a stream name")
        .0;
    let needle =
        format!("segsynth_dropped_frames_total{{stream=\"{name}\",reason=\"stage_queue\"}} ");
    let dropped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .unwrap_or_else(|| panic!("{needle} in {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "{name} counts its drops: {dropped}");
    interrupt(&child);
}

/// The real segmentation model, batched across four streams' handles: each stream gets
/// bit for bit what a single run gives, in fewer calls than frames.
#[test]
fn batched_model_runs_give_each_stream_its_single_run_bit_for_bit() {
    use segsynth::infer::{Model, Output, SessionOptions};
    let dir = segsynth::job::models_dir();
    let manifest = segsynth::model::Manifest::load(&dir.join("selfie.toml")).expect("selfie");
    let options = SessionOptions {
        threads: 1,
        device: segsynth::options::Device::Cpu,
    };
    let mut single = Model::open(manifest.clone(), &options).expect("open");
    let mut shared = Model::open(manifest, &options).expect("open");
    assert!(
        shared.batch(
            segsynth::options::Batch::Frames(4),
            Duration::from_millis(50)
        ),
        "the converted model has a free batch dimension (./segsynth.sh setup converts it)"
    );
    let shape = [1i64, 256, 256, 3];
    let inputs: Vec<Vec<Vec<f32>>> = (0..4u32)
        .map(|s| {
            (0..6u32)
                .map(|f| {
                    (0..256 * 256 * 3u32)
                        .map(|i| {
                            ((i.wrapping_mul(2654435761) ^ (s * 977 + f * 131)) % 255) as f32
                                / 255.0
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let data = |o: Output| match o {
        Output::F32 { data, .. } => data,
        Output::I64 { .. } => panic!("f32 scores"),
    };
    let alone: Vec<Vec<Vec<f32>>> = inputs
        .iter()
        .map(|frames| {
            frames
                .iter()
                .map(|x| data(single.run(&[("input", &shape, x)]).expect("run")))
                .collect()
        })
        .collect();
    let together: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|frames| {
                let mut mine = shared.share();
                s.spawn(move || {
                    frames
                        .iter()
                        .map(|x| data(mine.run(&[("input", &shape, x)]).expect("run")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(together == alone, "every stream's scores, bit for bit");
    let (calls, frames) = shared.batch_stats().unwrap();
    assert_eq!(frames, 24);
    assert!(calls < frames, "{calls} calls for {frames} frames");
}
