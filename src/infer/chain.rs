//! Segmentation as one bound chain: frame planes -> pre-processing graph -> model ->
//! mask graph -> alpha planes, run with ONNX Runtime's IoBinding.
//!
//! - The frame planes are copied into preallocated input tensors (page-locked "pinned"
//!   host memory when the provider is CUDA/TensorRT, so the upload is a plain DMA).
//! - The model input and the scores stay where the provider put them (device memory on
//!   a GPU) and are bound straight into the next session.
//! - The temporal filter's state ping-pongs between two tensors on the device.
//! - The alpha planes land in preallocated host tensors.

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use super::graphs::{MaskGraph, PrepGraph, ScoreLayout, alpha_name, alpha_planes};
use super::{InferError, Model, SessionOptions};
use crate::frame::AlphaPlanes;
use crate::frame::{Matrix, Yuv420, chroma_size};
use crate::imgproc::mask::MaskParams;

pub struct SegmentChain {
    model: Model,
    parts: Parts,
    /// Which `parts.state` tensor holds the previous frame's state.
    current: usize,
    width: usize,
    height: usize,
    matrix: Matrix,
}

fn gpu(provider: &str) -> bool {
    provider != "CPUExecutionProvider"
}

fn ort_err(what: &str) -> impl Fn(ort::Error) -> InferError + '_ {
    move |e| InferError::Run {
        model: what.to_string(),
        message: e.to_string(),
    }
}

/// Host memory the provider can read and write directly: pinned on a GPU provider
/// (plain host memory, still bound, where the provider offers no pinned allocator).
fn host_allocator(session: &Session, provider: &str, kind: MemoryType) -> ort::Result<Allocator> {
    if gpu(provider) {
        let pinned = MemoryInfo::new(
            AllocationDevice::CUDA_PINNED,
            0,
            AllocatorType::Device,
            kind,
        )
        .and_then(|info| Allocator::new(session, info));
        match pinned {
            Ok(a) => return Ok(a),
            Err(e) => {
                tracing::warn!(provider, error = %e, "no pinned host memory; binding plain host tensors")
            }
        }
    }
    Ok(Allocator::default())
}

/// Memory on the provider's device (plain host memory on the CPU provider).
fn device_memory(provider: &str) -> ort::Result<MemoryInfo<'static>> {
    if gpu(provider) {
        MemoryInfo::new(
            AllocationDevice::CUDA,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
    } else {
        MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
    }
}

/// Everything but the model, built for one frame size and matrix.
struct Parts {
    prep: PrepGraph,
    mask: MaskGraph,
    planes: [Tensor<u8>; 3],
    history: Tensor<f32>,
    /// Host zeros: the "previous" state of the first frame (device memory starts undefined).
    zeros: Tensor<f32>,
    state: [Tensor<f32>; 2],
    prep_binding: IoBinding,
    model_binding: IoBinding,
    mask_binding: IoBinding,
}

impl Parts {
    fn build(
        model: &Model,
        selections: &[Vec<bool>],
        params: &MaskParams,
        (width, height): (usize, usize),
        matrix: Matrix,
        options: &SessionOptions,
    ) -> Result<Parts, InferError> {
        let m = model.manifest.clone();
        let scores = ScoreLayout {
            shape: m.output.shape.clone(),
            layout: m
                .output
                .layout
                .unwrap_or(crate::imgproc::preprocess::Layout::Nchw),
            semantics: m
                .output
                .semantics
                .unwrap_or(crate::imgproc::mask::Semantics::Sigmoid),
        };
        let prep = PrepGraph::new(width, height, matrix, &m.input_geometry(), options)?;
        let mask = MaskGraph::new(&scores, selections, params, width, height, options)?;
        let what = "segmentation chain";
        let err = ort_err(what);
        let provider = model.provider;
        let (cw, ch) = chroma_size(width, height);
        let input_alloc =
            host_allocator(&prep.session, provider, MemoryType::CPUInput).map_err(&err)?;
        let planes = [
            Tensor::<u8>::new(&input_alloc, [1usize, 1, height, width]).map_err(&err)?,
            Tensor::<u8>::new(&input_alloc, [1usize, 1, ch, cw]).map_err(&err)?,
            Tensor::<u8>::new(&input_alloc, [1usize, 1, ch, cw]).map_err(&err)?,
        ];
        let history = Tensor::<f32>::new(&Allocator::default(), [0usize; 0]).map_err(&err)?;
        let device = device_memory(provider).map_err(&err)?;
        let state_alloc = if gpu(provider) {
            Allocator::new(&mask.session, device.clone()).map_err(&err)?
        } else {
            Allocator::default()
        };
        let shape = mask.state_shape.map(|d| d as usize);
        let mut zeros = Tensor::<f32>::new(&Allocator::default(), shape).map_err(&err)?;
        zeros.extract_tensor_mut().1.fill(0.0);
        let state = [
            Tensor::<f32>::new(&state_alloc, shape).map_err(&err)?,
            Tensor::<f32>::new(&state_alloc, shape).map_err(&err)?,
        ];
        // The planes are bound per frame (`alphas`): binding is when ORT copies them to
        // a GPU, so a buffer bound once would be uploaded once.
        let mut prep_binding = prep.session.create_binding().map_err(&err)?;
        prep_binding
            .bind_output_to_device("tensor", &device)
            .map_err(&err)?;
        let mut model_binding = model.session().create_binding().map_err(&err)?;
        model_binding
            .bind_output_to_device(m.output.name.clone(), &device)
            .map_err(&err)?;
        let mut mask_binding = mask.session.create_binding().map_err(&err)?;
        // Plain host memory, not pinned: on CUDA (ORT 1.31) a pinned output buffer failed
        // the first run with "CopyTensorAsync dst_data != src_data" (a copy of the buffer
        // onto itself), while the native path's plain host outputs ran.
        let output_alloc = Allocator::default();
        for i in 0..selections.len() {
            for (plane, (w, h)) in [("luma", (width, height)), ("chroma", (cw, ch))] {
                let t = Tensor::<u8>::new(&output_alloc, [1usize, 1, h, w]).map_err(&err)?;
                mask_binding
                    .bind_output(alpha_name(i, plane), t)
                    .map_err(&err)?;
            }
        }
        Ok(Parts {
            prep,
            mask,
            planes,
            history,
            zeros,
            state,
            prep_binding,
            model_binding,
            mask_binding,
        })
    }
}

impl SegmentChain {
    /// `model` is the opened segmentation model; the graphs are built for frames of
    /// `width x height` on the same device options.
    pub fn new(
        model: Model,
        selections: &[Vec<bool>],
        params: &MaskParams,
        (width, height): (usize, usize),
        matrix: Matrix,
        options: &SessionOptions,
    ) -> Result<SegmentChain, (Model, InferError)> {
        match Parts::build(&model, selections, params, (width, height), matrix, options) {
            Ok(parts) => Ok(SegmentChain {
                model,
                parts,
                current: 0,
                width,
                height,
                matrix,
            }),
            Err(e) => Err((model, e)),
        }
    }

    /// Gives the model back (to rebuild the graphs for another frame size).
    pub fn into_model(self) -> Model {
        self.model
    }

    pub fn provider(&self) -> &'static str {
        self.model.provider
    }

    pub fn manifest(&self) -> &crate::model::Manifest {
        &self.model.manifest
    }

    /// Makes `fits` false, so the owner rebuilds the graphs (new selections or mask
    /// settings after a live edit).
    pub fn invalidate(&mut self) {
        self.width = 0;
    }

    /// Whether the graphs were built for this frame's size and colour matrix.
    pub fn fits(&self, pic: &Yuv420, matrix: Matrix) -> bool {
        pic.width() == self.width && pic.height() == self.height && matrix == self.matrix
    }

    /// One alpha per entry for this frame (of the size the chain was built for).
    pub fn alphas(&mut self, pic: &Yuv420) -> Result<Vec<AlphaPlanes>, InferError> {
        if pic.width() != self.width || pic.height() != self.height {
            return Err(InferError::Run {
                model: "segmentation chain".into(),
                message: format!(
                    "frame is {}x{}, the graphs were built for {}x{}",
                    pic.width(),
                    pic.height(),
                    self.width,
                    self.height
                ),
            });
        }
        let p = &mut self.parts;
        let prep_err = ort_err("pre-processing graph");
        for (t, src) in p.planes.iter_mut().zip([&pic.y, &pic.u, &pic.v]) {
            t.try_extract_tensor_mut::<u8>()
                .map_err(&prep_err)?
                .1
                .copy_from_slice(&src.data);
        }
        for (name, t) in ["y", "u", "v"].iter().zip(&p.planes) {
            p.prep_binding.bind_input(*name, t).map_err(&prep_err)?;
        }
        let tensor = {
            let mut out = p
                .prep
                .session
                .run_binding(&p.prep_binding)
                .map_err(&prep_err)?;
            out.remove("tensor").ok_or_else(|| InferError::Run {
                model: "pre-processing graph".into(),
                message: "no output \"tensor\"".into(),
            })?
        };
        let input = self.model.manifest.input.name.clone();
        let output = self.model.manifest.output.name.clone();
        let model_name = self.model.manifest.name.clone();
        let model_err = ort_err(&model_name);
        p.model_binding
            .bind_input(input, &tensor)
            .map_err(&model_err)?;
        let scores = {
            let mut session = self.model.session();
            let mut out = session.run_binding(&p.model_binding).map_err(&model_err)?;
            let names: Vec<String> = out.keys().map(|k| k.to_string()).collect();
            out.remove(&output).ok_or_else(|| InferError::Run {
                model: model_name.clone(),
                message: format!("no output {output:?} (it gave {names:?})"),
            })?
        };
        let mask_err = ort_err("mask graph");
        let (prev, next) = (self.current, 1 - self.current);
        let have_state = p.mask.have_state;
        p.history
            .try_extract_tensor_mut::<f32>()
            .map_err(&mask_err)?
            .1[0] = if have_state { 1.0 } else { 0.0 };
        let b = &mut p.mask_binding;
        b.bind_input("scores", &scores).map_err(&mask_err)?;
        b.bind_input("history", &p.history).map_err(&mask_err)?;
        let previous = if have_state { &p.state[prev] } else { &p.zeros };
        b.bind_input("previous", previous).map_err(&mask_err)?;
        if p.mask.guided {
            b.bind_input("y", &p.planes[0]).map_err(&mask_err)?;
        }
        b.bind_output("state", &mut p.state[next])
            .map_err(&mask_err)?;
        let entries = p.mask.entries();
        let out = p
            .mask
            .session
            .run_binding(&p.mask_binding)
            .map_err(&mask_err)?;
        let planes = alpha_planes(entries, self.width, self.height, |name| {
            let (_, d) = out[name].try_extract_tensor::<u8>().map_err(&mask_err)?;
            Ok(d.to_vec())
        })?;
        drop(out);
        // Only a run that succeeded moves the state on.
        p.mask.have_state = true;
        self.current = next;
        Ok(planes)
    }
}
