//! The HTTP side of `segsynth web`: routing, the bearer token, the session limit and the
//! server's own metrics. Each request is answered on its own short thread (an offer
//! waits for ICE gathering), at most `MAX_HANDLERS` at once.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Request, Response};


use super::Settings;
use super::session::{self, Session};

const PAGE: &str = include_str!("page.html");
/// An SDP offer is a few kilobytes; anything past this is refused (413).
const MAX_BODY: u64 = 64 * 1024;
const MAX_HANDLERS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    reason: &'static str,
}

/// `segsynth_web_*`: sessions open now, started, ended, and requests refused by reason.
pub struct WebMetrics {
    registry: Registry,
    pub open: Gauge,
    pub started: Counter,
    pub ended: Counter,
    refused: Family<Refusal, Counter>,
}

impl Default for WebMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("segsynth_web");
        let open = Gauge::default();
        registry.register("sessions", "Browser/WebRTC sessions running", open.clone());
        let started = Counter::default();
        registry.register("sessions_started", "Sessions started", started.clone());
        let ended = Counter::default();
        registry.register("sessions_ended", "Sessions ended (closed tab, DELETE, failure)", ended.clone());
        let refused = Family::<Refusal, Counter>::default();
        registry.register(
            "refused_requests",
            "Requests refused: auth (401), limit (503), offer (400)",
            refused.clone(),
        );
        for reason in ["auth", "limit", "offer"] {
            let _ = refused.get_or_create(&Refusal { reason });
        }
        WebMetrics {
            registry,
            open,
            started,
            ended,
            refused,
        }
    }
}

impl WebMetrics {
    fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Refusal { reason }).inc();
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub struct State {
    pub settings: Settings,
    pub sessions: Mutex<HashMap<String, Arc<Session>>>,
    pub metrics: WebMetrics,
    /// Held while a session starts (the limit is checked and the slot taken under it).
    pub starting: Mutex<()>,
    handlers: AtomicUsize,
    stopping: AtomicBool,
}

pub struct Server {
    state: Arc<State>,
    address: String,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(settings: Settings) -> anyhow::Result<Server> {
        let listen = settings.listen.clone();
        let http = match &settings.tls {
            Some((certificate, private_key)) => tiny_http::Server::https(
                listen.as_str(),
                tiny_http::SslConfig {
                    certificate: certificate.clone(),
                    private_key: private_key.clone(),
                },
            ),
            None => tiny_http::Server::http(listen.as_str()),
        }
        .map_err(|e| anyhow::anyhow!("cannot serve on {listen}: {e}"))?;
        let address = http
            .server_addr()
            .to_ip()
            .map_or(listen.clone(), |a| a.to_string());
        let state = Arc::new(State {
            settings,
            sessions: Mutex::default(),
            metrics: WebMetrics::default(),
            starting: Mutex::default(),
            handlers: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let serving = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("web".into())
            .spawn(move || accept(http, serving))?;
        Ok(Server {
            state,
            address,
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops accepting, ends every session and waits for them; returns how many ended.
    pub fn shutdown(mut self) -> usize {
        self.state.stopping.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let sessions: Vec<Arc<Session>> = match self.state.sessions.lock() {
            Ok(mut s) => s.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for s in &sessions {
            s.end();
        }
        for s in &sessions {
            s.join();
        }
        sessions.len()
    }
}

fn accept(http: tiny_http::Server, state: Arc<State>) {
    while !state.stopping.load(Ordering::Relaxed) {
        let Ok(Some(request)) = http.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if state.handlers.fetch_add(1, Ordering::SeqCst) >= MAX_HANDLERS {
            state.handlers.fetch_sub(1, Ordering::SeqCst);
            respond(request, text(503, "the server is busy; try again"));
            continue;
        }
        let state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("web-request".into())
            .spawn(move || {
                route(&state, request);
                state.handlers.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot answer a request: {e}");
        }
    }
}

/// Answers one request.
fn route(state: &Arc<State>, mut request: Request) {
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    let response = match (&method, parts.as_slice()) {
        (Method::Get, [""]) => html(PAGE),
        (Method::Get, ["api", "config"]) => config(state),
        (Method::Get, ["metrics"]) => metrics(state),
        (_, ["api", "session", ..]) if !authorised(state, &request) => {
            state.metrics.refuse("auth");
            text(401, "a valid bearer token is needed (Authorization: Bearer ...)")
                .with("WWW-Authenticate", "Bearer")
        }
        (Method::Post, ["api", "session"]) => match body(&mut request) {
            Ok(offer) => start_session(state, &offer),
            Err(r) => r,
        },
        (Method::Delete, ["api", "session", id]) => end_session(state, id),
        (Method::Post, ["api", "session", id, "content"]) => match body(&mut request) {
            Ok(spec) => edit(state, id, spec.trim()),
            Err(r) => r,
        },
        (Method::Get, ["api", "session", id, "stats"]) => match session(state, id) {
            Some(s) => json(&s.stats_json()),
            None => no_session(id),
        },
        (Method::Options, _) => text(204, "").with("Allow", "GET, POST, DELETE"),
        _ => text(404, "no such route; open / for the page"),
    };
    respond(request, response);
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn respond(request: Request, response: Reply) {
    if let Err(e) = request.respond(response) {
        tracing::debug!("web client went away: {e}");
    }
}

/// Adds a header (every name and value here is ASCII; one that is not is left out).
trait With {
    fn with(self, name: &str, value: &str) -> Self;
}

impl With for Reply {
    fn with(self, name: &str, value: &str) -> Reply {
        match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(h) => self.with_header(h),
            Err(()) => self,
        }
    }
}

fn text(status: u16, body: &str) -> Reply {
    let body = if body.is_empty() { String::new() } else { format!("{body}\n") };
    Response::from_string(body)
        .with_status_code(status)
        .with("Content-Type", "text/plain; charset=utf-8")
}

fn html(page: &str) -> Reply {
    Response::from_string(page).with("Content-Type", "text/html; charset=utf-8")
}

fn json(value: &str) -> Reply {
    Response::from_string(value)
        .with("Content-Type", "application/json")
        .with("Cache-Control", "no-store")
}

fn metrics(state: &State) -> Reply {
    Response::from_string(state.metrics.encode()).with(
        "Content-Type",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}

/// The request body as text, at most `MAX_BODY` bytes.
fn body(request: &mut Request) -> Result<String, Reply> {
    let mut text_body = String::new();
    let read = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_string(&mut text_body);
    match read {
        Ok(n) if n as u64 > MAX_BODY => Err(text(413, "the body is over 64 KiB")),
        Ok(_) => Ok(text_body),
        Err(e) => Err(text(400, &format!("cannot read the body as UTF-8 text: {e}"))),
    }
}

/// The bearer token, compared in constant time; every request passes without one set.
fn authorised(state: &State, request: &Request) -> bool {
    let Some(token) = &state.settings.token else {
        return true;
    };
    let given = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer ").map(str::to_string))
        .unwrap_or_default();
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn config(state: &State) -> Reply {
    let start = super::start_content(&state.settings.processing);
    let choices: Vec<String> = super::choices(&start)
        .iter()
        .map(|(label, spec)| format!("{{\"label\":{},\"spec\":{}}}", quote(label), quote(spec)))
        .collect();
    json(&format!(
        "{{\"content\":{},\"choices\":[{}],\"auth\":{}}}",
        quote(&start),
        choices.join(","),
        state.settings.token.is_some()
    ))
}

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn session(state: &State, id: &str) -> Option<Arc<Session>> {
    state.sessions.lock().ok()?.get(id).cloned()
}

fn no_session(id: &str) -> Reply {
    text(404, &format!("no session {}", id.chars().take(40).collect::<String>()))
}

fn start_session(state: &Arc<State>, offer: &str) -> Reply {
    match Session::start(state, offer) {
        Ok((id, answer)) => Response::from_string(answer)
            .with_status_code(201)
            .with("Content-Type", "application/sdp")
            .with("Location", &format!("/api/session/{id}")),
        Err(session::StartError::Offer(e)) => {
            state.metrics.refuse("offer");
            text(400, &e.to_string())
        }
        Err(session::StartError::Limit(open)) => {
            state.metrics.refuse("limit");
            text(
                503,
                &format!(
                    "{open} sessions are running, the most this server takes (--max-sessions); try again later"
                ),
            )
            .with("Retry-After", "5")
        }
        Err(session::StartError::Server(e)) => {
            tracing::warn!("session failed to start: {e:#}");
            text(500, &format!("the session could not start: {e:#}"))
        }
    }
}

fn end_session(state: &State, id: &str) -> Reply {
    match session(state, id) {
        Some(s) => {
            s.end();
            text(200, "session ended")
        }
        None => no_session(id),
    }
}

fn edit(state: &State, id: &str, spec: &str) -> Reply {
    let Some(s) = session(state, id) else {
        return no_session(id);
    };
    match s.edit(&state.settings.processing, spec) {
        Ok(()) => text(204, ""),
        Err(e) => text(400, &format!("{e:#}")),
    }
}
