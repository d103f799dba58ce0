//! Turning validated options into running stages. Everything that can be wrong with
//! the user's options (model, manifest, classes, colours, images, generators) is
//! checked in `Stages::prepare`, before any output file exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::content::{ContentKind, Entry};
use crate::frame::Frame;
use crate::imgproc::mask::MaskParams;
use crate::infer::{Model, Pixels, SessionOptions};
use crate::model::{Manifest, Task, for_frame, resolve};
use crate::pipeline::composite::{Compositor, Image};
use crate::pipeline::segment::{Segmenter, selections};
use crate::pipeline::stats::{StageTimes, Summary};
use crate::pipeline::{FrameSink, FrameSource, Progress, StageConfig};
use crate::synth::{Generator, SynthParams, SynthStage};

pub const DEFAULT_MODEL: &str = "selfie";

#[derive(Clone, Debug)]
pub struct JobOptions {
    pub model: String,
    pub entries: Vec<Entry>,
    pub mask: MaskParams,
    pub synth: SynthParams,
    pub session: SessionOptions,
    pub gan_threads: usize,
    pub pixels: crate::infer::Pixels,
    pub stages: (crate::pipeline::Backpressure, usize),
}

/// The folder holding model manifests: `$SEGSYNTH_MODELS`, or `models/` of the checkout
/// the binary was built in or runs from.
pub fn models_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("SEGSYNTH_MODELS") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            if dir.join("models/selfie.toml").is_file() {
                return dir.join("models");
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

pub struct Stages {
    options: JobOptions,
    segmentation: Manifest,
    /// Sessions opened while validating, reused by the first run when they fit.
    segmentation_model: Option<Model>,
    generators: Vec<Option<(Manifest, Option<Model>)>>,
    /// Images decoded while validating, per entry, handed to the compositor.
    images: Vec<Option<Arc<Image>>>,
}

impl Stages {
    pub fn prepare(options: JobOptions) -> anyhow::Result<Stages> {
        let dir = models_dir();
        let manifest = Manifest::load(&resolve(&options.model, &dir)?)?;
        if manifest.task != Task::Segmentation {
            anyhow::bail!(
                "model {} is a {:?} model; --model expects a segmentation model",
                manifest.name,
                manifest.task
            );
        }
        // Opening validates the manifest against the real session, then classes against the manifest.
        let model = Model::open(manifest.clone(), &options.session)?;
        selections(&model, &options.entries)?;
        let mut generators = Vec::new();
        for e in &options.entries {
            generators.push(match &e.content {
                ContentKind::Gan { model } => {
                    let m = load_generator(model, &dir)?;
                    let session = Model::open(m.clone(), &gan_session(&options))?;
                    Some((m, Some(session)))
                }
                _ => None,
            });
        }
        // Images are decoded (and so validated) here too, once.
        let mut images = Vec::new();
        for e in &options.entries {
            images.push(match &e.content {
                ContentKind::Image { path } => Some(Arc::new(crate::content::load_image(path)?)),
                _ => None,
            });
        }
        Ok(Stages {
            options,
            segmentation: manifest,
            segmentation_model: Some(model),
            generators,
            images,
        })
    }

    /// Runs the stages over `source` into `sink`; `first` sizes the model choice.
    pub fn run(
        &mut self,
        first: &Frame,
        source: &mut dyn FrameSource,
        sink: &mut dyn FrameSink,
        stop: &AtomicBool,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<Summary> {
        let (w, h) = (first.picture.width(), first.picture.height());
        let manifest = for_frame(self.segmentation.clone(), w, h)?;
        tracing::info!(model = %manifest.name, width = w, height = h, "segmentation model chosen for the frame size");
        let model = match self.segmentation_model.take() {
            Some(m) if m.manifest.path == manifest.path => m,
            _ => Model::open(manifest, &self.options.session)?,
        };
        let mut segmenter = Segmenter::new(model, &self.options.entries, &self.options.mask)?;
        let provider = segmenter.provider();
        tracing::info!(provider, "segmentation runs on");
        let mut synths = Vec::new();
        for g in &mut self.generators {
            synths.push(match g {
                Some((manifest, session)) => {
                    let model = match session.take() {
                        Some(m) => m,
                        None => Model::open(manifest.clone(), &gan_session(&self.options))?,
                    };
                    Some(SynthStage::start(
                        Generator::new(model, self.options.synth.clone()),
                        &self.options.synth,
                    )?)
                }
                None => None,
            });
        }
        let slots: Vec<_> = synths
            .iter()
            .map(|s| s.as_ref().map(|s| Arc::clone(&s.slot)))
            .collect();
        let mut compositor = Compositor::with_images(&self.options.entries, &slots, &self.images)?;
        let pixels = self.options.pixels;
        let mut graphs = pixels.use_graphs(provider);
        if graphs {
            let fallback = pixels == Pixels::Auto;
            let session = self.options.session.clone();
            let segment = segmenter.use_graphs(session.clone(), first, fallback)?;
            let blend = compositor.use_graphs(session, first, fallback)?;
            graphs = segment && blend;
            if segment != blend {
                tracing::warn!(
                    segment,
                    blend,
                    "only part of the per-pixel steps run as graphs"
                );
            }
        }
        let pixel_path = if graphs {
            "ONNX graphs"
        } else {
            "native kernels"
        };
        tracing::info!(pixel_path, "per-pixel steps run as");
        let config = StageConfig {
            backpressure: self.options.stages.0,
            capacity: self.options.stages.1,
        };
        let result = crate::pipeline::run(
            source,
            &mut segmenter,
            &mut compositor,
            sink,
            &config,
            stop,
            progress,
        );
        let mut synth_times = StageTimes::new("synth");
        let mut nonfinite = 0;
        let mut synth_error = None;
        for s in synths.into_iter().flatten() {
            match s.finish() {
                Ok((bad, times)) => {
                    nonfinite += bad;
                    synth_times.ms.extend(times);
                }
                Err(e) => synth_error = Some(e),
            }
        }
        let mut summary = result?;
        if let Some(e) = synth_error {
            return Err(e).context("the synthesis stage failed");
        }
        summary.nonfinite_values = nonfinite;
        summary.provider = format!("{provider} (per-pixel steps: {pixel_path})");
        if !synth_times.ms.is_empty() {
            summary.stages.push(synth_times);
        }
        Ok(summary)
    }
}

fn gan_session(options: &JobOptions) -> SessionOptions {
    SessionOptions {
        threads: options.gan_threads,
        device: options.session.device,
    }
}

/// Resolves `gan:<name|path>`: names are looked up in `models/gan/`.
pub fn load_generator(name: &str, dir: &Path) -> anyhow::Result<Manifest> {
    let path = resolve(name, &dir.join("gan")).or_else(|_| resolve(name, dir))?;
    let m = Manifest::load(&path)?;
    if m.task != Task::Generator {
        anyhow::bail!(
            "gan:{name} names {} which is a {:?} model; expected a generator",
            path.display(),
            m.task
        );
    }
    Ok(m)
}
