//! Real faults end a job cleanly: a real file-size limit (RLIMIT_FSIZE, EFBIG), streams
//! that change size or interlacing mid-way, a real signal, out-of-range numbers, and
//! mutated media files. Every case is bounded in time: a hang fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// segsynth with a real file-size limit; it must turn SIGXFSZ into an EFBIG error.
fn with_file_limit(args: &[&str], limit: u64) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    limit_file_size(&mut cmd, limit);
    cmd
}

#[test]
fn a_file_size_limit_ends_the_job_naming_the_output_and_the_os_error() {
    let input = person_clip(640, 360, 90);
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    // Several runs: the old pipeline hung in 3 runs out of 4.
    for round in 0..3 {
        let child = with_file_limit(
            &[
                "process",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "-q",
            ],
            100_000,
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
        let o = finish_within(child, Duration::from_secs(60), "disk-full job");
        assert_eq!(o.status.code(), Some(1), "round {round}: {}", stderr(&o));
        assert_clean_error(&o, &[out.to_str().unwrap(), "File too large"]);
        assert_eq!(
            stderr(&o).lines().filter(|l| l.contains("error:")).count(),
            1,
            "one sentence:\n{}",
            stderr(&o)
        );
        assert!(
            files_in(dir.path()).is_empty(),
            "left behind: {:?}",
            files_in(dir.path())
        );
    }
    // An existing target is untouched by a failed --overwrite run.
    std::fs::write(&out, b"precious").unwrap();
    let child = with_file_limit(
        &[
            "process",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--overwrite",
        ],
        100_000,
    )
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let o = finish_within(
        child,
        Duration::from_secs(60),
        "disk-full job over an existing file",
    );
    assert_clean_error(&o, &["File too large"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(files_in(dir.path()), vec!["out.mp4"]);
}

/// A clip maker killed half-way (a real SIGKILL) leaves no clip under the asked-for name:
/// the benchmark reuses a clip that exists, and a half-written one made it fail with
/// "This file contains no playable streams". The next run makes a whole clip.
#[test]
fn a_killed_clip_maker_leaves_no_clip_and_the_next_run_makes_a_whole_one() {
    let dir = tmpdir();
    let out = dir.path().join("clip.mp4");
    let photo = data("astronaut.jpg");
    let mut child = Command::new(bin())
        .args(["make-clip", out.to_str().unwrap(), "--photo"])
        .arg(&photo)
        .args(["--width", "640", "--height", "360", "--frames", "100000"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once its (hidden) file has data in it: mid-write.
    let started = std::time::Instant::now();
    let writing = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.metadata().map(|m| m.len() > 100_000).unwrap_or(false))
    };
    while !writing() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "make-clip wrote nothing in 60 s: {:?}",
            files_in(dir.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(
        !out.exists(),
        "a killed make-clip left {} behind ({:?})",
        out.display(),
        files_in(dir.path())
    );
    let o = make_clip(&out, &photo, (320, 180, 20), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(probe(&out, &[], 32, 18).pts.len(), 20, "a whole clip");
}

/// Raw H.264 (byte-stream) of a solid colour, as `cat` would join them.
pub(crate) fn raw_h264(
    dir: &Path,
    name: &str,
    w: u32,
    h: u32,
    pattern: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(name);
    launch(&format!(
        "videotestsrc num-buffers=20 pattern={pattern} ! video/x-raw,width={w},height={h},framerate=30/1 {extra} \
         ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! video/x-h264,stream-format=byte-stream ! filesink location={}",
        path.display()
    ));
    path
}

pub(crate) fn join(dir: &Path, name: &str, parts: &[&Path]) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend(std::fs::read(p).unwrap());
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Mean luma of a column band (fractions of the width) in an RGB thumbnail.
fn band(p: &Probe, index: usize, x0: f32, x1: f32) -> f32 {
    let m = region_mean(p.thumb(index), p.thumb_size, (x0, 0.3, x1, 0.7));
    (m[0] + m[1] + m[2]) / 3.0
}

#[test]
fn size_changes_mid_stream_keep_the_first_size_with_the_picture_fitted() {
    let dir = tmpdir();
    let small = raw_h264(dir.path(), "small.h264", 320, 180, "white", "");
    let square = raw_h264(dir.path(), "square.h264", 360, 360, "white", "");
    let big = raw_h264(dir.path(), "big.h264", 640, 360, "white", "");
    // Up and down, and to another aspect ratio: always the first size, never a panic
    // or frames laid out for another size.
    for (name, parts, first, changed) in [
        ("up", vec![&small, &square], (320, 180), "360x360"),
        ("down", vec![&big, &small], (640, 360), "320x180"),
    ] {
        let input = join(
            dir.path(),
            &format!("{name}.h264"),
            &parts.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
        );
        let out = dir.path().join(format!("{name}.mp4"));
        // Blur keeps a solid picture as it is, so the output shows the geometry.
        let o = process(&input, &out, &["-q", "--content", "blur:2"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("20 frames rescaled from {changed}")),
            "{name}: summary counts them:\n{err}"
        );
        let p = probe(&out, &[5, 35], 64, 36);
        assert_eq!((p.width, p.height), first, "{name}: keeps the first size");
        assert_eq!(p.pts.len(), 40, "{name}: every frame written");
        assert!(
            band(&p, 5, 0.0, 0.15) > 200.0,
            "{name}: first part fills the frame"
        );
        if name == "up" {
            // A square picture in a 16:9 frame: black bars left and right, white in the middle.
            assert!(band(&p, 35, 0.0, 0.15) < 40.0, "pillarbox left is black");
            assert!(band(&p, 35, 0.85, 1.0) < 40.0, "pillarbox right is black");
            assert!(band(&p, 35, 0.4, 0.6) > 200.0, "picture in the middle");
        } else {
            assert!(
                band(&p, 35, 0.0, 0.15) > 200.0,
                "same aspect: fills the frame"
            );
        }
    }
}

#[test]
fn an_interlacing_change_mid_stream_is_processed_without_harm() {
    let dir = tmpdir();
    let progressive = raw_h264(dir.path(), "p.h264", 320, 240, "white", "");
    let interlaced = raw_h264(
        dir.path(),
        "i.h264",
        320,
        240,
        "white",
        "! interlace field-pattern=2:2 ! video/x-raw,interlace-mode=interleaved",
    );
    let input = join(dir.path(), "pi.h264", &[&progressive, &interlaced]);
    let out = dir.path().join("pi.mp4");
    let o = process(&input, &out, &["-q", "--content", "blur:2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe(&out, &[5, 35], 64, 48);
    assert_eq!((p.width, p.height), (320, 240));
    assert!(p.pts.len() >= 38, "frames written: {}", p.pts.len());
    assert!(
        band(&p, 35, 0.0, 1.0) > 200.0,
        "the interlaced part is still the white picture"
    );
}

#[test]
fn a_live_input_that_changes_size_is_scaled_to_the_processing_size() {
    let dir = tmpdir();
    let a = raw_h264(dir.path(), "a.h264", 320, 180, "white", "");
    let b = raw_h264(dir.path(), "b.h264", 200, 200, "white", "");
    let input = join(dir.path(), "ab.h264", &[&a, &b]);
    let out = dir.path().join("live.mp4");
    let child = Command::new(bin())
        .args([
            "run",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--width",
            "320",
            "--height",
            "180",
            "--content",
            "blur:2",
            "--realtime",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = finish_within(child, Duration::from_secs(60), "live file input");
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe(&out, &[], 8, 8);
    assert_eq!((p.width, p.height), (320, 180));
    assert!(p.pts.len() >= 30, "frames: {}", p.pts.len());
}

#[test]
fn absurd_numbers_are_usage_errors_naming_the_option() {
    let input = person_clip(320, 180, 10);
    let dir = tmpdir();
    let out = dir.path().join("o.mp4");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let cases: &[(&[&str], &str)] = &[
        (&["process", i, "-o", o, "--temporal", "NaN"], "--temporal"),
        (&["process", i, "-o", o, "--feather", "inf"], "--feather"),
        (&["process", i, "-o", o, "--feather=-1"], "--feather"),
        (
            &["process", i, "-o", o, "--synth-period", "inf"],
            "--synth-period",
        ),
        (
            &[
                "process",
                i,
                "-o",
                o,
                "--synth-budget-ms",
                "18446744073709551615",
            ],
            "--synth-budget-ms",
        ),
        (
            &["process", i, "-o", o, "--synth-scale", "NaN"],
            "--synth-scale",
        ),
        (&["process", i, "-o", o, "--crf", "99"], "--crf"),
        (&["process", i, "-o", o, "--threads", "0"], "--threads"),
        (&["process", i, "-o", o, "--edge", "NaN,1"], "--edge"),
        (
            &["run", "-i", "test:", "-o", o, "--duration", "inf"],
            "--duration",
        ),
        (
            &["run", "-i", "test:", "-o", o, "--duration=-3"],
            "--duration",
        ),
        (
            &["run", "-i", "test:", "-o", o, "--stats-every", "inf"],
            "--stats-every",
        ),
        (
            &["run", "-i", "test:", "-o", o, "--width", "100000"],
            "--width",
        ),
        (
            &["make-clip", o, "--photo", i, "--width", "100000"],
            "--width",
        ),
    ];
    for (args, option) in cases {
        let r = segsynth(args);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
        assert_clean_error(&r, &[option]);
    }
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn image_content_beyond_the_limit_is_refused_and_a_thin_one_works() {
    let dir = tmpdir();
    let huge = dir.path().join("huge.png");
    image::GrayImage::new(1, 20000).save(&huge).unwrap();
    let thin = dir.path().join("thin.png");
    image::GrayImage::from_fn(1, 10000, |_, y| image::Luma([(y % 256) as u8]))
        .save(&thin)
        .unwrap();
    let input = person_clip(320, 180, 10);
    let out = dir.path().join("o.mp4");
    let r = process(
        &input,
        &out,
        &["-q", "--content", &format!("image:{}", huge.display())],
    );
    assert_clean_error(&r, &["huge.png", "1x20000", "16384"]);
    assert!(!out.exists());
    let r = process(
        &input,
        &out,
        &["-q", "--content", &format!("image:{}", thin.display())],
    );
    assert!(r.status.success(), "{}", stderr(&r));
}

/// A short run of the media mutation harness (`tests/fuzz/mutate_inputs.py` runs the long one):
/// byte flips, deletions and duplications at seeded positions, and truncations, of a real
/// clip. Every run ends in time with exit 0, 1 or 3, no panic, nothing left on failure.
#[test]
fn mutated_media_inputs_end_cleanly() {
    let clip = std::fs::read(person_clip(320, 180, 30)).unwrap();
    let dir = tmpdir();
    let mut seed = 0x5EED_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut outcomes = std::collections::BTreeMap::new();
    for case in 0..12 {
        let mut bytes = clip.clone();
        let at = (next() as usize) % bytes.len();
        match case % 4 {
            0 => bytes[at] ^= 0xff,
            1 => {
                let end = (at + 64).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let end = (at + 64).min(bytes.len());
                let dup: Vec<u8> = bytes[at..end].to_vec();
                bytes.splice(at..at, dup);
            }
            _ => bytes.truncate(at),
        }
        let input = dir.path().join(format!("m{case}.mp4"));
        std::fs::write(&input, &bytes).unwrap();
        let out = dir.path().join(format!("m{case}-out.mp4"));
        let child = Command::new(bin())
            .args([
                "process",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "-q",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = finish_within(
            child,
            Duration::from_secs(60),
            &format!("mutation {case} at {at}"),
        );
        let code = o.status.code();
        assert!(
            matches!(code, Some(0 | 1 | 3)),
            "mutation {case} at {at}: exit {code:?}\n{}",
            stderr(&o)
        );
        assert!(
            !stderr(&o).contains("panicked") && !stderr(&o).contains("internal error"),
            "{}",
            stderr(&o)
        );
        if code == Some(1) {
            assert!(!out.exists(), "failed run left {}", out.display());
        }
        *outcomes.entry(code).or_insert(0) += 1;
        std::fs::remove_file(&input).unwrap();
    }
    let leftovers: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|f| f.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    eprintln!("mutation outcomes (exit code: count): {outcomes:?}");
}
