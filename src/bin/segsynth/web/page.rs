//! The page of `segsynth web` and its API (routes in `web/mod.rs`'s table): page
//! sessions, their live edits and stats, and the server's own metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tiny_http::{Method, Request};

use super::Settings;
use super::http::{
    Reply, Routes, With, authorised, body, html, json, openmetrics, quote, sdp_offer, text,
    unauthorised,
};
use super::session::{Session, StartError};

const PAGE: &str = include_str!("page.html");

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
        registry.register("sessions", "Browser sessions running", open.clone());
        let started = Counter::default();
        registry.register("sessions_started", "Sessions started", started.clone());
        let ended = Counter::default();
        registry.register(
            "sessions_ended",
            "Sessions ended (closed tab, DELETE, failure)",
            ended.clone(),
        );
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
    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Refusal { reason }).inc();
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The page's server state: settings, running sessions, metrics.
pub struct Page {
    pub settings: Settings,
    pub sessions: Mutex<HashMap<String, Arc<Session>>>,
    pub metrics: WebMetrics,
    /// Sessions being started (answered, stages prepared): they count against the limit.
    pub starting: Mutex<usize>,
}

impl Page {
    pub fn new(settings: Settings) -> Arc<Page> {
        Arc::new(Page {
            settings,
            sessions: Mutex::default(),
            metrics: WebMetrics::default(),
            starting: Mutex::default(),
        })
    }

    /// Ends every session and waits for them; returns how many ended.
    pub fn end_sessions(&self) -> usize {
        let sessions: Vec<Arc<Session>> = match self.sessions.lock() {
            Ok(s) => s.values().cloned().collect(),
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

    fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().ok()?.get(id).cloned()
    }
}

impl Routes for Arc<Page> {
    fn route(&self, request: &mut Request) -> Reply {
        let path = request.url().split('?').next().unwrap_or("/").to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = request.method().clone();
        match (&method, parts.as_slice()) {
            (Method::Get, [""]) => html(PAGE)
                .with("Referrer-Policy", "no-referrer")
                .with("Cache-Control", "no-store"),
            (Method::Get, ["api", "config"]) => self.config(),
            // With a token set the metrics need it too (Prometheus: `authorization`).
            (Method::Get, ["metrics"]) if authorised(self.settings.token.as_ref(), request) => {
                openmetrics(self.metrics.encode())
            }
            (_, ["api", "session", ..] | ["metrics"])
                if !authorised(self.settings.token.as_ref(), request) =>
            {
                self.metrics.refuse("auth");
                unauthorised()
            }
            (Method::Post, ["api", "session"]) => match sdp_offer(request) {
                Ok(offer) => self.start_session(&offer),
                Err(r) => r,
            },
            (Method::Delete, ["api", "session", id]) => match self.session(id) {
                Some(s) => {
                    s.end();
                    text(200, "session ended")
                }
                None => no_session(id),
            },
            (Method::Post, ["api", "session", id, "content"]) => match body(request) {
                Ok(spec) => self.edit(id, spec.trim()),
                Err(r) => r,
            },
            (Method::Get, ["api", "session", id, "stats"]) => match self.session(id) {
                Some(s) => json(&s.stats_json()),
                None => no_session(id),
            },
            _ => text(404, "no such route; open / for the page"),
        }
    }
}

impl Page {
    fn config(&self) -> Reply {
        let start = super::start_content(&self.settings.processing);
        let choices: Vec<String> = super::choices(&start)
            .iter()
            .map(|(label, spec)| format!("{{\"label\":{},\"spec\":{}}}", quote(label), quote(spec)))
            .collect();
        json(&format!(
            "{{\"content\":{},\"choices\":[{}],\"auth\":{}}}",
            quote(&start),
            choices.join(","),
            self.settings.token.is_some()
        ))
    }

    /// Takes a place, answers and prepares the session, and starts its thread, which
    /// takes it out of the table when it ends. The session's id and the SDP answer.
    fn start(self: &Arc<Self>, offer: &str) -> Result<(String, String), StartError> {
        // A place is taken first, so concurrent offers cannot pass the limit together.
        let _place = Place::take(self)?;
        let opened = Session::open(&self.settings, offer)?;
        let id = super::session::new_id().map_err(StartError::Server)?;
        let session = Arc::clone(&opened.session);
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.clone(), Arc::clone(&session));
        }
        self.metrics.open.inc();
        self.metrics.started.inc();
        let (page, key) = (Arc::clone(self), id.clone());
        let thread = std::thread::Builder::new()
            .name("web-session".into())
            .spawn(move || {
                opened.session.serve(opened.stages, opened.peer);
                if let Ok(mut s) = page.sessions.lock() {
                    s.remove(&key);
                }
                page.metrics.open.dec();
                page.metrics.ended.inc();
            })
            .map_err(|e| StartError::Server(e.into()))?;
        session.attach(thread);
        tracing::info!("web session started");
        Ok((id, opened.answer))
    }

    fn start_session(self: &Arc<Self>, offer: &str) -> Reply {
        match self.start(offer) {
            Ok((id, answer)) => {
                super::http::sdp(answer).with("Location", &format!("/api/session/{id}"))
            }
            Err(StartError::Offer(e)) => {
                self.metrics.refuse("offer");
                text(400, &e.to_string())
            }
            Err(StartError::Limit(open)) => {
                self.metrics.refuse("limit");
                text(
                    503,
                    &format!(
                        "{open} sessions are running, the most this server takes (--max-sessions); try again later"
                    ),
                )
                .with("Retry-After", "5")
            }
            Err(StartError::Server(e)) => {
                tracing::warn!("session failed to start: {e:#}");
                text(500, &format!("the session could not start: {e:#}"))
            }
        }
    }

    fn edit(&self, id: &str, spec: &str) -> Reply {
        let Some(s) = self.session(id) else {
            return no_session(id);
        };
        match s.edit(&self.settings.processing, spec) {
            Ok(()) => text(204, ""),
            Err(e) => text(400, &format!("{e:#}")),
        }
    }
}

/// A session's place while it starts: counted with the running ones against
/// `--max-sessions`, given back when the session is in the table (or failed).
struct Place<'a>(&'a Page);

impl<'a> Place<'a> {
    fn take(page: &'a Page) -> Result<Place<'a>, StartError> {
        let mut starting = page
            .starting
            .lock()
            .map_err(|_| StartError::Server(anyhow::anyhow!("the session table is poisoned")))?;
        let open = page.sessions.lock().map_or(usize::MAX, |s| s.len());
        if open.saturating_add(*starting) >= page.settings.max_sessions {
            return Err(StartError::Limit(open.saturating_add(*starting)));
        }
        *starting += 1;
        Ok(Place(page))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Ok(mut starting) = self.0.starting.lock() {
            *starting = starting.saturating_sub(1);
        }
    }
}

fn no_session(id: &str) -> Reply {
    text(
        404,
        &format!("no session {}", id.chars().take(40).collect::<String>()),
    )
}
