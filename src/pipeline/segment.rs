//! The segment stage: frame -> model input -> ORT -> per-entry soft alpha at frame size.

use crate::content::{Entry, select};
use crate::frame::Frame;
use crate::imgproc::mask::Semantics;
use crate::imgproc::mask::{
    AlphaPlanes, MaskFilter, MaskParams, ScoreMap, Scores, class_alpha, upsample_alpha,
};
use crate::imgproc::preprocess::{Layout, TensorGeometry, frame_to_tensor};
use crate::infer::chain::SegmentChain;
use crate::infer::{InferError, Model, Output, SessionOptions};

pub struct Segmenter {
    /// The model, when the native kernels run (the chain owns it otherwise).
    model: Option<Model>,
    /// Pre-processing graph -> model -> mask graph, when the per-pixel steps run as graphs.
    chain: Option<SegmentChain>,
    graph_options: Option<SessionOptions>,
    params: MaskParams,
    provider: &'static str,
    geometry: TensorGeometry,
    shape: Vec<i64>,
    selections: Vec<Vec<bool>>,
    filters: Vec<MaskFilter>,
    input: Vec<f32>,
    alpha: Vec<f32>,
}

impl Segmenter {
    /// `entries` must already be validated against the model's classes (see `selections`).
    pub fn new(
        model: Model,
        entries: &[Entry],
        params: &MaskParams,
    ) -> Result<Segmenter, crate::content::ContentError> {
        let selections = selections(&model, entries)?;
        let geometry = model.manifest.input_geometry();
        let shape = model.manifest.input.shape.clone();
        let filters = entries
            .iter()
            .map(|_| MaskFilter::new(params.clone()))
            .collect();
        Ok(Segmenter {
            provider: model.provider,
            model: Some(model),
            chain: None,
            graph_options: None,
            params: params.clone(),
            geometry,
            shape,
            selections,
            filters,
            input: Vec::new(),
            alpha: Vec::new(),
        })
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Runs the per-pixel steps as ONNX graphs (`infer::chain`) from the next frame on.
    /// Label-map models stay native (their graph would need integer gathers).
    pub fn use_graphs(&mut self, options: SessionOptions) -> Result<(), InferError> {
        let m = self.model.as_ref().map(|m| &m.manifest);
        if m.and_then(|m| m.output.semantics) == Some(Semantics::Labels) {
            return Err(InferError::Graph {
                graph: "mask graph".into(),
                message: "label-map models are post-processed natively; use --pixels native".into(),
            });
        }
        self.graph_options = Some(options);
        Ok(())
    }

    /// One alpha per map entry, at the frame's luma and chroma sizes.
    pub fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, InferError> {
        if let Some(options) = &self.graph_options {
            let (w, h) = (frame.picture.width(), frame.picture.height());
            if self.chain.as_ref().is_some_and(|c| !c.fits(&frame.picture)) {
                // New frame size: take the model back and build the graphs again.
                self.model = self.chain.take().map(SegmentChain::into_model);
            }
            if self.chain.is_none()
                && let Some(model) = self.model.take()
            {
                self.chain = Some(SegmentChain::new(
                    model,
                    &self.selections,
                    &self.params,
                    (w, h),
                    frame.matrix,
                    options,
                )?);
            }
            if let Some(chain) = self.chain.as_mut() {
                return chain.alphas(&frame.picture);
            }
        }
        let Some(model) = self.model.as_mut() else {
            return Err(InferError::Run {
                model: "segmentation".into(),
                message: "no model (a failed graph build took it)".into(),
            });
        };
        frame_to_tensor(
            &frame.picture,
            frame.matrix,
            &self.geometry,
            &mut self.input,
        );
        let input_name = model.manifest.input.name.clone();
        let output = model.run(&[(&input_name, &self.shape, &self.input)])?;
        let m = &model.manifest;
        let layout = m.output.layout.unwrap_or(Layout::Nchw);
        let semantics = m
            .output
            .semantics
            .unwrap_or(crate::imgproc::mask::Semantics::Sigmoid);
        let (w, h) = (frame.picture.width(), frame.picture.height());
        let (scores, shape) = match &output {
            Output::F32 { shape, data } => (Scores::F32(data), shape),
            Output::I64 { shape, data } => (Scores::Labels(data), shape),
        };
        let (mh, mw, channels) = output_dims(shape, layout);
        let map = ScoreMap {
            scores,
            width: mw,
            height: mh,
            channels,
            layout,
            semantics,
        };
        let mut out = Vec::with_capacity(self.selections.len());
        for (selected, filter) in self.selections.iter().zip(&mut self.filters) {
            class_alpha(&map, selected, &mut self.alpha);
            filter.apply(&mut self.alpha, mw, mh, w);
            out.push(upsample_alpha(&self.alpha, mw, mh, w, h));
        }
        Ok(out)
    }
}

pub fn selections(
    model: &Model,
    entries: &[Entry],
) -> Result<Vec<Vec<bool>>, crate::content::ContentError> {
    entries
        .iter()
        .map(|e| select(e, &model.manifest.name, model.manifest.classes()))
        .collect()
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
