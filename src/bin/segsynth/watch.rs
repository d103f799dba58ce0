//! Live edits of `segsynth run PRESET`: the preset's folder is watched (editors save by
//! writing a new file and renaming it over the old one, so the folder is watched and the
//! file matched by name, not by inode), and SIGHUP re-reads it too. A change to
//! `classes`, `content` or the mask keys is built off the video path
//! (`segsynth::job::Editor`) and switched to between two frames; a change to any other
//! key needs a restart and is reported and ignored; an edit that does not parse is
//! reported with its line and key, and the previous map stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use segsynth::endpoint::Preset;
use segsynth::job::Editor;

use crate::args::Processing;

pub struct PresetWatch {
    thread: Option<JoinHandle<()>>,
}

impl PresetWatch {
    /// Starts watching `path`; `current` is the preset as the run started with it and
    /// `processing` the options it produced (command line over preset).
    pub fn start(
        path: &Path,
        current: Preset,
        processing: Processing,
        editor: Editor,
        size: (usize, usize),
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<PresetWatch> {
        let path = path.to_path_buf();
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| anyhow::anyhow!("{} names no file", path.display()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(e) = event {
                    let _ = tx.send(e);
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", dir.display()))?;
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))?;
        eprintln!(
            "segsynth: watching {} for edits (or send SIGHUP)",
            path.display()
        );
        let thread = std::thread::Builder::new()
            .name("preset-watch".into())
            .spawn(move || {
                let _watcher = watcher; // dropped (unwatched) when the thread ends
                let mut state = State {
                    path,
                    current,
                    processing,
                    editor,
                    size,
                };
                while !stop.load(Ordering::Relaxed) {
                    let touched = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(e) => e
                            .paths
                            .iter()
                            .any(|p| p.file_name() == Some(name.as_os_str())),
                        Err(_) => false,
                    };
                    if touched || hangup.swap(false, Ordering::Relaxed) {
                        // Let the editor finish its write and rename; take what came with it.
                        std::thread::sleep(Duration::from_millis(150));
                        while rx.try_recv().is_ok() {}
                        state.reload();
                    }
                }
            })?;
        Ok(PresetWatch {
            thread: Some(thread),
        })
    }
}

impl Drop for PresetWatch {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    path: PathBuf,
    current: Preset,
    processing: Processing,
    editor: Editor,
    size: (usize, usize),
}

impl State {
    fn reload(&mut self) {
        let new = match Preset::load(&self.path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("segsynth: edit not applied: {e}; the previous content stays");
                return;
            }
        };
        if new == self.current {
            return;
        }
        let old = &self.current;
        for (key, changed) in [
            ("input", old.input != new.input),
            ("outputs", old.outputs != new.outputs),
            ("width", old.width != new.width),
            ("height", old.height != new.height),
            ("fps", old.fps != new.fps),
            ("realtime", old.realtime != new.realtime),
            ("model", old.model != new.model),
            ("device", old.device != new.device),
            ("pixels", old.pixels != new.pixels),
            ("threads", old.threads != new.threads),
            ("batch", old.batch != new.batch),
            ("metrics", old.metrics != new.metrics),
            ("rtsp", old.rtsp != new.rtsp),
            ("streams", old.streams != new.streams),
        ] {
            if changed {
                eprintln!(
                    "segsynth: preset key `{key}` changed: it needs a restart; ignored until then"
                );
            }
        }
        let live = old.classes != new.classes
            || old.content != new.content
            || old.feather != new.feather
            || old.temporal != new.temporal
            || old.edge != new.edge
            || old.refine != new.refine
            || old.model_every != new.model_every;
        if live {
            match self.apply(&new) {
                Ok(()) => {}
                Err(e) => {
                    eprintln!("segsynth: edit not applied: {e:#}; the previous content stays");
                    return;
                }
            }
        }
        self.current = new;
    }

    /// The new map and mask settings, checked like the command line, built and handed
    /// to the stages.
    fn apply(&mut self, new: &Preset) -> anyhow::Result<()> {
        let mut p = self.processing.clone();
        if let Some(c) = &new.classes {
            p.classes = c.clone();
        }
        if let Some(c) = &new.content {
            p.content = c.clone();
        }
        crate::options::overlay_mask(&mut p, new, |_| true);
        let options = crate::options::job_options(&p, true)?;
        let label = format!(
            "the edit of {}: classes {}, content {}",
            self.path.display(),
            p.classes.join(","),
            segsynth::content::specs_text(&p.content)
        );
        eprintln!("segsynth: preparing {label}");
        self.editor
            .apply(options.entries()?, options.mask, self.size, label)?;
        self.processing = p;
        Ok(())
    }
}
