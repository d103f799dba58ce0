use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::imgproc::mask::Semantics;
use crate::imgproc::preprocess::{Layout, Sampling, TensorGeometry};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read model manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid model manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("model manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("model {model:?} does not match its manifest {path}: {message}")]
    Mismatch {
        model: PathBuf,
        path: PathBuf,
        message: String,
    },
    #[error(
        "unknown model {name:?}: no manifest at {tried}; give a model name from {dir} ({available}) or a path to a .toml manifest or a .onnx file with a .toml beside it"
    )]
    Unknown {
        name: String,
        tried: PathBuf,
        dir: PathBuf,
        available: String,
    },
    #[error("model file {path} is missing (named by manifest {manifest}){hint}")]
    MissingFile {
        path: PathBuf,
        manifest: PathBuf,
        hint: String,
    },
    #[error("model file {path} has sha256 {actual}, but its manifest {manifest} says {expected}")]
    Checksum {
        path: PathBuf,
        manifest: PathBuf,
        actual: String,
        expected: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Segmentation,
    Generator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    I64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub layout: Option<Layout>,
    /// -1 marks a dynamic dimension.
    pub shape: Vec<i64>,
    pub dtype: DType,
    /// Value range that pixel values 0..255 map to (inputs) or come in (outputs).
    pub range: Option<[f32; 2]>,
    /// Per-channel mean/std on [0,1] pixels, as an alternative to `range`.
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub sampling: Option<Sampling>,
    pub semantics: Option<Semantics>,
    pub classes: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contract {
    /// noise [1,C,h,w] -> image [1,3,s*h,s*w]
    Spatial,
    /// z [1,Z] -> image [1,3,H,W]
    Latent,
    /// frame [1,3,H,W] (+ optional mask [1,1,H,W]) -> image [1,3,H,W]
    Image,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    pub contract: Contract,
    pub noise_channels: Option<usize>,
    pub scale: Option<usize>,
    pub latent_dim: Option<usize>,
    /// Spatial generators: noise cells to generate beyond each edge of the layer and crop
    /// away (a convolutional generator's outermost pixels see padding, not texture).
    pub border: Option<usize>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub task: Task,
    pub file: PathBuf,
    pub licence: String,
    pub source: String,
    pub sha256: Option<String>,
    pub source_sha256: Option<String>,
    pub training_command: Option<String>,
    pub seed: Option<u64>,
    pub input: TensorSpec,
    /// Second input of `image` generators that also take the mask.
    pub mask_input: Option<TensorSpec>,
    /// Input of `image` generators that also take noise [1,C,h,w], in cells of the
    /// generator's `scale` pixels covering the frame input (texture the frame lacks).
    pub noise_input: Option<TensorSpec>,
    pub output: TensorSpec,
    pub generator: Option<GeneratorSpec>,
    /// Where this manifest was read from (set by `load`).
    #[serde(skip)]
    pub path: PathBuf,
}

/// What an ONNX session reports about one input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub shape: Vec<i64>,
    /// ONNX element type as text (`f32`, `i64`, ...).
    pub dtype: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks manifest text; `path` names it in errors and locates the model.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        m.path = path.to_owned();
        m.check()?;
        Ok(m)
    }

    pub fn model_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.file)
    }

    fn invalid(&self, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Internal consistency, before any model is opened.
    fn check(&self) -> Result<(), ManifestError> {
        match self.task {
            Task::Segmentation => {
                let out = &self.output;
                let semantics = out.semantics.ok_or_else(|| {
                    self.invalid("[output] needs `semantics` (sigmoid, probabilities, logits or labels) for a segmentation model")
                })?;
                let classes = out
                    .classes
                    .as_ref()
                    .ok_or_else(|| self.invalid("[output] needs `classes`, the class labels"))?;
                if classes.is_empty() {
                    return Err(self.invalid("[output] `classes` is empty"));
                }
                if semantics == Semantics::Sigmoid && classes.len() != 2 {
                    return Err(self.invalid(
                        "a sigmoid output needs exactly two classes: [negative, positive]",
                    ));
                }
                if self.input.shape.len() != 4 {
                    return Err(self.invalid(format!(
                        "[input] shape {:?} must have 4 dimensions",
                        self.input.shape
                    )));
                }
                self.input
                    .layout
                    .ok_or_else(|| self.invalid("[input] needs `layout` (NCHW or NHWC)"))?;
                let (h, w) = self.input_hw();
                if h <= 0 || w <= 0 {
                    return Err(self.invalid(
                        "[input] spatial size must be fixed (no -1) for a segmentation model",
                    ));
                }
            }
            Task::Generator => {
                let g = self.generator.as_ref().ok_or_else(|| {
                    self.invalid("a generator manifest needs a [generator] table")
                })?;
                match g.contract {
                    Contract::Spatial if g.noise_channels.is_none() || g.scale.is_none() => {
                        return Err(
                            self.invalid("a spatial generator needs `noise_channels` and `scale`")
                        );
                    }
                    Contract::Latent if g.latent_dim.is_none() => {
                        return Err(self.invalid("a latent generator needs `latent_dim`"));
                    }
                    Contract::Latent | Contract::Image if g.border.is_some() => {
                        return Err(self.invalid(
                            "`border` (noise cells cropped at each edge) is for spatial generators only",
                        ));
                    }
                    _ => {}
                }
                if let Some(n) = &self.noise_input {
                    if g.contract != Contract::Image {
                        return Err(self.invalid(
                            "[noise_input] is for image generators only (spatial and latent ones take noise as their input)",
                        ));
                    }
                    if g.scale.is_none() {
                        return Err(self.invalid(
                            "[noise_input] needs the generator's `scale` (pixels per noise cell)",
                        ));
                    }
                    if n.shape.len() != 4 || n.shape[1] <= 0 {
                        return Err(self.invalid(format!(
                            "[noise_input] shape {:?}: expected [1, C, -1, -1] with a fixed channel count C",
                            n.shape
                        )));
                    }
                }
            }
        }
        if self.input.range.is_some() && self.input.mean.is_some() {
            return Err(self.invalid("[input] sets both `range` and `mean`; use one"));
        }
        Ok(())
    }

    /// (height, width) of a 4-D input per its layout.
    pub fn input_hw(&self) -> (i64, i64) {
        hw(&self.input)
    }

    /// Classes for a segmentation model.
    pub fn classes(&self) -> &[String] {
        self.output.classes.as_deref().unwrap_or(&[])
    }

    pub fn input_geometry(&self) -> TensorGeometry {
        let (h, w) = self.input_hw();
        geometry_for(&self.input, w.max(1) as usize, h.max(1) as usize)
    }

    /// Checks the manifest against the real session inputs/outputs.
    pub fn validate_io(&self, inputs: &[IoInfo], outputs: &[IoInfo]) -> Result<(), ManifestError> {
        let mut specs = vec![("input", &self.input, inputs)];
        if let Some(m) = &self.mask_input {
            specs.push(("mask_input", m, inputs));
        }
        if let Some(n) = &self.noise_input {
            specs.push(("noise_input", n, inputs));
        }
        specs.push(("output", &self.output, outputs));
        for (table, spec, list) in specs {
            let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
            let real = list.iter().find(|i| i.name == spec.name).ok_or_else(|| {
                self.mismatch(format!(
                    "[{table}] name {:?} is not in the model; the model has {:?}",
                    spec.name, names
                ))
            })?;
            let dtype = match spec.dtype {
                DType::F32 => "f32",
                DType::I64 => "i64",
            };
            if real.dtype != dtype {
                return Err(self.mismatch(format!(
                    "[{table}] {:?} has dtype {} in the model, the manifest expects {dtype}",
                    spec.name, real.dtype
                )));
            }
            let compatible = real.shape.len() == spec.shape.len()
                && real
                    .shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&r, &s)| r == s || r < 0 || s < 0);
            if !compatible {
                return Err(self.mismatch(format!(
                    "[{table}] {:?} has shape {:?} in the model, the manifest expects {:?}",
                    spec.name, real.shape, spec.shape
                )));
            }
        }
        if self.task == Task::Segmentation {
            let semantics = self.output.semantics.unwrap_or(Semantics::Sigmoid);
            let classes = self.classes().len() as i64;
            let channels = self.output_channels();
            let ok = match semantics {
                Semantics::Sigmoid => channels == Some(1),
                Semantics::Probabilities | Semantics::Logits => channels == Some(classes),
                Semantics::Labels => true,
            };
            if !ok {
                return Err(self.invalid(format!(
                    "[output] has {} channel(s) but {:?} semantics with {classes} classes needs {}",
                    channels.map_or("an unknown number of".into(), |c| c.to_string()),
                    semantics,
                    if semantics == Semantics::Sigmoid {
                        1
                    } else {
                        classes
                    }
                )));
            }
        }
        Ok(())
    }

    /// Channel count of a 4-D output per its layout.
    pub fn output_channels(&self) -> Option<i64> {
        let s = &self.output.shape;
        match (s.len(), self.output.layout) {
            (4, Some(Layout::Nchw)) => Some(s[1]),
            (4, Some(Layout::Nhwc)) => Some(s[3]),
            _ => None,
        }
    }

    fn mismatch(&self, message: String) -> ManifestError {
        ManifestError::Mismatch {
            model: self.model_path(),
            path: self.path.clone(),
            message,
        }
    }
}

fn hw(spec: &TensorSpec) -> (i64, i64) {
    let s = &spec.shape;
    if s.len() != 4 {
        return (-1, -1);
    }
    match spec.layout {
        Some(Layout::Nhwc) => (s[1], s[2]),
        _ => (s[2], s[3]),
    }
}

/// Normalisation + layout of an RGB tensor of the given size, from a spec.
pub fn geometry_for(spec: &TensorSpec, width: usize, height: usize) -> TensorGeometry {
    let (scale, offset) = match (spec.range, spec.mean, spec.std) {
        (_, Some(mean), std) => {
            let std = std.unwrap_or([1.0; 3]);
            (
                [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]],
                [-mean[0] / std[0], -mean[1] / std[1], -mean[2] / std[2]],
            )
        }
        (Some([lo, hi]), _, _) => ([hi - lo; 3], [lo; 3]),
        (None, None, _) => ([1.0; 3], [0.0; 3]),
    };
    TensorGeometry {
        width,
        height,
        layout: spec.layout.unwrap_or(Layout::Nchw),
        sampling: spec.sampling.unwrap_or_default(),
        scale,
        offset,
    }
}

/// Resolves `--model` / `gan:` names: a name in `dir`, a `.toml` path, or a `.onnx`
/// path with a `.toml` of the same stem beside it.
pub fn resolve(name_or_path: &str, dir: &Path) -> Result<PathBuf, ManifestError> {
    let p = Path::new(name_or_path);
    let looks_like_path = name_or_path.contains('/') || p.extension().is_some();
    if looks_like_path {
        let manifest = match p.extension().and_then(|e| e.to_str()) {
            Some("toml") => p.to_owned(),
            _ => p.with_extension("toml"),
        };
        if !p.exists() {
            return Err(ManifestError::MissingFile {
                path: p.to_owned(),
                manifest: manifest.clone(),
                hint: String::new(),
            });
        }
        if !manifest.exists() {
            return Err(ManifestError::Invalid {
                path: manifest,
                message: format!(
                    "{} has no manifest beside it; write one (see models/README.md)",
                    p.display()
                ),
            });
        }
        return Ok(manifest);
    }
    let manifest = dir.join(format!("{name_or_path}.toml"));
    if manifest.exists() {
        return Ok(manifest);
    }
    Err(ManifestError::Unknown {
        name: name_or_path.into(),
        tried: manifest,
        dir: dir.to_owned(),
        available: list(dir).join(", "),
    })
}

/// Model names (manifest stems) available in `dir` and its `gan/` subfolder.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for (sub, prefix) in [(dir.to_owned(), ""), (dir.join("gan"), "gan/")] {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml")
                    && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                {
                    names.push(format!("{prefix}{stem}"));
                }
            }
        }
    }
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let dir = std::env::temp_dir().join(format!("segsynth-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = dir.join(format!(
            "m{}.toml",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&p, text).ok();
        Manifest::load(&p)
    }

    const SEG: &str = r#"
name = "t"
task = "segmentation"
file = "t.onnx"
licence = "MIT"
source = "test"
[input]
name = "image"
layout = "NCHW"
shape = [1, 3, 32, 32]
dtype = "f32"
[output]
name = "logits"
layout = "NCHW"
shape = [1, 3, 32, 32]
dtype = "f32"
semantics = "logits"
classes = ["sky", "person", "road"]
"#;

    fn io(name: &str, shape: &[i64]) -> IoInfo {
        IoInfo {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: "f32".into(),
        }
    }

    #[test]
    fn valid_manifest_matches_session() {
        let m = parse(SEG).unwrap();
        assert_eq!(m.classes().len(), 3);
        m.validate_io(
            &[io("image", &[1, 3, 32, 32])],
            &[io("logits", &[1, 3, 32, 32])],
        )
        .unwrap();
    }

    #[test]
    fn wrong_name_and_shape_are_named() {
        let m = parse(SEG).unwrap();
        let e = m
            .validate_io(
                &[io("input", &[1, 3, 32, 32])],
                &[io("logits", &[1, 3, 32, 32])],
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("\"image\" is not in the model"),
            "{e}"
        );
        let e = m
            .validate_io(
                &[io("image", &[1, 5, 32, 32])],
                &[io("logits", &[1, 3, 32, 32])],
            )
            .unwrap_err();
        assert!(e.to_string().contains("[1, 5, 32, 32]"), "{e}");
    }

    #[test]
    fn missing_semantics_is_an_error() {
        let e = parse(&SEG.replace("semantics = \"logits\"\n", "")).unwrap_err();
        assert!(e.to_string().contains("semantics"), "{e}");
        let e =
            parse(&SEG.replace("task = \"segmentation\"", "task = \"segmentatoin\"")).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }

    /// A generator manifest with these input tables and this [generator] table.
    fn generator_manifest(inputs: &str, generator: &str) -> String {
        format!(
            "name = \"g\"\ntask = \"generator\"\nfile = \"g.onnx\"\nlicence = \"MIT\"\nsource = \"test\"\n\
             {inputs}[output]\nname = \"image\"\nshape = [1, 3, -1, -1]\ndtype = \"f32\"\n[generator]\n{generator}"
        )
    }

    #[test]
    fn border_is_for_spatial_generators_only() {
        let generator = |table: &str| {
            generator_manifest(
                "[input]\nname = \"z\"\nshape = [1, 8]\ndtype = \"f32\"\n",
                table,
            )
        };
        let spatial = parse(&generator(
            "contract = \"spatial\"\nnoise_channels = 8\nscale = 16\nborder = 1\n",
        ))
        .unwrap();
        assert_eq!(spatial.generator.and_then(|g| g.border), Some(1));
        let e = parse(&generator(
            "contract = \"latent\"\nlatent_dim = 8\nborder = 1\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("spatial generators only"), "{e}");
    }

    #[test]
    fn noise_input_is_for_image_generators_with_a_scale() {
        let generator = |generator: &str, noise: &str| {
            generator_manifest(
                &format!(
                    "[input]\nname = \"frame\"\nshape = [1, 3, -1, -1]\ndtype = \"f32\"\n\
                     [noise_input]\nname = \"noise\"\nshape = {noise}\ndtype = \"f32\"\n"
                ),
                generator,
            )
        };
        let m = parse(&generator(
            "contract = \"image\"\nscale = 16\n",
            "[1, 2048, -1, -1]",
        ))
        .unwrap();
        assert_eq!(m.noise_input.as_ref().map(|n| n.shape[1]), Some(2048));
        let e = m
            .validate_io(
                &[io("frame", &[1, 3, -1, -1])],
                &[io("image", &[1, 3, -1, -1])],
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("[noise_input] name \"noise\" is not in the model"),
            "{e}"
        );
        for (table, noise, expected) in [
            (
                "contract = \"image\"\n",
                "[1, 2048, -1, -1]",
                "needs the generator's `scale`",
            ),
            (
                "contract = \"image\"\nscale = 16\n",
                "[1, -1, -1, -1]",
                "fixed channel count",
            ),
            (
                "contract = \"spatial\"\nnoise_channels = 8\nscale = 16\n",
                "[1, 8, -1, -1]",
                "image generators only",
            ),
        ] {
            let e = parse(&generator(table, noise)).unwrap_err();
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    #[test]
    fn mean_std_becomes_affine() {
        let spec = TensorSpec {
            name: "x".into(),
            layout: Some(Layout::Nchw),
            shape: vec![1, 3, 2, 2],
            dtype: DType::F32,
            range: None,
            mean: Some([0.5; 3]),
            std: Some([0.25; 3]),
            sampling: None,
            semantics: None,
            classes: None,
        };
        let g = geometry_for(&spec, 2, 2);
        assert_eq!((g.scale[0], g.offset[0]), (4.0, -2.0));
    }
}
