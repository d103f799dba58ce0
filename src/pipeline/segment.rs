//! The segment stage: frame -> model input -> ORT -> per-entry soft alpha at frame size.

use crate::content::{Entry, selections};
use crate::frame::AlphaPlanes;
use crate::frame::Frame;
use crate::imgproc::mask::Semantics;
use crate::imgproc::mask::{MaskFilter, MaskParams, ScoreMap, Scores, class_alpha};
use crate::imgproc::preprocess::{Layout, TensorGeometry, frame_to_tensor};
use crate::infer::chain::SegmentChain;
use crate::infer::{InferError, Model, Output, SessionOptions};
use crate::model::Manifest;
use crate::pipeline::cadence::Cadence;

/// Where the per-pixel steps around the model run.
enum Backend {
    /// The model, with the Rust kernels before and after it.
    Native(Model),
    /// Pre-processing graph -> model -> mask graph (the chain owns the model); rebuilt
    /// with `options` when the frame size or colour matrix changes.
    Graphs {
        chain: SegmentChain,
        options: SessionOptions,
    },
    /// Only while the model moves between the two (never seen outside a method).
    Moving,
}

pub struct Segmenter {
    backend: Backend,
    params: MaskParams,
    provider: &'static str,
    geometry: TensorGeometry,
    shape: Vec<i64>,
    selections: Vec<Vec<bool>>,
    filters: Vec<MaskFilter>,
    input: Vec<f32>,
    alpha: Vec<f32>,
    cadence: Cadence,
    /// Per entry, the class alpha of the last model run, and its size (w, h).
    held: Vec<Vec<f32>>,
    held_size: (usize, usize),
}

impl Segmenter {
    /// `entries` must already be validated against the model's classes (see `content::selections`).
    pub fn new(
        model: Model,
        entries: &[Entry],
        params: &MaskParams,
    ) -> Result<Segmenter, crate::content::ContentError> {
        let selections = selections(entries, &model.manifest.name, model.manifest.classes())?;
        let geometry = model.manifest.input_geometry();
        let shape = model.manifest.input.shape.clone();
        let filters = entries
            .iter()
            .map(|_| MaskFilter::new(params.clone()))
            .collect();
        Ok(Segmenter {
            provider: model.provider,
            backend: Backend::Native(model),
            params: params.clone(),
            geometry,
            shape,
            selections,
            filters,
            input: Vec::new(),
            alpha: Vec::new(),
            cadence: Cadence::new(params.model_every),
            held: Vec::new(),
            held_size: (0, 0),
        })
    }

    /// (model runs, frames) so far.
    pub fn model_runs(&self) -> (u64, u64) {
        (self.cadence.runs, self.cadence.frames)
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// A new class -> content map and mask settings, from the next frame on (a live
    /// edit): new selections and fresh temporal state; graph steps are rebuilt for them
    /// on the next frame.
    pub fn reconfigure(
        &mut self,
        entries: &[Entry],
        params: &MaskParams,
    ) -> Result<(), InferError> {
        let manifest = match &self.backend {
            Backend::Native(m) => &m.manifest,
            Backend::Graphs { chain, .. } => chain.manifest(),
            Backend::Moving => return Err(lost_model()),
        };
        self.selections = selections(entries, &manifest.name, manifest.classes()).map_err(|e| {
            InferError::Run {
                model: manifest.name.clone(),
                message: e.to_string(),
            }
        })?;
        self.params = params.clone();
        self.filters = entries
            .iter()
            .map(|_| MaskFilter::new(params.clone()))
            .collect();
        self.cadence.reset(params.model_every);
        if let Backend::Graphs { chain, .. } = &mut self.backend {
            chain.invalidate();
        }
        Ok(())
    }

    /// Runs the per-pixel steps as ONNX graphs (`infer::chain`), built now for `first`'s
    /// size and colour matrix (and again whenever those change). With `fallback` (the
    /// `auto` choice) a model or graph the chain cannot take leaves the native path in
    /// place and says why; without it that is an error. Returns whether graphs run.
    pub fn use_graphs(
        &mut self,
        options: SessionOptions,
        first: &Frame,
        fallback: bool,
    ) -> Result<bool, InferError> {
        let not_supported = |message: String| InferError::Graph {
            graph: "mask graph".into(),
            message: format!("{message}; use --pixels native"),
        };
        let outcome = match &self.backend {
            Backend::Native(m) if m.manifest.output.semantics == Some(Semantics::Labels) => Err(
                not_supported("label-map models are post-processed natively".into()),
            ),
            Backend::Native(m)
                if m.manifest.output.shape.len() != 4
                    || m.manifest.output.shape.iter().any(|&d| d < 1) =>
            {
                Err(not_supported(format!(
                    "the graphs need a 4-D score output of fixed size, the manifest says {:?}",
                    m.manifest.output.shape
                )))
            }
            _ => self.build_chain(first, options),
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(e) if fallback => {
                tracing::warn!(reason = %e, "per-pixel steps stay native");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// (Re)builds the chain for this frame; on failure the model goes back to the
    /// native path and the error is returned.
    fn build_chain(&mut self, frame: &Frame, options: SessionOptions) -> Result<(), InferError> {
        let model = match std::mem::replace(&mut self.backend, Backend::Moving) {
            Backend::Native(model) => model,
            Backend::Graphs { chain, .. } => chain.into_model(),
            Backend::Moving => return Err(lost_model()),
        };
        let size = (frame.picture.width(), frame.picture.height());
        match SegmentChain::new(
            model,
            &self.selections,
            &self.params,
            size,
            frame.matrix,
            &options,
        ) {
            Ok(chain) => {
                self.backend = Backend::Graphs { chain, options };
                Ok(())
            }
            Err((model, e)) => {
                self.backend = Backend::Native(model);
                Err(e)
            }
        }
    }

    /// One alpha per map entry, at the frame's luma and chroma sizes.
    pub fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, InferError> {
        if let Backend::Graphs { chain, options } = &self.backend
            && !chain.fits(&frame.picture, frame.matrix)
        {
            // New frame size or colour matrix: take the model back and build again.
            let options = options.clone();
            self.build_chain(frame, options)?;
        }
        if let Backend::Graphs { chain, .. } = &mut self.backend {
            self.cadence.frames += 1;
            self.cadence.runs += 1;
            return chain.alphas(&frame.picture);
        }
        frame_to_tensor(
            &frame.picture,
            frame.matrix,
            &self.geometry,
            &mut self.input,
        );
        if self.cadence.due(&self.input, &self.geometry)
            && let Err(e) = self.run_model()
        {
            // Nothing valid is held: the next frame runs the model again.
            self.cadence.reset(self.params.model_every);
            return Err(e);
        }
        let (mw, mh) = self.held_size;
        let mut out = Vec::with_capacity(self.held.len());
        for (held, filter) in self.held.iter().zip(&mut self.filters) {
            self.alpha.clear();
            self.alpha.extend_from_slice(held);
            out.push(filter.frame_alpha(&mut self.alpha, mw, mh, &frame.picture.y));
        }
        Ok(out)
    }

    /// Runs the model on `self.input` and holds each entry's class alpha.
    fn run_model(&mut self) -> Result<(), InferError> {
        let model = match &mut self.backend {
            Backend::Native(model) => model,
            _ => return Err(lost_model()),
        };
        let input_name = model.manifest.input.name.clone();
        let output = model.run(&[(&input_name, &self.shape, &self.input)])?;
        let map = score_map(&model.manifest, &output)?;
        self.held.resize_with(self.selections.len(), Vec::new);
        for (selected, held) in self.selections.iter().zip(&mut self.held) {
            class_alpha(&map, selected, held);
        }
        self.held_size = (map.width, map.height);
        Ok(())
    }
}

/// The model's output as a score map, held to the manifest's classes.
fn score_map<'a>(m: &Manifest, output: &'a Output) -> Result<ScoreMap<'a>, InferError> {
    let layout = m.output.layout.unwrap_or(Layout::Nchw);
    let semantics = m
        .output
        .semantics
        .unwrap_or(crate::imgproc::mask::Semantics::Sigmoid);
    let (scores, shape) = match output {
        Output::F32 { shape, data } => (Scores::F32(data), shape),
        Output::I64 { shape, data } => (Scores::Labels(data), shape),
    };
    let (mh, mw, channels) = output_dims(shape, layout);
    // The manifest was checked against the session, but dynamic dimensions are only
    // known now: hold the real output to the class list before indexing into it.
    let classes = m.classes().len();
    let wanted = match (&scores, semantics) {
        (Scores::Labels(_), _) | (_, Semantics::Labels) => 1,
        (_, Semantics::Sigmoid) => 1,
        _ => classes,
    };
    let len = match &scores {
        Scores::F32(d) => d.len(),
        Scores::Labels(d) => d.len(),
    };
    if channels != wanted || len != mh * mw * channels {
        return Err(InferError::Run {
            model: m.name.clone(),
            message: format!(
                "output {} has shape {shape:?} ({channels} channels, {len} values); the manifest expects {wanted} channel(s) for its {classes} classes ({})",
                m.output.name,
                m.classes().join(", ")
            ),
        });
    }
    Ok(ScoreMap {
        scores,
        width: mw,
        height: mh,
        channels,
        layout,
        semantics,
    })
}

fn lost_model() -> InferError {
    InferError::Run {
        model: "segmentation".into(),
        message: "the model was lost while switching between native and graph steps".into(),
    }
}

/// (height, width, channels) of a segmentation output; 3-D outputs are label maps.
fn output_dims(shape: &[i64], layout: Layout) -> (usize, usize, usize) {
    let d = |i: usize| shape.get(i).copied().unwrap_or(1).max(1) as usize;
    match (shape.len(), layout) {
        (3, _) => (d(1), d(2), 1),
        (_, Layout::Nhwc) => (d(1), d(2), d(3)),
        (_, Layout::Nchw) => (d(2), d(3), d(1)),
    }
}
