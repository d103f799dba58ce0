//! The segment stage: frame -> model input -> ORT -> per-entry soft alpha at frame size.

use crate::content::{Entry, select};
use crate::frame::Frame;
use crate::imgproc::mask::{
    AlphaPlanes, MaskFilter, MaskParams, ScoreMap, Scores, class_alpha, upsample_alpha,
};
use crate::imgproc::preprocess::{Layout, TensorGeometry, frame_to_tensor};
use crate::infer::{InferError, Model, Output};

pub struct Segmenter {
    model: Model,
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
            model,
            geometry,
            shape,
            selections,
            filters,
            input: Vec::new(),
            alpha: Vec::new(),
        })
    }

    pub fn provider(&self) -> &'static str {
        self.model.provider
    }

    /// One alpha per map entry, at the frame's luma and chroma sizes.
    pub fn masks(&mut self, frame: &Frame) -> Result<Vec<AlphaPlanes>, InferError> {
        frame_to_tensor(
            &frame.picture,
            frame.matrix,
            &self.geometry,
            &mut self.input,
        );
        let input_name = self.model.manifest.input.name.clone();
        let output = self.model.run(&[(&input_name, &self.shape, &self.input)])?;
        let m = &self.model.manifest;
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
