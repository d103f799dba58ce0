//! The progress display of a file job: a bar on a terminal, a line every 5 s otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use segsynth::pipeline::Progress;

pub struct Display {
    done: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Display {
    pub fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

pub fn spawn(progress: Arc<Progress>) -> Display {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let tty = std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let mut last_log = Instant::now();
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let n = progress.frames_out.load(Ordering::Relaxed);
            let expected = Some(progress.expected.load(Ordering::Relaxed)).filter(|&e| e > 0);
            let fps = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
            if let Some(bar) = &bar {
                bar.set_length(expected.unwrap_or(0));
                bar.set_position(n);
            } else if last_log.elapsed() >= Duration::from_secs(5) {
                last_log = Instant::now();
                let eta = expected
                    .filter(|&e| e > n && fps > 0.0)
                    .map(|e| format!(", ETA {:.0} s", (e - n) as f64 / fps))
                    .unwrap_or_default();
                let total = expected.map(|e| format!("/{e}")).unwrap_or_default();
                eprintln!("segsynth: {n}{total} frames, {fps:.1} fps{eta}");
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    });
    Display { done, handle }
}
