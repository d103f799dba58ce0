//! The typed options users write on the command line, in presets and as element
//! properties: each parses (`FromStr`, with serde going through it) and prints
//! (`Display`) here, so the CLI, presets, the core bench and the GStreamer element accept
//! and reject the same text with the same message.

use std::fmt;
use std::str::FromStr;

use crate::imgproc::refine::{DEFAULT_GUIDED, Guided};

/// A value an option does not take: which option, what was given, what it expects.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{option} {given:?} is not valid; expected {expected}")]
pub struct OptionError {
    pub option: &'static str,
    pub given: String,
    pub expected: String,
}

/// An option with a closed set of names: the enum, its names, parsing, printing, serde.
macro_rules! named_option {
    ($(#[$meta:meta])* $ty:ident ($option:literal) {
        $($(#[$vmeta:meta])* $variant:ident = $name:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub enum $ty {
            $($(#[$vmeta])* $variant,)+
        }

        impl $ty {
            /// Every name the option takes.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
        }

        impl FromStr for $ty {
            type Err = OptionError;
            fn from_str(s: &str) -> Result<Self, OptionError> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(OptionError {
                        option: $option,
                        given: s.to_string(),
                        expected: format!("one of {}", Self::NAMES.join(", ")),
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($ty::$variant => $name),+ })
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named_option! {
    /// Execution device. `Auto` tries TensorRT, then CUDA, then CPU.
    Device ("device") {
        #[default]
        Auto = "auto",
        Cpu = "cpu",
        Cuda = "cuda",
        Tensorrt = "tensorrt",
    }
}

named_option! {
    /// Where the per-pixel steps (resize/normalise, mask, upsample, blend) run: `auto`
    /// uses ONNX graphs when the model runs on a GPU provider and the Rust kernels on the
    /// CPU (where the graphs measured 2-5x slower); `native` the Rust kernels (`imgproc`);
    /// `graph` ONNX graphs on the model's device (`infer::graphs`).
    Pixels ("pixels") {
        #[default]
        Auto = "auto",
        Native = "native",
        Graph = "graph",
    }
}

named_option! {
    /// How the mask reaches frame size: `guided` lays its edges on the frame's own edges
    /// (a guided filter on the luma) and unmixes edge colours; `off` is a plain bilinear
    /// upsample of the feathered mask.
    Refine ("refine") {
        #[default]
        Guided = "guided",
        Off = "off",
    }
}

impl Refine {
    /// The guided filter's parameters, or none.
    pub fn guided(self) -> Option<Guided> {
        (self == Refine::Guided).then_some(DEFAULT_GUIDED)
    }
}

/// How often the segmentation model runs (`--model-every`): `auto` runs it when the
/// picture has changed since it last ran, and at least every `AUTO_MAX`th frame; `N` on
/// every Nth frame (1: every frame). Frames in between reuse the last scores, laid on
/// their own edges by the mask refine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModelEvery {
    #[default]
    Auto,
    Frames(u32),
}

impl ModelEvery {
    /// The longest run of frames `auto` lets share one model run.
    pub const AUTO_MAX: u32 = 3;
    /// The largest `N` taken.
    pub const MAX: u32 = 30;
}

impl FromStr for ModelEvery {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        let t = s.trim().to_ascii_lowercase();
        if t == "auto" {
            return Ok(ModelEvery::Auto);
        }
        match t.parse::<u32>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(ModelEvery::Frames(n)),
            _ => Err(OptionError {
                option: "model-every",
                given: s.to_string(),
                expected: format!("auto, or a number of frames from 1 to {}", Self::MAX),
            }),
        }
    }
}

impl fmt::Display for ModelEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelEvery::Auto => f.write_str("auto"),
            ModelEvery::Frames(n) => write!(f, "{n}"),
        }
    }
}

/// In presets: `model_every = "auto"` or `model_every = 2`.
impl<'de> serde::Deserialize<'de> for ModelEvery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d)
    }
}

/// A preset value written as a number or as text, parsed by `FromStr` either way.
fn number_or_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr<Err = OptionError>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(i64),
        Text(String),
    }
    match <Given as serde::Deserialize>::deserialize(d)? {
        Given::Text(s) => s.parse(),
        Given::Number(n) => n.to_string().parse(),
    }
    .map_err(serde::de::Error::custom)
}

/// `--batch`: how many streams' frames the segmentation model takes in one call. `auto`
/// batches on CUDA (up to `MAX`) and not on the CPU, where a batch measured no faster per
/// frame, nor on TensorRT, whose engines are built for the shapes they see (a batch size
/// changing from call to call could rebuild one mid-stream); `off`; or at most N frames a
/// call (`models/convert_selfie.py` gives the model its free batch dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Batch {
    #[default]
    Auto,
    Off,
    Frames(u32),
}

impl Batch {
    pub const MAX: u32 = 64;

    /// The most frames a call takes, for a model on `provider` (1: no batching).
    pub fn size(self, provider: &str) -> usize {
        match self {
            Batch::Auto if provider == "CUDAExecutionProvider" => Self::MAX as usize,
            Batch::Auto | Batch::Off => 1,
            Batch::Frames(n) => n as usize,
        }
    }
}

impl FromStr for Batch {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Batch::Auto),
            "off" | "1" => Ok(Batch::Off),
            t => match t.parse::<u32>() {
                Ok(n) if (2..=Self::MAX).contains(&n) => Ok(Batch::Frames(n)),
                _ => Err(OptionError {
                    option: "batch",
                    given: s.to_string(),
                    expected: format!("auto, off, or a number of frames from 2 to {}", Self::MAX),
                }),
            },
        }
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Batch::Auto => f.write_str("auto"),
            Batch::Off => f.write_str("off"),
            Batch::Frames(n) => write!(f, "{n}"),
        }
    }
}

/// In presets: `batch = "auto"`, `batch = "off"` or `batch = 4`.
impl<'de> serde::Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d)
    }
}

/// The soft edge band `LO,HI`: alpha below LO is 0, above HI is 1, smooth in between.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeBand {
    pub lo: f32,
    pub hi: f32,
}

impl EdgeBand {
    pub const DEFAULT: EdgeBand = EdgeBand { lo: 0.2, hi: 0.8 };

    /// The band, checked: 0 <= LO <= HI <= 1.
    pub fn new(lo: f32, hi: f32) -> Result<EdgeBand, OptionError> {
        if (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo <= hi {
            Ok(EdgeBand { lo, hi })
        } else {
            Err(Self::invalid(format!("{lo},{hi}")))
        }
    }

    fn invalid(given: String) -> OptionError {
        OptionError {
            option: "edge",
            given,
            expected: "LO,HI with 0 <= LO <= HI <= 1 (e.g. 0.2,0.8)".into(),
        }
    }
}

impl Default for EdgeBand {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for EdgeBand {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        let values: Vec<f32> = s
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| Self::invalid(s.to_string()))?;
        match values[..] {
            [lo, hi] => Self::new(lo, hi).map_err(|_| Self::invalid(s.to_string())),
            _ => Err(Self::invalid(s.to_string())),
        }
    }
}

impl fmt::Display for EdgeBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.lo, self.hi)
    }
}

/// In presets: `edge = [0.2, 0.8]` or `edge = "0.2,0.8"`.
impl<'de> serde::Deserialize<'de> for EdgeBand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Pair(Vec<f32>),
            Text(String),
        }
        let band = match Given::deserialize(d)? {
            Given::Text(s) => s.parse(),
            Given::Pair(v) => match v[..] {
                [lo, hi] => EdgeBand::new(lo, hi),
                _ => Err(EdgeBand::invalid(format!("{v:?}"))),
            },
        };
        band.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes() {
        let cpu = "CPUExecutionProvider";
        assert_eq!("auto".parse::<Batch>().unwrap().size(cpu), 1);
        assert_eq!(
            "auto"
                .parse::<Batch>()
                .unwrap()
                .size("CUDAExecutionProvider"),
            64
        );
        assert_eq!(
            "off"
                .parse::<Batch>()
                .unwrap()
                .size("CUDAExecutionProvider"),
            1
        );
        assert_eq!("4".parse::<Batch>().unwrap().size(cpu), 4);
        for b in ["auto", "off", "4"] {
            assert_eq!(b.parse::<Batch>().unwrap().to_string(), b);
        }
        let e = "65".parse::<Batch>().unwrap_err().to_string();
        assert!(
            e.contains("batch \"65\"") && e.contains("from 2 to 64"),
            "{e}"
        );
    }

    #[test]
    fn names_parse_print_and_refuse_with_what_they_expect() {
        for name in Device::NAMES {
            assert_eq!(name.parse::<Device>().unwrap().to_string(), *name);
        }
        assert_eq!(" CUDA ".parse::<Device>(), Ok(Device::Cuda));
        let e = "gpu".parse::<Device>().unwrap_err().to_string();
        assert_eq!(
            e,
            "device \"gpu\" is not valid; expected one of auto, cpu, cuda, tensorrt"
        );
        assert_eq!("off".parse::<Refine>().unwrap().guided(), None);
        assert_eq!(Pixels::default(), Pixels::Auto);
    }

    #[test]
    fn model_every_takes_auto_or_a_frame_count() {
        assert_eq!("auto".parse::<ModelEvery>(), Ok(ModelEvery::Auto));
        assert_eq!(" 2 ".parse::<ModelEvery>(), Ok(ModelEvery::Frames(2)));
        assert_eq!(ModelEvery::Frames(3).to_string(), "3");
        for bad in ["0", "31", "-1", "often", ""] {
            let e = bad.parse::<ModelEvery>().unwrap_err().to_string();
            assert!(
                e.contains("auto, or a number of frames from 1 to 30"),
                "{e}"
            );
        }
    }

    #[test]
    fn edge_bands_are_checked_the_same_from_text_and_presets() {
        assert_eq!("0.1, 0.9".parse(), Ok(EdgeBand { lo: 0.1, hi: 0.9 }));
        for bad in ["0.9,0.1", "NaN,1", "0.2", "0.2,0.8,1", "a,b", "-1,0.5"] {
            assert!(bad.parse::<EdgeBand>().is_err(), "{bad}");
        }
        #[derive(serde::Deserialize)]
        struct P {
            edge: EdgeBand,
        }
        let p: P = toml::from_str("edge = [0.3, 0.7]").unwrap();
        assert_eq!(p.edge, EdgeBand { lo: 0.3, hi: 0.7 });
        let e = toml::from_str::<P>("edge = [0.7, 0.3]")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("expected LO,HI"), "{e}");
        assert_eq!(EdgeBand::DEFAULT.to_string().parse(), Ok(EdgeBand::DEFAULT));
    }
}
