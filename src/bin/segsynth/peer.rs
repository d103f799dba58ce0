//! `segsynth bench --peer PYTHON`: the Python peer of the blur job
//! (`scripts/python_peer.py`: OpenCV, the same model in TFLite, the same x264), timed in
//! every round beside the transcode and segsynth, so the comparison is made in one run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::options::usage;

/// Runs the peer script with one Python interpreter.
pub struct Peer {
    python: PathBuf,
    script: PathBuf,
}

/// What the peer needs from its interpreter.
const IMPORTS: &str = "import cv2, numpy, ai_edge_litert";

impl Peer {
    /// Checks, before anything is timed, that `python` runs and has the peer's packages.
    pub fn check(python: &Path) -> anyhow::Result<Peer> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/python_peer.py");
        let why = match Command::new(python).args(["-c", IMPORTS]).output() {
            Ok(o) if o.status.success() => {
                return Ok(Peer {
                    python: python.into(),
                    script,
                });
            }
            Ok(o) => last_line(&o.stderr),
            Err(e) => e.to_string(),
        };
        Err(usage(format!(
            "--peer {}: cannot run the Python peer with it ({why}); it needs a Python with \
             opencv-python-headless, numpy and ai-edge-litert, such as .venv/bin/python after \
             ./segsynth.sh setup",
            python.display()
        )))
    }

    /// One run of the peer on `clip`, writing `out`: the frame rate it reports (frames
    /// over its own processing time, like segsynth's, after its model is loaded).
    pub fn fps(&self, clip: &Path, out: &Path) -> anyhow::Result<f64> {
        let o = Command::new(&self.python)
            .arg(&self.script)
            .arg(clip)
            .arg(out)
            .args(["--threads", "2"])
            .output()?;
        let stdout = String::from_utf8_lossy(&o.stdout);
        let fps = stdout
            .lines()
            .rfind(|l| l.starts_with("python peer:"))
            .and_then(|l| l.strip_suffix(" fps")?.rsplit(' ').next()?.parse().ok());
        match fps {
            Some(fps) if o.status.success() => Ok(fps),
            _ => anyhow::bail!(
                "the Python peer failed on {}: {}",
                clip.display(),
                last_line(&o.stderr)
            ),
        }
    }
}

/// The last non-empty line of a process's output, for an error message.
fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    line.trim().to_string()
}
