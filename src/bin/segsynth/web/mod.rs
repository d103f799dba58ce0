//! `segsynth web`: the live webcam overlay in a browser. An HTTP(S) server (tiny_http)
//! serves the page and its API; each page session is one WebRTC connection
//! (`segsynth::io::webrtc`, webrtcbin) whose camera video runs through its own stages
//! and comes back on the same connection.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`?autostart` starts the camera on load) |
//! | `GET /api/config` | the starting content, the picker's choices, whether a token is needed |
//! | `POST /api/session` | SDP offer in, `201` SDP answer out, `Location: /api/session/ID` (WHIP's exchange) |
//! | `DELETE /api/session/ID` | ends the session |
//! | `POST /api/session/ID/content` | a content spec (as `--content`): a live edit |
//! | `GET /api/session/ID/stats` | frames, fps, added latency p50/p99, drops (JSON) |
//! | `GET /metrics` | Prometheus: sessions open, started, refused |
//!
//! Loopback unless a token is set or `--allow-anonymous` says so; a bearer token (WHIP's
//! auth) guards every session route and is never printed; at most `--max-sessions`.

mod server;
mod session;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use segsynth::endpoint::{Secret, is_loopback};

use crate::args::WebArgs;

pub use server::Server;

/// The server's settings, checked.
pub struct Settings {
    pub listen: String,
    pub token: Option<Secret>,
    pub max_sessions: usize,
    pub size: segsynth::io::webrtc::VideoSize,
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub processing: crate::args::Processing,
}

pub fn run(args: WebArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(args)?;
    // The page's starting choice is checked like the command line, before serving.
    let options = crate::options::job_options(&settings.processing, true)?;
    segsynth::job::Stages::prepare(options)?;
    segsynth::io::init()?;
    let stop = crate::signals::interrupt_flag()?;
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    let server = Server::start(settings)?;
    eprintln!("segsynth: open {scheme}://{}/ (Ctrl-C stops)", server.address());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = server.shutdown();
    eprintln!("segsynth: stopped; {ended} session(s) ended");
    Ok(ExitCode::SUCCESS)
}

fn settings(args: WebArgs) -> anyhow::Result<Settings> {
    use crate::options::{check_range, password, usage};
    let token = password(
        args.token.as_deref(),
        args.token_file.as_deref(),
        "SEGSYNTH_WEB_TOKEN",
    )?;
    let host = args
        .listen
        .rsplit_once(':')
        .map(|(h, _)| h)
        .ok_or_else(|| {
            usage(format!(
                "--listen {}: expected HOST:PORT (e.g. 127.0.0.1:8080)",
                args.listen
            ))
        })?;
    if !is_loopback(host) && token.is_none() && !args.allow_anonymous {
        return Err(usage(format!(
            "--listen {} would let anyone on the network use the camera server; give --token (or --token-file, SEGSYNTH_WEB_TOKEN), or pass --allow-anonymous",
            args.listen
        )));
    }
    check_range("--max-sessions", args.max_sessions as f64, 1.0, 64.0, "")?;
    let side = segsynth::pipeline::MAX_FRAME_SIDE as f64;
    check_range("--width", args.width as f64, 16.0, side, " pixels")?;
    check_range("--height", args.height as f64, 16.0, side, " pixels")?;
    check_range("--fps", args.fps as f64, 1.0, 120.0, "")?;
    if args.width % 2 == 1 || args.height % 2 == 1 {
        return Err(usage(format!(
            "--width {} --height {}: expected even numbers",
            args.width, args.height
        )));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(read_pem(c, k)?),
        (None, None) => None,
        _ => {
            return Err(usage(
                "--tls-cert and --tls-key go together; give both or neither".into(),
            ));
        }
    };
    Ok(Settings {
        listen: args.listen,
        token,
        max_sessions: args.max_sessions as usize,
        size: segsynth::io::webrtc::VideoSize {
            width: args.width,
            height: args.height,
            fps: args.fps,
        },
        tls,
        processing: args.processing,
    })
}

/// The certificate and key, read and checked for a PEM block each.
fn read_pem(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let read = |p: &std::path::Path, what: &str, marker: &str| -> anyhow::Result<Vec<u8>> {
        let bytes = std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("cannot read the TLS {what} {}: {e}", p.display()))?;
        if !String::from_utf8_lossy(&bytes).contains(marker) {
            anyhow::bail!(
                "the TLS {what} {} holds no PEM {marker} block; expected a PEM file",
                p.display()
            );
        }
        Ok(bytes)
    };
    Ok((
        read(cert, "certificate", "CERTIFICATE-----")?,
        read(key, "key", "PRIVATE KEY-----")?,
    ))
}

/// The content choices the page offers: blur, a green screen, each shipped generator,
/// and the mask view; the command line's content first.
pub fn choices(start: &str) -> Vec<(String, String)> {
    let mut all = vec![
        ("Blur".to_string(), "background=blur".to_string()),
        ("Green screen".to_string(), "background=color:#00b140".to_string()),
    ];
    let dir = segsynth::job::models_dir();
    for name in segsynth::model::list(&dir) {
        if let Some(g) = name.strip_prefix("gan/") {
            all.push((format!("Generated: {g}"), format!("background=gan:{g}")));
        }
    }
    all.push(("Mask view".to_string(), "mask".to_string()));
    if !all.iter().any(|(_, s)| s == start) {
        all.insert(0, (start.to_string(), start.to_string()));
    }
    all
}

/// The page's starting content: the command line's `--content` (several join with spaces,
/// as the edit route takes them), else the default.
pub fn start_content(p: &crate::args::Processing) -> String {
    if p.content.is_empty() {
        "background=blur".to_string()
    } else {
        p.content.join(" ")
    }
}
