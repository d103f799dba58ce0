//! The mask a viewer sees, measured on a scene with a known person mask
//! (`src/bin/core_bench/quality.rs`): the halo around the person, the interior, flicker on a
//! still scene and edge lag on a moving one, with the real selfie model.

use segsynth::content::{ContentKind, Entry};
use segsynth::imgproc::mask::MaskParams;
use segsynth::infer::{Device, Model, SessionOptions};
use segsynth::job::models_dir;
use segsynth::model::{Manifest, resolve};
// The measurement tool lives with the core bench, which prints the same figures.
#[path = "../src/bin/core_bench/quality.rs"]
mod tool;
use segsynth::options::ModelEvery;
use tool::{Agreement, CONTENT, Figures, agreement, measure, photo_scene, rate_figures};

fn open() -> Result<Model, segsynth::infer::InferError> {
    let manifest = Manifest::load(&resolve("selfie", &models_dir()).expect("selfie manifest"))
        .expect("load manifest");
    Model::open(
        manifest,
        &SessionOptions {
            threads: 1,
            device: Device::Cpu,
        },
    )
}

#[test]
fn refined_edges_halve_the_halo_without_flicker_or_lag() {
    let scene = photo_scene(&crate::support::data("astronaut.jpg"), &open, 640, 360)
        .expect("scene from the astronaut photo");
    let entries = [Entry {
        classes: vec!["background".into()],
        content: ContentKind::Color { rgb: CONTENT },
    }];
    let refined = MaskParams::default();
    assert!(refined.refine.is_some(), "refinement is the default");
    let plain = MaskParams {
        refine: None,
        ..MaskParams::default()
    };
    let today: Figures = measure(&scene, &entries, &plain, &open).expect("plain figures");
    let now: Figures = measure(&scene, &entries, &refined, &open).expect("refined figures");
    eprintln!("plain feather: {today:?}\nrefined:       {now:?}");
    // The plain feathered blend really has a halo to remove (not a vacuous bound).
    assert!(today.halo > 5.0, "plain halo {:.1}", today.halo);
    assert!(
        now.halo <= today.halo * 0.5,
        "halo must fall by half: plain {:.2}, refined {:.2}",
        today.halo,
        now.halo
    );
    // Deep inside the person the output is the input (up to the model's own holes,
    // the same in both).
    assert!(
        now.interior < 1.0 && now.interior <= today.interior + 0.2,
        "the person's interior is unchanged: plain {:.2}, refined {:.2}",
        today.interior,
        now.interior
    );
    assert!(
        now.flicker <= today.flicker,
        "flicker must not grow: plain {:.3}, refined {:.3}",
        today.flicker,
        now.flicker
    );
    assert!(
        now.lag_frames.abs() < 0.5,
        "edge lag {:.2} frames",
        now.lag_frames
    );
}

/// `--model-every auto` (the default) against the model on every frame, on a camera
/// panning and zooming over a photo and on a person walking across the frame: the person
/// masks agree (intersection over union), and on the pan the model skips frames.
#[test]
fn the_adaptive_model_rate_keeps_the_masks_of_every_frame() {
    let photo = crate::support::data("astronaut.jpg");
    let (rgb, pw, ph) = segsynth::content::load_image(&photo).expect("astronaut photo");
    let entries = [Entry {
        classes: vec!["person".into()],
        content: ContentKind::Mask,
    }];
    let params = MaskParams::default();
    assert_eq!(params.model_every, ModelEvery::Auto, "auto is the default");
    let scene = photo_scene(&photo, &open, 640, 360).expect("scene");
    let figures = rate_figures((&rgb, pw, ph), &scene, &entries, &params, &open).expect("figures");
    for &(name, a) in &figures {
        let Agreement {
            mean_iou,
            worst_iou,
            runs,
            frames,
        } = a;
        eprintln!(
            "{name}: IoU mean {mean_iou:.4}, worst {worst_iou:.4}; model on {runs} of {frames} frames"
        );
        assert_eq!(frames, 90);
        assert!(
            mean_iou >= 0.98 && worst_iou >= 0.95,
            "{name}: the masks must agree with the model on every frame (mean >= 0.98, worst >= 0.95): {mean_iou:.4}, {worst_iou:.4}"
        );
    }
    let of = |name: &str| figures.iter().find(|f| f.0 == name).expect(name).1;
    let (still, slow) = (of("still person"), of("slow pan/zoom"));
    assert_eq!(
        still.runs, 30,
        "a still picture: the model on every third frame"
    );
    assert!(
        slow.runs < slow.frames * 3 / 4,
        "on the slow pan the model skips frames: {} of {}",
        slow.runs,
        slow.frames
    );
    // A fixed rate runs the model on every Nth frame, and its masks differ from every
    // frame's when the picture moves (the check above is not vacuous).
    let third = MaskParams {
        model_every: ModelEvery::Frames(3),
        ..MaskParams::default()
    };
    let fixed = agreement(scene.walk(30, 12), &entries, &third, &open).expect("fixed rate");
    assert_eq!((fixed.runs, fixed.frames), (10, 30));
    assert!(
        fixed.worst_iou < 0.95,
        "a fast walk every third frame: worst IoU {:.4}",
        fixed.worst_iou
    );
}
