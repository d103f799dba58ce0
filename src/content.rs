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

/// Builds the map from `--classes` and the `--content` values.
///
/// `--content <kind>` applies to every class in `--classes` (default `background`);
/// `--content <class>=<kind>` adds an entry for one class. Both may be mixed.
pub fn build_map(classes: &[String], contents: &[String]) -> Result<Vec<Entry>, ContentError> {
    let mut plain = Vec::new();
    let mut entries = Vec::new();
    for c in contents {
        match c.split_once('=') {
            Some((class, kind)) if !class.contains(':') => entries.push(Entry {
                classes: vec![class.trim().to_string()],
                content: ContentKind::parse(kind.trim())?,
            }),
            _ => plain.push(ContentKind::parse(c.trim())?),
        }
    }
    if plain.len() > 1 {
        return Err(ContentError::Syntax {
            given: contents.join(" "),
            why: "more than one plain --content; use <class>=<kind> to give classes different content".into(),
        });
    }
    if let Some(kind) = plain.pop() {
        let classes = if classes.is_empty() {
            vec!["background".to_string()]
        } else {
            classes.to_vec()
        };
        entries.insert(
            0,
            Entry {
                classes,
                content: kind,
            },
        );
    } else if entries.is_empty() {
        let classes = if classes.is_empty() {
            vec!["background".to_string()]
        } else {
            classes.to_vec()
        };
        entries.push(Entry {
            classes,
            content: ContentKind::Blur {
                radius: DEFAULT_BLUR_RADIUS,
            },
        });
    }
    Ok(entries)
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
    fn map_from_classes_and_pairs() {
        let m = build_map(
            &["person".into()],
            &["gan:foliage".into(), "background=blur".into()],
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
        let d = build_map(&[], &[]).unwrap();
        assert_eq!(
            d,
            vec![Entry {
                classes: vec!["background".into()],
                content: ContentKind::Blur { radius: 32 }
            }]
        );
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
