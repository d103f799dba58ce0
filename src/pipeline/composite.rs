//! The composite stage: content layers blended over the frame through each entry's alpha.

use std::sync::Arc;

use crate::content::{ContentError, ContentKind, Entry, cover, load_image};
use crate::frame::{Frame, Matrix, Yuv420, rgb_to_yuv};
use crate::imgproc::blur::blur_plane;
use crate::imgproc::composite::{blend_color, blend_picture};
use crate::imgproc::mask::AlphaPlanes;
use crate::synth::LayerSlot;

enum Layer {
    Blur {
        radius: usize,
    },
    Color {
        rgb: [u8; 3],
    },
    Image {
        rgb: Vec<u8>,
        width: usize,
        height: usize,
        fitted: Option<(usize, usize, Matrix, Yuv420)>,
    },
    Mask,
    Gan {
        slot: Arc<LayerSlot>,
        last_generation: u64,
    },
}

pub struct Compositor {
    layers: Vec<Layer>,
    has_mask: bool,
    /// How often a frame reused a synthesized layer it had already used.
    pub layer_reuses: u64,
}

impl Compositor {
    /// Loads everything a layer needs up front, so a bad image path fails before output exists.
    /// `gan_slots` gives, per entry, the slot its synth thread fills (entries without GAN get `None`).
    pub fn new(
        entries: &[Entry],
        gan_slots: &[Option<Arc<LayerSlot>>],
    ) -> Result<Compositor, ContentError> {
        let mut layers = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            layers.push(match &e.content {
                ContentKind::Blur { radius } => Layer::Blur { radius: *radius },
                ContentKind::Color { rgb } => Layer::Color { rgb: *rgb },
                ContentKind::Image { path } => {
                    let (rgb, width, height) = load_image(path)?;
                    Layer::Image {
                        rgb,
                        width,
                        height,
                        fitted: None,
                    }
                }
                ContentKind::Mask => Layer::Mask,
                ContentKind::Gan { model } => {
                    let slot = gan_slots.get(i).cloned().flatten().ok_or_else(|| {
                        ContentError::Syntax {
                            given: format!("gan:{model}"),
                            why: "no synthesis stage was started for this entry".into(),
                        }
                    })?;
                    Layer::Gan {
                        slot,
                        last_generation: 0,
                    }
                }
            });
        }
        let has_mask = layers.iter().any(|l| matches!(l, Layer::Mask));
        Ok(Compositor {
            layers,
            has_mask,
            layer_reuses: 0,
        })
    }

    pub fn composite(&mut self, frame: &mut Frame, alphas: &[AlphaPlanes]) {
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let matrix = frame.matrix;
        // Blur reads the untouched frame even when an earlier entry already drew over it.
        let needs_original =
            self.layers.len() > 1 && self.layers.iter().any(|l| matches!(l, Layer::Blur { .. }));
        let original = needs_original.then(|| frame.picture.clone());
        if self.has_mask {
            frame.picture = Yuv420::filled(w, h, (16, 128, 128));
        }
        for (layer, alpha) in self.layers.iter_mut().zip(alphas) {
            match layer {
                Layer::Blur { radius } => {
                    let src = original.as_ref().unwrap_or(&frame.picture);
                    let blurred = Yuv420 {
                        y: blur_plane(&src.y, *radius),
                        u: blur_plane(&src.u, (*radius / 2).max(1)),
                        v: blur_plane(&src.v, (*radius / 2).max(1)),
                    };
                    blend_picture(&mut frame.picture, &blurred, alpha);
                }
                Layer::Color { rgb } => blend_color(
                    &mut frame.picture,
                    rgb_to_yuv(matrix, rgb[0], rgb[1], rgb[2]),
                    alpha,
                ),
                Layer::Image {
                    rgb,
                    width,
                    height,
                    fitted,
                } => {
                    let stale = !matches!(fitted, Some((fw, fh, fm, _)) if *fw == w && *fh == h && *fm == matrix);
                    if stale {
                        let pixels = cover(rgb, *width, *height, w, h);
                        *fitted = Some((w, h, matrix, Yuv420::from_rgb(&pixels, w, h, matrix)));
                    }
                    if let Some((_, _, _, pic)) = fitted {
                        blend_picture(&mut frame.picture, pic, alpha);
                    }
                }
                Layer::Mask => blend_color(&mut frame.picture, (235, 128, 128), alpha),
                Layer::Gan {
                    slot,
                    last_generation,
                } => {
                    slot.request(frame.pts.unwrap_or(frame.index * 33_333_333), w, h, matrix);
                    if let Some(latest) = slot.latest(w, h) {
                        if latest.generation == *last_generation {
                            self.layer_reuses += 1;
                        }
                        *last_generation = latest.generation;
                        blend_picture(&mut frame.picture, &latest.picture, alpha);
                    }
                }
            }
        }
    }
}
