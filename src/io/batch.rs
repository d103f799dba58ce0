//! Several files in one call: each input into its own output, up to `jobs` files at a
//! time, each through stages forked from one `Stages` (one session per model, shared).
//! Every file keeps the file job's rules: a temporary file renamed when complete, no
//! overwrite unless asked, a playable file on a signal; a bad input fails alone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::io::IoError;
use crate::io::encode::{Container, EncoderSettings, parent_dir};
use crate::io::file_job::{Ending, FileJob};
use crate::io::sink::file::check_output;
use crate::io::source::file::check_input;
use crate::job::{JobError, JobOptions, Stages};
use crate::pipeline::Progress;
use crate::pipeline::stats::Summary;

/// What the files of a call are: inputs, where they go, how they are encoded.
pub struct Batch {
    pub inputs: Vec<PathBuf>,
    /// The output file for one input; a folder for several (or a path ending in `/`).
    pub output: PathBuf,
    pub overwrite: bool,
    pub encoder: EncoderSettings,
    pub options: JobOptions,
    /// How many files are written at the same time (at least 1).
    pub jobs: usize,
    pub interrupt: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The inputs and `-o` do not fit together (a usage mistake).
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Job(#[from] JobError),
}

/// How one file ended.
pub type FileResult = Result<(Summary, Ending), IoError>;

/// What the caller hears of each file, from the thread writing it.
pub trait Report: Sync {
    fn started(&self, input: &Path, output: &Path, progress: &Arc<Progress>);
    fn finished(&self, input: &Path, output: &Path, result: &FileResult);
}

/// Every file of the call: input, output, and how it ended (None: not started, after a
/// signal).
pub struct Outcome {
    pub files: Vec<(PathBuf, PathBuf, Option<FileResult>)>,
    /// (model calls, frames) of the segmentation model, when its frames were batched.
    pub batches: Option<(u64, u64)>,
}

impl Outcome {
    pub fn written(&self) -> usize {
        self.files
            .iter()
            .filter(|(_, _, r)| matches!(r, Some(Ok(_))))
            .count()
    }
}

impl Batch {
    /// Plans the outputs, checks them (one file: before any model loads), prepares the
    /// stages once, and writes every file.
    pub fn run(self, report: &dyn Report) -> Result<Outcome, BatchError> {
        let pairs = self.pairs()?;
        if let [(input, output)] = &pairs[..] {
            check_output(output, self.overwrite)?;
            check_input(input)?;
        } else {
            std::fs::create_dir_all(&self.output).map_err(|source| IoError::NotWritable {
                dir: self.output.clone(),
                source,
            })?;
        }
        let queue = Queue {
            files: pairs.iter().map(|(i, o)| self.file_job(i, o)).collect(),
            workers: self.jobs.clamp(1, pairs.len()),
        };
        let stages = Stages::prepare(self.options.clone())?;
        let files = queue.write_all(&stages, report);
        Ok(Outcome {
            files,
            batches: stages.batch_stats(),
        })
    }

    fn file_job<'a>(&self, input: &'a Path, output: &'a Path) -> FileJob<'a> {
        FileJob {
            input,
            output,
            overwrite: self.overwrite,
            encoder: self.encoder.clone(),
            interrupt: Arc::clone(&self.interrupt),
            progress: Arc::new(Progress::default()),
        }
    }

    /// Each input with its output: `-o` itself for one input (unless it names a folder),
    /// else `<folder>/<input stem>.mp4`.
    fn pairs(&self) -> Result<Vec<(PathBuf, PathBuf)>, BatchError> {
        let (inputs, output) = (&self.inputs, &self.output);
        if inputs.is_empty() {
            return Err(BatchError::Plan(
                "no input; expected one or more video files".into(),
            ));
        }
        let folder = inputs.len() > 1
            || output.as_os_str().to_string_lossy().ends_with('/')
            || output.is_dir();
        if !folder {
            return Ok(vec![(inputs[0].clone(), output.to_owned())]);
        }
        let names_a_file = Container::for_path(output).is_ok();
        if (output.exists() && !output.is_dir()) || (!output.exists() && names_a_file) {
            return Err(BatchError::Plan(format!(
                "-o {}: with {} inputs the output is a folder, and this names a file; expected a folder (made if missing)",
                output.display(),
                inputs.len()
            )));
        }
        let mut seen = std::collections::HashMap::new();
        let mut pairs = Vec::new();
        for input in inputs {
            let stem = input.file_stem().unwrap_or_default().to_string_lossy();
            if let Some(first) = seen.insert(stem.to_string(), input) {
                return Err(BatchError::Plan(format!(
                    "{} and {} would both be written to {}/{stem}.mp4; expected inputs with different file names",
                    first.display(),
                    input.display(),
                    output.display()
                )));
            }
            let out = output.join(format!("{stem}.mp4"));
            if same_file(input, &out) {
                return Err(BatchError::Plan(format!(
                    "{} would be written over itself; expected an output folder other than the input's",
                    input.display()
                )));
            }
            pairs.push((input.clone(), out));
        }
        Ok(pairs)
    }
}

/// The files of a call and how many are written at once.
struct Queue<'a> {
    files: Vec<FileJob<'a>>,
    workers: usize,
}

impl Queue<'_> {
    /// Writes the files, `workers` at a time, each worker through its own fork of
    /// `stages`: it takes the next file not started until none is left or a signal came.
    fn write_all(
        &self,
        stages: &Stages,
        report: &dyn Report,
    ) -> Vec<(PathBuf, PathBuf, Option<FileResult>)> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<FileResult>>> =
            Mutex::new(self.files.iter().map(|_| None).collect());
        std::thread::scope(|scope| {
            for mut mine in (0..self.workers).map(|_| stages.fork()) {
                let (next, results) = (&next, &results);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = self.files.get(i) else { break };
                        if file.interrupt.load(Ordering::Relaxed) {
                            break;
                        }
                        report.started(file.input, file.output, &file.progress);
                        let result = file.run(&mut mine);
                        report.finished(file.input, file.output, &result);
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(result);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        self.files
            .iter()
            .zip(results)
            .map(|(f, r)| (f.input.to_owned(), f.output.to_owned(), r))
            .collect()
    }
}

/// Whether two paths name the same file (`b` need not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let full = |p: &Path| {
        let dir = parent_dir(p).canonicalize().ok()?;
        Some(dir.join(p.file_name()?))
    };
    matches!((full(a), full(b)), (Some(x), Some(y)) if x == y)
}
