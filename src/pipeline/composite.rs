//! The composite stage: content layers blended over the frame through each entry's alpha.

use std::sync::Arc;

use crate::content::{ContentError, ContentKind, Entry, cover, load_image};
use crate::frame::AlphaPlanes;
use crate::frame::{Frame, Matrix, Plane, Yuv420, rgb_to_yuv};
use crate::imgproc::blend::blend_upsampled;
use crate::imgproc::blend::{blend_color, blend_picture, unmix_picture};
use crate::imgproc::blur::blur_small;
use crate::infer::graphs::{BlendGraph, BlendLayer};
use crate::infer::{InferError, SessionOptions};
use crate::pipeline::synth::{LayerSlot, LayerTrack, Timing};

enum Layer {
    Blur {
        radius: usize,
    },
    Color {
        rgb: [u8; 3],
    },
    Image {
        image: Arc<Image>,
        fitted: Option<(usize, usize, Matrix, Arc<Yuv420>)>,
    },
    Mask,
    Gan(Box<LayerTrack>),
}

pub struct Compositor {
    layers: Vec<Layer>,
    has_mask: bool,
    graph: Option<GraphBlend>,
    /// Frames whose generated content held still or slowed because a layer was late (live).
    pub layer_reuses: u64,
    /// Estimate the kept colour in each entry's edge band before blending
    /// (`blend::unmix_picture`), so the replaced background does not show as a halo.
    /// Native blending only.
    pub unmix: bool,
}

impl Compositor {
    /// Loads everything a layer needs up front, so a bad image path fails before output exists.
    /// `gan_slots` gives, per entry, the slot its synth thread fills (entries without GAN
    /// get `None`), timed as `SynthParams::default` says.
    pub fn new(
        entries: &[Entry],
        gan_slots: &[Option<Arc<LayerSlot>>],
    ) -> Result<Compositor, ContentError> {
        let timing = crate::pipeline::synth::SynthParams::default().timing();
        Self::with_images(entries, gan_slots, timing, &[])
    }

    /// Like `new`, with the layers' `timing` and per entry an image already decoded (by
    /// validation) where given.
    pub fn with_images(
        entries: &[Entry],
        gan_slots: &[Option<Arc<LayerSlot>>],
        timing: Timing,
        images: &[Option<Arc<Image>>],
    ) -> Result<Compositor, ContentError> {
        let mut layers = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            layers.push(match &e.content {
                ContentKind::Blur { radius } => Layer::Blur { radius: *radius },
                ContentKind::Color { rgb } => Layer::Color { rgb: *rgb },
                ContentKind::Image { path } => {
                    let image = match images.get(i).cloned().flatten() {
                        Some(image) => image,
                        None => Arc::new(load_image(path)?),
                    };
                    Layer::Image {
                        image,
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
                    Layer::Gan(Box::new(LayerTrack::new(slot, timing)))
                }
            });
        }
        let has_mask = layers.iter().any(|l| matches!(l, Layer::Mask));
        Ok(Compositor {
            layers,
            has_mask,
            graph: None,
            layer_reuses: 0,
            unmix: false,
        })
    }

    /// Blends through the ONNX blend graph, built now for `first` (and again when the
    /// frame size or colour matrix changes). With `fallback` a graph that cannot be built
    /// leaves native blending in place; without it that is an error. Returns whether
    /// the graph runs.
    pub fn use_graphs(
        &mut self,
        options: SessionOptions,
        first: &Frame,
        fallback: bool,
    ) -> Result<bool, InferError> {
        let mut g = GraphBlend {
            options,
            built: None,
        };
        let (w, h) = (first.picture.width(), first.picture.height());
        match g.ensure(
            self.blend_layers(first.matrix),
            self.has_mask,
            self.unmix,
            w,
            h,
        ) {
            Ok(()) => {
                self.graph = Some(g);
                Ok(true)
            }
            Err(e) if fallback => {
                tracing::warn!(reason = %e, "blending stays native");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The layers as the blend graph sees them (colours depend on the frame's matrix).
    fn blend_layers(&self, matrix: Matrix) -> Vec<BlendLayer> {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Blur { radius } => BlendLayer::Blur(*radius),
                Layer::Color { rgb } => {
                    let (y, u, v) = rgb_to_yuv(matrix, rgb[0], rgb[1], rgb[2]);
                    BlendLayer::Value(y, u, v)
                }
                Layer::Mask => BlendLayer::Value(235, 128, 128),
                Layer::Image { .. } | Layer::Gan { .. } => BlendLayer::Picture,
            })
            .collect()
    }

    /// How far ahead of a frame the stage must have observed frames (the longest any
    /// generated layer asks for).
    pub fn lookahead(&self) -> Option<u64> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Gan(track) => track.lookahead(),
                _ => None,
            })
            .max()
    }

    /// A frame entering the composite stage (see `LayerTrack::observe`).
    pub fn observe(&mut self, frame: &Frame, alphas: &[AlphaPlanes]) {
        for (layer, alpha) in self.layers.iter_mut().zip(alphas) {
            if let Layer::Gan(track) = layer {
                track.observe(frame, &alpha.luma);
            }
        }
    }

    pub fn composite(
        &mut self,
        frame: &mut Frame,
        alphas: &[AlphaPlanes],
    ) -> Result<(), InferError> {
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let matrix = frame.matrix;
        let pictures = self.pictures(frame, alphas)?;
        let missing_picture = self
            .layers
            .iter()
            .zip(&pictures)
            .any(|(l, p)| matches!(l, Layer::Gan { .. } | Layer::Image { .. }) && p.is_none());
        // The graph needs every picture; before the first GAN layer exists, blend natively.
        let layers = self.blend_layers(matrix);
        let (has_mask, unmix) = (self.has_mask, self.unmix);
        if let Some(g) = self.graph.as_mut().filter(|_| !missing_picture) {
            g.ensure(layers, has_mask, unmix, w, h)?;
            if let Some((_, graph)) = g.built.as_mut() {
                let pics: Vec<&Yuv420> = pictures.iter().flatten().map(Content::picture).collect();
                return graph.run(&mut frame.picture, alphas, &pics);
            }
        }
        self.blend_native(frame, alphas, &pictures);
        Ok(())
    }

    /// Per layer, the picture it blends this frame (an image fitted to the frame, the
    /// GAN content at the frame's time); None for the kinds that need none.
    fn pictures(
        &mut self,
        frame: &Frame,
        alphas: &[AlphaPlanes],
    ) -> Result<Vec<Option<Content>>, InferError> {
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let matrix = frame.matrix;
        let mut pictures: Vec<Option<Content>> = Vec::with_capacity(self.layers.len());
        for (layer, alpha) in self.layers.iter_mut().zip(alphas) {
            pictures.push(match layer {
                Layer::Image { image, fitted } => {
                    let (rgb, width, height) = &**image;
                    let stale = !matches!(fitted, Some((fw, fh, fm, _)) if *fw == w && *fh == h && *fm == matrix);
                    if stale {
                        let pixels = cover(rgb, *width, *height, w, h);
                        *fitted = Some((w, h, matrix, Arc::new(Yuv420::from_rgb(&pixels, w, h, matrix))));
                    }
                    fitted.as_ref().map(|f| Content::Image(Arc::clone(&f.3)))
                }
                Layer::Gan(track) => {
                    let held = track.held;
                    let content = track.content(frame, &alpha.luma)?;
                    self.layer_reuses += track.held - held;
                    content.map(Content::Gan)
                }
                _ => None,
            });
        }
        Ok(pictures)
    }

    /// The Rust kernels: each layer blended in order through its alpha.
    fn blend_native(
        &self,
        frame: &mut Frame,
        alphas: &[AlphaPlanes],
        pictures: &[Option<Content>],
    ) {
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let matrix = frame.matrix;
        // Blur reads the untouched frame even when an earlier entry already drew over it
        // (or unmixing changed its edges): the small blurred planes are made first.
        let blurred: Vec<Option<[Plane; 3]>> = self
            .layers
            .iter()
            .map(|l| match l {
                Layer::Blur { radius } => Some([
                    blur_small(&frame.picture.y, (*radius).max(1)),
                    blur_small(&frame.picture.u, (*radius / 2).max(1)),
                    blur_small(&frame.picture.v, (*radius / 2).max(1)),
                ]),
                _ => None,
            })
            .collect();
        if self.has_mask {
            frame.picture = Yuv420::filled(w, h, (16, 128, 128));
        }
        for (i, ((layer, alpha), content)) in
            self.layers.iter().zip(alphas).zip(pictures).enumerate()
        {
            if self.unmix && !self.has_mask {
                unmix_picture(&mut frame.picture, alpha);
            }
            match layer {
                Layer::Blur { .. } => {
                    let Some(small) = &blurred[i] else { continue };
                    let pic = &mut frame.picture;
                    blend_upsampled(&mut pic.y, &small[0], &alpha.luma);
                    blend_upsampled(&mut pic.u, &small[1], &alpha.chroma);
                    blend_upsampled(&mut pic.v, &small[2], &alpha.chroma);
                }
                Layer::Color { rgb } => blend_color(
                    &mut frame.picture,
                    rgb_to_yuv(matrix, rgb[0], rgb[1], rgb[2]),
                    alpha,
                ),
                Layer::Mask => blend_color(&mut frame.picture, (235, 128, 128), alpha),
                Layer::Image { .. } | Layer::Gan { .. } => {
                    if let Some(c) = content {
                        blend_picture(&mut frame.picture, c.picture(), alpha);
                    }
                }
            }
        }
    }
}

/// A decoded RGB image: pixels, width, height.
pub type Image = (Vec<u8>, usize, usize);

/// A picture a layer blends this frame.
enum Content {
    Image(Arc<Yuv420>),
    Gan(Arc<Yuv420>),
}

impl Content {
    fn picture(&self) -> &Yuv420 {
        match self {
            Content::Image(p) => p,
            Content::Gan(p) => p,
        }
    }
}

impl GraphBlend {
    /// Builds the graph unless the one in place fits.
    fn ensure(
        &mut self,
        layers: Vec<BlendLayer>,
        has_mask: bool,
        unmix: bool,
        w: usize,
        h: usize,
    ) -> Result<(), InferError> {
        if self
            .built
            .as_ref()
            .is_none_or(|(k, _)| k.0 != w || k.1 != h || k.2 != layers || k.3 != unmix)
        {
            let graph = BlendGraph::new(&layers, has_mask, unmix, w, h, &self.options)?;
            self.built = Some(((w, h, layers, unmix), graph));
        }
        Ok(())
    }
}

/// What a blend graph was built for: frame size, layers, edge unmixing.
type BlendKey = (usize, usize, Vec<BlendLayer>, bool);

/// The blend graph and the key it was built for.
struct GraphBlend {
    options: SessionOptions,
    built: Option<(BlendKey, BlendGraph)>,
}
