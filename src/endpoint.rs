//! Live job description: inputs, outputs and presets (`pipelines/*.toml`). Pure
//! parsing and validation; the GStreamer side is `io::live`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// Live `videotestsrc`.
    Test,
    V4l2(PathBuf),
    Rtsp(String),
    File {
        path: PathBuf,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutputSpec {
    File(PathBuf),
    Display,
    V4l2(PathBuf),
    /// Served by segsynth's own RTSP server.
    RtspServe {
        address: String,
        port: u16,
        path: String,
    },
    /// Pushed to an existing RTSP server (`rtsp-publish://HOST:PORT/PATH`).
    RtspPublish(String),
}

/// A URL with any password replaced by `***` (`rtsp://alice:***@host/...`), for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{}{user}:***@{}", &url[..scheme_end + 3], &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

pub fn parse_input(s: &str) -> Result<InputSpec, String> {
    if s == "test:" || s == "test" {
        Ok(InputSpec::Test)
    } else if let Some(dev) = s.strip_prefix("v4l2:") {
        if !dev.starts_with("/dev/video") {
            return Err(format!("input {s:?}: expected v4l2:/dev/videoN"));
        }
        Ok(InputSpec::V4l2(dev.into()))
    } else if s.starts_with("rtsp://") || s.starts_with("rtsps://") {
        Ok(InputSpec::Rtsp(s.into()))
    } else if s.contains("://") || s.ends_with(':') {
        Err(format!(
            "input {s:?}: unknown scheme; expected test:, v4l2:/dev/videoN, rtsp://HOST[:PORT]/PATH or a file path"
        ))
    } else {
        Ok(InputSpec::File { path: s.into() })
    }
}

pub fn parse_output(s: &str) -> Result<OutputSpec, String> {
    if s == "display:" || s == "display" {
        return Ok(OutputSpec::Display);
    }
    if let Some(dev) = s.strip_prefix("v4l2:") {
        if !dev.starts_with("/dev/video") {
            return Err(format!("output {s:?}: expected v4l2:/dev/videoN"));
        }
        return Ok(OutputSpec::V4l2(dev.into()));
    }
    if let Some(rest) = s.strip_prefix("rtsp-publish://") {
        if rest.is_empty() || !rest.contains('/') {
            return Err(format!(
                "output {s:?}: expected rtsp-publish://HOST:PORT/PATH"
            ));
        }
        return Ok(OutputSpec::RtspPublish(format!("rtsp://{rest}")));
    }
    if let Some(rest) = s.strip_prefix("rtsp://") {
        let bad = || {
            format!(
                "output {s:?}: expected rtsp://ADDR:PORT/PATH (e.g. rtsp://127.0.0.1:8554/live)"
            )
        };
        let (hostport, path) = rest.split_once('/').ok_or_else(bad)?;
        let (address, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad())?),
            None => (hostport.to_string(), 8554),
        };
        if address.is_empty() || path.is_empty() || port == 0 {
            return Err(bad());
        }
        return Ok(OutputSpec::RtspServe {
            address,
            port,
            path: format!("/{path}"),
        });
    }
    if s.contains("://") || s.ends_with(':') {
        return Err(format!(
            "output {s:?}: unknown scheme; expected a file path, display:, v4l2:/dev/videoN, rtsp://ADDR:PORT/PATH or rtsp-publish://HOST:PORT/PATH"
        ));
    }
    Ok(OutputSpec::File(s.into()))
}

/// A preset file. Every key is optional; the command line overrides it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub input: Option<String>,
    pub outputs: Option<Vec<String>>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub realtime: Option<bool>,
    pub classes: Option<Vec<String>>,
    pub content: Option<Vec<String>>,
    pub model: Option<String>,
    pub device: Option<crate::infer::Device>,
    pub pixels: Option<crate::infer::Pixels>,
    pub threads: Option<usize>,
    pub rtsp: Option<RtspSettings>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtspSettings {
    pub user: Option<String>,
    pub password: Option<String>,
    /// Input transport: tcp or udp.
    pub transport: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("pipeline config {path}: {message}")]
pub struct PresetError {
    pub path: PathBuf,
    pub message: String,
}

impl Preset {
    pub fn load(path: &Path) -> Result<Preset, PresetError> {
        let text = std::fs::read_to_string(path).map_err(|e| PresetError {
            path: path.into(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks preset text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Preset, PresetError> {
        let preset: Preset = toml::from_str(text).map_err(|e| PresetError {
            path: path.into(),
            message: describe(text, &e),
        })?;
        if let Some(i) = &preset.input {
            parse_input(i).map_err(|m| PresetError {
                path: path.into(),
                message: format!("key `input`: {m}"),
            })?;
        }
        for o in preset.outputs.iter().flatten() {
            parse_output(o).map_err(|m| PresetError {
                path: path.into(),
                message: format!("key `outputs`: {m}"),
            })?;
        }
        Ok(preset)
    }
}

/// "line N, key `K`: what was wrong" from a TOML error.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let start = e.span().map(|s| s.start.min(text.len()));
    let line = start.map(|s| text[..s].matches('\n').count() + 1);
    let key = start.and_then(|s| {
        let line_start = text[..s].rfind('\n').map_or(0, |i| i + 1);
        text[line_start..]
            .split('=')
            .next()
            .map(|k| k.trim().to_string())
    });
    let msg = e.message().trim().to_string();
    match (line, key) {
        (Some(l), Some(k)) if !k.is_empty() => format!("line {l}, key `{k}`: {msg}"),
        (Some(l), _) => format!("line {l}: {msg}"),
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_hide_the_password() {
        assert_eq!(
            redact_url("rtsp://alice:S3cr@t@cam:554/x"),
            "rtsp://alice:***@cam:554/x"
        );
        assert_eq!(redact_url("rtsp://cam:554/x"), "rtsp://cam:554/x");
        assert_eq!(
            redact_url("rtsp-publish://u:p@h/a@b"),
            "rtsp-publish://u:***@h/a@b"
        );
    }

    #[test]
    fn inputs_and_outputs_parse() {
        assert_eq!(parse_input("test:").unwrap(), InputSpec::Test);
        assert_eq!(
            parse_input("v4l2:/dev/video2").unwrap(),
            InputSpec::V4l2("/dev/video2".into())
        );
        assert!(matches!(
            parse_input("rtsp://cam.local:554/stream").unwrap(),
            InputSpec::Rtsp(_)
        ));
        assert!(matches!(
            parse_input("clip.mp4").unwrap(),
            InputSpec::File { .. }
        ));
        assert!(parse_input("http://x").is_err());
        assert_eq!(
            parse_output("rtsp://127.0.0.1:8554/live").unwrap(),
            OutputSpec::RtspServe {
                address: "127.0.0.1".into(),
                port: 8554,
                path: "/live".into()
            }
        );
        assert_eq!(
            parse_output("rtsp-publish://mtx:8554/cam").unwrap(),
            OutputSpec::RtspPublish("rtsp://mtx:8554/cam".into())
        );
        assert_eq!(parse_output("display:").unwrap(), OutputSpec::Display);
        assert!(parse_output("rtsp://127.0.0.1:99999/live").is_err());
        assert!(parse_output("ftp://x/y").is_err());
    }

    #[test]
    fn bad_preset_names_line_and_key() {
        let dir = std::env::temp_dir().join(format!("segsynth-preset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad-fps.toml");
        std::fs::write(&p, "input = \"test:\"\nfps = \"thirty\"\n").unwrap();
        let e = Preset::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`fps`"), "{e}");
        let p = dir.join("bad-key.toml");
        std::fs::write(&p, "input = \"test:\"\noutptus = [\"display:\"]\n").unwrap();
        let e = Preset::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("outptus") && e.contains("expected"),
            "{e}"
        );
        let p = dir.join("pixels.toml");
        std::fs::write(&p, "device = \"cuda\"\npixels = \"graph\"\n").unwrap();
        let ok = Preset::load(&p).unwrap();
        assert_eq!(ok.device, Some(crate::infer::Device::Cuda));
        assert_eq!(ok.pixels, Some(crate::infer::Pixels::Graph));
        std::fs::write(&p, "pixels = \"gpu\"\n").unwrap();
        let e = Preset::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("gpu"), "{e}");
    }
}
