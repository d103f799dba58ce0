//! The file job end to end on generated clips: timing, audio, pixels, containers, sizes.

use crate::support::*;

const PERSON: (f32, f32, f32, f32) = (0.30, 0.60, 0.45, 0.85); // the chest, inside the person in every frame
const BACKGROUND: (f32, f32, f32, f32) = (0.85, 0.05, 0.98, 0.45); // right of the head

#[test]
fn person_kept_background_replaced_timing_and_audio_preserved() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    let o = process(&input, &out, &["--content", "color:#00ff00", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let thumbs = [5, 20, 40];
    let a = probe(&input, &thumbs, 64, 36);
    let b = probe(&out, &thumbs, 64, 36);
    assert_eq!((b.width, b.height), (320, 180));
    assert_eq!(a.pts.len(), 45);
    assert_eq!(b.pts, a.pts, "same frame count and PTS");
    assert_eq!(b.durations, a.durations, "same durations");
    assert_eq!(b.audio.len(), 1, "audio track kept: {:?}", b.audio);
    assert!(
        b.audio[0].starts_with("audio/mpeg") && b.audio[0].contains("mpegversion=(int)4"),
        "AAC passed through: {}",
        b.audio[0]
    );
    // Pass-through means the compressed stream is identical, codec_data included.
    assert_eq!(strip_ids(&a.audio[0]), strip_ids(&b.audio[0]));
    for &i in &thumbs {
        let (ta, tb) = (a.thumb(i), b.thumb(i));
        let face_a = region_mean(ta, a.thumb_size, PERSON);
        let face_b = region_mean(tb, b.thumb_size, PERSON);
        let diff: f32 = face_a
            .iter()
            .zip(&face_b)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / 3.0;
        assert!(
            diff < 12.0,
            "frame {i}: face changed by {diff}: {face_a:?} -> {face_b:?}"
        );
        let bg = region_mean(tb, b.thumb_size, BACKGROUND);
        assert!(
            bg[1] > 200.0 && bg[0] < 60.0 && bg[2] < 60.0,
            "frame {i}: background not green: {bg:?}"
        );
    }
}

fn strip_ids(caps: &str) -> String {
    caps.split(", ")
        .filter(|f| !f.starts_with("stream-id"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn mask_content_is_a_grey_alpha_video() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let out = dir.path().join("mask.mkv");
    let o = process(
        &input,
        &out,
        &["--classes", "person", "--content", "mask", "-q"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let b = probe(&out, &[10], 64, 36);
    assert_eq!(b.pts.len(), 45);
    let t = b.thumb(10);
    let face = region_mean(t, b.thumb_size, PERSON);
    let bg = region_mean(t, b.thumb_size, BACKGROUND);
    assert!(face.iter().all(|&v| v > 220.0), "person is white: {face:?}");
    assert!(bg.iter().all(|&v| v < 30.0), "background is black: {bg:?}");
    // Grey: R = G = B everywhere (within codec rounding).
    let max_chroma = t
        .chunks(3)
        .map(|p| {
            (p[0] as i32 - p[1] as i32)
                .abs()
                .max((p[1] as i32 - p[2] as i32).abs())
        })
        .max()
        .unwrap();
    assert!(
        max_chroma < 16,
        "mask is grey, max channel spread {max_chroma}"
    );
    // Soft alpha: edges have intermediate values, not only black and white.
    let mid = t.chunks(3).filter(|p| p[0] > 60 && p[0] < 190).count();
    assert!(mid > 0, "soft edges expected");
}

#[test]
fn blur_and_image_content() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let png = dir.path().join("magenta.png");
    image::RgbImage::from_pixel(50, 40, image::Rgb([255, 0, 255]))
        .save(&png)
        .unwrap();
    let out_img = dir.path().join("img.mp4");
    let o = process(
        &input,
        &out_img,
        &["--content", &format!("image:{}", png.display()), "-q"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let b = probe(&out_img, &[10], 64, 36);
    let bg = region_mean(b.thumb(10), b.thumb_size, BACKGROUND);
    assert!(
        bg[0] > 200.0 && bg[1] < 60.0 && bg[2] > 200.0,
        "background shows the image: {bg:?}"
    );

    let out_blur = dir.path().join("blur.mp4");
    let o = process(&input, &out_blur, &["--content", "blur:24", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = probe(&input, &[10], 160, 90);
    let b = probe(&out_blur, &[10], 160, 90);
    // Blur lowers local contrast in the background; the face stays as it was.
    let roughness = |rgb: &[u8], (x0, x1): (usize, usize)| -> f32 {
        let mut s = 0.0;
        for y in 5..40 {
            for x in x0..x1 {
                s += (rgb[(y * 160 + x) * 3 + 1] as f32 - rgb[(y * 160 + x + 1) * 3 + 1] as f32)
                    .abs();
            }
        }
        s
    };
    let (ra, rb) = (
        roughness(a.thumb(10), (2, 20)),
        roughness(b.thumb(10), (2, 20)),
    );
    assert!(
        rb < ra * 0.7,
        "background smoother after blur: {ra} -> {rb}"
    );
    let face_d = mean_abs_diff(
        &region_mean(a.thumb(10), a.thumb_size, PERSON).map(|v| v as u8),
        &region_mean(b.thumb(10), b.thumb_size, PERSON).map(|v| v as u8),
    );
    assert!(face_d < 12.0, "face kept under blur: {face_d}");
}

#[test]
fn odd_frame_size_is_kept_exactly() {
    let input = person_clip(641, 359, 12);
    let dir = tmpdir();
    let out = dir.path().join("odd.mp4");
    let o = process(&input, &out, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = probe(&input, &[], 8, 8);
    let b = probe(&out, &[], 8, 8);
    assert_eq!((b.width, b.height), (641, 359));
    assert_eq!(b.pts, a.pts);
}

#[test]
fn webm_vp8_vorbis_into_mp4_reencodes_audio_and_into_mkv_passes_it() {
    let dir = tmpdir();
    let input = dir.path().join("in.webm");
    launch(&format!(
        "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,width=160,height=120,framerate=20/1 ! vp8enc deadline=1 ! webmmux name=m ! filesink location={} \
         audiotestsrc num-buffers=10 samplesperbuffer=4410 ! audioconvert ! vorbisenc ! m.",
        input.display()
    ));
    let mp4 = dir.path().join("out.mp4");
    let o = process(&input, &mp4, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe(&mp4, &[], 8, 8);
    assert_eq!(p.pts.len(), 20);
    assert_eq!(
        p.audio.len(),
        1,
        "vorbis can't go in MP4: re-encoded, not dropped"
    );
    assert!(p.audio[0].starts_with("audio/mpeg"), "{:?}", p.audio);
    let mkv = dir.path().join("out.mkv");
    let o = process(&input, &mkv, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe(&mkv, &[], 8, 8);
    assert_eq!(p.pts.len(), 20);
    assert!(
        p.audio.len() == 1 && p.audio[0].starts_with("audio/x-vorbis"),
        "vorbis passed through into MKV: {:?}",
        p.audio
    );
}

#[test]
fn avi_mjpeg_without_audio() {
    let dir = tmpdir();
    let input = dir.path().join("in.avi");
    launch(&format!(
        "videotestsrc num-buffers=15 ! video/x-raw,width=176,height=144,framerate=15/1 ! jpegenc ! avimux ! filesink location={}",
        input.display()
    ));
    let out = dir.path().join("out.mp4");
    let o = process(&input, &out, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = probe(&out, &[], 8, 8);
    assert_eq!((p.width, p.height, p.pts.len()), (176, 144, 15));
    assert!(p.audio.is_empty());
}

#[test]
fn variable_frame_rate_timestamps_survive() {
    let dir = tmpdir();
    let vfr = dir.path().join("vfr.mkv");
    let o = make_clip(
        &vfr,
        &data("astronaut.jpg"),
        (128, 96, 20),
        &["--vfr", "--no-audio"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out.mkv");
    let o = process(&vfr, &out, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pa = probe(&vfr, &[], 8, 8);
    let pb = probe(&out, &[], 8, 8);
    assert_eq!(pa.pts.len(), 20);
    let gaps: std::collections::BTreeSet<u64> = pa
        .pts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    assert!(gaps.len() >= 2, "input really is VFR: {gaps:?}");
    let close = pa
        .pts
        .iter()
        .zip(&pb.pts)
        .all(|(x, y)| x.abs_diff(*y) <= 1_000_000);
    assert!(
        close && pb.pts.len() == 20,
        "PTS kept (ms precision of MKV):\n{:?}\n{:?}",
        pa.pts,
        pb.pts
    );
}

#[test]
fn sigint_and_sigterm_end_promptly_and_finalise_a_playable_file() {
    // Long enough that even a fast machine is still processing when the signal comes.
    let input = person_clip(640, 360, 1800);
    for (signal, name) in [(libc::SIGINT, "sigint"), (libc::SIGTERM, "sigterm")] {
        let dir = tmpdir();
        let out = dir.path().join(format!("{name}.mp4"));
        let child = std::process::Command::new(bin())
            .args([
                "process",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "-q",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2000));
        let signalled = std::time::Instant::now();
        unsafe { libc::kill(child.id() as i32, signal) };
        let o = child.wait_with_output().unwrap();
        // 2 s is the promise; the slack is for a loaded 2-core CI machine.
        assert!(
            signalled.elapsed() < std::time::Duration::from_secs(5),
            "{name}: took {:?}",
            signalled.elapsed()
        );
        assert_eq!(o.status.code(), Some(130), "{name}: {}", stderr(&o));
        let p = probe(&out, &[], 8, 8);
        assert!(
            !p.pts.is_empty() && p.pts.len() < 1800,
            "{name}: partial but playable: {} frames",
            p.pts.len()
        );
        assert_eq!(p.audio.len(), 1, "{name}: audio track finalised too");
        assert_eq!(
            files_in(dir.path()),
            vec![format!("{name}.mp4")],
            "{name}: no temporary files left"
        );
    }
}

/// A signal during a call of several files, two at a time: both files under way are
/// finalised and playable, the one not started is not written, and the call says so.
#[test]
fn sigint_during_several_files_finalises_those_under_way() {
    let dir = tmpdir();
    let clip = person_clip(640, 360, 1800);
    let inputs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let p = dir.path().join(format!("{n}.mp4"));
            std::fs::copy(&clip, &p).unwrap();
            p
        })
        .collect();
    let out = dir.path().join("out");
    let mut args = vec!["process"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["-o", out.to_str().unwrap(), "--jobs", "2"]);
    let child = std::process::Command::new(bin())
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3000));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let text = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted: 2 of 3 files written"), "{text}");
    for name in ["a.mp4", "b.mp4"] {
        let p = probe(&out.join(name), &[], 8, 8);
        assert!(
            !p.pts.is_empty() && p.pts.len() < 1800,
            "{name}: partial but playable: {} frames",
            p.pts.len()
        );
    }
    assert_eq!(
        files_in(&out),
        vec!["a.mp4".to_string(), "b.mp4".to_string()],
        "c not started, no temporary files left"
    );
}

#[test]
fn truncated_input_keeps_what_decodes_and_exits_3() {
    let dir = tmpdir();
    let full = dir.path().join("full.mkv");
    launch(&format!(
        "videotestsrc num-buffers=60 pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 ! x264enc key-int-max=10 ! h264parse ! matroskamux ! filesink location={}",
        full.display()
    ));
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out.mp4");
    let o = process(&cut, &out, &["-q"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("ended early"), "{err}");
    let p = probe(&out, &[], 8, 8);
    assert!(
        p.pts.len() > 5 && p.pts.len() < 60,
        "{} frames",
        p.pts.len()
    );
}

#[test]
fn existing_output_needs_overwrite() {
    let input = person_clip(320, 180, 45);
    let dir = tmpdir();
    let out = dir.path().join("keep.mp4");
    std::fs::write(&out, b"precious").unwrap();
    let o = process(&input, &out, &["-q"]);
    assert_clean_error(&o, &["already exists", "--overwrite"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let o = process(&input, &out, &["-q", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(probe(&out, &[], 8, 8).pts.len(), 45);
}

/// `--crf` is x264's constant rate factor and `--qp` its constant quantizer, as in
/// ffmpeg: x264 writes its rate control into the stream's SEI, so read it back.
#[test]
fn crf_is_a_constant_rate_factor_and_qp_a_constant_quantizer() {
    let input = person_clip(320, 180, 10);
    let dir = tmpdir();
    let sei = |args: &[&str], name: &str| -> String {
        let out = dir.path().join(name);
        let o = process(&input, &out, args);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let start = text.find("x264 - core").expect("x264 settings SEI");
        text[start..].chars().take(2000).collect()
    };
    let crf = sei(&["-q", "--crf", "28"], "crf.mp4");
    assert!(crf.contains("rc=crf") && crf.contains("crf=28.0"), "{crf}");
    let qp = sei(&["-q", "--qp", "28"], "qp.mp4");
    assert!(qp.contains("rc=cqp") && qp.contains("qp=28"), "{qp}");
    let default = sei(&["-q"], "default.mp4");
    assert!(
        default.contains("rc=crf") && default.contains("crf=23.0"),
        "ffmpeg's default CRF: {default}"
    );
    // 0 is lossless, as in ffmpeg: x264 codes it as High 4:4:4 Predictive (qp=0).
    for (flag, name) in [("--qp", "qp0.mp4"), ("--crf", "crf0.mp4")] {
        let lossless = sei(&["-q", flag, "0"], name);
        assert!(lossless.contains("qp=0"), "{flag} 0: {lossless}");
        let p = probe(&dir.path().join(name), &[], 8, 8);
        assert_eq!((p.width, p.height, p.pts.len()), (320, 180, 10), "{flag} 0");
    }
}

/// Several inputs in one call: each is written to `DIR/<stem>.mp4` with the same frames
/// as its own run, and an input that is not a video fails alone, named, exit non-zero.
#[test]
fn several_inputs_in_one_call_each_as_its_own_run_and_a_bad_one_fails_alone() {
    let dir = tmpdir();
    let clips: Vec<std::path::PathBuf> = [(320, 180, 20), (480, 270, 15), (256, 144, 25)]
        .iter()
        .enumerate()
        .map(|(i, &(w, h, n))| {
            let c = dir.path().join(format!("clip{i}.mp4"));
            std::fs::copy(person_clip(w, h, n), &c).unwrap();
            c
        })
        .collect();
    let bad = dir.path().join("notes.mp4");
    std::fs::write(&bad, "not a video").unwrap();
    let out = dir.path().join("out");
    let mut args = vec!["process", clips[0].to_str().unwrap(), bad.to_str().unwrap()];
    args.extend(clips[1..].iter().map(|c| c.to_str().unwrap()));
    args.extend([
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--content",
        "gan:foliage",
        "--jobs",
        "2",
    ]);
    let o = segsynth(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o);
    // Two at a time: the second file starts before the first one ends.
    let first_end = text
        .find("wrote ")
        .or_else(|| text.find("segsynth: error:"))
        .expect("a file ended");
    assert!(
        text[..first_end].matches("== ").count() >= 2,
        "two files under way at once:\n{text}"
    );
    assert!(
        text.contains("notes.mp4") && text.contains("4 inputs: 3 written, 1 failed"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        !out.join("notes.mp4").exists(),
        "nothing written for the bad input"
    );
    for (clip, &(w, h)) in clips.iter().zip(&[(320, 180), (480, 270), (256, 144)]) {
        let name = clip.file_name().unwrap();
        let single = dir
            .path()
            .join(format!("single-{}", name.to_string_lossy()));
        let s = process(clip, &single, &["-q", "--content", "gan:foliage"]);
        assert!(s.status.success(), "{}", stderr(&s));
        let together = segsynth::io::clip::decode_luma(&out.join(name), w, h).expect("decode");
        let alone = segsynth::io::clip::decode_luma(&single, w, h).expect("decode");
        assert_eq!(together.len(), alone.len(), "{name:?}: frame count");
        for (i, (a, b)) in together.iter().zip(&alone).enumerate() {
            let d = segsynth::pipeline::stats::mean_abs_diff(a, b);
            assert!(
                d <= 0.5,
                "{name:?} frame {i}: {d:.2} grey levels from its own run"
            );
        }
    }
    // The same three with their model inputs batched, three at a time: the frames of
    // their own runs (the batch itself is bit-exact, `streams.rs`; encoders side by side
    // may round a few pixels), in fewer model calls.
    let batched = dir.path().join("batched");
    let mut args: Vec<&str> = vec!["process"];
    args.extend(clips.iter().map(|c| c.to_str().unwrap()));
    let target = batched.to_str().unwrap();
    args.extend(["-o", target, "-q", "--content", "gan:foliage"]);
    args.extend(["--jobs", "3", "--batch", "3", "--batch-window-ms", "20"]);
    let o = segsynth(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.starts_with("model batches: "))
        .unwrap_or_else(|| panic!("a batch line in {}", stderr(&o)))
        .to_string();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() == 2 && numbers[1] < numbers[0],
        "fewer calls than frames: {line}"
    );
    for (clip, &(w, h)) in clips.iter().zip(&[(320, 180), (480, 270), (256, 144)]) {
        let name = clip.file_name().unwrap();
        let b = segsynth::io::clip::decode_luma(&batched.join(name), w, h).expect("decode");
        let t = segsynth::io::clip::decode_luma(&out.join(name), w, h).expect("decode");
        assert_eq!(b.len(), t.len(), "{name:?}: frame count");
        for (i, (x, y)) in b.iter().zip(&t).enumerate() {
            let d = segsynth::pipeline::stats::mean_abs_diff(x, y);
            assert!(
                d <= 0.5,
                "{name:?} frame {i}: batched differs by {d:.3} grey levels"
            );
        }
    }
    // An existing output is not overwritten without --overwrite: that file fails alone.
    let again = segsynth(&[
        "process",
        clips[0].to_str().unwrap(),
        clips[1].to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("2 inputs: 0 written, 2 failed"),
        "{}",
        stderr(&again)
    );
    // Usage errors before anything runs: a file name for several outputs, an input that
    // would be written over itself, two inputs with the same name.
    let other = dir.path().join("sub");
    std::fs::create_dir(&other).unwrap();
    let twin = other.join("clip0.mp4");
    std::fs::copy(&clips[0], &twin).unwrap();
    let folder = format!("{}/", dir.path().display());
    let file = dir.path().join("all.mp4").display().to_string();
    let fresh = dir.path().join("fresh").display().to_string();
    for (inputs, target, needle) in [
        (vec![&clips[0], &clips[1]], &file, "names a file"),
        (vec![&clips[0]], &folder, "over itself"),
        (vec![&clips[0], &twin], &fresh, "would both be written"),
    ] {
        let mut a: Vec<&str> = vec!["process"];
        a.extend(inputs.iter().map(|p| p.to_str().unwrap()));
        a.extend(["-o", target.as_str(), "--overwrite"]);
        let o = segsynth(&a);
        assert_eq!(o.status.code(), Some(2), "{needle}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    }
    assert!(
        !dir.path().join("all.mp4").exists(),
        "no folder made for a file name"
    );
}

#[test]
fn the_benchmark_finishes_on_a_10_fps_clip_with_audio() {
    // x264 holds more than a second of 10 fps video (lookahead and frame threads); the
    // reference transcode's audio queue held one second, so the demuxer blocked and the
    // benchmark hung on footage like this.
    let dir = tmpdir();
    let clip = dir.path().join("c10.mp4");
    let o = make_clip(
        &clip,
        &data("astronaut.jpg"),
        (320, 180, 30),
        &["--fps", "10"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let child = std::process::Command::new(bin())
        .args([
            "bench",
            "--clip",
            clip.to_str().unwrap(),
            "--rounds",
            "1",
            "--no-gan",
        ])
        .arg("--workdir")
        .arg(dir.path().join("bench"))
        .arg("--peer")
        .arg(venv_python())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bench");
    let o = finish_within(
        child,
        std::time::Duration::from_secs(120),
        "bench on a 10 fps clip",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    let transcode = table
        .lines()
        .rfind(|l| l.starts_with("GStreamer-only transcode"))
        .unwrap_or_else(|| panic!("no transcode row in:\n{table}"));
    assert!(transcode.trim_end().ends_with("1.00"), "{transcode}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("segment + blur background")),
        "{table}"
    );
    // The Python peer ran in the same round, on the same clip.
    let peer = table
        .lines()
        .find(|l| l.starts_with("Python peer"))
        .unwrap_or_else(|| panic!("no Python peer line in:\n{table}"));
    let fps: f64 = peer
        .split("median ")
        .nth(1)
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no frame rate in {peer}"));
    assert!(fps > 0.0, "{peer}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("segment + blur background: ")
                && l.contains("x the Python peer's speed")),
        "{table}"
    );
}

/// The benchmark refuses a `--peer` interpreter that cannot run the peer before it times
/// anything: usage error, naming the option and what the peer needs.
#[test]
fn the_benchmark_refuses_a_python_that_cannot_run_the_peer() {
    let dir = tmpdir();
    let missing = dir.path().join("no-python");
    let o = segsynth(&[
        "bench",
        "--peer",
        missing.to_str().unwrap(),
        "--workdir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_clean_error(&o, &["--peer", "no-python", "opencv-python-headless"]);
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}
