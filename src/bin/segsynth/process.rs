//! `segsynth process`: the file job, with a progress display; several inputs run one
//! after another through the same stages (one model session), each into its own file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use segsynth::io::encode::EncoderSettings;
use segsynth::io::file_job::{Ending, FileJob};
use segsynth::job::Stages;
use segsynth::pipeline::Progress;

use crate::args::ProcessArgs;
use crate::options::{encoder, job_options, usage};
use crate::signals::interrupt_flag;
use crate::{EXIT_INCOMPLETE, EXIT_INTERRUPTED, progress};

pub fn process(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    // What the user typed becomes validated options first; from here they only go down
    // the layers: the files, the stages, the job.
    let encoder = encoder(&args.processing)?;
    let options = job_options(&args.processing, false)?;
    let pairs = outputs(&args.inputs, &args.output)?;
    if let [(input, output)] = &pairs[..] {
        // One file: a bad input or output is the call's error, before any model loads.
        segsynth::io::sink::file::check_output(output, args.overwrite)?;
        segsynth::io::source::file::check_input(input)?;
    }
    let mut stages = Stages::prepare(options)?;
    let run = Run {
        encoder: &encoder,
        overwrite: args.overwrite,
        quiet: args.quiet,
        interrupt: interrupt_flag()?,
    };
    match &pairs[..] {
        [(input, output)] => run.one(&mut stages, input, output),
        _ => Ok(run.many(&mut stages, &pairs)),
    }
}

/// Each input with its output: the output itself for one input (unless it names a
/// folder), else `<folder>/<input stem>.mp4`, the folder made if missing.
fn outputs(inputs: &[PathBuf], output: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let folder =
        inputs.len() > 1 || output.as_os_str().to_string_lossy().ends_with('/') || output.is_dir();
    if !folder {
        return Ok(vec![(inputs[0].clone(), output.to_owned())]);
    }
    let looks_like_a_file = segsynth::io::encode::Container::for_path(output).is_ok();
    if (output.exists() && !output.is_dir()) || (!output.exists() && looks_like_a_file) {
        return Err(usage(format!(
            "-o {}: with {} inputs the output is a folder, and this names a file; expected a folder (made if missing)",
            output.display(),
            inputs.len()
        )));
    }
    let mut seen = std::collections::HashMap::new();
    let mut pairs = Vec::new();
    for input in inputs {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Some(first) = seen.insert(stem.clone(), input.clone()) {
            return Err(usage(format!(
                "{} and {} would both be written to {}/{stem}.mp4; expected inputs with different file names",
                first.display(),
                input.display(),
                output.display()
            )));
        }
        let out = output.join(format!("{stem}.mp4"));
        if same_file(input, &out) {
            return Err(usage(format!(
                "{} would be written over itself; expected an output folder other than the input's",
                input.display()
            )));
        }
        pairs.push((input.clone(), out));
    }
    std::fs::create_dir_all(output)
        .map_err(|e| anyhow::anyhow!("cannot make the output folder {}: {e}", output.display()))?;
    Ok(pairs)
}

/// Whether two paths name the same file (`b` need not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let full = |p: &Path| {
        let dir = segsynth::io::encode::parent_dir(p).canonicalize().ok()?;
        Some(dir.join(p.file_name()?))
    };
    matches!((full(a), full(b)), (Some(x), Some(y)) if x == y)
}

/// What every file of a call shares.
struct Run<'a> {
    encoder: &'a EncoderSettings,
    overwrite: bool,
    quiet: bool,
    interrupt: Arc<AtomicBool>,
}

impl Run<'_> {
    /// One file through the stages; the summary and how it ended are printed.
    fn one(&self, stages: &mut Stages, input: &Path, output: &Path) -> anyhow::Result<ExitCode> {
        let job = FileJob {
            input,
            output,
            overwrite: self.overwrite,
            encoder: self.encoder.clone(),
            interrupt: Arc::clone(&self.interrupt),
            progress: Arc::new(Progress::default()),
        };
        let display = (!self.quiet).then(|| progress::spawn(Arc::clone(&job.progress)));
        let result = job.run(stages);
        if let Some(d) = display {
            d.finish();
        }
        let (summary, ending) = result?;
        eprint!("{summary}");
        Ok(match ending {
            Ending::Complete => {
                eprintln!("wrote {}", output.display());
                ExitCode::SUCCESS
            }
            Ending::Interrupted => {
                eprintln!(
                    "interrupted: wrote {} with the {} frames processed so far",
                    output.display(),
                    summary.frames_out
                );
                ExitCode::from(EXIT_INTERRUPTED)
            }
            Ending::InputIncomplete(why) => {
                eprintln!(
                    "warning: the input ended early ({why}); wrote {} with the {} frames that decoded",
                    output.display(),
                    summary.frames_out
                );
                ExitCode::from(EXIT_INCOMPLETE)
            }
        })
    }

    /// After a signal: says how many files were written, and the exit code.
    fn stopped(&self, written: usize, total: usize) -> Option<ExitCode> {
        self.interrupt.load(Ordering::Relaxed).then(|| {
            eprintln!("interrupted: {written} of {total} files written");
            ExitCode::from(EXIT_INTERRUPTED)
        })
    }

    /// Every file in turn; one that fails is reported and the others go on. A signal
    /// ends the file being written (finalised) and skips the rest.
    fn many(&self, stages: &mut Stages, pairs: &[(PathBuf, PathBuf)]) -> ExitCode {
        let started = std::time::Instant::now();
        let (mut written, mut failed, mut worst) = (0, Vec::new(), ExitCode::SUCCESS);
        for (input, output) in pairs {
            if let Some(code) = self.stopped(written, pairs.len()) {
                return code;
            }
            eprintln!("== {} -> {}", input.display(), output.display());
            let outcome = segsynth::io::sink::file::check_output(output, self.overwrite)
                .and_then(|_| segsynth::io::source::file::check_input(input))
                .map_err(anyhow::Error::from)
                .and_then(|_| self.one(stages, input, output));
            match outcome {
                Ok(code) if code == ExitCode::from(EXIT_INTERRUPTED) => return code,
                Ok(code) => {
                    written += 1;
                    if code != ExitCode::SUCCESS {
                        worst = code;
                    }
                }
                Err(e) => {
                    if let Some(code) = self.stopped(written, pairs.len()) {
                        return code;
                    }
                    eprintln!("segsynth: error: {}: {e:#}", input.display());
                    failed.push(input.display().to_string());
                }
            }
        }
        eprintln!(
            "{} inputs: {written} written, {} failed{} in {:.2} s",
            pairs.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            },
            started.elapsed().as_secs_f64()
        );
        if failed.is_empty() {
            worst
        } else {
            ExitCode::FAILURE
        }
    }
}
