//! Turning validated options into running stages. Everything that can be wrong with
//! the user's options (model, manifest, classes, colours, images, generators) is
//! checked in `Stages::prepare`, before any output file exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::content::{ContentError, ContentKind, Entry};
use crate::frame::Frame;
use crate::imgproc::mask::MaskParams;
use crate::infer::{InferError, Model, Pixels, SessionOptions};
use crate::model::{Manifest, ManifestError, Task, resolve};
use crate::pipeline::composite::{Compositor, Image};
use crate::pipeline::segment::{Segmenter, selections};
use crate::pipeline::stats::{StageTimes, Summary};
use crate::pipeline::synth::SynthError;
use crate::pipeline::synth::{Generator, SynthParams, SynthStage};
use crate::pipeline::{FrameSink, FrameSource, PipelineError, Progress, StageConfig};

pub const DEFAULT_MODEL: &str = "selfie";

/// What can stop a job from being prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the synthesis stage failed: {0}")]
    Synth(#[from] SynthError),
    #[error("{given} names {} which is a {task:?} model; expected {expected}", .path.display())]
    WrongTask {
        given: String,
        path: PathBuf,
        task: Task,
        expected: &'static str,
    },
}

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
    pub fn prepare(options: JobOptions) -> Result<Stages, JobError> {
        let dir = models_dir();
        let manifest = Manifest::load(&resolve(&options.model, &dir)?)?;
        if manifest.task != Task::Segmentation {
            return Err(JobError::WrongTask {
                given: format!("--model {}", options.model),
                path: manifest.path.clone(),
                task: manifest.task,
                expected: "a segmentation model",
            });
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
    ) -> Result<Summary, JobError> {
        let (w, h) = (first.picture.width(), first.picture.height());
        let manifest = self.segmentation.clone();
        let (mh, mw) = manifest.input_hw();
        let model_label = format!("{} ({mw}x{mh} input)", manifest.name);
        tracing::info!(model = %model_label, width = w, height = h, "segmentation model");
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
                        &first.picture,
                        first.matrix,
                        Some(progress.metrics.stage("synth")),
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
        compositor.unmix = self.options.mask.refine.is_some();
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
        progress.metrics.provider(provider, &model_label, pixel_path);
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
            return Err(JobError::Synth(e));
        }
        summary.nonfinite_values = nonfinite;
        summary.provider = format!("{provider} (per-pixel steps: {pixel_path})");
        summary.model = model_label;
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
pub fn load_generator(name: &str, dir: &Path) -> Result<Manifest, JobError> {
    let path = resolve(name, &dir.join("gan")).or_else(|_| resolve(name, dir))?;
    let m = Manifest::load(&path)?;
    if m.task != Task::Generator {
        return Err(JobError::WrongTask {
            given: format!("gan:{name}"),
            path,
            task: m.task,
            expected: "a generator",
        });
    }
    Ok(m)
}
