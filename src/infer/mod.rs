//! ONNX Runtime: finding the library, building sessions on the chosen device, and
//! running them. The only module that imports `ort`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

#[cfg(any(feature = "cuda", feature = "tensorrt"))]
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorRef;

use crate::model::{IoInfo, Manifest, ManifestError};

pub mod batch;
pub mod chain;
pub mod graphs;

pub const ORT_VERSION: &str = "1.31.1";

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(
        "ONNX Runtime library not found (looked for {tried}); run `./segsynth.sh setup` to install it into .deps/, or point ORT_DYLIB_PATH at libonnxruntime.so.{ORT_VERSION}"
    )]
    LibraryMissing { tried: String },
    #[error(
        "cannot load ONNX Runtime from {path}: {message}; expected libonnxruntime.so.{ORT_VERSION} (PyPI wheel onnxruntime=={ORT_VERSION})"
    )]
    LibraryLoad { path: PathBuf, message: String },
    #[error("{path} is not a loadable ONNX model: {message}")]
    BadModel { path: PathBuf, message: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{device} was requested but is not usable: {message}")]
    Device {
        device: &'static str,
        message: String,
    },
    #[error("cannot build the {graph}: {message}")]
    Graph { graph: String, message: String },
    #[error("running model {model}: {message}")]
    Run { model: String, message: String },
}

pub use crate::options::{Device, Pixels};

impl Pixels {
    /// Whether the graphs run, given the provider the model got.
    pub fn use_graphs(self, provider: &str) -> bool {
        match self {
            Pixels::Auto => provider != "CPUExecutionProvider",
            Pixels::Native => false,
            Pixels::Graph => true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub threads: usize,
    pub device: Device,
}

/// Why the runtime could not be set up, kept (cloneable) for every later caller.
#[derive(Clone, Debug)]
enum EnvFailure {
    Missing { tried: String },
    Load { path: PathBuf, message: String },
}

impl From<&EnvFailure> for InferError {
    fn from(f: &EnvFailure) -> Self {
        match f.clone() {
            EnvFailure::Missing { tried } => InferError::LibraryMissing { tried },
            EnvFailure::Load { path, message } => InferError::LibraryLoad { path, message },
        }
    }
}

static ENV: OnceLock<Result<ort::environment::Environment, EnvFailure>> = OnceLock::new();

/// Where the ORT shared library is looked for, in order.
pub fn library_candidates() -> Vec<PathBuf> {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
        return c;
    }
    if let Some(p) = std::env::var_os("SEGSYNTH_HOME") {
        c.push(Path::new(&p).join(".deps/onnxruntime").join(&file));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            c.push(dir.join(".deps/onnxruntime").join(&file));
        }
    }
    c.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".deps/onnxruntime")
            .join(&file),
    );
    c
}

fn environment() -> Result<&'static ort::environment::Environment, InferError> {
    let env = ENV.get_or_init(|| {
        let candidates = library_candidates();
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            return Err(EnvFailure::Missing {
                tried: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let load = |message: String| EnvFailure::Load {
            path: path.clone(),
            message,
        };
        ort::init_from(path)
            .map_err(|e| load(e.to_string()))?
            .with_name("segsynth")
            .build()
            .map_err(|e| load(e.to_string()))
    });
    env.as_ref().map_err(InferError::from)
}

fn ort_msg<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// An ONNX session with its validated manifest. `share` gives another handle on the
/// same session: the streams of one process run one session per model, one run at a time.
pub struct Model {
    session: Arc<Mutex<Session>>,
    /// Set by `batch`: this handle's requests go through the session's batcher.
    batcher: Option<Arc<batch::Batcher>>,
    /// Which handle this is (a stream, for the batcher).
    handle: u64,
    /// Whether the model's first input dimension is free (several frames per call).
    batchable: bool,
    pub manifest: Manifest,
    /// The execution provider that actually runs this model.
    pub provider: &'static str,
}

/// Model output copied out of ORT.
pub enum Output {
    F32 { shape: Vec<i64>, data: Vec<f32> },
    I64 { shape: Vec<i64>, data: Vec<i64> },
}

impl Model {
    pub fn open(manifest: Manifest, options: &SessionOptions) -> Result<Model, InferError> {
        let path = manifest.model_path();
        if !path.is_file() {
            let hint = if manifest.source_sha256.is_some() {
                "; run `./segsynth.sh setup` to fetch and convert it".to_string()
            } else {
                String::new()
            };
            return Err(ManifestError::MissingFile {
                path,
                manifest: manifest.path.clone(),
                hint,
            }
            .into());
        }
        if let Some(expected) = &manifest.sha256 {
            let bytes = std::fs::read(&path).map_err(|e| InferError::BadModel {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let actual = sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(ManifestError::Checksum {
                    path,
                    manifest: manifest.path.clone(),
                    actual,
                    expected: expected.clone(),
                }
                .into());
            }
        }
        let generator = manifest.task == crate::model::Task::Generator;
        let (session, provider) =
            build_session(options, &path.display().to_string(), !generator, |b| {
                b.commit_from_file(&path).map_err(ort_msg)
            })
            .map_err(|e| match e {
                InferError::Graph { message, .. } => InferError::BadModel {
                    path: path.clone(),
                    message,
                },
                other => other,
            })?;
        let describe = |outlets: &[ort::value::Outlet]| -> Vec<IoInfo> {
            outlets
                .iter()
                .map(|o| IoInfo {
                    name: o.name().to_string(),
                    shape: o
                        .dtype()
                        .tensor_shape()
                        .map(|s| s.to_vec())
                        .unwrap_or_default(),
                    dtype: o
                        .dtype()
                        .tensor_type()
                        .map(dtype_name)
                        .unwrap_or("non-tensor")
                        .to_string(),
                })
                .collect()
        };
        manifest.validate_io(&describe(session.inputs()), &describe(session.outputs()))?;
        tracing::info!(model = %manifest.name, provider, "model loaded");
        let batchable = session
            .inputs()
            .first()
            .and_then(|i| {
                i.dtype()
                    .tensor_shape()
                    .map(|s| s.first().is_some_and(|&d| d < 0))
            })
            .unwrap_or(false);
        Ok(Model {
            session: Arc::new(Mutex::new(session)),
            batcher: None,
            handle: next_handle(),
            batchable,
            manifest,
            provider,
        })
    }

    /// Another handle on this model's session (the weights are loaded once), batching
    /// with the others if this one does.
    pub fn share(&self) -> Model {
        Model {
            session: Arc::clone(&self.session),
            batcher: self.batcher.clone(),
            handle: next_handle(),
            batchable: self.batchable,
            manifest: self.manifest.clone(),
            provider: self.provider,
        }
    }

    /// Another handle of the same stream (its next run): the batcher counts it as the
    /// stream it was, not as a new one to wait for.
    pub fn again(&self) -> Model {
        Model {
            handle: self.handle,
            ..self.share()
        }
    }

    /// Runs this handle's and its shares' frames in batches, as `batch` asks on this
    /// model's provider (waiting at most `window` for the others): false, and nothing
    /// changes, when batching was asked and the model's batch dimension is fixed.
    pub fn batch(&mut self, batch: crate::options::Batch, window: std::time::Duration) -> bool {
        let max = batch.size(self.provider);
        if max > 1 && self.batchable {
            self.batcher = Some(Arc::new(batch::Batcher::new(max, window)));
        }
        max <= 1 || self.batcher.is_some()
    }

    /// (model calls, frames) of the batcher, when batching.
    pub fn batch_stats(&self) -> Option<(u64, u64)> {
        self.batcher.as_ref().map(|b| b.stats())
    }

    /// The session, for one run; a run that panicked elsewhere leaves it usable.
    pub(crate) fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs with f32 inputs `(name, shape, data)` and returns the manifest's output; one
    /// input through a batcher when batching.
    pub fn run(&mut self, inputs: &[(&str, &[i64], &[f32])]) -> Result<Output, InferError> {
        match (&self.batcher, inputs) {
            (Some(b), [(name, shape, data)]) => b.run(self.handle, data, shape, &|x, s| {
                self.run_once(&[(name, s, x)])
            }),
            _ => self.run_once(inputs),
        }
    }

    fn run_once(&self, inputs: &[(&str, &[i64], &[f32])]) -> Result<Output, InferError> {
        let err = |message: String| InferError::Run {
            model: self.manifest.name.clone(),
            message,
        };
        let mut values = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let tensor =
                TensorRef::from_array_view((shape.to_vec(), *data)).map_err(|e| err(ort_msg(e)))?;
            values.push((
                std::borrow::Cow::Borrowed(*name),
                ort::session::SessionInputValue::from(tensor),
            ));
        }
        let name = self.manifest.output.name.clone();
        let model_name = self.manifest.name.clone();
        let err = |message: String| InferError::Run {
            model: model_name.clone(),
            message,
        };
        let mut session = self.session();
        let outputs = session.run(values).map_err(|e| err(ort_msg(e)))?;
        let value = outputs
            .get(&name)
            .ok_or_else(|| err(format!("output {name:?} missing")))?;
        if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
            return Ok(Output::F32 {
                shape: shape.to_vec(),
                data: data.to_vec(),
            });
        }
        let (shape, data) = value
            .try_extract_tensor::<i64>()
            .map_err(|e| err(ort_msg(e)))?;
        Ok(Output::I64 {
            shape: shape.to_vec(),
            data: data.to_vec(),
        })
    }
}

/// A number for each model handle, distinct within the process.
fn next_handle() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn dtype_name(t: ort::value::TensorElementType) -> &'static str {
    use ort::value::TensorElementType as T;
    match t {
        T::Float32 => "f32",
        T::Int64 => "i64",
        T::Float16 => "f16",
        T::Float64 => "f64",
        T::Int32 => "i32",
        T::Uint8 => "u8",
        T::Int8 => "i8",
        _ => "other",
    }
}

fn builder_err(e: ort::Error<SessionBuilder>) -> String {
    ort::Error::<()>::from(e).to_string()
}

fn base_builder(
    env: &ort::environment::Environment,
    threads: usize,
    memory_pattern: bool,
) -> Result<SessionBuilder, String> {
    Session::builder(env)
        .map_err(ort_msg)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(builder_err)?
        .with_intra_threads(threads.max(1))
        .map_err(builder_err)?
        // Spinning intra-op threads steal the codec's cores on small machines (measured ~30% end to end).
        .with_intra_op_spinning(false)
        .map_err(builder_err)?
        .with_memory_pattern(memory_pattern)
        .map_err(builder_err)
}

/// Builds a session on the first usable device of `options.device`'s order; `commit`
/// turns a configured builder into the session (from a file or an in-memory graph).
/// `memory_pattern`: ORT's pre-planned allocation pattern. Off for generators: their
/// inputs change size and the plan held on to far more than a run needs (a 1280x720 layer
/// of the shipped generators: 1119 MiB peak with it, 788 without, and no slower).
fn build_session(
    options: &SessionOptions,
    what: &str,
    memory_pattern: bool,
    mut commit: impl FnMut(&mut SessionBuilder) -> Result<Session, String>,
) -> Result<(Session, &'static str), InferError> {
    let env = environment()?;
    let bad = |message: String| InferError::Graph {
        graph: what.to_string(),
        message,
    };
    let order: &[Device] = match options.device {
        Device::Auto => &[Device::Tensorrt, Device::Cuda, Device::Cpu],
        Device::Cpu => &[Device::Cpu],
        Device::Cuda => &[Device::Cuda],
        Device::Tensorrt => &[Device::Tensorrt],
    };
    let mut last = String::new();
    for &device in order {
        let mut builder = base_builder(env, options.threads, memory_pattern).map_err(bad)?;
        match register(device, &mut builder) {
            Ok(name) => {
                let session = commit(&mut builder).map_err(bad)?;
                return Ok((session, name));
            }
            Err(message) => {
                tracing::debug!(?device, %message, "execution provider unavailable");
                if options.device != Device::Auto {
                    return Err(InferError::Device {
                        device: device_name(device),
                        message,
                    });
                }
                last = message;
            }
        }
    }
    Err(InferError::Device {
        device: "any execution provider",
        message: last,
    })
}

fn device_name(d: Device) -> &'static str {
    match d {
        Device::Auto => "auto",
        Device::Cpu => "CPU",
        Device::Cuda => "CUDA",
        Device::Tensorrt => "TensorRT",
    }
}

#[cfg_attr(
    not(any(feature = "cuda", feature = "tensorrt")),
    allow(unused_variables)
)]
fn register(device: Device, builder: &mut SessionBuilder) -> Result<&'static str, String> {
    match device {
        Device::Cpu | Device::Auto => Ok("CPUExecutionProvider"),
        #[cfg(feature = "cuda")]
        Device::Cuda => register_gpu(builder, ort::ep::CUDA::default(), "CUDAExecutionProvider"),
        #[cfg(feature = "tensorrt")]
        Device::Tensorrt => register_gpu(
            builder,
            ort::ep::TensorRT::default(),
            "TensorrtExecutionProvider",
        ),
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "this segsynth was built without {} support; rebuild with `cargo build --release --features {}`",
            device_name(other),
            device_name(other).to_ascii_lowercase()
        )),
    }
}

#[cfg(any(feature = "cuda", feature = "tensorrt"))]
fn register_gpu<E: ExecutionProvider>(
    builder: &mut SessionBuilder,
    ep: E,
    name: &'static str,
) -> Result<&'static str, String> {
    match E::is_available() {
        Ok(true) => {}
        _ => {
            return Err(format!(
                "the loaded ONNX Runtime has no {name}; install onnxruntime-gpu=={ORT_VERSION} (`./segsynth.sh setup-gpu`) and point ORT_DYLIB_PATH at its libonnxruntime.so"
            ));
        }
    }
    ep.register(builder).map_err(|e| {
        let needs = if name.starts_with("Tensorrt") {
            "TensorRT 10 (libnvinfer.so.10) as well as the NVIDIA driver (libcuda.so.1) and CUDA 13 / cuDNN 9"
        } else {
            "the NVIDIA driver (libcuda.so.1) and the CUDA 13 / cuDNN 9 runtime libraries"
        };
        format!(
            "{name} failed to start: {}; it needs {needs} on the library path (`source .deps/gpu.env` after `./segsynth.sh setup-gpu` sets up the last two)",
            e.to_string().trim()
        )
    })?;
    Ok(name)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
