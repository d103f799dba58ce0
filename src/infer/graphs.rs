//! The per-pixel stages as ONNX graphs, built in memory with ONNX Runtime's model
//! editor: frame planes -> model input (resize, YUV->RGB, normalise, layout), scores ->
//! alpha planes (softmax/selection, temporal filter, edge shaping, feather, upsample),
//! and the blend. On a GPU provider they run beside the models, so a frame crosses the
//! bus once each way; on the CPU they are the reference's twins (`imgproc`), tested
//! against it. Graphs are built for one frame size and rebuilt when it changes.

use ort::editor::{Graph, Model as EditorModel, Node, ONNX_DOMAIN, Opset};
use ort::memory::Allocator;
use ort::operator::Attribute;
use ort::session::Session;
use ort::value::{Outlet, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};

use super::{InferError, SessionOptions, build_session, environment};
use crate::frame::AlphaPlanes;
use crate::frame::{Matrix, Plane, Yuv420, chroma_size};
use crate::imgproc::blend::{UNMIX_BLOCK, UNMIX_RADIUS};
use crate::imgproc::mask::{MaskParams, Semantics, feather_radius};
use crate::imgproc::preprocess::{Layout, TensorGeometry, YuvToRgb, sample_positions};
use crate::imgproc::refine::{Guided, grid_factor, grid_radius, grid_size};

/// Opset of the generated graphs (GridSample-16, Resize-13/18 semantics used are stable).
const OPSET: u32 = 17;
const FLOAT: i64 = 1;
const UINT8: i64 = 2;

type Res<T> = Result<T, String>;

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// Accumulates nodes and initializers with generated names.
struct Builder {
    graph: Graph,
    next: usize,
}

impl Builder {
    fn new() -> Res<Builder> {
        Ok(Builder {
            graph: Graph::new().map_err(e)?,
            next: 0,
        })
    }

    fn name(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attribute>) -> Res<String> {
        let out = self.name(&op.to_ascii_lowercase());
        self.op_named(op, inputs, attrs, &out)?;
        Ok(out)
    }

    fn op_named(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attribute>, out: &str) -> Res<()> {
        let node_name = self.name("node");
        let node = Node::new(op, ONNX_DOMAIN, node_name, inputs, [out], attrs).map_err(e)?;
        self.graph.add_node(node).map_err(e)
    }

    fn f32s(&mut self, shape: &[i64], data: &[f32]) -> Res<String> {
        let mut t = Tensor::<f32>::new(&Allocator::default(), shape.to_vec()).map_err(e)?;
        t.extract_tensor_mut().1.copy_from_slice(data);
        let name = self.name("const");
        self.graph.add_initializer(&name, t, false).map_err(e)?;
        Ok(name)
    }

    fn u8_scalar(&mut self, v: u8) -> Res<String> {
        let mut t = Tensor::<u8>::new(&Allocator::default(), [0usize; 0]).map_err(e)?;
        t.extract_tensor_mut().1[0] = v;
        let name = self.name("const");
        self.graph.add_initializer(&name, t, false).map_err(e)?;
        Ok(name)
    }

    fn scalar(&mut self, v: f32) -> Res<String> {
        self.f32s(&[], &[v])
    }

    fn i64s(&mut self, data: &[i64]) -> Res<String> {
        let mut t = Tensor::<i64>::new(&Allocator::default(), [data.len()]).map_err(e)?;
        t.extract_tensor_mut().1.copy_from_slice(data);
        let name = self.name("const");
        self.graph.add_initializer(&name, t, false).map_err(e)?;
        Ok(name)
    }

    fn cast(&mut self, x: &str, to: i64) -> Res<String> {
        self.op("Cast", &[x], vec![attr("to", to)?])
    }

    fn clip(&mut self, x: &str, lo: f32, hi: f32) -> Res<String> {
        let (lo, hi) = (self.scalar(lo)?, self.scalar(hi)?);
        self.op("Clip", &[x, &lo, &hi], vec![])
    }

    fn binary(&mut self, op: &str, a: &str, b: &str) -> Res<String> {
        self.op(op, &[a, b], vec![])
    }

    /// `x * k + c` with scalar constants.
    /// (Each element-wise op is a pass over the tensor, so identity steps are left out.)
    fn affine(&mut self, x: &str, k: f32, c: f32) -> Res<String> {
        let m = if k == 1.0 {
            x.to_string()
        } else {
            let k = self.scalar(k)?;
            self.binary("Mul", x, &k)?
        };
        if c == 0.0 {
            return Ok(m);
        }
        let c = self.scalar(c)?;
        self.binary("Add", &m, &c)
    }

    /// Half-pixel bilinear resize of an NCHW tensor to `sizes`.
    fn resize(&mut self, x: &str, sizes: [i64; 4]) -> Res<String> {
        let sizes = self.i64s(&sizes)?;
        self.op(
            "Resize",
            &[x, "", "", &sizes],
            vec![
                attr("mode", "linear")?,
                attr("coordinate_transformation_mode", "half_pixel")?,
            ],
        )
    }

    /// Box blur of radius `r` over an NCHW tensor with clamped (replicated) edges.
    fn box_blur(&mut self, x: &str, r: usize) -> Res<String> {
        if r == 0 {
            return Ok(x.to_string());
        }
        let r = r as i64;
        let pads = self.i64s(&[0, 0, r, r, 0, 0, r, r])?;
        let padded = self.op("Pad", &[x, &pads], vec![attr("mode", "edge")?])?;
        // Separable: a row pass and a column pass cost O(k) per pixel, not O(k^2).
        let k = 2 * r + 1;
        let rows = self.op(
            "AveragePool",
            &[&padded],
            vec![
                attr("kernel_shape", vec![1, k])?,
                attr("strides", vec![1i64, 1])?,
            ],
        )?;
        self.op(
            "AveragePool",
            &[&rows],
            vec![
                attr("kernel_shape", vec![k, 1])?,
                attr("strides", vec![1i64, 1])?,
            ],
        )
    }

    /// Float already in 0..=255 (a blend or interpolation of such values) -> rounded u8:
    /// +0.5, then Cast, which truncates.
    fn round_u8(&mut self, x: &str) -> Res<String> {
        let h = self.affine(x, 1.0, 0.5)?;
        self.cast(&h, UINT8)
    }

    fn finish(
        self,
        inputs: Vec<Outlet>,
        outputs: Vec<Outlet>,
        options: &SessionOptions,
        what: &str,
    ) -> Result<(Session, &'static str), InferError> {
        let mut graph = self.graph;
        let bad = |m: String| InferError::Graph {
            graph: what.to_string(),
            message: m,
        };
        graph.set_inputs(inputs).map_err(|x| bad(e(x)))?;
        graph.set_outputs(outputs).map_err(|x| bad(e(x)))?;
        let mut model = EditorModel::new([Opset::new(ONNX_DOMAIN, OPSET).map_err(|x| bad(e(x)))?])
            .map_err(|x| bad(e(x)))?;
        model.set_graph(graph).map_err(|x| bad(e(x)))?;
        // The model is consumed by the first session attempt; later attempts (auto device
        // order) would need it again, so keep it in an Option.
        let mut model = Some(model);
        build_session(options, what, true, |builder| {
            let model = model
                .take()
                .ok_or_else(|| "graph already consumed by an earlier provider".to_string())?;
            model.into_session(builder).map_err(e)
        })
    }
}

/// Attribute values the graphs use.
enum A<'a> {
    I(i64),
    Is(Vec<i64>),
    S(&'a str),
}

impl From<i64> for A<'_> {
    fn from(v: i64) -> Self {
        A::I(v)
    }
}
impl From<Vec<i64>> for A<'_> {
    fn from(v: Vec<i64>) -> Self {
        A::Is(v)
    }
}
impl<'a> From<&'a str> for A<'a> {
    fn from(v: &'a str) -> Self {
        A::S(v)
    }
}

fn attr<'a>(name: &str, v: impl Into<A<'a>>) -> Res<Attribute> {
    match v.into() {
        A::I(i) => Attribute::new(name, i),
        A::Is(v) => Attribute::new(name, v),
        A::S(s) => Attribute::new(name, s.to_string()),
    }
    .map_err(e)
}

fn tensor(name: &str, ty: TensorElementType, shape: &[i64]) -> Outlet {
    Outlet::new(
        name,
        ValueType::Tensor {
            ty,
            shape: Shape::new(shape.iter().copied()),
            dimension_symbols: SymbolicDimensions::empty(shape.len()),
        },
    )
}

fn dims(w: usize, h: usize) -> (i64, i64, i64, i64) {
    let (cw, ch) = chroma_size(w, h);
    (w as i64, h as i64, cw as i64, ch as i64)
}

/// Normalised GridSample coordinates (`align_corners = 1`) for source positions.
fn grid(xs: &[f32], ys: &[f32], src_w: usize, src_h: usize) -> Vec<f32> {
    let norm = |p: f32, len: usize| {
        if len > 1 {
            2.0 * p / (len - 1) as f32 - 1.0
        } else {
            0.0
        }
    };
    let mut g = Vec::with_capacity(xs.len() * ys.len() * 2);
    for &y in ys {
        for &x in xs {
            g.push(norm(x, src_w));
            g.push(norm(y, src_h));
        }
    }
    g
}

fn run_err(graph: &str) -> impl Fn(ort::Error) -> InferError + '_ {
    move |err| InferError::Run {
        model: graph.to_string(),
        message: err.to_string(),
    }
}

fn plane_input<'a>(
    data: &'a [u8],
    shape: [i64; 4],
) -> Result<ort::session::SessionInputValue<'a>, ort::Error> {
    Ok(ort::value::TensorRef::from_array_view((shape, data))?.into())
}

/// Frame planes -> model input tensor, the graph twin of `preprocess::frame_to_tensor`.
pub struct PrepGraph {
    pub(super) session: Session,
    pub provider: &'static str,
}

impl PrepGraph {
    pub fn new(
        width: usize,
        height: usize,
        matrix: Matrix,
        g: &TensorGeometry,
        options: &SessionOptions,
    ) -> Result<PrepGraph, InferError> {
        environment()?;
        let what = "pre-processing graph";
        let build = || -> Res<(Builder, Vec<Outlet>, Vec<Outlet>)> {
            let (w, h, cw, ch) = dims(width, height);
            let (mw, mh) = (g.width as i64, g.height as i64);
            let mut b = Builder::new()?;
            let p = sample_positions(width, height, g);
            let grid_l = grid(&p.luma_x, &p.luma_y, width, height);
            let grid_c = grid(&p.chroma_x, &p.chroma_y, cw as usize, ch as usize);
            let grid_l = b.f32s(&[1, mh, mw, 2], &grid_l)?;
            let grid_c = b.f32s(&[1, mh, mw, 2], &grid_c)?;
            let sample = |b: &mut Builder, x: &str, grid: &str| {
                let f = b.cast(x, FLOAT)?;
                b.op(
                    "GridSample",
                    &[&f, grid],
                    vec![
                        attr("align_corners", 1i64)?,
                        attr("mode", "bilinear")?,
                        attr("padding_mode", "border")?,
                    ],
                )
            };
            let ys = sample(&mut b, "y", &grid_l)?;
            let uv = b.op("Concat", &["u", "v"], vec![attr("axis", 1i64)?])?;
            let uvs = sample(&mut b, &uv, &grid_c)?;
            let yuv = b.op("Concat", &[&ys, &uvs], vec![attr("axis", 1i64)?])?;
            let (weights, bias) = YuvToRgb::new(matrix).affine();
            let wt = b.f32s(&[3, 3, 1, 1], &weights)?;
            let bs = b.f32s(&[3], &bias)?;
            let rgb = b.op("Conv", &[&yuv, &wt, &bs], vec![])?;
            let rgb = b.clip(&rgb, 0.0, 1.0)?;
            let scale = b.f32s(&[1, 3, 1, 1], &g.scale)?;
            let offset = b.f32s(&[1, 3, 1, 1], &g.offset)?;
            let scaled = b.binary("Mul", &rgb, &scale)?;
            let out_shape = match g.layout {
                Layout::Nchw => {
                    b.op_named("Add", &[&scaled, &offset], vec![], "tensor")?;
                    vec![1, 3, mh, mw]
                }
                Layout::Nhwc => {
                    let n = b.binary("Add", &scaled, &offset)?;
                    b.op_named(
                        "Transpose",
                        &[&n],
                        vec![attr("perm", vec![0i64, 2, 3, 1])?],
                        "tensor",
                    )?;
                    vec![1, mh, mw, 3]
                }
            };
            let u8t = TensorElementType::Uint8;
            Ok((
                b,
                vec![
                    tensor("y", u8t, &[1, 1, h, w]),
                    tensor("u", u8t, &[1, 1, ch, cw]),
                    tensor("v", u8t, &[1, 1, ch, cw]),
                ],
                vec![tensor("tensor", TensorElementType::Float32, &out_shape)],
            ))
        };
        let (b, inputs, outputs) = build().map_err(|m| InferError::Graph {
            graph: what.into(),
            message: m,
        })?;
        let (session, provider) = b.finish(inputs, outputs, options, what)?;
        Ok(PrepGraph { session, provider })
    }

    pub fn run(&mut self, pic: &Yuv420, out: &mut Vec<f32>) -> Result<(), InferError> {
        let what = "pre-processing graph";
        let (w, h, cw, ch) = dims(pic.width(), pic.height());
        let err = run_err(what);
        let inputs = vec![
            ("y", plane_input(&pic.y.data, [1, 1, h, w]).map_err(&err)?),
            ("u", plane_input(&pic.u.data, [1, 1, ch, cw]).map_err(&err)?),
            ("v", plane_input(&pic.v.data, [1, 1, ch, cw]).map_err(&err)?),
        ];
        let outputs = self.session.run(inputs).map_err(&err)?;
        let (_, data) = outputs["tensor"]
            .try_extract_tensor::<f32>()
            .map_err(&err)?;
        out.clear();
        out.extend_from_slice(data);
        Ok(())
    }
}

/// How the graph reads the segmentation output.
#[derive(Clone, Debug)]
pub struct ScoreLayout {
    /// The model output's shape, e.g. `[1, 144, 256, 1]`.
    pub shape: Vec<i64>,
    pub layout: Layout,
    pub semantics: Semantics,
}

/// Scores -> per-entry alpha planes at luma and chroma size, the graph twin of
/// `mask::class_alpha` + `MaskFilter::apply` + `upsample_alpha`. It carries the
/// temporal filter's state between runs.
pub struct MaskGraph {
    pub(super) session: Session,
    pub provider: &'static str,
    entries: usize,
    state: Vec<f32>,
    pub(super) state_shape: [i64; 4],
    pub(super) have_state: bool,
    /// Whether the graph takes the frame's luma (`y`) as the refinement guide.
    pub(super) guided: bool,
    width: usize,
    height: usize,
}

impl MaskGraph {
    /// `selections[e][class]` says which classes entry `e` covers. Label maps are not
    /// supported (they are integer; the native path handles them).
    pub fn new(
        scores: &ScoreLayout,
        selections: &[Vec<bool>],
        params: &MaskParams,
        width: usize,
        height: usize,
        options: &SessionOptions,
    ) -> Result<MaskGraph, InferError> {
        environment()?;
        let what = "mask graph";
        let bad = |m: String| InferError::Graph {
            graph: what.into(),
            message: m,
        };
        let s = &scores.shape;
        if s.len() != 4 || s.iter().any(|&d| d < 1) {
            return Err(bad(format!(
                "expected a 4-D score tensor with fixed sizes, got {s:?}"
            )));
        }
        if scores.semantics == Semantics::Labels {
            return Err(bad(
                "label-map outputs are handled by the native path".into()
            ));
        }
        let (mh, mw) = match scores.layout {
            Layout::Nchw => (s[2], s[3]),
            Layout::Nhwc => (s[1], s[2]),
        };
        let entries = selections.len() as i64;
        // The temporal state lives where the temporal filter runs: the model's grid,
        // or the guide grid when refining.
        let (gw, gh) = grid_size(width, height);
        let state_shape = match params.refine {
            None => [1, entries, mh, mw],
            Some(_) => [1, entries, gh as i64, gw as i64],
        };
        let build = || -> Res<(Builder, Vec<Outlet>, Vec<Outlet>)> {
            let (w, h, _, _) = dims(width, height);
            let mut b = Builder::new()?;
            // Like the native `sanitize`: NaN -> 0, then clamp, so one bad score can
            // neither poison the carried temporal state nor reach the u8 cast.
            let nan = b.op("IsNaN", &["scores"], vec![])?;
            let zero = b.scalar(0.0)?;
            let clean = b.op("Where", &[&nan, &zero, "scores"], vec![])?;
            let clean = b.clip(&clean, -1e4, 1e4)?;
            let nchw = match scores.layout {
                Layout::Nchw => clean,
                Layout::Nhwc => b.op(
                    "Transpose",
                    &[&clean],
                    vec![attr("perm", vec![0i64, 3, 1, 2])?],
                )?,
            };
            let alpha = select_classes(&mut b, &nchw, scores, selections)?;
            let feather = feather_radius(params.feather, mw as usize, mh as usize, width);
            // Native order (`MaskFilter::frame_alpha`): temporal filter, curve, feather
            // at model resolution; refined: feather, guided filter, then temporal
            // filter and curve on the guide grid.
            let alpha = match &params.refine {
                None => {
                    let a = temporal_filter(&mut b, &alpha, params)?;
                    let a = edge_curve(&mut b, &a, params)?;
                    b.box_blur(&a, feather)?
                }
                Some(g) => {
                    let a = b.box_blur(&alpha, feather)?;
                    let q = guided(&mut b, &a, g, entries, (width, height))?;
                    let q = temporal_filter(&mut b, &q, params)?;
                    edge_curve(&mut b, &q, params)?
                }
            };
            let f = TensorElementType::Float32;
            let mut outputs = vec![tensor("state", f, &state_shape)];
            outputs.extend(alpha_outputs(&mut b, &alpha, entries, (width, height))?);
            let mut inputs = vec![
                tensor("scores", f, s),
                tensor("previous", f, &state_shape),
                tensor("history", f, &[]),
            ];
            if params.refine.is_some() {
                inputs.push(tensor("y", TensorElementType::Uint8, &[1, 1, h, w]));
            }
            Ok((b, inputs, outputs))
        };
        let (b, inputs, outputs) = build().map_err(bad)?;
        let (session, provider) = b.finish(inputs, outputs, options, what)?;
        Ok(MaskGraph {
            session,
            provider,
            entries: selections.len(),
            state: vec![0.0; state_shape.iter().product::<i64>() as usize],
            state_shape,
            have_state: false,
            guided: params.refine.is_some(),
            width,
            height,
        })
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Runs on host tensors (see `chain::SegmentChain` for the bound, on-device path);
    /// `luma` is the frame's, the guide of the edge refinement.
    pub fn run(
        &mut self,
        scores: &[f32],
        shape: &[i64],
        luma: &Plane,
    ) -> Result<Vec<AlphaPlanes>, InferError> {
        let what = "mask graph";
        let err = run_err(what);
        let history = [if self.have_state { 1.0f32 } else { 0.0 }];
        let mut inputs = vec![
            (
                "scores",
                ort::session::SessionInputValue::from(
                    ort::value::TensorRef::from_array_view((shape.to_vec(), scores))
                        .map_err(&err)?,
                ),
            ),
            (
                "previous",
                ort::value::TensorRef::from_array_view((self.state_shape, &self.state[..]))
                    .map_err(&err)?
                    .into(),
            ),
            (
                "history",
                ort::value::TensorRef::from_array_view(([0usize; 0], &history[..]))
                    .map_err(&err)?
                    .into(),
            ),
        ];
        if self.guided {
            let shape = [1, 1, luma.height as i64, luma.width as i64];
            inputs.push(("y", plane_input(&luma.data, shape).map_err(&err)?));
        }
        let outputs = self.session.run(inputs).map_err(&err)?;
        let (_, state) = outputs["state"].try_extract_tensor::<f32>().map_err(&err)?;
        self.state.copy_from_slice(state);
        self.have_state = true;
        alpha_planes(self.entries, self.width, self.height, |name| {
            let (_, d) = outputs[name].try_extract_tensor::<u8>().map_err(&err)?;
            Ok(d.to_vec())
        })
    }
}

/// Output name of entry `i`'s alpha plane (`luma` or `chroma`).
pub(super) fn alpha_name(i: usize, plane: &str) -> String {
    format!("alpha{i}_{plane}")
}

/// Collects per-entry alpha planes through `read(name)`.
pub(super) fn alpha_planes(
    entries: usize,
    width: usize,
    height: usize,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, InferError>,
) -> Result<Vec<AlphaPlanes>, InferError> {
    let (cw, ch) = chroma_size(width, height);
    (0..entries)
        .map(|i| {
            Ok(AlphaPlanes {
                luma: Plane {
                    width,
                    height,
                    data: read(&alpha_name(i, "luma"))?,
                },
                chroma: Plane {
                    width: cw,
                    height: ch,
                    data: read(&alpha_name(i, "chroma"))?,
                },
            })
        })
        .collect()
}

/// One content layer of the blend graph, in compositing order.
#[derive(Clone, Debug, PartialEq)]
pub enum BlendLayer {
    /// Blur of the original frame, radius in luma pixels.
    Blur(usize),
    /// A constant YUV colour.
    Value(u8, u8, u8),
    /// A picture given per frame (image or GAN layer), input `picture{i}`.
    Picture,
}

/// Frame + alpha stack + layers -> composited frame, the graph twin of `Compositor`.
/// A blend layer's content as float planes (luma; both chroma planes concatenated):
/// the frame blurred, a constant colour, or a picture input (added to `inputs`).
fn layer_content(
    b: &mut Builder,
    layer: &BlendLayer,
    i: usize,
    (y0, uv0): (&str, &str),
    (width, height): (usize, usize),
    inputs: &mut Vec<Outlet>,
) -> Res<(String, String)> {
    let (w, h, cw, ch) = dims(width, height);
    Ok(match layer {
        BlendLayer::Blur(radius) => (
            blur(b, y0, *radius, [1, 1, h, w])?,
            blur(b, uv0, (*radius / 2).max(1), [1, 2, ch, cw])?,
        ),
        BlendLayer::Value(vy, vu, vv) => (
            b.f32s(&[1, 1, 1, 1], &[*vy as f32])?,
            b.f32s(&[1, 2, 1, 1], &[*vu as f32, *vv as f32])?,
        ),
        BlendLayer::Picture => {
            let u8t = TensorElementType::Uint8;
            let names = [
                format!("picture{i}_y"),
                format!("picture{i}_u"),
                format!("picture{i}_v"),
            ];
            inputs.push(tensor(&names[0], u8t, &[1, 1, h, w]));
            inputs.push(tensor(&names[1], u8t, &[1, 1, ch, cw]));
            inputs.push(tensor(&names[2], u8t, &[1, 1, ch, cw]));
            let py = b.cast(&names[0], FLOAT)?;
            let puv = b.op("Concat", &[&names[1], &names[2]], vec![attr("axis", 1i64)?])?;
            (py, b.cast(&puv, FLOAT)?)
        }
    })
}

/// The chosen classes' probability per entry, as a 1x1 convolution over the scores
/// (sigmoid: `pos*p + neg*(1-p)`; probabilities or softmaxed logits: the sum of the
/// chosen channels), clipped to [0,1].
fn select_classes(
    b: &mut Builder,
    nchw: &str,
    scores: &ScoreLayout,
    selections: &[Vec<bool>],
) -> Res<String> {
    let entries = selections.len() as i64;
    let s = &scores.shape;
    let c = match scores.layout {
        Layout::Nchw => s[1],
        Layout::Nhwc => s[3],
    };
    // Selection as a 1x1 convolution: one output channel per entry.
    let mut weights = Vec::new();
    let mut bias = Vec::new();
    let (probs, in_c) = match scores.semantics {
        Semantics::Sigmoid => {
            for sel in selections {
                let neg = sel.first().copied().unwrap_or(false);
                let pos = sel.get(1).copied().unwrap_or(false);
                // alpha = pos*p + neg*(1-p)
                weights.push(pos as i32 as f32 - neg as i32 as f32);
                bias.push(neg as i32 as f32);
            }
            (b.clip(nchw, 0.0, 1.0)?, 1)
        }
        Semantics::Probabilities | Semantics::Logits => {
            for sel in selections {
                for k in 0..c as usize {
                    weights.push(if sel.get(k).copied().unwrap_or(false) {
                        1.0
                    } else {
                        0.0
                    });
                }
                bias.push(0.0);
            }
            let p = if scores.semantics == Semantics::Logits {
                b.op("Softmax", &[nchw], vec![attr("axis", 1i64)?])?
            } else {
                nchw.to_string()
            };
            (p, c)
        }
        Semantics::Labels => unreachable!("rejected above"),
    };
    let wt = b.f32s(&[entries, in_c, 1, 1], &weights)?;
    let bs = b.f32s(&[entries], &bias)?;
    let raw = b.op("Conv", &[&probs, &wt, &bs], vec![])?;
    b.clip(&raw, 0.0, 1.0)
}

/// The alpha (in [0,1], on its small grid) as u8 planes per entry at luma and chroma
/// size: the mask graph's `alpha_<e>_<plane>` outputs.
fn alpha_outputs(
    b: &mut Builder,
    alpha: &str,
    entries: i64,
    (width, height): (usize, usize),
) -> Res<Vec<Outlet>> {
    let (w, h, cw, ch) = dims(width, height);
    let mut outputs = Vec::new();
    let axis = b.i64s(&[1])?;
    // Scaled to 0..=255 with the rounding offset folded in at the small size,
    // so the full-size planes need only the resize and a truncating cast.
    let alpha255 = b.affine(alpha, 255.0, 0.5)?;
    let mut planes = Vec::new();
    for (ow, oh) in [(w, h), (cw, ch)] {
        planes.push(b.resize(&alpha255, [1, entries, oh, ow])?);
    }
    for ((plane, (ow, oh)), up) in [("luma", (w, h)), ("chroma", (cw, ch))]
        .into_iter()
        .zip(planes)
    {
        if entries == 1 {
            let name = alpha_name(0, plane);
            b.op_named("Cast", &[&up], vec![attr("to", UINT8)?], &name)?;
            outputs.push(tensor(&name, TensorElementType::Uint8, &[1, 1, oh, ow]));
            continue;
        }
        let q = b.cast(&up, UINT8)?;
        for i in 0..entries {
            let (s0, s1) = (b.i64s(&[i])?, b.i64s(&[i + 1])?);
            let name = alpha_name(i as usize, plane);
            b.op_named("Slice", &[&q, &s0, &s1, &axis], vec![], &name)?;
            outputs.push(tensor(&name, TensorElementType::Uint8, &[1, 1, oh, ow]));
        }
    }
    Ok(outputs)
}

pub struct BlendGraph {
    session: Session,
    pub provider: &'static str,
    layers: Vec<BlendLayer>,
}

impl BlendGraph {
    /// `black_first`: start from a black frame (mask output) instead of the picture.
    /// `unmix`: estimate the kept colour in each layer's edge band first (the twin of
    /// `blend::unmix_picture`; not with `black_first`).
    pub fn new(
        layers: &[BlendLayer],
        black_first: bool,
        unmix: bool,
        width: usize,
        height: usize,
        options: &SessionOptions,
    ) -> Result<BlendGraph, InferError> {
        environment()?;
        let what = "blend graph";
        let build = || -> Res<(Builder, Vec<Outlet>, Vec<Outlet>)> {
            let (w, h, cw, ch) = dims(width, height);
            let mut b = Builder::new()?;
            let y0 = b.cast("y", FLOAT)?;
            let uv = b.op("Concat", &["u", "v"], vec![attr("axis", 1i64)?])?;
            let uv0 = b.cast(&uv, FLOAT)?;
            let (mut y, mut uv) = if black_first {
                let ky = b.f32s(&[1, 1, 1, 1], &[16.0])?;
                let kuv = b.f32s(&[1, 2, 1, 1], &[128.0, 128.0])?;
                let zy = b.affine(&y0, 0.0, 0.0)?;
                let zuv = b.affine(&uv0, 0.0, 0.0)?;
                (b.binary("Add", &zy, &ky)?, b.binary("Add", &zuv, &kuv)?)
            } else {
                (y0.clone(), uv0.clone())
            };
            let axis = b.i64s(&[1])?;
            let u8t = TensorElementType::Uint8;
            let mut inputs = vec![
                tensor("y", u8t, &[1, 1, h, w]),
                tensor("u", u8t, &[1, 1, ch, cw]),
                tensor("v", u8t, &[1, 1, ch, cw]),
            ];
            for (i, layer) in layers.iter().enumerate() {
                let (ln, cn) = (alpha_name(i, "luma"), alpha_name(i, "chroma"));
                inputs.push(tensor(&ln, u8t, &[1, 1, h, w]));
                inputs.push(tensor(&cn, u8t, &[1, 1, ch, cw]));
                let al = b.cast(&ln, FLOAT)?;
                let al = b.affine(&al, 1.0 / 255.0, 0.0)?;
                let ac = b.cast(&cn, FLOAT)?;
                let ac = b.affine(&ac, 1.0 / 255.0, 0.0)?;
                let (cy, cuv) =
                    layer_content(&mut b, layer, i, (&y0, &uv0), (width, height), &mut inputs)?;
                if unmix && !black_first {
                    y = unmix_plane(&mut b, &y, &ln, &al, (width, height))?;
                    uv = unmix_plane(&mut b, &uv, &cn, &ac, chroma_size(width, height))?;
                }
                // dst + (content - dst) * a
                let dy = b.binary("Sub", &cy, &y)?;
                let dy = b.binary("Mul", &dy, &al)?;
                y = b.binary("Add", &y, &dy)?;
                let duv = b.binary("Sub", &cuv, &uv)?;
                let duv = b.binary("Mul", &duv, &ac)?;
                uv = b.binary("Add", &uv, &duv)?;
            }
            let oy = b.round_u8(&y)?;
            b.op_named("Identity", &[&oy], vec![], "out_y")?;
            let ouv = b.round_u8(&uv)?;
            let (s0, s1, s2) = (b.i64s(&[0])?, b.i64s(&[1])?, b.i64s(&[2])?);
            b.op_named("Slice", &[&ouv, &s0, &s1, &axis], vec![], "out_u")?;
            b.op_named("Slice", &[&ouv, &s1, &s2, &axis], vec![], "out_v")?;
            Ok((
                b,
                inputs,
                vec![
                    tensor("out_y", u8t, &[1, 1, h, w]),
                    tensor("out_u", u8t, &[1, 1, ch, cw]),
                    tensor("out_v", u8t, &[1, 1, ch, cw]),
                ],
            ))
        };
        let (b, inputs, outputs) = build().map_err(|m| InferError::Graph {
            graph: what.into(),
            message: m,
        })?;
        let (session, provider) = b.finish(inputs, outputs, options, what)?;
        Ok(BlendGraph {
            session,
            provider,
            layers: layers.to_vec(),
        })
    }

    /// Composites in place. `alphas` has one entry per layer; `pictures` one picture per
    /// `BlendLayer::Picture`, in order.
    pub fn run(
        &mut self,
        pic: &mut Yuv420,
        alphas: &[AlphaPlanes],
        pictures: &[&Yuv420],
    ) -> Result<(), InferError> {
        let what = "blend graph";
        let err = run_err(what);
        let (w, h, cw, ch) = dims(pic.width(), pic.height());
        let wanted = self
            .layers
            .iter()
            .filter(|l| **l == BlendLayer::Picture)
            .count();
        if pictures.len() != wanted || alphas.len() != self.layers.len() {
            return Err(InferError::Run {
                model: what.into(),
                message: format!(
                    "expected {} alphas and {wanted} content pictures, got {} and {}",
                    self.layers.len(),
                    alphas.len(),
                    pictures.len()
                ),
            });
        }
        let (luma, chroma) = ([1, 1, h, w], [1, 1, ch, cw]);
        let mut inputs = vec![
            (
                "y".to_string(),
                plane_input(&pic.y.data, luma).map_err(&err)?,
            ),
            (
                "u".to_string(),
                plane_input(&pic.u.data, chroma).map_err(&err)?,
            ),
            (
                "v".to_string(),
                plane_input(&pic.v.data, chroma).map_err(&err)?,
            ),
        ];
        let mut next_picture = pictures.iter();
        for (i, (layer, a)) in self.layers.iter().zip(alphas).enumerate() {
            inputs.push((
                alpha_name(i, "luma"),
                plane_input(&a.luma.data, luma).map_err(&err)?,
            ));
            inputs.push((
                alpha_name(i, "chroma"),
                plane_input(&a.chroma.data, chroma).map_err(&err)?,
            ));
            if *layer == BlendLayer::Picture
                && let Some(p) = next_picture.next()
            {
                for (c, data, shape) in [
                    ("y", &p.y.data, luma),
                    ("u", &p.u.data, chroma),
                    ("v", &p.v.data, chroma),
                ] {
                    inputs.push((
                        format!("picture{i}_{c}"),
                        plane_input(data, shape).map_err(&err)?,
                    ));
                }
            }
        }
        let outputs = self.session.run(inputs).map_err(&err)?;
        for (name, plane) in [
            ("out_y", &mut pic.y),
            ("out_u", &mut pic.u),
            ("out_v", &mut pic.v),
        ] {
            let (_, d) = outputs[name].try_extract_tensor::<u8>().map_err(&err)?;
            plane.data.copy_from_slice(d);
        }
        Ok(())
    }
}

/// The graph twin of `blend::unmix_plane` on a float NCHW plane `x` (0..=255) of size
/// `(w, h)`, with its u8 alpha input `alpha_u8` and that alpha in [0,1] (`a`).
/// Each pixel reads its own block's value (nearest, floor), cropped to the `w x h` plane.
fn block_to_pixels(b: &mut Builder, t: &str, block: usize, (w, h): (usize, usize)) -> Res<String> {
    let scales = b.f32s(&[4], &[1.0, 1.0, block as f32, block as f32])?;
    let up = b.op(
        "Resize",
        &[t, "", &scales],
        vec![
            attr("mode", "nearest")?,
            attr("coordinate_transformation_mode", "asymmetric")?,
            attr("nearest_mode", "floor")?,
        ],
    )?;
    let (starts, ends, axes) = (
        b.i64s(&[0, 0])?,
        b.i64s(&[h as i64, w as i64])?,
        b.i64s(&[2, 3])?,
    );
    b.op("Slice", &[&up, &starts, &ends, &axes], vec![])
}

fn unmix_plane(
    b: &mut Builder,
    x: &str,
    alpha_u8: &str,
    a: &str,
    (w, h): (usize, usize),
) -> Res<String> {
    let block = UNMIX_BLOCK;
    let opaque = b.u8_scalar(255)?;
    let full_u8 = b.op("Equal", &[alpha_u8, &opaque], vec![])?;
    let full = b.cast(&full_u8, FLOAT)?;
    // Every other row, as the native sums.
    let even: Vec<f32> = (0..h).map(|y| ((y % 2) == 0) as u8 as f32).collect();
    let even = b.f32s(&[1, 1, h as i64, 1], &even)?;
    let full = b.binary("Mul", &full, &even)?;
    let weighted = b.binary("Mul", x, &full)?;
    // Block sums (as means over whole zero-padded blocks: the same ratio), then the
    // window average, as the native sums and counts.
    let (bw, bh) = (w.div_ceil(block), h.div_ceil(block));
    let pads = b.i64s(&[
        0,
        0,
        0,
        0,
        0,
        0,
        (bh * block - h) as i64,
        (bw * block - w) as i64,
    ])?;
    let k = block as i64;
    let mut pooled = Vec::new();
    for t in [&weighted, &full] {
        let padded = b.op("Pad", &[t, &pads], vec![attr("mode", "constant")?])?;
        let m = b.op(
            "AveragePool",
            &[&padded],
            vec![
                attr("kernel_shape", vec![k, k])?,
                attr("strides", vec![k, k])?,
            ],
        )?;
        pooled.push(b.box_blur(&m, UNMIX_RADIUS)?);
    }
    let back = b.binary("Div", &pooled[0], &pooled[1])?;
    let least = b.scalar(0.5 / (block * block) as f32)?;
    let enough = b.op("GreaterOrEqual", &[&pooled[1], &least], vec![])?;
    let nearest = |b: &mut Builder, t: &str| block_to_pixels(b, t, block, (w, h));
    let back = nearest(b, &back)?;
    let enough_f = b.cast(&enough, FLOAT)?;
    let enough = nearest(b, &enough_f)?;
    // F = B + (x - B) / (1 - a), clamped and rounded, where 0 < a < 1 and B is known.
    let diff = b.binary("Sub", x, &back)?;
    let rest = b.affine(a, -1.0, 1.0)?;
    let gain = b.binary("Div", &diff, &rest)?;
    let f = b.binary("Add", &back, &gain)?;
    let f = b.clip(&f, 0.0, 255.0)?;
    let f = b.op("Round", &[&f], vec![])?;
    let zero = b.scalar(0.0)?;
    let soft = b.op("Greater", &[a, &zero], vec![])?;
    let one = b.scalar(1.0)?;
    let partial = b.op("Less", &[a, &one], vec![])?;
    let edge = b.op("And", &[&soft, &partial], vec![])?;
    let half = b.scalar(0.5)?;
    let known = b.op("Greater", &[&enough, &half], vec![])?;
    // Only blocks whose sampled rows hold an edge pixel, as natively.
    let edge_f = b.cast(&edge, FLOAT)?;
    let edge_even = b.binary("Mul", &edge_f, &even)?;
    let edge_pad = b.op("Pad", &[&edge_even, &pads], vec![attr("mode", "constant")?])?;
    let edge_blocks = b.op(
        "MaxPool",
        &[&edge_pad],
        vec![
            attr("kernel_shape", vec![k, k])?,
            attr("strides", vec![k, k])?,
        ],
    )?;
    let edge_blocks = nearest(b, &edge_blocks)?;
    let in_band = b.op("Greater", &[&edge_blocks, &half], vec![])?;
    let known = b.op("And", &[&known, &in_band], vec![])?;
    let pick = b.op("And", &[&edge, &known], vec![])?;
    b.op("Where", &[&pick, &f, x], vec![])
}

/// The motion-adaptive temporal filter (`MaskFilter::temporal`) against the graph
/// input `previous` (weighted by `history`, 0 on the first frame); names the filtered
/// map `state`, the next run's `previous`.
fn temporal_filter(b: &mut Builder, alpha: &str, params: &MaskParams) -> Res<String> {
    let mut alpha = alpha.to_string();
    if params.temporal > 0.0 {
        let diff = b.binary("Sub", "previous", &alpha)?;
        let change = b.op("Abs", &[&diff], vec![])?;
        let ratio = b.affine(&change, 1.0 / params.motion_threshold, 0.0)?;
        let one = b.scalar(1.0)?;
        let capped = b.binary("Min", &ratio, &one)?;
        let still = b.affine(&capped, -params.temporal, params.temporal)?;
        let keep = b.binary("Mul", &still, "history")?;
        let pull = b.binary("Mul", &keep, &diff)?;
        alpha = b.binary("Add", &alpha, &pull)?;
    }
    b.op_named("Identity", &[&alpha], vec![], "state")?;
    Ok(alpha)
}

/// The edge curve (`MaskFilter::curve`): smoothstep from `lo` to `hi`.
fn edge_curve(b: &mut Builder, alpha: &str, params: &MaskParams) -> Res<String> {
    if params.hi <= params.lo {
        return Ok(alpha.to_string());
    }
    let k = 1.0 / (params.hi - params.lo);
    let t = b.affine(alpha, k, -params.lo * k)?;
    let t = b.clip(&t, 0.0, 1.0)?;
    let t2 = b.binary("Mul", &t, &t)?;
    let three = b.affine(&t, -2.0, 3.0)?;
    b.binary("Mul", &t2, &three)
}

/// The graph twin of `refine::guided_grid`: `alpha` [1,E,mh,mw] in [0,1] and the
/// graph input `y` -> the fitted mask [1,E,gh,gw] on the guide grid, in [0,1].
fn guided(
    b: &mut Builder,
    alpha: &str,
    g: &Guided,
    entries: i64,
    (width, height): (usize, usize),
) -> Res<String> {
    let factor = grid_factor(width);
    let r = grid_radius(g, factor);
    let y = b.cast("y", FLOAT)?;
    // The box-averaged guide rounded to u8 steps, as `downscale_box` gives, in [0,1].
    let mean = box_downscale(b, &y, factor, (width, height))?;
    let q = b.op("Round", &[&mean], vec![])?;
    let grid = b.affine(&q, 1.0 / 255.0, 0.0)?;
    let (gw, gh) = grid_size(width, height);
    let p = b.resize(alpha, [1, entries, gh as i64, gw as i64])?;
    let mean_i = b.box_blur(&grid, r)?;
    let mean_p = b.box_blur(&p, r)?;
    let ip = b.binary("Mul", &grid, &p)?;
    let corr_ip = b.box_blur(&ip, r)?;
    let ii = b.binary("Mul", &grid, &grid)?;
    let corr_ii = b.box_blur(&ii, r)?;
    let mean_ii = b.binary("Mul", &mean_i, &mean_i)?;
    let var = b.binary("Sub", &corr_ii, &mean_ii)?;
    let mean_ip = b.binary("Mul", &mean_i, &mean_p)?;
    let cov = b.binary("Sub", &corr_ip, &mean_ip)?;
    let var_eps = b.affine(&var, 1.0, g.eps)?;
    let a = b.binary("Div", &cov, &var_eps)?;
    let a_i = b.binary("Mul", &a, &mean_i)?;
    let off = b.binary("Sub", &mean_p, &a_i)?;
    let mean_a = b.box_blur(&a, r)?;
    let mean_b = b.box_blur(&off, r)?;
    let scaled = b.binary("Mul", &mean_a, &grid)?;
    let fitted = b.binary("Add", &scaled, &mean_b)?;
    b.clip(&fitted, 0.0, 1.0)
}

/// The graph twin of `blur::blur_plane` on an NCHW float tensor of size `full`.
fn blur(b: &mut Builder, x: &str, radius: usize, full: [i64; 4]) -> Res<String> {
    let factor = (radius / 4).clamp(1, 16);
    let small = box_downscale(b, x, factor, (full[3] as usize, full[2] as usize))?;
    let r = (radius / factor / 2).max(1);
    let mut s = small;
    for _ in 0..3 {
        s = b.box_blur(&s, r)?;
    }
    b.resize(&s, full)
}

/// The graph twin of `resize::downscale_box`: zero-pad to whole blocks, average each
/// `factor x factor` block, then rescale the edge blocks by the share of real pixels in
/// them (a constant map), so partial blocks average only what they cover. (Plain
/// pooling, no `ceil_mode`, which GPU pooling kernels have handled unevenly.)
fn box_downscale(b: &mut Builder, x: &str, factor: usize, (w, h): (usize, usize)) -> Res<String> {
    let (dw, dh) = (w.div_ceil(factor), h.div_ceil(factor));
    let (pw, ph) = ((dw * factor - w) as i64, (dh * factor - h) as i64);
    let padded = if pw > 0 || ph > 0 {
        let pads = b.i64s(&[0, 0, 0, 0, 0, 0, ph, pw])?;
        b.op("Pad", &[x, &pads], vec![attr("mode", "constant")?])?
    } else {
        x.to_string()
    };
    let f = factor as i64;
    let mean = b.op(
        "AveragePool",
        &[&padded],
        vec![
            attr("kernel_shape", vec![f, f])?,
            attr("strides", vec![f, f])?,
        ],
    )?;
    if pw == 0 && ph == 0 {
        return Ok(mean);
    }
    let cover = |i: usize, len: usize| ((i + 1) * factor).min(len) - i * factor;
    let mut gain = Vec::with_capacity(dw * dh);
    for by in 0..dh {
        for bx in 0..dw {
            gain.push((factor * factor) as f32 / (cover(bx, w) * cover(by, h)) as f32);
        }
    }
    let gain = b.f32s(&[1, 1, dh as i64, dw as i64], &gain)?;
    b.binary("Mul", &mean, &gain)
}
