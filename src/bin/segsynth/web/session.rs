//! One page session: a WebRTC peer (camera in, processed video out on the same
//! connection) and its own stages on a thread, until the tab closes (DELETE on
//! `pagehide`, the connection failing, or no video for `PeerInput::SILENCE`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use segsynth::content::ContentKind;
use segsynth::io::webrtc::{AnswerError, OfferError, Peer, Role};
use segsynth::job::{Editor, Stages};
use segsynth::pipeline::{FrameSource, Prepended, Progress};

use super::Settings;

pub enum StartError {
    /// The peer's offer is unusable (400).
    Offer(OfferError),
    /// Every session slot is taken (503); the number running.
    Limit(usize),
    /// Our side failed (500).
    Server(anyhow::Error),
}

/// A session ready to serve, from `Session::open`.
pub struct Opened {
    pub session: Arc<Session>,
    pub stages: Stages,
    pub peer: Peer,
    pub answer: String,
}

pub struct Session {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    editor: Editor,
    size: (usize, usize),
    /// (when, frames out) at the last stats request, and the rate then.
    last: Mutex<(Instant, u64, f64)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Session {
    /// Answers the offer and prepares the stages for it: the session (its thread not
    /// started yet), its stages and peer for `serve`, and the SDP answer.
    pub fn open(settings: &Settings, offer: &str) -> Result<Opened, StartError> {
        let (peer, answer) = match Peer::answer(offer, &Role::Page, settings.size) {
            Ok(a) => a,
            Err(AnswerError::Offer(e)) => return Err(StartError::Offer(e)),
            Err(AnswerError::Io(e)) => return Err(StartError::Server(e.into())),
        };
        let options =
            crate::options::job_options(&settings.processing, true).map_err(StartError::Server)?;
        let mut stages = Stages::prepare(options).map_err(|e| StartError::Server(e.into()))?;
        let progress = Arc::new(Progress::default());
        let session = Arc::new(Session {
            stop: Arc::new(AtomicBool::new(false)),
            editor: stages.editor(&progress),
            progress,
            size: (settings.size.width as usize, settings.size.height as usize),
            last: Mutex::new((Instant::now(), 0, 0.0)),
            thread: Mutex::new(None),
        });
        Ok(Opened {
            session,
            stages,
            peer,
            answer,
        })
    }

    /// Keeps the thread that serves the session, for `join`.
    pub fn attach(&self, thread: JoinHandle<()>) {
        if let Ok(mut t) = self.thread.lock() {
            *t = Some(thread);
        }
    }

    /// Runs the stages from the peer's camera back to the peer until either ends.
    pub fn serve(&self, mut stages: Stages, peer: Peer) {
        let (Some(input), Some(mut output)) = peer.into_parts() else {
            return;
        };
        let mut input = input.with_stop(Arc::clone(&self.stop));
        let first = match input.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                tracing::info!("web session ended before its first frame");
                return;
            }
            Err(e) => {
                tracing::warn!("web session input failed: {e}");
                return;
            }
        };
        let first_copy = first.clone();
        let mut chained = Prepended {
            first: Some(first),
            inner: &mut input,
        };
        match stages.run(
            &first_copy,
            &mut chained,
            &mut output,
            &self.stop,
            &self.progress,
        ) {
            Ok(summary) => tracing::info!("web session ended: {summary}"),
            Err(e) => tracing::warn!("web session failed: {e}"),
        }
    }

    /// Asks the session to end (it ends within about 100 ms).
    pub fn end(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn join(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// A live edit: `spec` as `--content` takes it (several separated by spaces), built
    /// off the video path and switched to between two frames.
    pub fn edit(&self, processing: &crate::args::Processing, spec: &str) -> anyhow::Result<()> {
        if spec.is_empty() {
            anyhow::bail!("the body is empty; expected a content spec such as background=blur");
        }
        let mut p = processing.clone();
        p.content = spec
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let options = crate::options::job_options(&p, true)?;
        let entries = options.entries()?;
        // The page picks among kinds and shipped generators; files on the server are the
        // command line's to name (its own starting content may be picked again).
        let from_command_line = p.content == processing.content;
        for e in entries.iter().filter(|_| !from_command_line) {
            match &e.content {
                ContentKind::Image { .. } => anyhow::bail!(
                    "image: content is chosen on the server's command line (--content), not from the page"
                ),
                ContentKind::Gan { model } if model.contains(['/', '.']) => anyhow::bail!(
                    "gan:{model}: the page takes a shipped generator's name (see segsynth models), not a path"
                ),
                _ => {}
            }
        }
        let label = format!("the page's content {spec}");
        self.editor.apply(entries, options.mask, self.size, label)?;
        Ok(())
    }

    /// Frames, frame rate since the last request, added latency and drops, as JSON.
    pub fn stats_json(&self) -> String {
        let frames = self.progress.frames_out.load(Ordering::Relaxed);
        let fps = match self.last.lock() {
            Ok(mut last) => {
                let dt = last.0.elapsed().as_secs_f64();
                if dt >= 0.5 {
                    let rate = frames.saturating_sub(last.1) as f64 / dt;
                    *last = (Instant::now(), frames, rate);
                }
                last.2
            }
            Err(_) => 0.0,
        };
        let (p50, p99) = self.progress.latency();
        format!(
            "{{\"frames\":{frames},\"fps\":{fps:.1},\"latency_p50_ms\":{p50:.1},\"latency_p99_ms\":{p99:.1},\"dropped\":{}}}",
            self.progress.dropped.load(Ordering::Relaxed),
        )
    }
}

/// 128 random bits from the kernel, as hex: an id nobody can guess.
pub fn new_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
