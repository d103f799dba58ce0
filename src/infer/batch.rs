//! Several streams' frames through one model call: each stream hands its model input
//! to the `Batcher` of the shared session and gets its own slice of the output back.
//!
//! The first request that finds no batch forming leads one: it waits until every stream
//! seen in the last second has a request in, the batch is full, or the window has passed,
//! whichever comes first, then runs them all in one call along the model's free batch
//! dimension. So a stream waits at most the window for the others, a stalled stream
//! stops being waited for after a second, and a failed one is never waited for once gone.
//! A batch whose call fails runs again one request at a time, so only a request that
//! breaks the call gets the error.
//! On the CPU the frames of a batch come out bit-identical to single runs (ORT runs each sample of a
//! batch alone through the same kernels; `tests/streams.rs` holds the outputs to it).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{InferError, Output};

/// One model call over a stacked batch: (input, shape) to the stacked output.
pub type Exec<'a> = dyn Fn(&[f32], &[i64]) -> Result<Output, InferError> + 'a;

/// A stream that has not asked for a second is no longer waited for.
const ACTIVE: Duration = Duration::from_secs(1);

pub struct Batcher {
    state: Mutex<State>,
    changed: Condvar,
    /// The most frames in one call.
    max: usize,
    /// The longest a request waits for others before its batch runs.
    window: Duration,
}

#[derive(Default)]
struct State {
    queue: Vec<(u64, Vec<f32>)>,
    results: HashMap<u64, Result<Output, InferError>>,
    leading: bool,
    next: u64,
    /// Each stream's last request.
    seen: HashMap<u64, Instant>,
    calls: u64,
    frames: u64,
}

impl Batcher {
    pub fn new(max: usize, window: Duration) -> Batcher {
        Batcher {
            state: Mutex::default(),
            changed: Condvar::new(),
            max: max.max(1),
            window,
        }
    }

    /// (model calls, frames) so far.
    pub fn stats(&self) -> (u64, u64) {
        let s = self.lock();
        (s.calls, s.frames)
    }

    /// Runs `input` (one sample of `shape`, batch dimension 1) for `stream`, in a batch
    /// with other streams' requests; `exec` runs a stacked batch (its shape's first
    /// dimension is the batch size) and gives the stacked output.
    pub fn run(
        &self,
        stream: u64,
        input: &[f32],
        shape: &[i64],
        exec: &Exec,
    ) -> Result<Output, InferError> {
        let mut s = self.lock();
        let id = s.next;
        s.next += 1;
        s.queue.push((id, input.to_vec()));
        s.seen.insert(stream, Instant::now());
        self.changed.notify_all();
        loop {
            if let Some(result) = s.results.remove(&id) {
                return result;
            }
            if s.leading {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.leading = true;
            s = self.gather(s);
            let batch = take_batch(&mut s.queue, self.max);
            drop(s);
            let results = run_isolated(&batch, shape, exec);
            s = self.lock();
            s.calls += 1;
            s.frames += batch.len() as u64;
            s.results.extend(results);
            s.leading = false;
            self.changed.notify_all();
        }
    }

    /// Waits (as the leader) until every active stream has a request in, the batch is
    /// full, or the window has passed.
    fn gather<'a>(&self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let deadline = Instant::now() + self.window;
        loop {
            let now = Instant::now();
            s.seen.retain(|_, t| now.duration_since(*t) < ACTIVE);
            let want = s.seen.len().clamp(1, self.max);
            if s.queue.len() >= want || now >= deadline {
                return s;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Up to `max` requests from the front of the queue, of the first one's size (the
/// others stay for the next batch).
fn take_batch(queue: &mut Vec<(u64, Vec<f32>)>, max: usize) -> Vec<(u64, Vec<f32>)> {
    let Some(len) = queue.first().map(|(_, x)| x.len()) else {
        return Vec::new();
    };
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for request in queue.drain(..) {
        if batch.len() < max && request.1.len() == len {
            batch.push(request);
        } else {
            rest.push(request);
        }
    }
    *queue = rest;
    batch
}

/// The batch in one call; when that call fails and the batch holds several requests,
/// each request again on its own, so a request that breaks the call fails alone and the
/// other streams get their answers. A panic inside a call becomes its requests' error
/// (it must not leave the followers waiting for a leader).
fn run_isolated(
    batch: &[(u64, Vec<f32>)],
    shape: &[i64],
    exec: &Exec,
) -> Vec<(u64, Result<Output, InferError>)> {
    let once = |part: &[(u64, Vec<f32>)]| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_stacked(part, shape, exec)
        }))
        .unwrap_or_else(|_| failed(part, "the batched model call panicked"))
    };
    let results = once(batch);
    if batch.len() < 2 || results.iter().all(|(_, r)| r.is_ok()) {
        return results;
    }
    batch.chunks(1).flat_map(once).collect()
}

/// One call over the stacked inputs; each request gets its own slice of the output
/// (or the call's error).
fn run_stacked(
    batch: &[(u64, Vec<f32>)],
    shape: &[i64],
    exec: &Exec,
) -> Vec<(u64, Result<Output, InferError>)> {
    let mut stacked_shape = shape.to_vec();
    if let Some(b) = stacked_shape.first_mut() {
        *b = batch.len() as i64;
    }
    let stacked: Vec<f32> = batch.iter().flat_map(|(_, x)| x.iter().copied()).collect();
    match exec(&stacked, &stacked_shape) {
        Ok(o) => batch
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, split(&o, i, batch.len())))
            .collect(),
        Err(e) => failed(batch, &e.to_string()),
    }
}

/// The same error for every request of `batch`.
fn failed(batch: &[(u64, Vec<f32>)], message: &str) -> Vec<(u64, Result<Output, InferError>)> {
    batch
        .iter()
        .map(|(id, _)| {
            let e = InferError::Run {
                model: "batched segmentation".into(),
                message: message.into(),
            };
            (*id, Err(e))
        })
        .collect()
}

/// Sample `i` of `n` of a stacked output, with batch dimension 1.
fn split(o: &Output, i: usize, n: usize) -> Result<Output, InferError> {
    fn part<T: Clone>(shape: &[i64], data: &[T], i: usize, n: usize) -> Option<(Vec<i64>, Vec<T>)> {
        if shape.first() != Some(&(n as i64)) || !data.len().is_multiple_of(n) {
            return None;
        }
        let each = data.len() / n;
        let mut one = shape.to_vec();
        one[0] = 1;
        Some((one, data[i * each..(i + 1) * each].to_vec()))
    }
    let bad = || InferError::Run {
        model: "batched segmentation".into(),
        message: format!("the output does not have the batch of {n} as its first dimension"),
    };
    match o {
        Output::F32 { shape, data } => {
            let (shape, data) = part(shape, data, i, n).ok_or_else(bad)?;
            Ok(Output::F32 { shape, data })
        }
        Output::I64 { shape, data } => {
            let (shape, data) = part(shape, data, i, n).ok_or_else(bad)?;
            Ok(Output::I64 { shape, data })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A model that doubles its input and records the batch sizes it was called with.
    fn doubling(sizes: &Mutex<Vec<i64>>) -> impl Fn(&[f32], &[i64]) -> Result<Output, InferError> {
        move |x, shape| {
            sizes.lock().unwrap().push(shape[0]);
            std::thread::sleep(Duration::from_millis(2));
            Ok(Output::F32 {
                shape: shape.to_vec(),
                data: x.iter().map(|v| v * 2.0).collect(),
            })
        }
    }

    #[test]
    fn streams_asking_together_share_calls_and_get_their_own_answers() {
        let batcher = Arc::new(Batcher::new(4, Duration::from_millis(50)));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4u64)
            .map(|stream| {
                let (b, sizes) = (Arc::clone(&batcher), Arc::clone(&sizes));
                std::thread::spawn(move || {
                    for frame in 0..20 {
                        let x = vec![stream as f32, frame as f32, 1.0];
                        let out = b.run(stream, &x, &[1, 3], &doubling(&sizes)).unwrap();
                        let Output::F32 { shape, data } = out else {
                            panic!("f32 out")
                        };
                        assert_eq!(shape, vec![1, 3]);
                        assert_eq!(data, vec![2.0 * stream as f32, 2.0 * frame as f32, 2.0]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (calls, frames) = batcher.stats();
        assert_eq!(frames, 80);
        assert!(calls < 60, "{calls} calls for 80 frames: batches formed");
        assert!(sizes.lock().unwrap().iter().all(|&n| (1..=4).contains(&n)));
    }

    #[test]
    fn a_call_that_panics_fails_its_batch_and_leaves_no_one_waiting() {
        let batcher = Arc::new(Batcher::new(2, Duration::from_millis(200)));
        let panicking = |_: &[f32], _: &[i64]| -> Result<Output, InferError> { panic!("boom") };
        let threads: Vec<_> = (0..2u64)
            .map(|stream| {
                let b = Arc::clone(&batcher);
                std::thread::spawn(move || b.run(stream, &[1.0], &[1, 1], &panicking).is_err())
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap(), "each request gets an error");
        }
        let sizes = Mutex::new(Vec::new());
        let after = batcher.run(0, &[2.0], &[1, 1], &doubling(&sizes));
        assert!(after.is_ok(), "the batcher leads again after a panic");
    }

    #[test]
    fn a_request_that_breaks_its_batch_fails_alone() {
        // The model refuses any call holding a negative input (a stream whose frames it
        // cannot take); the other streams of that batch are answered by single calls.
        let batcher = Arc::new(Batcher::new(3, Duration::from_millis(200)));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..3u64)
            .map(|stream| {
                let (b, sizes, refused) = (
                    Arc::clone(&batcher),
                    Arc::clone(&sizes),
                    Arc::clone(&refused),
                );
                std::thread::spawn(move || {
                    let picky = |x: &[f32], shape: &[i64]| {
                        if x.iter().any(|&v| v < 0.0) {
                            refused.lock().unwrap().push(shape[0]);
                            panic!("cannot take a negative input");
                        }
                        doubling(&sizes)(x, shape)
                    };
                    let x = if stream == 1 { -1.0 } else { stream as f32 };
                    (0..6)
                        .map(|_| {
                            b.run(stream, &[x], &[1, 1], &picky).ok().map(|o| match o {
                                Output::F32 { data, .. } => data,
                                Output::I64 { .. } => Vec::new(),
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (stream, t) in threads.into_iter().enumerate() {
            let answers = t.join().unwrap();
            let expected = (stream != 1).then(|| vec![2.0 * stream as f32]);
            assert!(
                answers.iter().all(|a| *a == expected),
                "stream {stream}: {answers:?}"
            );
        }
        let refused = refused.lock().unwrap();
        assert!(
            refused.iter().any(|&n| n > 1),
            "batches formed and broke: {refused:?}"
        );
    }

    #[test]
    fn a_lone_stream_waits_at_most_the_window_and_an_error_reaches_everyone() {
        let batcher = Batcher::new(8, Duration::from_millis(20));
        let sizes = Mutex::new(Vec::new());
        let started = Instant::now();
        for frame in 0..5 {
            batcher
                .run(0, &[frame as f32], &[1, 1], &doubling(&sizes))
                .unwrap();
        }
        // One stream seen: nobody else is waited for.
        assert!(
            started.elapsed() < Duration::from_millis(80),
            "{:?}",
            started.elapsed()
        );
        let failing = |_: &[f32], _: &[i64]| -> Result<Output, InferError> {
            Err(InferError::Run {
                model: "m".into(),
                message: "broken".into(),
            })
        };
        let Err(e) = batcher.run(0, &[1.0], &[1, 1], &failing) else {
            panic!("the error reaches the caller")
        };
        assert!(e.to_string().contains("broken"), "{e}");
    }
}
