//! WHIP and WHEP endpoints of `segsynth run` (`-i whip://HOST:PORT/PATH`,
//! `-o whep://HOST:PORT/PATH`), as the IETF drafts define them: `POST PATH` with an SDP
//! offer is answered `201 Created` with the SDP answer and a `Location` for the session;
//! `DELETE` on that location ends it; trickle ICE (`PATCH`) is not offered (`405`), the
//! answer carries every candidate. A bearer token guards every route when set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use segsynth::endpoint::Secret;
use segsynth::io::webrtc::{AnswerError, Peer, PublishError, Publishing, Role, VideoSize};
use segsynth::pipeline::Progress;
use tiny_http::{Method, Request};

use super::http::{Reply, Routes, With, authorised, sdp, sdp_offer, text, unauthorised};

/// A connected publisher (its connection's end flag) or player (its whole peer).
enum Resource {
    Publisher(Arc<AtomicBool>),
    Player(Peer),
}

pub struct Endpoints {
    pub token: Option<Secret>,
    pub publishers: HashMap<String, Publishing>,
    /// WHEP path -> the `intervideosink` channel its players read.
    pub players: HashMap<String, String>,
    pub size: VideoSize,
    /// Most WHEP players at once, per whep:// path.
    pub max_players: usize,
    sessions: Mutex<HashMap<String, (String, Resource)>>,
    /// Players being answered, per path (locked after `sessions`).
    pending: Mutex<HashMap<String, usize>>,
    progress: Arc<Progress>,
}

impl Endpoints {
    pub fn new(
        token: Option<Secret>,
        size: VideoSize,
        max_players: usize,
        progress: Arc<Progress>,
    ) -> Endpoints {
        Endpoints {
            token,
            publishers: HashMap::new(),
            players: HashMap::new(),
            size,
            max_players,
            sessions: Mutex::default(),
            pending: Mutex::default(),
            progress,
        }
    }

    /// Drops players whose connection ended and publishers that left; keeps the
    /// `segsynth_webrtc_peers` gauge true. Called about once a second.
    pub fn reap(&self) {
        let connected = self.publishers.values().filter(|p| p.connected()).count();
        let Ok(mut sessions) = self.sessions.lock() else {
            return;
        };
        sessions.retain(|_, (_, r)| match r {
            Resource::Player(p) => !p.ended(),
            Resource::Publisher(ended) => !ended.load(Ordering::Relaxed),
        });
        let players = sessions
            .values()
            .filter(|(_, r)| matches!(r, Resource::Player(_)))
            .count();
        drop(sessions);
        self.progress.metrics.webrtc_peers("player", players as i64);
        self.progress
            .metrics
            .webrtc_peers("publisher", connected as i64);
    }

    fn publish(&self, path: &str, publishing: &Publishing, offer: &str) -> Reply {
        match publishing.publish(offer) {
            Ok((answer, closer)) => self.created(path, answer, Resource::Publisher(closer)),
            Err(PublishError::Busy) => text(409, &PublishError::Busy.to_string()),
            Err(PublishError::Answer(e)) => answer_error(e),
        }
    }

    fn play(&self, path: &str, channel: &str, offer: &str) -> Reply {
        self.reap();
        if let Err(playing) = self.reserve(path) {
            return text(
                503,
                &format!(
                    "{playing} players are connected to {path}, the most it takes (--max-sessions)"
                ),
            )
            .with("Retry-After", "5");
        }
        let role = Role::Player {
            channel: channel.to_string(),
        };
        let reply = match Peer::answer(offer, &role, self.size) {
            Ok((peer, answer)) => self.created(path, answer, Resource::Player(peer)),
            Err(e) => answer_error(e),
        };
        if let Ok(mut p) = self.pending.lock() {
            p.entry(path.to_string())
                .and_modify(|n| *n = n.saturating_sub(1));
        }
        reply
    }

    /// Takes a player's place on `path` before answering (so concurrent offers cannot
    /// pass the limit together); Err is how many play or are being answered.
    fn reserve(&self, path: &str) -> Result<(), usize> {
        let sessions = self.sessions.lock().map_err(|_| usize::MAX)?;
        let mut pending = self.pending.lock().map_err(|_| usize::MAX)?;
        let playing = sessions
            .values()
            .filter(|(p, r)| p == path && matches!(r, Resource::Player(_)))
            .count();
        let waiting = pending.entry(path.to_string()).or_default();
        if playing + *waiting >= self.max_players {
            return Err(playing + *waiting);
        }
        *waiting += 1;
        Ok(())
    }

    /// 201 with the answer; the session is kept under a fresh id at `PATH/ID`.
    fn created(&self, path: &str, answer: String, resource: Resource) -> Reply {
        let id = match super::session::new_id() {
            Ok(id) => id,
            Err(e) => return text(500, &format!("cannot make a session id: {e}")),
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.clone(), (path.to_string(), resource));
        }
        self.reap();
        sdp(answer).with("Location", &format!("{path}/{id}"))
    }

    fn end(&self, path: &str, id: &str) -> Reply {
        let removed = self.sessions.lock().ok().and_then(|mut s| match s.get(id) {
            Some((p, _)) if p == path => s.remove(id),
            _ => None,
        });
        match removed {
            Some((_, Resource::Publisher(ended))) => ended.store(true, Ordering::Relaxed),
            Some((_, Resource::Player(peer))) => drop(peer),
            None => return text(404, "no such session"),
        }
        self.reap();
        text(200, "session ended")
    }
}

fn answer_error(e: AnswerError) -> Reply {
    match e {
        AnswerError::Offer(e) => text(400, &e.to_string()),
        AnswerError::Io(e) => {
            tracing::warn!("WebRTC session failed to start: {e}");
            text(500, &format!("the session could not start: {e}"))
        }
    }
}

impl Routes for Arc<Endpoints> {
    fn route(&self, request: &mut Request) -> Reply {
        super::http::cors(self.answer(request))
    }
}

impl Endpoints {
    fn answer(&self, request: &mut Request) -> Reply {
        let path = request.url().split('?').next().unwrap_or("/").to_string();
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", ""));
        let known = |p: &str| self.publishers.contains_key(p) || self.players.contains_key(p);
        let resource = known(parent);
        if !known(&path) && !resource {
            return text(404, "no WHIP or WHEP endpoint here");
        }
        // A browser's CORS preflight carries no token.
        if request.method() == &Method::Options {
            return text(204, "")
                .with("Accept-Post", "application/sdp")
                .with("Allow", "OPTIONS, POST, DELETE");
        }
        if !authorised(self.token.as_ref(), request) {
            return unauthorised();
        }
        match (request.method().clone(), resource) {
            (Method::Post, false) => {
                let offer = match sdp_offer(request) {
                    Ok(o) => o,
                    Err(r) => return r,
                };
                if let Some(p) = self.publishers.get(&path) {
                    self.publish(&path, p, &offer)
                } else if let Some(channel) = self.players.get(&path) {
                    self.play(&path, channel, &offer)
                } else {
                    text(404, "no WHIP or WHEP endpoint here")
                }
            }
            (Method::Delete, true) => self.end(parent, last),
            (Method::Patch, true) => text(
                405,
                "trickle ICE is not offered; the answer holds every candidate",
            )
            .with("Allow", "OPTIONS, DELETE"),
            _ => text(405, "expected POST (an SDP offer) or DELETE (a session)")
                .with("Allow", "OPTIONS, POST, DELETE"),
        }
    }
}
