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
use tool::{CONTENT, Figures, measure, photo_scene};

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
