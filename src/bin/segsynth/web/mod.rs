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

pub mod endpoints;
pub mod http;
mod page;
mod session;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use segsynth::endpoint::{Secret, is_loopback};

use crate::args::WebArgs;

use http::Server;

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
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let (listen, tls) = (settings.listen.clone(), settings.tls.clone());
    let page = page::Page::new(settings);
    let server = Server::start(&listen, tls.as_ref(), Arc::new(Arc::clone(&page)))?;
    eprintln!(
        "segsynth: open {scheme}://{}/ (Ctrl-C stops)",
        server.address()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let ended = page.end_sessions();
    eprintln!("segsynth: stopped; {ended} session(s) ended");
    Ok(ExitCode::SUCCESS)
}

fn settings(args: WebArgs) -> anyhow::Result<Settings> {
    use crate::options::{check_range, usage};
    if !args.listen.contains(':') {
        return Err(usage(format!(
            "--listen {}: expected HOST:PORT (e.g. 127.0.0.1:8080)",
            args.listen
        )));
    }
    let token = token(
        args.served.token.as_deref(),
        args.served.token_file.as_deref(),
        &[&args.listen],
        (args.allow_anonymous, ", or pass --allow-anonymous"),
    )?;
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
    let tls = match (&args.served.tls_cert, &args.served.tls_key) {
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
pub fn read_pem(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let read = |p: &std::path::Path, what: &str| -> anyhow::Result<Vec<u8>> {
        std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("cannot read the TLS {what} {}: {e}", p.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "certificate")?, read(key, "key")?);
    // What tiny_http's rustls will read: certificates, then a PKCS#8 or an RSA key.
    if rustls_pemfile::certs(&mut cert_pem.as_slice()).map_or(true, |c| c.is_empty()) {
        return Err(crate::options::usage(format!(
            "--tls-cert {}: no PEM certificate in it; expected a PEM file with BEGIN CERTIFICATE",
            cert.display()
        )));
    }
    let pkcs8 = rustls_pemfile::pkcs8_private_keys(&mut key_pem.as_slice());
    let rsa = rustls_pemfile::rsa_private_keys(&mut key_pem.as_slice());
    if pkcs8.map_or(true, |k| k.is_empty()) && rsa.map_or(true, |k| k.is_empty()) {
        return Err(crate::options::usage(format!(
            "--tls-key {}: no unencrypted PKCS#8 or RSA private key in it; expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY (convert others with `openssl pkcs8 -topk8 -nocrypt`)",
            key.display()
        )));
    }
    Ok((cert_pem, key_pem))
}

/// The WHIP/WHEP side of `segsynth run`: one HTTP(S) server per address, serving the
/// input's WHIP path and the outputs' WHEP paths, and the thread that reaps ended peers.
pub struct RunEndpoints {
    _servers: Vec<Server>,
    reaper: Option<std::thread::JoinHandle<()>>,
    /// Ends the reaper (also on the run's error paths, where the job's stop is not set).
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for RunEndpoints {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(r) = self.reaper.take() {
            let _ = r.join();
        }
    }
}

/// What the run's WHIP/WHEP endpoints share: token, TLS, limits, size.
pub struct RunServe {
    pub token: Option<Secret>,
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub max_players: usize,
    pub size: segsynth::io::webrtc::VideoSize,
}

/// Serves the run's whip:// input and whep:// outputs; None when it has neither.
pub fn serve_run(
    whip: Option<(
        segsynth::endpoint::HttpEndpoint,
        segsynth::io::webrtc::Publishing,
    )>,
    players: &[(segsynth::endpoint::HttpEndpoint, String)],
    serve: RunServe,
    progress: &Arc<segsynth::pipeline::Progress>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Option<RunEndpoints>> {
    let by_address = tables(whip, players, &serve, progress);
    if by_address.is_empty() {
        return Ok(None);
    }
    let scheme = if serve.tls.is_some() { "https" } else { "http" };
    let mut servers = Vec::new();
    let mut reapers = Vec::new();
    for (listen, endpoints) in by_address {
        let paths: Vec<String> = endpoints
            .publishers
            .keys()
            .map(|p| format!("WHIP {p}"))
            .chain(endpoints.players.keys().map(|p| format!("WHEP {p}")))
            .collect();
        let endpoints = Arc::new(endpoints);
        let routes = Arc::new(Arc::clone(&endpoints));
        let server = Server::start(&listen, serve.tls.as_ref(), routes)?;
        let address = server.address();
        eprintln!("segsynth: {} at {scheme}://{address}", paths.join(", "));
        reapers.push(endpoints);
        servers.push(server);
    }
    let stop = Arc::clone(stop);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ended = Arc::clone(&done);
    let reaper = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) && !ended.load(Ordering::Relaxed) {
            for e in &reapers {
                e.reap();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    Ok(Some(RunEndpoints {
        _servers: servers,
        reaper: Some(reaper),
        done,
    }))
}

/// The endpoint tables, one per address: the WHIP path and the WHEP paths served there.
fn tables(
    whip: Option<(
        segsynth::endpoint::HttpEndpoint,
        segsynth::io::webrtc::Publishing,
    )>,
    players: &[(segsynth::endpoint::HttpEndpoint, String)],
    serve: &RunServe,
    progress: &Arc<segsynth::pipeline::Progress>,
) -> Vec<(String, endpoints::Endpoints)> {
    let mut by_address: Vec<(String, endpoints::Endpoints)> = Vec::new();
    let mut table = |listen: &str| -> usize {
        if let Some(i) = by_address.iter().position(|(l, _)| l == listen) {
            return i;
        }
        let fresh = endpoints::Endpoints::new(
            serve.token.clone(),
            serve.size,
            serve.max_players,
            Arc::clone(progress),
        );
        by_address.push((listen.to_string(), fresh));
        by_address.len() - 1
    };
    let whip_at = whip.map(|(e, p)| (table(&e.listen), e.path, p));
    let player_at: Vec<_> = players
        .iter()
        .map(|(e, channel)| (table(&e.listen), e.path.clone(), channel.clone()))
        .collect();
    if let Some((i, path, publishing)) = whip_at {
        by_address[i].1.publishers.insert(path, publishing);
    }
    for (i, path, channel) in player_at {
        by_address[i].1.players.insert(path, channel);
    }
    by_address
}

/// The token for WHIP/WHEP endpoints and the page, from the flag, its file or
/// SEGSYNTH_WEB_TOKEN; served beyond loopback only with one (or an explicit opt-in).
pub fn token(
    flag: Option<&str>,
    file: Option<&std::path::Path>,
    listens: &[&str],
    (allow_anonymous, hint): (bool, &str),
) -> anyhow::Result<Option<Secret>> {
    let token = crate::options::password(flag, file, "SEGSYNTH_WEB_TOKEN")?;
    if token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
        return Err(crate::options::usage(
            "the token (--token, --token-file or SEGSYNTH_WEB_TOKEN) is empty; expected a secret of at least one character".into(),
        ));
    }
    for listen in listens {
        let host = listen.rsplit_once(':').map_or(*listen, |(h, _)| h);
        if !is_loopback(host) && token.is_none() && !allow_anonymous {
            return Err(crate::options::usage(format!(
                "{listen} would take video from and give it to anyone on the network; give --token (or --token-file, SEGSYNTH_WEB_TOKEN), or serve on a loopback address{hint}"
            )));
        }
    }
    Ok(token)
}

/// The content choices the page offers: blur, a green screen, each shipped generator,
/// and the mask view; the command line's content first.
pub fn choices(start: &str) -> Vec<(String, String)> {
    let mut all = vec![
        ("Blur".to_string(), "background=blur".to_string()),
        (
            "Green screen".to_string(),
            "background=color:#00b140".to_string(),
        ),
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
        segsynth::content::specs_text(&p.content)
    }
}
