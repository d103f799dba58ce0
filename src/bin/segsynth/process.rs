//! `segsynth process`: the file job, with a progress display and a summary per file.
//! The files themselves (several at a time, one model session) are `io::batch`'s.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use segsynth::io::batch::{BatchError, FileResult, Outcome};
use segsynth::io::file_job::Ending;
use segsynth::pipeline::Progress;

use crate::args::ProcessArgs;
use crate::options::usage;
use crate::signals::interrupt_flag;
use crate::{EXIT_INCOMPLETE, EXIT_INTERRUPTED, progress};

pub fn process(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    // What the user typed becomes one checked request; from here it only goes down the
    // layers: the files, the stages, the job.
    let display = Display {
        quiet: args.quiet,
        single: args.inputs.len() == 1,
        bar: Mutex::default(),
        started: std::time::Instant::now(),
    };
    let batch = crate::options::batch(args, interrupt_flag()?)?;
    match batch.run(&display) {
        Ok(outcome) => display.exit_code(outcome),
        Err(BatchError::Plan(message)) => Err(usage(message)),
        Err(e) => Err(e.into()),
    }
}

/// What the user sees of the files: a progress bar for one file, a line as each of
/// several starts and ends, the summary of each, the total.
struct Display {
    quiet: bool,
    single: bool,
    bar: Mutex<Option<progress::Display>>,
    started: std::time::Instant,
}

impl segsynth::io::batch::Report for Display {
    fn started(&self, input: &Path, output: &Path, progress: &Arc<Progress>) {
        if !self.single {
            eprintln!("== {} -> {}", input.display(), output.display());
        } else if !self.quiet
            && let Ok(mut bar) = self.bar.lock()
        {
            *bar = Some(progress::spawn(Arc::clone(progress)));
        }
    }

    fn finished(&self, input: &Path, output: &Path, result: &FileResult) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            bar.finish();
        }
        let prefix = if self.single {
            String::new()
        } else {
            format!("{}: ", input.display())
        };
        match result {
            // One write each, so the lines of files ending together do not interleave.
            Ok((summary, ending)) => eprintln!(
                "{summary}{prefix}{}",
                ended(ending, output, summary.frames_out)
            ),
            Err(e) if !self.single => eprintln!("segsynth: error: {prefix}{e}"),
            Err(_) => {}
        }
    }
}

impl Display {
    /// The call's exit code: one file's own, or for several the worst of them (any that
    /// failed: 1), with a total line.
    fn exit_code(&self, outcome: Outcome) -> anyhow::Result<ExitCode> {
        let total = outcome.files.len();
        let written = outcome.written();
        if let Some((calls, frames)) = outcome.batches {
            eprintln!("model batches: {frames} frames in {calls} calls");
        }
        let (mut failed, mut interrupted, mut incomplete) = (Vec::new(), false, false);
        for (input, _, result) in outcome.files {
            match result {
                Some(Ok((_, Ending::Complete))) => {}
                Some(Ok((_, Ending::Interrupted))) | None => interrupted = true,
                Some(Ok((_, Ending::InputIncomplete(_)))) => incomplete = true,
                Some(Err(e)) if self.single => return Err(e.into()),
                Some(Err(_)) => failed.push(input.display().to_string()),
            }
        }
        if interrupted {
            if !self.single {
                eprintln!("interrupted: {written} of {total} files written");
            }
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        if !self.single {
            eprintln!(
                "{total} inputs: {written} written, {} failed{} in {:.2} s",
                failed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", failed.join(", "))
                },
                self.started.elapsed().as_secs_f64()
            );
        }
        Ok(if !failed.is_empty() {
            ExitCode::FAILURE
        } else if incomplete {
            ExitCode::from(EXIT_INCOMPLETE)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// The line that says how a file ended.
fn ended(ending: &Ending, output: &Path, frames: u64) -> String {
    match ending {
        Ending::Complete => format!("wrote {}", output.display()),
        Ending::Interrupted => format!(
            "interrupted: wrote {} with the {frames} frames processed so far",
            output.display()
        ),
        Ending::InputIncomplete(why) => format!(
            "warning: the input ended early ({why}); wrote {} with the {frames} frames that decoded",
            output.display()
        ),
    }
}
