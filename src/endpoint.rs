//! Where frames come from and go, described without I/O: input and output URIs,
//! credentials (kept out of every message), and presets (`pipelines/*.toml`). The
//! GStreamer side is `io::source::live` and `io::sink::live`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A password: kept in the process, never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The password itself, for the one call that hands it to GStreamer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A user name and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// An `rtsp://` or `rtsps://` URL with its credentials taken out of it: `url` never
/// holds a password, so it can be logged; `Display` shows `rtsp://alice:***@host/...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspUrl {
    pub url: String,
    pub credentials: Option<Credentials>,
}

impl RtspUrl {
    /// Splits `user:password@` off the authority (percent-decoding both).
    pub fn parse(s: &str) -> RtspUrl {
        let Some(scheme_end) = s.find("://") else {
            return RtspUrl {
                url: s.to_string(),
                credentials: None,
            };
        };
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let (user, password) = authority[..at]
                    .split_once(':')
                    .unwrap_or((&authority[..at], ""));
                RtspUrl {
                    url: format!("{}{}", &s[..scheme_end + 3], &rest[at + 1..]),
                    credentials: Some(Credentials {
                        user: percent_decode(user),
                        password: Secret::new(percent_decode(password)),
                    }),
                }
            }
            None => RtspUrl {
                url: s.to_string(),
                credentials: None,
            },
        }
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.credentials, self.url.split_once("://")) {
            (Some(c), Some((scheme, rest))) => write!(f, "{scheme}://{}:***@{rest}", c.user),
            _ => f.write_str(&self.url),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// Live `videotestsrc`.
    Test,
    V4l2(PathBuf),
    /// `rtsp://` or `rtsps://`; credentials from the URL (the command line may add them).
    Rtsp(RtspUrl),
    File {
        path: PathBuf,
    },
    /// `whip://HOST:PORT/PATH`: segsynth serves a WHIP endpoint and processes what a
    /// publisher (OBS, a browser, GStreamer's webrtcbin) sends to it.
    Whip(HttpEndpoint),
}

/// An HTTP endpoint segsynth serves: `HOST:PORT` to bind and the resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub listen: String,
    pub path: String,
}

impl HttpEndpoint {
    /// `HOST:PORT/PATH` (after the scheme) with a non-empty host, port and path.
    fn parse(rest: &str) -> Option<HttpEndpoint> {
        let (hostport, path) = rest.split_once('/')?;
        let (host, port) = hostport.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let clean = !path.is_empty() && path.split('/').all(|p| !p.is_empty() && p != "..");
        (!host.is_empty() && port > 0 && clean && !hostport.contains('@')).then(|| HttpEndpoint {
            listen: hostport.to_string(),
            path: format!("/{path}"),
        })
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSpec::Test => f.write_str("test:"),
            InputSpec::V4l2(d) => write!(f, "v4l2:{}", d.display()),
            InputSpec::Rtsp(u) => write!(f, "{u}"),
            InputSpec::File { path } => write!(f, "{}", path.display()),
            InputSpec::Whip(e) => write!(f, "whip://{}{}", e.listen, e.path),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutputSpec {
    File(PathBuf),
    Display,
    V4l2(PathBuf),
    /// Served by segsynth's own RTSP server (`rtsps://` with `tls`).
    RtspServe {
        address: String,
        port: u16,
        path: String,
        tls: bool,
    },
    /// Pushed to an existing RTSP server (`rtsp-publish://[USER:PASS@]HOST:PORT/PATH`).
    RtspPublish(RtspUrl),
    /// `whep://HOST:PORT/PATH`: segsynth serves a WHEP endpoint that WebRTC players
    /// (browsers, GStreamer's webrtcbin) play the processed stream from.
    Whep(HttpEndpoint),
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSpec::File(p) => write!(f, "{}", p.display()),
            OutputSpec::Display => f.write_str("display:"),
            OutputSpec::V4l2(d) => write!(f, "v4l2:{}", d.display()),
            OutputSpec::RtspServe {
                address,
                port,
                path,
                tls,
            } => {
                let scheme = if *tls { "rtsps" } else { "rtsp" };
                write!(f, "{scheme}://{address}:{port}{path}")
            }
            OutputSpec::RtspPublish(u) => write!(f, "rtsp-publish {u}"),
            OutputSpec::Whep(e) => write!(f, "whep://{}{}", e.listen, e.path),
        }
    }
}

/// Whether a served address only accepts connections from this machine.
pub fn is_loopback(address: &str) -> bool {
    let a = address.trim_start_matches('[').trim_end_matches(']');
    a == "localhost"
        || a.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL with any password replaced by `***` (`rtsp://alice:***@host/...`), for messages.
/// Where a password may hold an unencoded `/` (`user:pa/ss@host`), everything up to the
/// last `@` is hidden: a message may say less, never the password.
pub fn redact_url(url: &str) -> String {
    if ambiguous_userinfo(url) {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let after = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        return format!("{scheme}://***@{after}");
    }
    RtspUrl::parse(url).to_string()
}

/// `scheme://user:pa/ss@host/...`: an `@` after a `/`, with a `:` before that `/`, may
/// be a password holding an unencoded `/`. Such URLs are refused (and fully redacted).
pub fn ambiguous_userinfo(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    match rest.find('/') {
        Some(slash) => {
            rest[..slash].contains(':')
                && !rest[..slash].contains('@')
                && rest[slash..].contains('@')
        }
        None => false,
    }
}

fn slash_in_password(s: &str) -> String {
    format!(
        "{:?}: the part before the last @ looks like user:password with a `/` in it; write the `/` as %2F, or give the password with --input-password-file / SEGSYNTH_INPUT_PASSWORD",
        redact_url(s)
    )
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
        if ambiguous_userinfo(s) {
            return Err(slash_in_password(s));
        }
        Ok(InputSpec::Rtsp(RtspUrl::parse(s)))
    } else if let Some(rest) = s.strip_prefix("whip://") {
        HttpEndpoint::parse(rest).map(InputSpec::Whip).ok_or_else(|| {
            format!("input {:?}: expected whip://HOST:PORT/PATH (e.g. whip://127.0.0.1:8080/whip); the token comes from --token, not the URL", redact_url(s))
        })
    } else if s.contains("://") || s.ends_with(':') {
        Err(format!(
            "input {:?}: unknown scheme; expected test:, v4l2:/dev/videoN, rtsp://HOST[:PORT]/PATH, rtsps://..., whip://HOST:PORT/PATH or a file path",
            redact_url(s)
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
    let shown = redact_url(s);
    if ambiguous_userinfo(s) {
        return Err(slash_in_password(s));
    }
    if let Some(rest) = s.strip_prefix("rtsp-publish://") {
        if rest.is_empty() || !rest.contains('/') {
            return Err(format!(
                "output {shown:?}: expected rtsp-publish://[USER:PASSWORD@]HOST:PORT/PATH"
            ));
        }
        return Ok(OutputSpec::RtspPublish(RtspUrl::parse(&format!(
            "rtsp://{rest}"
        ))));
    }
    if let Some(rest) = s.strip_prefix("whep://") {
        return HttpEndpoint::parse(rest).map(OutputSpec::Whep).ok_or_else(|| {
            format!("output {shown:?}: expected whep://HOST:PORT/PATH (e.g. whep://127.0.0.1:8080/whep); the token comes from --token, not the URL")
        });
    }
    let served = s
        .strip_prefix("rtsp://")
        .map(|r| (r, false))
        .or_else(|| s.strip_prefix("rtsps://").map(|r| (r, true)));
    if let Some((rest, tls)) = served {
        let bad = || {
            format!(
                "output {shown:?}: expected rtsp://ADDR:PORT/PATH or rtsps://ADDR:PORT/PATH (e.g. rtsp://127.0.0.1:8554/live); served-stream credentials come from --rtsp-user/--rtsp-password, not the URL"
            )
        };
        if rest.split('/').next().is_some_and(|a| a.contains('@')) {
            return Err(bad());
        }
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
            tls,
        });
    }
    if s.contains("://") || s.ends_with(':') {
        return Err(format!(
            "output {shown:?}: unknown scheme; expected a file path, display:, v4l2:/dev/videoN, rtsp://ADDR:PORT/PATH, rtsps://ADDR:PORT/PATH, rtsp-publish://HOST:PORT/PATH or whep://HOST:PORT/PATH"
        ));
    }
    Ok(OutputSpec::File(s.into()))
}

/// A preset file. Every key is optional; the command line overrides it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub input: Option<String>,
    pub outputs: Option<Vec<String>>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub realtime: Option<bool>,
    pub classes: Option<Vec<String>>,
    pub content: Option<Vec<crate::content::ContentSpec>>,
    pub model: Option<String>,
    pub device: Option<crate::infer::Device>,
    pub pixels: Option<crate::infer::Pixels>,
    pub threads: Option<usize>,
    /// `--batch`: streams' frames in one segmentation call.
    pub batch: Option<crate::options::Batch>,
    /// Prometheus metrics address (`--metrics`).
    pub metrics: Option<String>,
    /// Mask settings (`--feather`, `--temporal`, `--edge LO,HI`, `--refine guided|off`,
    /// `--model-every auto|N`).
    pub feather: Option<f32>,
    pub temporal: Option<f32>,
    pub edge: Option<crate::options::EdgeBand>,
    pub refine: Option<crate::options::Refine>,
    pub model_every: Option<crate::options::ModelEvery>,
    pub rtsp: Option<RtspSettings>,
    /// Several streams in one process (`[[streams]]`), instead of `input` and `outputs`.
    pub streams: Option<Vec<StreamPreset>>,
}

/// One stream of a preset with several: its name (the metrics' `stream` label), its input
/// and its outputs. The processing keys of the preset apply to every stream.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamPreset {
    pub name: String,
    pub input: String,
    pub outputs: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtspSettings {
    /// The served stream's user and password (viewers must give them).
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub allow_anonymous: Option<bool>,
    pub max_clients: Option<u32>,
    pub session_timeout: Option<u32>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
        if let Some(streams) = &preset.streams {
            check_streams(&preset, streams).map_err(|message| PresetError {
                path: path.into(),
                message,
            })?;
        }
        Ok(preset)
    }
}

/// A preset's `[[streams]]`: at least one, instead of `input`/`outputs`, each named once
/// (letters, digits, `-`, `_`), with an input and at least one output that parse.
fn check_streams(preset: &Preset, streams: &[StreamPreset]) -> Result<(), String> {
    if preset.input.is_some() || preset.outputs.is_some() {
        return Err(
            "`input`/`outputs` and `[[streams]]` both given; expected one or the other".into(),
        );
    }
    if streams.is_empty() {
        return Err("`streams` is empty; expected at least one [[streams]] table".into());
    }
    let mut names = Vec::new();
    for s in streams {
        let what = format!("stream {:?}", s.name);
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if s.name.is_empty() || !s.name.chars().all(allowed) {
            return Err(format!(
                "{what}: expected a name of letters, digits, - and _"
            ));
        }
        if s.name == crate::pipeline::metrics::MAIN_STREAM {
            return Err(format!(
                "{what}: the name is reserved for a run of one stream; expected another"
            ));
        }
        if names.contains(&&s.name) {
            return Err(format!("{what} is named twice; expected each name once"));
        }
        names.push(&s.name);
        parse_input(&s.input).map_err(|m| format!("{what}, key `input`: {m}"))?;
        if s.outputs.is_empty() {
            return Err(format!("{what}: `outputs` is empty; expected at least one"));
        }
        for o in &s.outputs {
            parse_output(o).map_err(|m| format!("{what}, key `outputs`: {m}"))?;
        }
    }
    Ok(())
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
    fn a_slash_in_a_password_never_shows() {
        let url = "rtsp://alice:pa/ss@cam/x";
        assert!(ambiguous_userinfo(url));
        assert!(!redact_url(url).contains("pa/ss"), "{}", redact_url(url));
        assert!(parse_input(url).unwrap_err().contains("%2F"));
        assert!(!parse_input(url).unwrap_err().contains("pa/ss"));
        assert!(parse_output("rtsp-publish://u:p/q@h:8554/x").is_err());
        assert!(!ambiguous_userinfo("rtsp://cam:554/stream"));
        assert!(!ambiguous_userinfo("rtsp-publish://u:p@h/a@b"));
    }

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
    fn credentials_come_out_of_urls_and_never_show() {
        let u = RtspUrl::parse("rtsp://alice:S3cr%40t%22@cam:554/stream");
        assert_eq!(u.url, "rtsp://cam:554/stream");
        let c = u.credentials.clone().unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.expose()),
            ("alice", "S3cr@t\"")
        );
        assert_eq!(u.to_string(), "rtsp://alice:***@cam:554/stream");
        assert!(!format!("{u:?}").contains("S3cr"));
        let spec = parse_output("rtsp-publish://bob:hunter2@mtx:8554/cam").unwrap();
        assert!(!spec.to_string().contains("hunter2") && !format!("{spec:?}").contains("hunter2"));
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("192.168.1.2"));
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
                path: "/live".into(),
                tls: false,
            }
        );
        assert!(matches!(
            parse_output("rtsps://0.0.0.0:8322/live").unwrap(),
            OutputSpec::RtspServe { tls: true, .. }
        ));
        assert_eq!(
            parse_output("rtsp-publish://mtx:8554/cam").unwrap(),
            OutputSpec::RtspPublish(RtspUrl::parse("rtsp://mtx:8554/cam"))
        );
        // Served streams take credentials from flags, never from the URL.
        assert!(parse_output("rtsp://u:p@127.0.0.1:8554/live").is_err());
        assert_eq!(parse_output("display:").unwrap(), OutputSpec::Display);
        assert!(parse_output("rtsp://127.0.0.1:99999/live").is_err());
        assert!(parse_output("ftp://x/y").is_err());
    }

    #[test]
    fn webrtc_endpoints_parse() {
        let e = |listen: &str, path: &str| HttpEndpoint {
            listen: listen.into(),
            path: path.into(),
        };
        assert_eq!(
            parse_input("whip://127.0.0.1:8080/cam").unwrap(),
            InputSpec::Whip(e("127.0.0.1:8080", "/cam"))
        );
        assert_eq!(
            parse_output("whep://[::1]:9/a/b").unwrap(),
            OutputSpec::Whep(e("[::1]:9", "/a/b"))
        );
        assert_eq!(
            parse_input("whip://h:1/x").unwrap().to_string(),
            "whip://h:1/x"
        );
        for bad in [
            "whip://h/x",
            "whip://h:0/x",
            "whip://h:1/",
            "whip://u:p@h:1/x",
            "whip://h:1/a/../b",
        ] {
            let err = parse_input(bad).unwrap_err();
            assert!(
                err.contains("expected whip://HOST:PORT/PATH"),
                "{bad}: {err}"
            );
            assert!(!err.contains(":p@"), "{err}");
        }
        assert!(
            parse_output("whep://h:1")
                .unwrap_err()
                .contains("expected whep://")
        );
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
