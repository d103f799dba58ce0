//! Multi-class segmentation through the same code path, with tiny generated models
//! whose outputs are known: class = argmax of the pixel's colour (R=sky, G=person, B=road).

use crate::support::*;

/// A clip whose left half is red, middle green, right blue.
fn stripes_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let png = dir.join("stripes.png");
    let img = image::RgbImage::from_fn(300, 100, |x, _| match x / 100 {
        0 => image::Rgb([230, 20, 20]),
        1 => image::Rgb([20, 230, 20]),
        _ => image::Rgb([20, 20, 230]),
    });
    img.save(&png).unwrap();
    let clip = dir.join("stripes.mp4");
    let o = make_clip(&clip, &png, (192, 64, 6), &["--no-audio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    clip
}

fn check(model: &str, pixels: &str) {
    let dir = tmpdir();
    let clip = stripes_clip(dir.path());
    let out = dir.path().join("out.mkv");
    let o = process(
        &clip,
        &out,
        &[
            "-q",
            "--model",
            data(model).to_str().unwrap(),
            "--content",
            "road=color:#ffffff",
            "--content",
            "sky=color:#000000",
            "--feather",
            "0",
            "--temporal",
            "0",
            "--pixels",
            pixels,
        ],
    );
    assert!(o.status.success(), "{model}: {}", stderr(&o));
    let p = probe(&out, &[3], 48, 16);
    let t = p.thumb(3);
    // The crop window pans, so look well inside each third.
    let left = region_mean(t, p.thumb_size, (0.02, 0.2, 0.15, 0.8));
    let right = region_mean(t, p.thumb_size, (0.85, 0.2, 0.98, 0.8));
    let mid = region_mean(t, p.thumb_size, (0.45, 0.2, 0.55, 0.8));
    assert!(
        left.iter().all(|&v| v < 40.0),
        "{model}: sky (red) became black: {left:?}"
    );
    assert!(
        right.iter().all(|&v| v > 215.0),
        "{model}: road (blue) became white: {right:?}"
    );
    assert!(
        mid[1] > 150.0 && mid[0] < 90.0,
        "{model}: person (green) untouched: {mid:?}"
    );
}

#[test]
fn nchw_logits_softmax() {
    check("seg3_nchw_logits.toml", "native");
    check("seg3_nchw_logits.toml", "graph");
}

#[test]
fn nhwc_probabilities() {
    check("seg3_nhwc_probs.toml", "native");
    check("seg3_nhwc_probs.toml", "graph");
}

#[test]
fn argmax_labels() {
    check("seg3_nchw_labels.toml", "native");
    // auto on the CPU is native; an explicit graph request for a label map is a clear error.
    check("seg3_nchw_labels.toml", "auto");
    let dir = tmpdir();
    let clip = stripes_clip(dir.path());
    let out = dir.path().join("labels-graph.mkv");
    let model = data("seg3_nchw_labels.toml");
    let o = process(
        &clip,
        &out,
        &[
            "-q",
            "--model",
            model.to_str().unwrap(),
            "--content",
            "sky=mask",
            "--pixels",
            "graph",
        ],
    );
    assert_clean_error(&o, &["label-map", "--pixels native"]);
    assert!(!out.exists(), "no output left behind");
}
