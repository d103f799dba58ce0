//! The content layer: what replaces the chosen classes, and the class -> content map.
//!
//! Parsing and validation happen before any output file exists, so a bad colour,
//! image path or class name never leaves a half-written file behind.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(
        "invalid content {given:?}: {why}; expected one of: blur, blur:<radius px>, color:#RRGGBB, image:<path>, mask, gan:<name|path>, optionally as <class>=<kind>"
    )]
    Syntax { given: String, why: String },
    #[error("cannot use image {path}: {message}; expected a readable PNG or JPEG file")]
    Image { path: PathBuf, message: String },
    #[error("unknown class {class:?} for model {model}; valid classes: {valid}")]
    UnknownClass {
        class: String,
        model: String,
        valid: String,
    },
}

pub const DEFAULT_BLUR_RADIUS: usize = 32;

#[derive(Clone, Debug, PartialEq)]
pub enum ContentKind {
    /// Gaussian-like blur of the frame itself, radius in frame pixels.
    Blur {
        radius: usize,
    },
    Color {
        rgb: [u8; 3],
    },
    Image {
        path: PathBuf,
    },
    /// The soft alpha as a grey picture (white = chosen classes).
    Mask,
    /// GAN-synthesized content from a generator manifest (name or path).
    Gan {
        model: String,
    },
}

impl ContentKind {
    pub fn parse(s: &str) -> Result<ContentKind, ContentError> {
        let bad = |why: &str| ContentError::Syntax {
            given: s.into(),
            why: why.into(),
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("blur", None) => Ok(ContentKind::Blur {
                radius: DEFAULT_BLUR_RADIUS,
            }),
            ("blur", Some(r)) => match r.parse::<usize>() {
                Ok(radius) if (1..=512).contains(&radius) => Ok(ContentKind::Blur { radius }),
                _ => Err(bad(
                    "the blur radius must be a whole number of pixels from 1 to 512",
                )),
            },
            ("color" | "colour", Some(hex)) => parse_hex(hex)
                .map(|rgb| ContentKind::Color { rgb })
                .ok_or_else(|| {
                    bad("the colour must be #RRGGBB with six hex digits, e.g. color:#00b140")
                }),
            ("image", Some(p)) if !p.is_empty() => Ok(ContentKind::Image {
                path: PathBuf::from(p),
            }),
            ("mask", None) => Ok(ContentKind::Mask),
            ("gan", Some(m)) if !m.is_empty() => Ok(ContentKind::Gan { model: m.into() }),
            ("color" | "colour" | "image" | "gan", _) => {
                Err(bad("this kind needs an argument after ':'"))
            }
            _ => Err(bad("unknown kind")),
        }
    }
}

fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#').unwrap_or(s);
    if h.len() != 6 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// One entry of the class -> content map.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub classes: Vec<String>,
    pub content: ContentKind,
}

/// One `--content` value: `<kind>` for the classes of `--classes`, or `<class>=<kind>`
/// for one class. Parsed here for the CLI, presets, live edits, the page and the element.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentSpec {
    pub class: Option<String>,
    pub kind: ContentKind,
}

impl std::str::FromStr for ContentSpec {
    type Err = ContentError;
    fn from_str(s: &str) -> Result<ContentSpec, ContentError> {
        match s.split_once('=') {
            Some((class, kind)) if !class.contains(':') => Ok(ContentSpec {
                class: Some(class.trim().to_string()),
                kind: ContentKind::parse(kind.trim())?,
            }),
            _ => Ok(ContentSpec {
                class: None,
                kind: ContentKind::parse(s.trim())?,
            }),
        }
    }
}

impl std::fmt::Display for ContentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.class {
            Some(class) => write!(f, "{class}={}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::fmt::Display for ContentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentKind::Blur { radius } if *radius == DEFAULT_BLUR_RADIUS => f.write_str("blur"),
            ContentKind::Blur { radius } => write!(f, "blur:{radius}"),
            ContentKind::Color { rgb: [r, g, b] } => write!(f, "color:#{r:02x}{g:02x}{b:02x}"),
            ContentKind::Image { path } => write!(f, "image:{}", path.display()),
            ContentKind::Mask => f.write_str("mask"),
            ContentKind::Gan { model } => write!(f, "gan:{model}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ContentSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Several specs as they are written on one line, space-separated.
pub fn specs_text(specs: &[ContentSpec]) -> String {
    specs
        .iter()
        .map(ContentSpec::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Per entry, its selection flags against a model's class list (see `select`).
pub fn selections(
    entries: &[Entry],
    model: &str,
    classes: &[String],
) -> Result<Vec<Vec<bool>>, ContentError> {
    entries.iter().map(|e| select(e, model, classes)).collect()
}

/// Per-class selection flags for an entry against a model's class list.
pub fn select(entry: &Entry, model: &str, classes: &[String]) -> Result<Vec<bool>, ContentError> {
    let mut selected = vec![false; classes.len()];
    for c in &entry.classes {
        let i = classes
            .iter()
            .position(|k| k.eq_ignore_ascii_case(c))
            .ok_or_else(|| ContentError::UnknownClass {
                class: c.clone(),
                model: model.into(),
                valid: classes.join(", "),
            })?;
        selected[i] = true;
    }
    Ok(selected)
}

/// The largest `image:` picture accepted, per side and in pixels (a 16K panorama fits).
pub const MAX_IMAGE_SIDE: u32 = 16384;
pub const MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;

/// Loads an `image:` content file as packed RGB8, refusing pictures beyond the limits
/// before they are decoded.
pub fn load_image(path: &Path) -> Result<(Vec<u8>, usize, usize), ContentError> {
    let fail = |message: String| ContentError::Image {
        path: path.into(),
        message,
    };
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| fail(e.to_string()))?;
    let (w, h) = reader.into_dimensions().map_err(|e| fail(e.to_string()))?;
    if w == 0
        || h == 0
        || w > MAX_IMAGE_SIDE
        || h > MAX_IMAGE_SIDE
        || w as u64 * h as u64 > MAX_IMAGE_PIXELS
    {
        return Err(fail(format!(
            "the picture is {w}x{h}; expected at most {MAX_IMAGE_SIDE} pixels a side and {} megapixels",
            MAX_IMAGE_PIXELS / (1024 * 1024)
        )));
    }
    let img = image::open(path).map_err(|e| fail(e.to_string()))?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok((rgb.into_raw(), w as usize, h as usize))
}

/// Scales an RGB image to cover `w x h` and crops the centre (no letterboxing, no stretching).
/// The crop is taken first, so a very thin picture never becomes a huge intermediate.
pub fn cover(rgb: &[u8], sw: usize, sh: usize, w: usize, h: usize) -> Vec<u8> {
    let Some(src) = image::RgbImage::from_raw(sw as u32, sh as u32, rgb.to_vec()) else {
        return vec![0; w * h * 3];
    };
    let scale = (w as f64 / sw as f64).max(h as f64 / sh as f64);
    let cw = ((w as f64 / scale).round() as u32).clamp(1, sw as u32);
    let ch = ((h as f64 / scale).round() as u32).clamp(1, sh as u32);
    let (x0, y0) = ((sw as u32 - cw) / 2, (sh as u32 - ch) / 2);
    let crop = image::imageops::crop_imm(&src, x0, y0, cw, ch).to_image();
    image::imageops::resize(
        &crop,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            ContentKind::parse("blur").unwrap(),
            ContentKind::Blur {
                radius: DEFAULT_BLUR_RADIUS
            }
        );
        assert_eq!(
            ContentKind::parse("blur:12").unwrap(),
            ContentKind::Blur { radius: 12 }
        );
        assert_eq!(
            ContentKind::parse("color:#00b140").unwrap(),
            ContentKind::Color {
                rgb: [0, 0xb1, 0x40]
            }
        );
        assert_eq!(ContentKind::parse("mask").unwrap(), ContentKind::Mask);
        assert_eq!(
            ContentKind::parse("gan:foliage").unwrap(),
            ContentKind::Gan {
                model: "foliage".into()
            }
        );
        assert!(matches!(
            ContentKind::parse("image:/x.png").unwrap(),
            ContentKind::Image { .. }
        ));
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        for bad in [
            "color:#12345",
            "color:#zzzzzz",
            "blur:0",
            "sparkles",
            "image:",
            "gan:",
        ] {
            let e = ContentKind::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected one of"), "{bad}: {e}");
        }
    }

    #[test]
    fn specs_print_as_they_parse() {
        for text in [
            "blur",
            "blur:12",
            "color:#00b140",
            "person=mask",
            "background=gan:foliage",
            "image:/x.png",
        ] {
            let spec: ContentSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        let spec: ContentSpec = "sky = blur".parse().unwrap();
        assert_eq!(spec.class.as_deref(), Some("sky"));
        assert!("sky=sparkles".parse::<ContentSpec>().is_err());
    }

    #[test]
    fn unknown_class_lists_valid_ones() {
        let e = select(
            &Entry {
                classes: vec!["sky".into()],
                content: ContentKind::Mask,
            },
            "selfie",
            &["background".into(), "person".into()],
        );
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("\"sky\"") && msg.contains("background, person"),
            "{msg}"
        );
    }

    #[test]
    fn cover_of_a_thin_picture_stays_small() {
        // 1x10000 once asked for a 1280 x 12.8M intermediate (gigabytes).
        let img: Vec<u8> = (0..10000u32).flat_map(|i| [(i % 256) as u8; 3]).collect();
        let out = cover(&img, 1, 10000, 1280, 720);
        assert_eq!(out.len(), 1280 * 720 * 3);
    }

    #[test]
    fn cover_fills_exactly() {
        let img = vec![200u8; 10 * 4 * 3];
        let out = cover(&img, 10, 4, 7, 7);
        assert_eq!(out.len(), 7 * 7 * 3);
        assert!(out.iter().all(|&v| v == 200));
    }
}
