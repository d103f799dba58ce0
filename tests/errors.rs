//! Bad input of every kind: a clear message naming what is wrong and what was
//! expected, a non-zero exit, no panic, and no output file left behind.

use crate::support::*;

fn run_bad(input: &str, extra: &[&str], needles: &[&str]) {
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    let mut args = vec!["process", input, "-o", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let o = segsynth(&args);
    assert_clean_error(&o, needles);
    assert!(
        files_in(dir.path()).is_empty(),
        "nothing written: {:?}",
        files_in(dir.path())
    );
}

fn clip() -> String {
    person_clip(320, 180, 45).to_str().unwrap().to_string()
}

#[test]
fn missing_input() {
    run_bad(
        "/nonexistent/video.mp4",
        &[],
        &["/nonexistent/video.mp4", "does not exist"],
    );
}

#[test]
fn not_a_video() {
    let dir = tmpdir();
    let p = dir.path().join("notes.mp4");
    std::fs::write(&p, "just some text, not a video\n".repeat(50)).unwrap();
    run_bad(
        p.to_str().unwrap(),
        &[],
        &["notes.mp4", "expected a video file"],
    );
}

#[test]
fn zero_length_input() {
    let dir = tmpdir();
    let p = dir.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    run_bad(p.to_str().unwrap(), &[], &["empty.mp4", "empty (0 bytes)"]);
}

#[test]
fn audio_only_input() {
    let dir = tmpdir();
    let p = dir.path().join("tone.m4a");
    launch(&format!(
        "audiotestsrc num-buffers=20 ! audioconvert ! avenc_aac ! aacparse ! mp4mux ! filesink location={}",
        p.display()
    ));
    run_bad(
        p.to_str().unwrap(),
        &[],
        &["tone.m4a", "no video stream", "audio/mpeg"],
    );
}

#[test]
fn unsupported_codec_names_the_missing_plugin() {
    // Hide every H.264 decoder from autoplugging: GStreamer then reports the missing plugin.
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    let o = std::process::Command::new(bin())
        .args(["process", &clip(), "-o", out.to_str().unwrap(), "-q"])
        .env(
            "GST_PLUGIN_FEATURE_RANK",
            "avdec_h264:NONE,openh264dec:NONE,vah264dec:NONE,nvh264dec:NONE,v4l2h264dec:NONE",
        )
        .output()
        .unwrap();
    assert_clean_error(&o, &["missing a plugin", "H.264"]);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn output_folder_missing_or_unwritable() {
    let o = segsynth(&["process", &clip(), "-o", "/nonexistent-dir/out.mp4"]);
    assert_clean_error(&o, &["/nonexistent-dir", "does not exist"]);
    let o = segsynth(&["process", &clip(), "-o", "/proc/segsynth-out.mp4"]);
    assert_clean_error(&o, &["/proc", "not writable"]);
    let o = segsynth(&["process", &clip(), "-o", "/tmp/out.avi"]);
    assert_clean_error(&o, &["expected .mp4", ".mkv"]);
}

#[test]
fn model_errors() {
    run_bad(
        &clip(),
        &["--model", "/nonexistent/model.onnx"],
        &["/nonexistent/model.onnx", "missing"],
    );
    run_bad(
        &clip(),
        &["--model", "nosuchmodel"],
        &["unknown model", "selfie"],
    );
    run_bad(
        &clip(),
        &["--model", data("not_a_model.toml").to_str().unwrap()],
        &["not_a_model.onnx", "not a loadable ONNX model"],
    );
    run_bad(
        &clip(),
        &[
            "--model",
            data("seg_bad_channels.toml").to_str().unwrap(),
            "--classes",
            "sky",
        ],
        &["seg_bad_channels", "[1, 5, 32, 32]", "[1, 3, 32, 32]"],
    );
    run_bad(
        &clip(),
        &["--model", data("invalid_manifest.toml").to_str().unwrap()],
        &["invalid model manifest", "invalid_manifest.toml"],
    );
}

#[test]
fn option_errors() {
    run_bad(
        &clip(),
        &["--classes", "sky"],
        &["unknown class \"sky\"", "background, person"],
    );
    run_bad(
        &clip(),
        &["--content", "color:#12345"],
        &["color:#12345", "#RRGGBB"],
    );
    run_bad(
        &clip(),
        &["--content", "image:/nonexistent.png"],
        &["/nonexistent.png", "PNG or JPEG"],
    );
    run_bad(
        &clip(),
        &["--content", "sparkles"],
        &["sparkles", "expected one of"],
    );
    run_bad(
        &clip(),
        &["--content", "gan:nosuchgan"],
        &["nosuchgan", "foliage"],
    );
    run_bad(
        &clip(),
        &["--model-every", "0"],
        &[
            "model-every \"0\" is not valid",
            "auto, or a number of frames from 1 to 30",
        ],
    );
}

#[test]
fn gpu_requested_without_gpu_is_an_error_not_a_silent_cpu_run() {
    for device in ["cuda", "tensorrt"] {
        run_bad(&clip(), &["--device", device], &[device, "--features"]);
    }
    // auto falls back to the CPU and says so.
    let dir = tmpdir();
    let out = dir.path().join("auto.mp4");
    let o = segsynth(&[
        "process",
        &clip(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--device",
        "auto",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("segmentation: selfie (256x256 input) on CPUExecutionProvider"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_onnx_runtime_is_one_sentence() {
    let dir = tmpdir();
    let out = dir.path().join("out.mp4");
    let o = std::process::Command::new(bin())
        .args(["process", &clip(), "-o", out.to_str().unwrap()])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert_clean_error(&o, &["ONNX Runtime", "/nonexistent/libonnxruntime.so"]);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn models_lists_segmentation_models_and_generators() {
    let o = segsynth(&["models"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("selfie") && out.contains("classes background, person"),
        "{out}"
    );
    assert!(
        out.contains("gan:foliage") && out.contains("gan:stars"),
        "{out}"
    );
}

#[test]
fn make_clip_with_a_size_the_encoder_refuses_fails_cleanly() {
    let dir = tmpdir();
    let out = dir.path().join("tiny.mp4");
    let o = make_clip(&out, &data("astronaut.jpg"), (64, 14, 5), &["--no-audio"]);
    assert_clean_error(&o, &["64x14", "not-negotiated"]);
    assert!(files_in(dir.path()).is_empty(), "nothing left behind");
}

#[test]
fn make_clip_and_bench_refuse_grain_out_of_range() {
    let dir = tmpdir();
    let out = dir.path().join("grain.mp4");
    let photo = data("astronaut.jpg");
    let o = segsynth(&[
        "make-clip",
        out.to_str().unwrap(),
        "--photo",
        photo.to_str().unwrap(),
        "--grain",
        "100",
    ]);
    assert_clean_error(&o, &["--grain 100", "expected 0 to 64 grey levels"]);
    let work = dir.path().join("bench");
    let o = segsynth(&["bench", "--grain=-1", "--workdir", work.to_str().unwrap()]);
    assert_clean_error(&o, &["--grain -1", "expected 0 to 64 grey levels"]);
    assert!(!out.exists());
}
