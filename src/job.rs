//! Turning validated options into running stages. Everything that can be wrong with
//! the user's options (model, manifest, classes, colours, images, generators) is
//! checked in `Stages::prepare`, before any output file exists.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::content::{ContentError, ContentKind, ContentSpec, DEFAULT_BLUR_RADIUS, Entry};
use crate::frame::Frame;
use crate::imgproc::mask::MaskParams;
use crate::infer::{InferError, Model, Pixels, SessionOptions};
use crate::model::{Manifest, ManifestError, Task, resolve};
use crate::pipeline::composite::{Compositor, Image};
use crate::pipeline::segment::Segmenter;
use crate::pipeline::stats::{StageTimes, Summary};
use crate::pipeline::synth::SynthError;
use crate::pipeline::synth::{Generator, SynthParams, SynthStage};
use crate::pipeline::{Edit, Edits, FrameSink, FrameSource, PipelineError, Progress, StageConfig};
use prometheus_client::metrics::histogram::Histogram;

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
    /// `--classes`: what a plain `--content` applies to.
    pub classes: Vec<String>,
    pub content: Vec<ContentSpec>,
    pub mask: MaskParams,
    pub synth: SynthParams,
    pub session: SessionOptions,
    pub gan_threads: usize,
    pub pixels: crate::infer::Pixels,
    pub stages: (crate::pipeline::Backpressure, usize),
    /// `--batch` and `--batch-window-ms`: streams' frames in one segmentation call.
    pub batch: (crate::options::Batch, std::time::Duration),
}

impl JobOptions {
    /// The class -> content map of `classes` and `content`.
    pub fn entries(&self) -> Result<Vec<Entry>, ContentError> {
        content_map(&self.classes, &self.content)
    }
}

/// Builds the map from `--classes` and the `--content` values.
///
/// `--content <kind>` applies to every class in `--classes` (default `background`);
/// `--content <class>=<kind>` adds an entry for one class. Both may be mixed.
pub fn content_map(
    classes: &[String],
    contents: &[ContentSpec],
) -> Result<Vec<Entry>, ContentError> {
    let mut plain = Vec::new();
    let mut entries = Vec::new();
    for c in contents {
        match &c.class {
            Some(class) => entries.push(Entry {
                classes: vec![class.clone()],
                content: c.kind.clone(),
            }),
            None => plain.push(c.kind.clone()),
        }
    }
    if plain.len() > 1 {
        return Err(ContentError::Syntax {
            given: plain
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            why: "more than one plain --content; use <class>=<kind> to give classes different content".into(),
        });
    }
    let chosen = || {
        if classes.is_empty() {
            vec!["background".to_string()]
        } else {
            classes.to_vec()
        }
    };
    if let Some(kind) = plain.pop() {
        entries.insert(
            0,
            Entry {
                classes: chosen(),
                content: kind,
            },
        );
    } else if entries.is_empty() {
        entries.push(Entry {
            classes: chosen(),
            content: ContentKind::Blur {
                radius: DEFAULT_BLUR_RADIUS,
            },
        });
    }
    Ok(entries)
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
    /// The class -> content map of the options.
    entries: Vec<Entry>,
    /// The segmentation session, opened while validating; every run gets a handle on it.
    segmentation_model: Model,
    /// Per entry, the generator session of a `gan:` entry, shared the same way.
    generators: Vec<Option<Model>>,
    /// Images decoded while validating, per entry, handed to the compositor.
    images: Vec<Option<Arc<Image>>>,
    /// Live edits, when the caller asked for them (`Stages::editor`).
    edits: Option<Arc<Edits>>,
    /// Synth stages started by edits: finished when the run ends.
    edit_synths: Arc<Mutex<Vec<SynthStage>>>,
    /// Whether this run's per-pixel steps are graphs (edits build the same).
    graphs: Arc<AtomicBool>,
}

/// Builds live edits off the video path (`segsynth run` re-reading its preset): checks
/// the new map against the model's classes, loads images and generators, primes the
/// generators, and hands the result to the running stages.
pub struct Editor {
    options: JobOptions,
    classes: Vec<String>,
    model: String,
    edits: Arc<Edits>,
    synths: Arc<Mutex<Vec<SynthStage>>>,
    graphs: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

impl Editor {
    /// Builds and publishes the edit; the stages switch to it on their next frame.
    /// Nothing changes on an error (the map stays what it was).
    pub fn apply(
        &self,
        entries: Vec<Entry>,
        mask: MaskParams,
        (width, height): (usize, usize),
        label: String,
    ) -> Result<(), JobError> {
        crate::content::selections(&entries, &self.model, &self.classes)?;
        let grey = Frame {
            index: 0,
            pts: Some(0),
            duration: None,
            matrix: crate::frame::Matrix::Bt709,
            picture: crate::frame::Yuv420::filled(width, height, (110, 128, 128)),
        };
        let generators = open_generators(&entries, &gan_session(&self.options))?;
        let (mut compositor, started) = start_content(
            &entries,
            &[],
            generators,
            &self.options.synth,
            &mask,
            Some(self.progress.metrics.stage("synth")),
        )?;
        if self.graphs.load(Ordering::Relaxed) {
            compositor.use_graphs(self.options.session.clone(), &grey, true)?;
        }
        if let Ok(mut s) = self.synths.lock() {
            s.extend(started);
        }
        self.edits.publish(Edit {
            entries,
            mask,
            compositor: Box::new(compositor),
            label,
        });
        Ok(())
    }
}

impl Stages {
    /// Checks everything the options name, in this order: the map, the models'
    /// manifests, the sessions (a model that does not load), the classes, the images.
    pub fn prepare(options: JobOptions) -> Result<Stages, JobError> {
        let entries = options.entries()?;
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
        let gan = gan_session(&options);
        let generators = generator_manifests(&entries, &dir)?;
        // A model that does not load is said before a class it lacks.
        let mut model = Model::open(manifest.clone(), &options.session)?;
        let generators = generators
            .into_iter()
            .map(|g| g.map(|m| Model::open(m, &gan)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let (batch, window) = options.batch;
        if !model.batch(batch, window) {
            crate::notice!(
                "--batch {batch}: the model {} takes one frame a call (its batch dimension is fixed); convert it again with models/convert_selfie.py to batch",
                model.manifest.name
            );
        }
        crate::content::selections(&entries, &manifest.name, manifest.classes())?;
        let images = entries
            .iter()
            .map(|e| match &e.content {
                ContentKind::Image { path } => {
                    Ok(Some(Arc::new(crate::content::load_image(path)?)))
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, ContentError>>()?;
        Ok(Stages {
            options,
            entries,
            segmentation_model: model,
            generators,
            images,
            edits: None,
            edit_synths: Arc::default(),
            graphs: Arc::default(),
        })
    }

    /// (model calls, frames) of the segmentation model's batches, when batching.
    pub fn batch_stats(&self) -> Option<(u64, u64)> {
        self.segmentation_model.batch_stats()
    }

    /// Stages for another stream of the same options, running at the same time: the
    /// model sessions are shared (one run at a time each), the rest is its own.
    pub fn fork(&self) -> Stages {
        Stages {
            options: self.options.clone(),
            entries: self.entries.clone(),
            segmentation_model: self.segmentation_model.share(),
            generators: self
                .generators
                .iter()
                .map(|g| g.as_ref().map(Model::share))
                .collect(),
            images: self.images.clone(),
            edits: None,
            edit_synths: Arc::default(),
            graphs: Arc::default(),
        }
    }

    /// Lets the class -> content map change while the stages run: edits made with the
    /// returned editor (from any thread) are switched to between two frames.
    pub fn editor(&mut self, progress: &Arc<Progress>) -> Editor {
        let edits = Arc::clone(self.edits.get_or_insert_with(Arc::default));
        Editor {
            options: self.options.clone(),
            classes: self.segmentation_model.manifest.classes().to_vec(),
            model: self.segmentation_model.manifest.name.clone(),
            edits,
            synths: Arc::clone(&self.edit_synths),
            graphs: Arc::clone(&self.graphs),
            progress: Arc::clone(progress),
        }
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
        let manifest = &self.segmentation_model.manifest;
        let (mh, mw) = manifest.input_hw();
        let model_label = format!("{} ({mw}x{mh} input)", manifest.name);
        tracing::info!(model = %model_label, width = w, height = h, "segmentation model");
        let model = self.segmentation_model.again();
        let mut segmenter = Segmenter::new(model, &self.entries, &self.options.mask)?;
        let provider = segmenter.provider();
        tracing::info!(provider, "segmentation runs on");
        let generators = self
            .generators
            .iter()
            .map(|g| g.as_ref().map(Model::share))
            .collect();
        let (mut compositor, synths) = start_content(
            &self.entries,
            &self.images,
            generators,
            &self.options.synth,
            &self.options.mask,
            Some(progress.metrics.stage("synth")),
        )?;
        let graphs = self.use_graphs(provider, &mut segmenter, &mut compositor, first)?;
        let pixel_path = if graphs {
            "ONNX graphs"
        } else {
            "native kernels"
        };
        tracing::info!(pixel_path, "per-pixel steps run as");
        progress
            .metrics
            .provider(provider, &model_label, pixel_path);
        self.graphs.store(graphs, Ordering::Relaxed);
        let config = StageConfig {
            backpressure: self.options.stages.0,
            capacity: self.options.stages.1,
            edits: self.edits.clone(),
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
        let finished = self.finish_synths(synths);
        let mut summary = result?;
        let (nonfinite, synth_times) = finished?;
        summary.nonfinite_values = nonfinite;
        summary.provider = format!("{provider} (per-pixel steps: {pixel_path})");
        summary.model = model_label;
        summary.model_runs = segmenter.model_runs();
        if !synth_times.ms.is_empty() {
            summary.stages.push(synth_times);
        }
        Ok(summary)
    }

    /// Whether the per-pixel steps run as ONNX graphs (`--pixels`, the provider the model
    /// got, and whether both sides could build them for `first`).
    fn use_graphs(
        &self,
        provider: &str,
        segmenter: &mut Segmenter,
        compositor: &mut Compositor,
        first: &Frame,
    ) -> Result<bool, JobError> {
        let pixels = self.options.pixels;
        if !pixels.use_graphs(provider) {
            return Ok(false);
        }
        let fallback = pixels == Pixels::Auto;
        let session = self.options.session.clone();
        let segment = segmenter.use_graphs(session.clone(), first, fallback)?;
        if segment && self.segmentation_model.batch_stats().is_some() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                crate::notice!(
                    "--batch: the ONNX graph path (--pixels {pixels}) runs each stream's model on its own; batching takes --pixels native"
                )
            });
        }
        if segment && self.options.mask.model_every != crate::options::ModelEvery::Frames(1) {
            tracing::warn!(
                model_every = %self.options.mask.model_every,
                "the ONNX graph path runs the model on every frame; --model-every applies to the native path"
            );
        }
        let blend = compositor.use_graphs(session, first, fallback)?;
        if segment != blend {
            tracing::warn!(
                segment,
                blend,
                "only part of the per-pixel steps run as graphs"
            );
        }
        Ok(segment && blend)
    }

    /// Stops the run's synth threads (and those live edits started): non-finite values
    /// clamped and every layer's time, or the first synth failure.
    fn finish_synths(&self, synths: Vec<SynthStage>) -> Result<(u64, StageTimes), JobError> {
        let mut times = StageTimes::new("synth");
        let mut nonfinite = 0;
        let mut error = None;
        let edit_synths = self
            .edit_synths
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for s in synths.into_iter().chain(edit_synths) {
            match s.finish() {
                Ok((bad, ms)) => {
                    nonfinite += bad;
                    times.ms.extend(ms);
                }
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(JobError::Synth(e)),
            None => Ok((nonfinite, times)),
        }
    }
}

/// Loads and opens the generator of every GAN entry (None for the other entries), so a
/// bad generator fails here, before anything runs.
pub fn open_generators(
    entries: &[Entry],
    session: &SessionOptions,
) -> Result<Vec<Option<Model>>, JobError> {
    generator_manifests(entries, &models_dir())?
        .into_iter()
        .map(|g| Ok(g.map(|m| Model::open(m, session)).transpose()?))
        .collect()
}

/// The manifest of every GAN entry's generator (None for the other entries).
fn generator_manifests(entries: &[Entry], dir: &Path) -> Result<Vec<Option<Manifest>>, JobError> {
    entries
        .iter()
        .map(|e| match &e.content {
            ContentKind::Gan { model } => Ok(Some(load_generator(model, dir)?)),
            _ => Ok(None),
        })
        .collect()
}

/// The content side of a map: a synth stage per opened generator
/// of `generators` (one per entry, from `open_generators`), and the compositor over
/// their layers and the entries' `images` (decoded where given), with edge unmixing
/// when `mask` refines edges. `seconds` observes every layer's time.
pub fn start_content(
    entries: &[Entry],
    images: &[Option<Arc<Image>>],
    generators: Vec<Option<Model>>,
    synth: &SynthParams,
    mask: &MaskParams,
    seconds: Option<Histogram>,
) -> Result<(Compositor, Vec<SynthStage>), JobError> {
    let mut slots = Vec::new();
    let mut stages = Vec::new();
    for model in generators {
        slots.push(match model {
            Some(model) => {
                let stage = SynthStage::start(
                    Generator::new(model, synth.clone()),
                    synth,
                    seconds.clone(),
                )?;
                let slot = Arc::clone(&stage.slot);
                stages.push(stage);
                Some(slot)
            }
            None => None,
        });
    }
    let mut compositor = Compositor::with_images(entries, &slots, synth.timing(), images)?;
    compositor.unmix = mask.refine.is_some();
    Ok((compositor, stages))
}

fn gan_session(options: &JobOptions) -> SessionOptions {
    SessionOptions {
        threads: options.gan_threads,
        device: options.session.device,
    }
}

/// What can be checked of a map's content without running it: every `gan:` names a
/// generator manifest (by name in `models/gan/` or by path) and every `image:` decodes
/// within the limits, through the same `load_generator` and `load_image` that
/// `Stages::prepare` opens them with. The element's `start()` calls it, before any frame.
pub fn check_content(entries: &[Entry]) -> Result<(), JobError> {
    let dir = models_dir();
    for e in entries {
        match &e.content {
            ContentKind::Gan { model } => {
                load_generator(model, &dir)?;
            }
            ContentKind::Image { path } => {
                crate::content::load_image(path)?;
            }
            _ => {}
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_from_classes_and_pairs() {
        let m = content_map(
            &["person".into()],
            &[
                "gan:foliage".parse().unwrap(),
                "background=blur".parse().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].classes, vec!["person"]);
        assert_eq!(
            m[1].content,
            ContentKind::Blur {
                radius: DEFAULT_BLUR_RADIUS
            }
        );
        let d = content_map(&[], &[]).unwrap();
        assert_eq!(
            d,
            vec![Entry {
                classes: vec!["background".into()],
                content: ContentKind::Blur { radius: 32 }
            }]
        );
    }

    #[test]
    fn one_plain_content_at_most() {
        let twice = content_map(&[], &["blur".parse().unwrap(), "mask".parse().unwrap()]);
        assert!(
            twice
                .unwrap_err()
                .to_string()
                .contains("more than one plain")
        );
    }
}
