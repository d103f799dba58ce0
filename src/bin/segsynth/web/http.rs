//! The HTTP plumbing under `segsynth web` and the WHIP/WHEP endpoints of `segsynth run`:
//! a tiny_http server (HTTP or HTTPS) that answers each request on its own short thread
//! (an SDP offer waits for ICE gathering), at most `MAX_HANDLERS` at once, and the small
//! helpers every route uses (replies, bodies, the bearer token).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use segsynth::endpoint::Secret;
use tiny_http::{Header, Request, Response};

/// An SDP offer is a few kilobytes; anything past this is refused (413).
const MAX_BODY: u64 = 64 * 1024;
const MAX_HANDLERS: usize = 64;

pub type Reply = Response<std::io::Cursor<Vec<u8>>>;

/// What a server serves: one reply per request.
pub trait Routes: Send + Sync + 'static {
    fn route(&self, request: &mut Request) -> Reply;
}

pub struct Server {
    address: String,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` (HTTPS with a PEM certificate and key) and serves `routes`.
    pub fn start(
        listen: &str,
        tls: Option<&(Vec<u8>, Vec<u8>)>,
        routes: Arc<dyn Routes>,
    ) -> anyhow::Result<Server> {
        let http = match tls {
            Some((certificate, private_key)) => tiny_http::Server::https(
                listen,
                tiny_http::SslConfig {
                    certificate: certificate.clone(),
                    private_key: private_key.clone(),
                },
            ),
            None => tiny_http::Server::http(listen),
        }
        .map_err(|e| anyhow::anyhow!("cannot serve on {listen}: {e}"))?;
        let address = http
            .server_addr()
            .to_ip()
            .map_or(listen.to_string(), |a| a.to_string());
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || accept(http, routes, flag))?;
        Ok(Server {
            address,
            stopping,
            thread: Some(thread),
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Stops accepting (requests in flight finish on their own threads).
impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(http: tiny_http::Server, routes: Arc<dyn Routes>, stopping: Arc<AtomicBool>) {
    let handlers = Arc::new(AtomicUsize::new(0));
    while !stopping.load(Ordering::Relaxed) {
        let Ok(Some(mut request)) = http.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if handlers.fetch_add(1, Ordering::SeqCst) >= MAX_HANDLERS {
            handlers.fetch_sub(1, Ordering::SeqCst);
            respond(request, text(503, "the server is busy; try again"));
            continue;
        }
        let (routes, count) = (Arc::clone(&routes), Arc::clone(&handlers));
        let spawned = std::thread::Builder::new()
            .name("http-request".into())
            .spawn(move || {
                let reply = routes.route(&mut request);
                respond(request, reply);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            handlers.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("cannot answer a request: {e}");
        }
    }
}

fn respond(request: Request, response: Reply) {
    if let Err(e) = request.respond(response) {
        tracing::debug!("HTTP client went away: {e}");
    }
}

/// Adds a header (every name and value here is ASCII; one that is not is left out).
pub trait With {
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

pub fn text(status: u16, body: &str) -> Reply {
    let body = if body.is_empty() {
        String::new()
    } else {
        format!("{body}\n")
    };
    Response::from_string(body)
        .with_status_code(status)
        .with("Content-Type", "text/plain; charset=utf-8")
}

pub fn html(page: &str) -> Reply {
    Response::from_string(page).with("Content-Type", "text/html; charset=utf-8")
}

pub fn json(value: &str) -> Reply {
    Response::from_string(value)
        .with("Content-Type", "application/json")
        .with("Cache-Control", "no-store")
}

/// 401, with the scheme WHIP uses.
pub fn unauthorised() -> Reply {
    text(
        401,
        "a valid bearer token is needed (Authorization: Bearer ...)",
    )
    .with("WWW-Authenticate", "Bearer")
}

/// 201 Created with an SDP answer (WHIP/WHEP: the caller adds `Location`).
pub fn sdp(answer: String) -> Reply {
    Response::from_string(answer)
        .with_status_code(201)
        .with("Content-Type", "application/sdp")
}

/// Prometheus text.
pub fn openmetrics(body: String) -> Reply {
    Response::from_string(body).with(
        "Content-Type",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}

/// The request body as text, at most `MAX_BODY` bytes.
pub fn body(request: &mut Request) -> Result<String, Reply> {
    let mut text_body = String::new();
    let read = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_string(&mut text_body);
    match read {
        Ok(n) if n as u64 > MAX_BODY => Err(text(413, "the body is over 64 KiB")),
        Ok(_) => Ok(text_body),
        Err(e) => Err(text(
            400,
            &format!("cannot read the body as UTF-8 text: {e}"),
        )),
    }
}

/// The bearer token, compared in constant time; every request passes without one set.
pub fn authorised(token: Option<&Secret>, request: &Request) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(given) = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| {
            let (scheme, value) = h.value.as_str().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("Bearer")
                .then(|| value.trim().to_string())
        })
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A POST's body must be SDP (`415` otherwise), as WHIP and WHEP require.
pub fn sdp_offer(request: &mut Request) -> Result<String, Reply> {
    let is_sdp = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .is_some_and(|h| {
            h.value
                .as_str()
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        });
    if !is_sdp {
        return Err(text(
            415,
            "expected Content-Type: application/sdp (an SDP offer)",
        ));
    }
    body(request)
}

/// CORS for WebRTC players and publishers on other origins (the token, not the origin,
/// is what guards the endpoints).
pub fn cors(reply: Reply) -> Reply {
    reply
        .with("Access-Control-Allow-Origin", "*")
        .with("Access-Control-Allow-Methods", "OPTIONS, POST, DELETE")
        .with(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        )
        .with("Access-Control-Expose-Headers", "Location")
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
