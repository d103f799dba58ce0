//! `-i whip://HOST:PORT/PATH`: the live input fed by a WHIP publisher. One publisher at a
//! time; when it leaves (DELETE, a failed connection, or silence) the input waits for the
//! next one while the outputs keep running, as after an RTSP camera drops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AnswerError, Peer, PeerInput, Pull, Role, VideoSize};
use crate::frame::Frame;
use crate::pipeline::{FrameSource, PipelineError};

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another publisher is sending (HTTP 409).
    #[error("a publisher is already sending to this endpoint; DELETE its session first")]
    Busy,
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

type Slot = Arc<Mutex<Option<PeerInput>>>;

/// The input side: frames from whoever publishes.
pub struct WhipInput {
    slot: Slot,
    label: String,
    stop: Arc<AtomicBool>,
    index: u64,
    waiting_since: Instant,
    reported: bool,
}

/// The HTTP side's handle: answers a publisher's offer and hands its video to the input.
#[derive(Clone)]
pub struct Publishing {
    slot: Slot,
    size: VideoSize,
    /// A publisher's offer is being answered (the slot is not locked meanwhile).
    answering: Arc<AtomicBool>,
}

impl WhipInput {
    /// `label` names the endpoint in messages (`whip://HOST:PORT/PATH`).
    pub fn new(label: String, size: VideoSize, stop: Arc<AtomicBool>) -> (WhipInput, Publishing) {
        let slot: Slot = Arc::default();
        let input = WhipInput {
            slot: Arc::clone(&slot),
            label,
            stop,
            index: 0,
            waiting_since: Instant::now(),
            reported: false,
        };
        let answering = Arc::default();
        (
            input,
            Publishing {
                slot,
                size,
                answering,
            },
        )
    }

    /// One look at the current publisher: a frame, nothing yet, or it left.
    fn pull(&mut self) -> Result<Option<Frame>, PipelineError> {
        let mut slot = self
            .slot
            .lock()
            .map_err(|_| PipelineError::Io("the WHIP input's publisher slot is poisoned".into()))?;
        let Some(input) = slot.as_mut() else {
            drop(slot);
            std::thread::sleep(Duration::from_millis(50));
            return Ok(None);
        };
        match input.pull(Duration::from_millis(100))? {
            Pull::Frame(mut f) => {
                f.index = self.index;
                self.index += 1;
                self.waiting_since = Instant::now();
                self.reported = false;
                Ok(Some(f))
            }
            Pull::Nothing => Ok(None),
            Pull::Ended => {
                *slot = None;
                crate::notice!("{}: the publisher left; waiting for the next", self.label);
                self.waiting_since = Instant::now();
                Ok(None)
            }
        }
    }
}

impl FrameSource for WhipInput {
    fn next_frame(&mut self) -> Result<Option<Frame>, PipelineError> {
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(frame) = self.pull()? {
                return Ok(Some(frame));
            }
            if !self.reported && self.waiting_since.elapsed() > Duration::from_secs(3) {
                self.reported = true;
                crate::notice!("{}: waiting for a publisher", self.label);
            }
        }
        Ok(None)
    }
}

impl Publishing {
    /// Answers a publisher's offer; its video becomes the input's. Returns the answer and
    /// a flag that ends this publisher's connection when set (its DELETE).
    pub fn publish(&self, offer: &str) -> Result<(String, Arc<AtomicBool>), PublishError> {
        if self.connected() || self.answering.swap(true, Ordering::SeqCst) {
            return Err(PublishError::Busy);
        }
        // Answered without the slot locked: the input keeps pulling meanwhile.
        let answered = Peer::answer(offer, &Role::Publisher, self.size);
        let result = answered
            .map_err(PublishError::from)
            .and_then(|(peer, answer)| {
                let closer = peer.closer();
                let mut slot = self.slot.lock().map_err(|_| {
                    AnswerError::Io(crate::io::IoError::Pipeline(
                        "the publisher slot is poisoned".into(),
                    ))
                })?;
                *slot = peer.into_parts().0;
                Ok((answer, closer))
            });
        self.answering.store(false, Ordering::SeqCst);
        result
    }

    /// Whether a publisher is connected now.
    pub fn connected(&self) -> bool {
        self.slot
            .lock()
            .map(|s| s.as_ref().is_some_and(|p| !p.ended()))
            .unwrap_or(false)
    }
}
